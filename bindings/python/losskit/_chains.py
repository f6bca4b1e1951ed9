"""losskit.chain, losskit.viterbi, losskit.marginals: linear chains (lk_chain_*)."""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["chain", "viterbi", "marginals", "ChainResult", "ViterbiResult", "MarginalsResult"]


class ChainResult(NamedTuple):
    """loss: a scalar ("sum"/"mean") or (n,) ("none"); the gradients of exactly that loss:
    d_emissions (n, t_max, tags), d_transitions (tags, tags), d_start, d_end (tags,) — each
    None when with_grad=False."""

    loss: object
    d_emissions: Optional[np.ndarray]
    d_transitions: Optional[np.ndarray]
    d_start: Optional[np.ndarray]
    d_end: Optional[np.ndarray]


class ViterbiResult(NamedTuple):
    """path: (n, t_max) int32 best tags, -1 past each length; score: (n,) best-path scores."""

    path: np.ndarray
    score: np.ndarray


class MarginalsResult(NamedTuple):
    """marginals: (n, t_max, tags) p(y_t = y), 0 past each length; log_z: (n,)."""

    marginals: np.ndarray
    log_z: np.ndarray


def _model(emissions, transitions, lengths, start, end):
    """The shared arguments, checked: dtype, shapes, int32 lengths."""
    e = c.as_array(emissions)
    dtype = c.float_dtype(e)
    if e.ndim != 3:
        raise ValueError(f"emissions must be 3-D (n, t_max, tags), got shape {e.shape}")
    n, t_max, tags = e.shape
    e = c.as_float(e, dtype, "emissions", (n, t_max, tags))
    tr = c.as_float(transitions, dtype, "transitions", (tags, tags))
    ln = c.as_labels(lengths, "lengths", (n,))
    if n and (ln.min() < 0 or ln.max() > t_max):
        raise ValueError(f"lengths must lie in [0, t_max = {t_max}], got [{ln.min()}, {ln.max()}]")
    st = None if start is None else c.as_float(start, dtype, "start", (tags,))
    en = None if end is None else c.as_float(end, dtype, "end", (tags,))
    return dtype, e, tr, ln, st, en, (n, t_max, tags)


GRADIENTS = ("d_emissions", "d_transitions", "d_start", "d_end")


def chain(emissions, transitions, lengths, gold, *, loss="log", start=None, end=None, cost=None,
          weight=None, reduction="mean", cost_scale=1.0, hope=None, fear=None, hope_scale=None,
          fear_scale=None, threads=0, with_grad=True, grad_out=None) -> ChainResult:
    """Loss and gradients of a batch of sequences under a linear-chain model (CRF and friends).

    The candidates of sequence i (length T = lengths[i]) are all its tag paths y, scored

      s(y) = start[y_0] + sum_{t<T} emissions[i, t, y_t] + sum_{1<=t<T} transitions[y_{t-1}, y_t]
             + end[y_{T-1}]

    with cost c(y) = cost_scale * sum_t cost[i, t, y_t] (Hamming by default: 1 per position whose
    tag is not the gold's). Losses (``loss=``), per sequence, with s and c over all paths, g the
    gold path, o the oracle (lowest cost, then highest score), lse the log-sum-exp over paths
    (forward-backward) and max the best path (Viterbi), p(y) = exp(s(y) - lse(s)):

      log             lse(s) - s[g]  (the CRF negative log-likelihood)
      perceptron      max(s) - s[g]  (structured perceptron)
      hinge           max(s + c) - s[g]  (structured SVM, margin rescaling)        [TJHA05]
      softmax_margin  lse(s + c) - s[g]                                              [GS10]
      risk            sum_y p(y) c(y)  (expected cost, expectation semiring)  [SMTH06, LE09]
      ramp            max(s + c) - max(s - c)                               [DLSVL08, GS12]
      soft_ramp       lse(s + c) - lse(s - c)                                        [GS12]
      infinite_ramp   max(s + c) - s[o]                                              [GS12]
      hope_fear       F(s + f c) - H(s - h c): F = fear ("max" or "lse") with f = fear_scale,
                      H = hope ("gold": s[g], "oracle": s[o], "max" or "lse") with
                      h = hope_scale                                        [GS12, DLSVL08]

    squared, squentropy (they need candidates that can be enumerated one by one) and the angular
    losses cosface and arcface are not defined on chains; label smoothing is not offered. Full
    references: ``help(losskit)``.

    Args:
      emissions: (n, t_max, tags) per-position tag scores; -inf forbids a tag at a position.
      transitions: (tags, tags) scores, [from, to]; -inf forbids a transition.
      lengths: (n,) sequence lengths in [0, t_max]; positions past them are not read.
      gold: (n, t_max) gold tags (positions past each length are ignored); integers, or floats
        that are whole numbers.
      loss: one of the losses above, by name.
      start, end: (tags,) scores of the first and last tag, or None (zeros).
      cost: (n, t_max, tags) per-position costs, or None (Hamming: 1 per wrong tag).
      weight, reduction, cost_scale, hope, fear, hope_scale, fear_scale, threads, with_grad: as
        in losskit.dense.
      grad_out: None, or a tuple (d_emissions, d_transitions, d_start, d_end) of arrays to write
        the gradients into (returned in the result), as a NumPy ufunc's out= tuple: each entry
        a C-contiguous array of the computing dtype and its gradient's shape, or None for a new
        one (d_start and d_end are computed even when start and end are None). Left untouched
        when the call fails.

    Returns:
      ChainResult(loss, d_emissions, d_transitions, d_start, d_end).

    Raises:
      ValueError: an argument has the wrong shape, dtype or name (checked before the call).
      LossKitError (a ValueError): a value outside its domain or a loss not defined on chains;
        the message names the argument and the index, and status / name give the lk_status.
    """
    dtype, e, tr, ln, st, en, (n, t_max, tags) = _model(emissions, transitions, lengths, start, end)
    g = c.as_labels(gold, "gold", (n, t_max))
    cost_array = None if cost is None else c.as_float(cost, dtype, "cost", (n, t_max, tags))
    w = None if weight is None else c.as_float(weight, dtype, "weight", (n,))
    key = ("chains", loss, reduction, cost_scale, threads, type(threads), hope, fear, hope_scale,
           fear_scale)
    opt = c.options(key, lambda: c.chain_options(
        loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads, hope=hope,
        fear=fear, hope_scale=hope_scale, fear_scale=fear_scale))
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    grads = c.gradient_buffers(
        grad_out, with_grad, GRADIENTS, ((n, t_max, tags), (tags, tags), (tags,), (tags,)), dtype,
        (("emissions", e), ("transitions", tr), ("start", st), ("end", en), ("cost", cost_array),
         ("weight", w)))
    fn = lib.lk_chain_f64 if dtype == np.float64 else lib.lk_chain_f32
    address = c.address
    fn(ctypes.byref(opt), n, t_max, tags, address(e), address(tr), address(st), address(en),
       address(ln), address(g), address(cost_array), address(w), address(out),
       *[address(x) for x in grads])
    return ChainResult(out if reduction == "none" else out[0], *grads)


def viterbi(emissions, transitions, lengths, *, start=None, end=None, threads=0) -> ViterbiResult:
    """The best tag path of each sequence and its score (ties to the lowest tags).

    Arguments as in losskit.chain. Returns ViterbiResult(path, score): path (n, t_max) int32
    tags, -1 past each length; score (n,) the best path's s(y) (0 for an empty sequence)."""
    dtype, e, tr, ln, st, en, (n, t_max, tags) = _model(emissions, transitions, lengths, start, end)
    opt = c.options(("decoding", threads, type(threads)), lambda: c.make_options(
        loss="log", reduction="mean", cost_scale=1.0, threads=threads))
    path = np.empty((n, t_max), np.int32)
    score = np.empty(n, dtype)
    fn = lib.lk_chain_viterbi_f64 if dtype == np.float64 else lib.lk_chain_viterbi_f32
    fn(ctypes.byref(opt), n, t_max, tags, c.address(e), c.address(tr), c.address(st), c.address(en),
       c.address(ln), c.address(path), c.address(score))
    return ViterbiResult(path, score)


def marginals(emissions, transitions, lengths, *, start=None, end=None, threads=0) -> MarginalsResult:
    """Per-position tag posteriors p(y_t = y) and log Z of each sequence.

    p(y) = exp(s(y)) / Z over the tag paths y (s(y) as in losskit.chain), Z = sum_y exp(s(y)):
    forward-backward. Arguments as in losskit.chain. Returns MarginalsResult(marginals, log_z):
    marginals (n, t_max, tags), 0 past each length; log_z (n,) (0 for an empty sequence)."""
    dtype, e, tr, ln, st, en, (n, t_max, tags) = _model(emissions, transitions, lengths, start, end)
    opt = c.options(("decoding", threads, type(threads)), lambda: c.make_options(
        loss="log", reduction="mean", cost_scale=1.0, threads=threads))
    mu = np.empty((n, t_max, tags), dtype)
    log_z = np.empty(n, dtype)
    fn = lib.lk_chain_marginals_f64 if dtype == np.float64 else lib.lk_chain_marginals_f32
    fn(ctypes.byref(opt), n, t_max, tags, c.address(e), c.address(tr), c.address(st), c.address(en),
       c.address(ln), c.address(mu), c.address(log_z))
    return MarginalsResult(mu, log_z)
