"""A brute-force float64 reference of the linear-chain functions of LossKit (lk_chain_*).

Written from include/losskit.h (the linear-chain block) and DESIGN.md §2–§4.4, not from the
Swift sources. A chain is a candidate set: the candidates of a sequence of length T are all
tags**T tag paths y, scored

    s(y) = start[y_0] + sum_{t<T} e[t, y_t] + sum_{1<=t<T} trans[y_{t-1}, y_t] + end[y_{T-1}]

with the unscaled cost c(y) = sum_t cost[t, y_t] (Hamming, [y_t != gold_t], when cost is None).
So every loss is the dense per-example reference (reference.example_loss) over the vector of
path scores, with the gold path's index as the gold — the same tie rules (a max over tied paths
picks the gold path if it is among them; the oracle is the path of lowest unscaled cost, then
highest score), the same masks (a path with a -inf term does not exist) and the same NaN rule.
The gradient of the loss w.r.t. the path scores is chained through the path features: s(y) is
linear in the parameters, with d s(y) / d e[t, y'] = [y_t = y'], d s(y) / d trans[a, b] = the
number of positions t >= 1 with (y_{t-1}, y_t) = (a, b), d s(y) / d start[a] = [y_0 = a] and
d s(y) / d end[a] = [y_{T-1} = a]. Viterbi and the marginals are the argmax and the softmax
over the same path scores.

It favours being obviously right over being fast: enumerating tags**T paths is fine for
T <= 8, tags <= 4. Inputs the library must reject raise ValueError here.

    reference_chain(emissions, transitions, lengths, gold, *, loss=..., ...)
        -> (loss, d_emissions, d_transitions, d_start, d_end)
    reference_viterbi(emissions, transitions, lengths, *, start, end) -> (path, score)
    reference_marginals(emissions, transitions, lengths, *, start, end) -> (marginals, log_z)
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache

import numpy as np

from reference import example_loss, uses_costs


@lru_cache(maxsize=None)
def all_paths(T: int, tags: int) -> np.ndarray:
    """Every tag path of length T, (tags**T, T) int64, in itertools.product order (so the index
    of path y is sum_t y_t * tags**(T-1-t))."""
    paths = np.array(list(itertools.product(range(tags), repeat=T)), dtype=np.int64)
    paths.setflags(write=False)
    return paths.reshape(tags**T, T)


def path_index(y, tags: int) -> int:
    index = 0
    for tag in y:
        index = index * tags + int(tag)
    return index


def path_scores(e, transitions, start, end, Y) -> np.ndarray:
    """s(y) of every row of Y (K, T) under emissions e (T, tags) and the shared parameters."""
    T = Y.shape[1]
    s = start[Y[:, 0]] + end[Y[:, -1]] + e[np.arange(T), Y].sum(axis=1)
    if T > 1:
        s = s + transitions[Y[:, :-1], Y[:, 1:]].sum(axis=1)
    return s


def chain_gradients(grad, Y, tags):
    """The gradient of the loss w.r.t. (e (T, tags), transitions, start, end), given its
    gradient w.r.t. the path scores (K,): each path's gradient times its feature counts."""
    K, T = Y.shape
    d_e = np.zeros((T, tags))
    d_tr = np.zeros((tags, tags))
    d_st = np.zeros(tags)
    d_en = np.zeros(tags)
    np.add.at(d_e, (np.broadcast_to(np.arange(T), (K, T)), Y), grad[:, None])
    if T > 1:
        np.add.at(d_tr, (Y[:, :-1], Y[:, 1:]), grad[:, None])
    np.add.at(d_st, Y[:, 0], grad)
    np.add.at(d_en, Y[:, -1], grad)
    return d_e, d_tr, d_st, d_en


def _shared(transitions, start, end, tags):
    tr = np.asarray(transitions, dtype=np.float64)
    st = np.zeros(tags) if start is None else np.asarray(start, dtype=np.float64)
    en = np.zeros(tags) if end is None else np.asarray(end, dtype=np.float64)
    for name, a in (("transitions", tr), ("start", st), ("end", en)):
        if np.isposinf(a).any():
            raise ValueError(f"+inf in {name}")
    return tr, st, en


def sequence_loss(e, tr, st, en, gold, unscaled_cost, tags, *, loss, cost_scale=1.0,
                  hope=None, fear=None, hope_scale=None, fear_scale=None):
    """(value, d_e (T, tags), d_tr, d_st, d_en) of one sequence of length T = len(e) >= 1,
    unweighted. unscaled_cost is (T, tags) or None (Hamming against gold)."""
    T = len(e)
    if np.isposinf(e).any():
        raise ValueError("+inf emission")
    if any(not 0 <= int(g) < tags for g in gold):
        raise ValueError(f"gold tag outside [0, {tags})")
    Y = all_paths(T, tags)
    s = path_scores(e, tr, st, en, Y)
    g = path_index(gold, tags)
    if unscaled_cost is None:
        per_position = np.array([[0.0 if y == gold[t] else 1.0 for y in range(tags)]
                                 for t in range(T)])
    else:
        per_position = np.asarray(unscaled_cost, dtype=np.float64)
        reads = uses_costs(loss, hope, fear, hope_scale, fear_scale)
        # costs are read where the emission is not -inf (header, lk_chain_f32 @param cost)
        if reads and not np.isfinite(per_position[e > -np.inf]).all():
            raise ValueError("non-finite cost read")
    with np.errstate(invalid="ignore"):
        c = per_position[np.arange(T), Y].sum(axis=1)
    if not np.isnan(s).any() and not (s > -np.inf).any():
        raise ValueError("no allowed path")
    value, grad = example_loss(s, g, c, loss=loss, cost_scale=cost_scale, hope=hope, fear=fear,
                               hope_scale=hope_scale, fear_scale=fear_scale)
    return (value, *chain_gradients(grad, Y, tags))


def reference_chain(emissions, transitions, lengths, gold, *, loss="log", start=None, end=None,
                    cost=None, weight=None, reduction="mean", cost_scale=1.0, hope=None,
                    fear=None, hope_scale=None, fear_scale=None, threads=0, with_grad=True):
    """What lk_chain_f64 should return, with the keyword options of losskit.chain:
    (loss, d_emissions, d_transitions, d_start, d_end).

    Batch rules (DESIGN.md §3, header): sequence i's loss and gradients are multiplied by
    weight[i]; a zero-weight sequence is not read and contributes exactly 0; a length-0
    sequence has loss 0 and gradient 0 but keeps its weight in the mean's denominator (chains
    have no ignore rule: the mean divides by the summed weight of all sequences); the shared
    parameters get the sum of the sequences' weighted gradients; under MEAN everything is
    divided by the summed weight, and a mean over zero weight is 0 with zero gradients."""
    e_all = np.asarray(emissions, dtype=np.float64)
    n, t_max, tags = e_all.shape
    lengths = np.asarray(lengths)
    gold = np.asarray(gold)
    if n > 0:
        tr, st, en = _shared(transitions, start, end, tags)
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    per = np.zeros(n)
    d_e = np.zeros((n, t_max, tags))
    d_tr = np.zeros((tags, tags))
    d_st = np.zeros(tags)
    d_en = np.zeros(tags)
    for i in range(n):
        T = int(lengths[i])
        if w[i] == 0 or T == 0:
            continue
        value, de, dtr, dst, den = sequence_loss(
            e_all[i, :T], tr, st, en, gold[i, :T],
            None if cost is None else np.asarray(cost, dtype=np.float64)[i, :T], tags,
            loss=loss, cost_scale=cost_scale, hope=hope, fear=fear, hope_scale=hope_scale,
            fear_scale=fear_scale)
        per[i] = w[i] * value
        d_e[i, :T] = w[i] * de
        d_tr += w[i] * dtr
        d_st += w[i] * dst
        d_en += w[i] * den
    if reduction == "none":
        out = per
    elif reduction == "sum":
        out = float(np.sum(per))
    elif reduction == "mean":
        denom = float(np.sum(w))
        if denom == 0:
            out = 0.0
            d_e, d_tr, d_st, d_en = (np.zeros_like(a) for a in (d_e, d_tr, d_st, d_en))
        else:
            out = float(np.sum(per)) / denom
            d_e, d_tr, d_st, d_en = (a / denom for a in (d_e, d_tr, d_st, d_en))
    else:
        raise ValueError(reduction)
    if not with_grad:
        return out, None, None, None, None
    return out, d_e, d_tr, d_st, d_en


def _sequence_paths(emissions, transitions, lengths, start, end):
    """(n, t_max, tags, per-sequence (Y, s) or None for length 0)."""
    e_all = np.asarray(emissions, dtype=np.float64)
    n, t_max, tags = e_all.shape
    out = []
    if n:
        tr, st, en = _shared(transitions, start, end, tags)
    for i in range(n):
        T = int(lengths[i])
        if T == 0:
            out.append(None)
            continue
        if np.isposinf(e_all[i, :T]).any():
            raise ValueError(f"+inf emission in sequence {i}")
        Y = all_paths(T, tags)
        s = path_scores(e_all[i, :T], tr, st, en, Y)
        if not np.isnan(s).any() and not (s > -np.inf).any():
            raise ValueError(f"no allowed path in sequence {i}")
        out.append((Y, s))
    return n, t_max, tags, out


def reference_viterbi(emissions, transitions, lengths, *, start=None, end=None):
    """(path (n, t_max) int32 with -1 past each length, score (n,)): the best path by brute
    force. Ties are not resolved here (the tests avoid them): the first best path is taken."""
    n, t_max, _, seqs = _sequence_paths(emissions, transitions, lengths, start, end)
    path = np.full((n, t_max), -1, dtype=np.int32)
    score = np.zeros(n)
    for i, ys in enumerate(seqs):
        if ys is None:
            continue
        Y, s = ys
        if np.isnan(s).any():
            score[i] = math.nan
            continue
        best = int(np.argmax(s))
        path[i, :Y.shape[1]] = Y[best]
        score[i] = s[best]
    return path, score


def reference_marginals(emissions, transitions, lengths, *, start=None, end=None):
    """(marginals (n, t_max, tags), log_z (n,)): p(y) = exp s(y) / Z over all paths,
    marginals[i, t, a] = sum of p(y) over the paths with y_t = a, log Z = logsumexp s."""
    n, t_max, tags, seqs = _sequence_paths(emissions, transitions, lengths, start, end)
    mu = np.zeros((n, t_max, tags))
    log_z = np.zeros(n)
    for i, ys in enumerate(seqs):
        if ys is None:
            continue
        Y, s = ys
        m = float(np.max(s))
        z = np.exp(s - m)
        log_z[i] = m + math.log(float(np.sum(z)))
        p = z / np.sum(z)
        T = Y.shape[1]
        np.add.at(mu[i], (np.broadcast_to(np.arange(T), Y.shape), Y), p[:, None])
    return mu, log_z



def forward_scores(e, transitions, start=None, end=None):
    """(log Z, best path score) of one sequence with emissions e (T, tags) by the textbook
    forward recursions in float64 (log-sum-exp and max over the previous tag), for sequences
    too long to enumerate; a second, independent check of what the brute force computes."""
    e = np.asarray(e, dtype=np.float64)
    T, tags = e.shape
    tr, st, en = _shared(transitions, start, end, tags)

    def lse(a, axis):
        m = np.max(a, axis=axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0.0)
        with np.errstate(divide="ignore"):
            return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))

    alpha = st + e[0]
    best = st + e[0]
    for t in range(1, T):
        alpha = lse(alpha[:, None] + tr, axis=0) + e[t]
        best = np.max(best[:, None] + tr, axis=0) + e[t]
    return float(lse(alpha + en, axis=0)), float(np.max(best + en))
