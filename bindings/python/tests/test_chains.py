"""Linear chains (losskit.chain / viterbi / marginals; lk_chain_*, lk_chain_viterbi_*,
lk_chain_marginals_*) against a brute-force float64 reference, closed forms, pytorch-crf,
finite differences, float32, named properties, error paths and thread counts.

The reference (tests/chain_reference.py) enumerates every tag path of a sequence, so a chain is
exactly the dense per-example reference (tests/reference.py: example_loss) over a vector of
tags**T path scores, with the gradient chained through the path features. Expected values come
from it, from closed forms written next to them, or from a peer — never from the library's own
output.

Sections: 1. brute force, ties and closed forms; 2. pytorch-crf; 3. finite differences;
4. float32 and properties (marginals, risk, log Z, Viterbi); 5. errors and the batch rules
(length 0, NaN, zero weight, inputs past a length); 6. the same bits at any thread count.
"""

from __future__ import annotations

import ctypes
import math
import re
from dataclasses import dataclass, replace
from typing import Optional

import numpy as np
import pytest

import losskit
from chain_reference import (all_paths, forward_scores, path_scores, reference_chain,
                             reference_marginals, reference_viterbi)
from losskit import _common, _native
from reference import CASES, PRESETS

REDUCTIONS = ("none", "sum", "mean")
EPS32 = float(np.finfo(np.float32).eps)
GRADS = ("d_emissions", "d_transitions", "d_start", "d_end")

# Every loss configuration of the dense registry that chains offer: not label smoothing, not the
# square losses (header: LK_ERR_UNSUPPORTED on chains; tested in section 5).
CHAIN_CASES = [c for c in CASES if "label_smoothing" not in c.options
               and c.loss not in ("squared", "squentropy")]


def case_params():
    return [pytest.param(c, id=c.id) for c in CHAIN_CASES]


# ------------------------------------------------------------------------------------------
# Random chain batches.
# ------------------------------------------------------------------------------------------

@dataclass
class ChainBatch:
    emissions: np.ndarray           # (n, t_max, tags)
    transitions: np.ndarray         # (tags, tags), [from, to]
    lengths: np.ndarray             # (n,) int32
    gold: np.ndarray                # (n, t_max) int32
    start: Optional[np.ndarray] = None
    end: Optional[np.ndarray] = None
    cost: Optional[np.ndarray] = None
    weight: Optional[np.ndarray] = None

    @property
    def shape(self):
        return self.emissions.shape

    def model(self) -> tuple:
        return self.emissions, self.transitions, self.lengths

    def kwargs(self) -> dict:
        return dict(start=self.start, end=self.end, cost=self.cost, weight=self.weight)

    def astype(self, dtype) -> "ChainBatch":
        conv = (lambda a: None if a is None else np.asarray(a).astype(dtype))
        return ChainBatch(conv(self.emissions), conv(self.transitions), self.lengths.copy(),
                          self.gold.copy(), conv(self.start), conv(self.end), conv(self.cost),
                          conv(self.weight))


def random_lengths(rng, n, t_max):
    """Lengths in [0, t_max], with 0, 1 and t_max always among them (n >= 3)."""
    lengths = rng.integers(0, t_max + 1, size=n)
    lengths[:3] = [0, 1, t_max][:n]
    return rng.permutation(lengths).astype(np.int32)


def random_allowed_path(rng, e, tr, st, en):
    """A random allowed path of one sequence (emissions e (T, tags)), or None if there is none:
    backward reachability over the finite entries, then a random walk forward through it (no
    enumeration, so it works for long sequences)."""
    T, tags = e.shape
    st = np.zeros(tags) if st is None else st
    en = np.zeros(tags) if en is None else en
    ok = np.zeros((T, tags), dtype=bool)
    ok[T - 1] = (e[T - 1] > -np.inf) & (en > -np.inf)
    for t in range(T - 2, -1, -1):
        ok[t] = (e[t] > -np.inf) & ((tr > -np.inf) & ok[t + 1][None, :]).any(axis=1)
    choices = np.flatnonzero(ok[0] & (st > -np.inf))
    if len(choices) == 0:
        return None
    path = [int(rng.choice(choices))]
    for t in range(1, T):
        path.append(int(rng.choice(np.flatnonzero(ok[t] & (tr[path[-1]] > -np.inf)))))
    return np.array(path)


def random_chain(rng, n, t_max, tags, *, start_end=False, costs="hamming", forbid=0.0,
                 gold_allowed=True, scale=2.0, poison_tail=True, lengths=None) -> ChainBatch:
    """A random batch of n sequences.

    costs        "hamming" (no cost array), "real" (uniform [0, 2) per position and tag) or
                 "integer" ({0, 1, 2}: cost ties everywhere, which the oracle breaks by score);
    forbid       probability that a transition, start or end entry, or an emission, is -inf;
                 every sequence keeps an allowed path (redrawn until it does); the costs at
                 forbidden emissions are NaN (not read);
    gold_allowed the gold is drawn among the allowed paths; otherwise half the sequences draw
                 it among all paths (so it is often forbidden when forbid > 0);
    poison_tail  emissions past each length are NaN / +inf, gold 99 / -5 and costs NaN there:
                 the library must not read them.
    Scores are continuous (normal), so no max over paths is tied.
    """
    for _ in range(1000):
        ln = random_lengths(rng, n, t_max) if lengths is None else np.asarray(lengths, np.int32)
        e = rng.normal(0.0, scale, size=(n, t_max, tags))
        tr = rng.normal(0.0, 1.0, size=(tags, tags))
        st = rng.normal(0.0, 1.0, size=tags) if start_end else None
        en = rng.normal(0.0, 1.0, size=tags) if start_end else None
        if forbid > 0:
            tr[rng.random((tags, tags)) < forbid] = -np.inf
            e[rng.random(e.shape) < forbid / 2] = -np.inf
            if start_end:
                st[rng.random(tags) < forbid] = -np.inf
                en[rng.random(tags) < forbid] = -np.inf
        gold = np.zeros((n, t_max), dtype=np.int32)
        ok = True
        for i in range(n):
            T = int(ln[i])
            if T == 0:
                continue
            allowed = random_allowed_path(rng, e[i, :T], tr, st, en)
            if allowed is None:
                ok = False
                break
            if gold_allowed or rng.random() < 0.5:
                gold[i, :T] = allowed
            else:
                gold[i, :T] = rng.integers(0, tags, size=T)
        if ok:
            break
    else:
        raise RuntimeError("could not draw a batch with an allowed path in every sequence")
    cost = None
    if costs == "real":
        cost = rng.uniform(0.0, 2.0, size=e.shape)
    elif costs == "integer":
        cost = rng.integers(0, 3, size=e.shape).astype(np.float64)
    if cost is not None:
        cost[e == -np.inf] = np.nan  # not read: the emission forbids the tag
    if poison_tail:
        for i in range(n):
            T = int(ln[i])
            e[i, T:] = np.where(np.arange(tags) % 2, np.inf, np.nan)
            gold[i, T:] = np.where(np.arange(t_max - T) % 2, 99, -5)
            if cost is not None:
                cost[i, T:] = np.nan
    return ChainBatch(e, tr, ln, gold, st, en, cost)


def weights(rng, n, zero=0.25):
    w = rng.uniform(0.25, 2.0, size=n)
    w[rng.random(n) < zero] = 0.0
    w[0] = 0.0  # at least one zero-weight sequence
    return w


def call(case, b: ChainBatch, reduction, **extra):
    """(library, reference) results as 5-tuples (loss, d_emissions, d_transitions, d_start,
    d_end); the reference runs in float64 on exactly the values the library received."""
    kw = dict(case.options, reduction=reduction, **extra)
    got = losskit.chain(*b.model(), b.gold, **b.kwargs(), **kw)
    b64 = b.astype(np.float64)
    want = reference_chain(*b64.model(), b64.gold, **b64.kwargs(), **kw)
    return tuple(got), want


def assert_f64(got, want, what=""):
    """float64 library vs float64 brute force: two evaluations of the same formulas, each a
    few ulps from the exact value (differences ~1e-15 on values of size ~10). 1e-10 leaves
    room for any order of operations and still catches any error of the math (a wrong path,
    probability or count is off by >= ~1e-3)."""
    for name, g, w in zip(("loss",) + GRADS, got, want):
        np.testing.assert_allclose(np.asarray(g, np.float64), w, rtol=1e-10, atol=1e-10,
                                   err_msg=f"{what} {name}")


# ------------------------------------------------------------------------------------------
# 1. Every loss against brute-force enumeration.
# ------------------------------------------------------------------------------------------

VARIANTS = {
    # id: (random_chain options, tags)
    "hamming": (dict(), 3),
    "hamming-start-end": (dict(start_end=True), 3),
    "cost-start-end": (dict(start_end=True, costs="real"), 3),
    "integer-cost-two-tags": (dict(start_end=True, costs="integer"), 2),
    "forbid-hamming-start-end": (dict(start_end=True, forbid=0.25), 3),
    "forbid-cost": (dict(costs="real", forbid=0.25), 3),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("case", case_params())
def test_f64_matches_brute_force(case, variant, rng):
    """Values and all four gradients, every reduction, no weights and weights with zeros, on
    a batch with lengths 0, 1, ..., 5 (t_max 5), poisoned tails, and — in the forbid variants
    — -inf transitions, start/end and emissions (gold path allowed when the loss reads the gold
    score, often forbidden otherwise)."""
    options, tags = VARIANTS[variant]
    b = random_chain(rng, 7, 5, tags, gold_allowed=case.uses_gold, **options)
    for w in (None, weights(rng, 7)):
        bw = replace(b, weight=w)
        for reduction in REDUCTIONS:
            got, want = call(case, bw, reduction)
            if reduction == "none":
                assert np.shape(got[0]) == (7,)
            else:
                assert np.ndim(got[0]) == 0
            for g, name in zip(got[1:], GRADS):
                assert g.dtype == np.float64, name
            assert_f64(got, want, f"{variant} weight={w is not None} {reduction}")
            # d_emissions is exactly 0 past each length
            for i, T in enumerate(b.lengths):
                assert np.all(got[1][i, T:] == 0.0)


def test_some_forbidden_gold_paths_are_exercised(rng):
    """A batch drawn like the forbid variants above, with gold paths drawn among all paths,
    does contain forbidden gold paths (asserted), and the losses that do not read the gold
    score accept them and match the brute force."""
    b = random_chain(rng, 7, 5, 3, start_end=True, forbid=0.25, gold_allowed=False)
    st, en = b.start, b.end
    forbidden = [i for i, T in enumerate(b.lengths) if T and not
                 path_scores(b.emissions[i, :T], b.transitions, st, en, b.gold[i, None, :T])[0]
                 > -np.inf]
    assert forbidden
    for loss in ("risk", "ramp", "soft_ramp", "infinite_ramp"):
        for reduction in REDUCTIONS:
            got = losskit.chain(*b.model(), b.gold, loss=loss, start=st, end=en,
                                reduction=reduction)
            want = reference_chain(*b.model(), b.gold, loss=loss, start=st, end=en,
                                   reduction=reduction)
            assert_f64(tuple(got), want, loss)


@pytest.mark.parametrize("variant", ["plain", "start-end", "forbid", "forbid-start-end"])
def test_viterbi_and_marginals_match_brute_force(variant, rng):
    """Best path (−1 past the length) and its score; marginals (0 past the length) and
    log Z = logsumexp of the path scores; lengths 0..5, tags 3, poisoned tails."""
    b = random_chain(rng, 9, 5, 3, start_end="start-end" in variant,
                     forbid=0.3 if "forbid" in variant else 0.0)
    kw = dict(start=b.start, end=b.end)
    path, score = losskit.viterbi(*b.model(), **kw)
    want_path, want_score = reference_viterbi(*b.model(), **kw)
    assert path.dtype == np.int32 and score.dtype == np.float64
    np.testing.assert_array_equal(path, want_path)
    np.testing.assert_allclose(score, want_score, rtol=1e-12, atol=1e-12)
    mu, log_z = losskit.marginals(*b.model(), **kw)
    want_mu, want_log_z = reference_marginals(*b.model(), **kw)
    np.testing.assert_allclose(mu, want_mu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(log_z, want_log_z, rtol=1e-12, atol=1e-12)
    for i, T in enumerate(b.lengths):
        assert np.all(path[i, T:] == -1) and np.all(mu[i, T:] == 0.0)


# ---- deliberate ties ------------------------------------------------------------------------
# The tie rule (DESIGN.md §2, header): a max over tied paths is the gold path if it is among
# them, otherwise any tied path, deterministically; the oracle is the path of lowest unscaled
# cost, then highest score.

def one_hot_paths(paths, tags):
    """(n, T, tags) indicator of each path's tags."""
    return np.eye(tags)[np.asarray(paths)]


def transition_counts(path, tags):
    counts = np.zeros((tags, tags))
    for a, b in zip(path[:-1], path[1:]):
        counts[a, b] += 1
    return counts


TIE_GOLD = np.array([[0, 2, 1, 1], [2, 2, 0, 1], [1, 0, 0, 0]], dtype=np.int32)
TIE_LENGTHS = np.array([4, 3, 1], dtype=np.int32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loss, options, emission_of_gold", [
    # all-zero model: s(y) = 0 for every path, so max s is tied over all 3**T paths, gold
    # included: the gold wins, perceptron = 0 - 0 = 0 and the gradient is e_gold - e_gold = 0
    # (any other tied path would give a non-zero gradient).
    pytest.param("perceptron", {}, 0.0, id="perceptron-all-zero"),
    # hinge with cost_scale 0 is the perceptron: the same tie.
    pytest.param("hinge", dict(cost_scale=0.0), 0.0, id="hinge-scale-0-all-zero"),
    # e[t, gold_t] = 1, else 0; Hamming: a path with d wrong tags has s + c = (T - d) + d = T,
    # so s + c is tied over all paths, gold included: hinge = T - s_gold = 0, gradient 0.
    pytest.param("hinge", {}, 1.0, id="hinge-margin-exactly-the-cost"),
    # same tie for the fear of ramp; the hope s - c = T - 2d has the gold as its unique max:
    # ramp = T - T = 0, gradient 0. Infinite ramp: the oracle is the gold (cost 0): 0.
    pytest.param("ramp", {}, 1.0, id="ramp-fear-tied"),
    pytest.param("infinite_ramp", {}, 1.0, id="infinite_ramp-fear-tied"),
    pytest.param("hope_fear", dict(hope="max", fear="max", hope_scale=1.0, fear_scale=1.0),
                 1.0, id="hope_fear-max-max-fear-tied"),
])
def test_tie_with_the_gold_picks_the_gold(loss, options, emission_of_gold, dtype):
    tags = 3
    e = (emission_of_gold * one_hot_paths(TIE_GOLD, tags)).astype(dtype)
    tr = np.zeros((tags, tags), dtype)
    for reduction in REDUCTIONS:
        r = losskit.chain(e, tr, TIE_LENGTHS, TIE_GOLD, loss=loss, reduction=reduction,
                          start=np.zeros(tags, dtype), end=np.zeros(tags, dtype), **options)
        assert np.all(np.asarray(r.loss) == 0.0), r.loss
        for name in GRADS:
            # float64: exactly 0. float32: the library rounds each term's share (1/3 under the
            # mean here) to float32 before subtracting the other, in dense rows and lists
            # alike, leaving up to half an ulp of 1/3 (~1e-8): inside the float32 tolerance.
            bound = 0.0 if dtype == np.float64 else EPS32
            assert np.all(np.abs(getattr(r, name)) <= bound), (name, getattr(r, name))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [dict(loss="ramp"),
                                     dict(loss="hope_fear", hope="max", fear="max",
                                          hope_scale=1.0, fear_scale=1.0)],
                         ids=["ramp", "hope_fear-max-max"])
def test_tied_hope_picks_the_gold(options, dtype):
    """Two tags, e[t, gold_t] = -1, else 0, Hamming: a path with d wrong tags has
    s - c = -(T - d) - d = -T for every path (the hope is tied, gold included: it picks the
    gold) and s + c = 2d - T, whose unique max is the complement path (d = T), value T.
    ramp = T - (-T) = 2T; gradient = features(complement) - features(gold)."""
    gold = np.array([[0, 1, 1], [1, 0, 0]], dtype=np.int32)
    lengths = np.array([3, 2], dtype=np.int32)
    e = (-one_hot_paths(gold, 2)).astype(dtype)
    r = losskit.chain(e, np.zeros((2, 2), dtype), lengths, gold, reduction="none", **options)
    np.testing.assert_array_equal(r.loss, [6.0, 4.0])
    comp = 1 - gold
    want_de = one_hot_paths(comp, 2) - one_hot_paths(gold, 2)
    want_de[1, 2:] = 0.0
    np.testing.assert_array_equal(r.d_emissions, want_de)
    # complements: [1, 0, 0] (transitions 1->0, 0->0) and [0, 1] (0->1); golds: [0, 1, 1]
    # (0->1, 1->1) and [1, 0] (1->0)
    np.testing.assert_array_equal(r.d_transitions, [[1.0, 0.0], [0.0, -1.0]])
    np.testing.assert_array_equal(r.d_start, [0.0, 0.0])  # starts 1, 0 minus 0, 1
    np.testing.assert_array_equal(r.d_end, [1.0 - 1.0, 1.0 - 1.0])  # ends 0, 1 minus 1, 0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tie_without_the_gold_is_any_tied_path_deterministically(dtype):
    """All-zero model, Hamming, tags 3: s + c = d (wrong tags), tied at T over the 2**T paths
    that are wrong everywhere; the gold (c = 0) is not among them. hinge = T per sequence; the
    gradient is features(y*) - features(gold) for one such path y*: d_emissions is -1 at each
    gold tag and +1 at exactly one other tag per position, and the shared gradients are those of
    the path it names. Repeated calls give the same bits."""
    tags = 3
    e = np.zeros((3, 4, tags), dtype)
    tr = np.zeros((tags, tags), dtype)
    runs = [losskit.chain(e, tr, TIE_LENGTHS, TIE_GOLD, loss="hinge", reduction="none",
                          start=np.zeros(tags, dtype), end=np.zeros(tags, dtype))
            for _ in range(3)]
    r = runs[0]
    np.testing.assert_array_equal(r.loss, TIE_LENGTHS.astype(np.float64))
    want_tr = np.zeros((tags, tags))
    want_st = np.zeros(tags)
    want_en = np.zeros(tags)
    for i, T in enumerate(TIE_LENGTHS):
        de = r.d_emissions[i, :T]
        g = TIE_GOLD[i, :T]
        assert np.all(de[np.arange(T), g] == -1.0)
        plus = de == 1.0
        assert np.all(plus.sum(axis=1) == 1) and np.all((de == 0) | plus | (de == -1))
        y = np.argmax(de, axis=1)
        assert np.all(y != g)
        want_tr += transition_counts(y, tags) - transition_counts(g, tags)
        want_st[y[0]] += 1
        want_st[g[0]] -= 1
        want_en[y[-1]] += 1
        want_en[g[-1]] -= 1
        assert np.all(r.d_emissions[i, T:] == 0)
    np.testing.assert_array_equal(r.d_transitions, want_tr)
    np.testing.assert_array_equal(r.d_start, want_st)
    np.testing.assert_array_equal(r.d_end, want_en)
    for other in runs[1:]:
        for a, b in zip(other, r):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options, fear_value", [
    # F = max s = all-2 path, 3T = 9 (fear_scale 0: no cost in the fear)
    (dict(loss="hope_fear", hope="oracle", fear="max", fear_scale=0.0), 9.0),
    # F = max (s + c): per position tag 2 gives 3 + 1, tag 1 0.5 + 0, tag 0 0 + 0: 12
    (dict(loss="infinite_ramp"), 12.0),
], ids=["hope_fear-oracle-max0", "infinite_ramp"])
def test_oracle_is_lowest_cost_then_highest_score(options, fear_value, dtype):
    """tags 3, T = 3, cost[t] = [0, 0, 1], e[t] = [0, 0.5, 3], gold all 0. The 2**3 paths over
    tags {0, 1} tie at cost 0 — the gold among them; the oracle is the highest-scored of them,
    the all-1 path (s = 1.5), not the gold (s = 0, lowest index) nor the best path (all 2,
    cost 3). loss = F - 1.5; gradient features(all 2) - features(all 1)."""
    e = np.tile([0.0, 0.5, 3.0], (1, 3, 1)).astype(dtype)
    cost = np.tile([0.0, 0.0, 1.0], (1, 3, 1)).astype(dtype)
    r = losskit.chain(e, np.zeros((3, 3), dtype), [3], np.zeros((1, 3), np.int32), cost=cost,
                      reduction="sum", **options)
    assert float(r.loss) == fear_value - 1.5
    np.testing.assert_array_equal(r.d_emissions, np.tile([0.0, -1.0, 1.0], (1, 3, 1)))
    np.testing.assert_array_equal(r.d_transitions, [[0, 0, 0], [0, -2, 0], [0, 0, 2]])
    np.testing.assert_array_equal(r.d_start, [0.0, -1.0, 1.0])
    np.testing.assert_array_equal(r.d_end, [0.0, -1.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_viterbi_tie_goes_to_the_lowest_tags(dtype):
    """All-zero model: every path scores 0; the header says ties go to the lowest tags."""
    path, score = losskit.viterbi(np.zeros((2, 4, 3), dtype), np.zeros((3, 3), dtype), [4, 2])
    np.testing.assert_array_equal(path, [[0, 0, 0, 0], [0, 0, -1, -1]])
    np.testing.assert_array_equal(score, [0.0, 0.0])


# ---- closed forms ---------------------------------------------------------------------------

L3 = math.log(3.0)
NINF = -np.inf
CLOSED_FORMS = [
    # (id, options, emissions, transitions, lengths, gold, cost, weight, reduction,
    #  loss, d_emissions, d_transitions, d_start, d_end)
    # T = 1 is a dense row of scores start + e + end = [0, log 3], gold 1: log(4/3); the
    # gradient p - e_gold = [1/4, -1/4] lands on e, start and end alike.
    ("log-T1-is-dense-log", dict(loss="log"), [[[0.0, L3]]], np.zeros((2, 2)), [1], [[1]],
     None, None, "none", [math.log(4 / 3)], [[[0.25, -0.25]]], np.zeros((2, 2)),
     [0.25, -0.25], [0.25, -0.25]),
    # all-zero model, T = 2, tags 2: Z = 4 paths, log loss = log 4; marginals 1/2 at each
    # position, 1/4 on each transition; gold [0, 1]: d_e = 1/2 - onehot, d_tr = 1/4 - [0->1].
    ("log-uniform-T2", dict(loss="log"), np.zeros((1, 2, 2)), np.zeros((2, 2)), [2], [[0, 1]],
     None, None, "none", [math.log(4.0)], [[[-0.5, 0.5], [0.5, -0.5]]],
     [[0.25, -0.75], [0.25, 0.25]], [-0.5, 0.5], [0.5, -0.5]),
    # transition 0 -> 1 forbidden: paths 00, 10, 11, each p = 1/3, log loss log 3 for gold
    # [1, 1]; marginals: position 0 [1/3, 2/3], position 1 [2/3, 1/3].
    ("log-forbidden-transition", dict(loss="log"), np.zeros((1, 2, 2)), [[0.0, NINF], [0, 0]],
     [2], [[1, 1]], None, None, "none", [L3], [[[1 / 3, -1 / 3], [2 / 3, -2 / 3]]],
     [[1 / 3, 0.0], [1 / 3, -2 / 3]], [1 / 3, -1 / 3], [2 / 3, -2 / 3]),
    # risk, all-zero model, T = 3, tags 2, gold 000, Hamming: independent uniform positions,
    # R = 3 * 1/2. d e[t, a] = E[1{y_t = a}(c - R)] = 1/2([a != 0] - 1/2) = [-1/4, 1/4];
    # d tr[a, b] = sum over the 2 pairs of 1/4([a != 0] + [b != 0] - 1); start, end as e.
    ("risk-uniform-hamming", dict(loss="risk"), np.zeros((1, 3, 2)), np.zeros((2, 2)), [3],
     [[0, 0, 0]], None, None, "none", [1.5], [[[-0.25, 0.25]] * 3], [[-0.5, 0.0], [0.0, 0.5]],
     [-0.25, 0.25], [-0.25, 0.25]),
    # weights and a length-0 sequence (NaN emissions, gold 99: not read): sequence 0 = the
    # T = 1 row above (log(4/3), gradient [1/4, -1/4], weight 2), sequence 2 = scores [0, 0]
    # gold 0 (log 2, gradient [-1/2, 1/2], weight 3). The length-0 sequence keeps its
    # weight 5 in the mean: total / 10.
    ("log-weights-length-0-sum", dict(loss="log"), [[[0.0, L3]], [[np.nan, np.nan]],
                                                    [[0.0, 0.0]]],
     np.zeros((2, 2)), [1, 0, 1], [[1], [99], [0]], None, [2.0, 5.0, 3.0], "sum",
     2 * math.log(4 / 3) + 3 * math.log(2), [[[0.5, -0.5]], [[0.0, 0.0]], [[-1.5, 1.5]]],
     np.zeros((2, 2)), [-1.0, 1.0], [-1.0, 1.0]),
    ("log-weights-length-0-mean", dict(loss="log"), [[[0.0, L3]], [[np.nan, np.nan]],
                                                     [[0.0, 0.0]]],
     np.zeros((2, 2)), [1, 0, 1], [[1], [99], [0]], None, [2.0, 5.0, 3.0], "mean",
     (2 * math.log(4 / 3) + 3 * math.log(2)) / 10,
     [[[0.05, -0.05]], [[0.0, 0.0]], [[-0.15, 0.15]]], np.zeros((2, 2)), [-0.1, 0.1],
     [-0.1, 0.1]),
    # hinge, T = 2, tags 2, e = [[0, 0.3], [0, 0.3]], gold 00, Hamming, transitions 1->1 = 1:
    # s + c: 00 -> 0, 01 -> 1.3, 10 -> 1.3, 11 -> 0.6 + 2 + 1 = 3.6: hinge = 3.6 - 0.
    ("hinge-augmented-best", dict(loss="hinge"), [[[0.0, 0.3], [0.0, 0.3]]],
     [[0.0, 0.0], [0.0, 1.0]], [2], [[0, 0]], None, None, "none", [3.6],
     [[[-1.0, 1.0], [-1.0, 1.0]]], [[-1.0, 0.0], [0.0, 1.0]], [-1.0, 1.0], [-1.0, 1.0]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options, e, tr, lengths, gold, cost, weight, reduction, loss, de, dtr,"
                         " dst, den", [pytest.param(*row[1:], id=row[0]) for row in CLOSED_FORMS])
def test_closed_forms(options, e, tr, lengths, gold, cost, weight, reduction, loss, de, dtr,
                      dst, den, dtype):
    conv = (lambda a: None if a is None else np.asarray(a, dtype=dtype))
    r = losskit.chain(conv(e), conv(tr), np.array(lengths), np.array(gold), cost=conv(cost),
                      weight=conv(weight), reduction=reduction, **options)
    tol = dict(rtol=1e-14, atol=1e-15) if dtype == np.float64 else dict(rtol=4 * EPS32,
                                                                         atol=4 * EPS32)
    np.testing.assert_allclose(r.loss, loss, **tol)
    for name, want in zip(GRADS, (de, dtr, dst, den)):
        np.testing.assert_allclose(getattr(r, name), want, err_msg=name, **tol)


def test_viterbi_and_marginals_closed_forms():
    # e = [[1, 0], [0, 1], [1, 0]], a switch of tag costs 5: 000 scores 2, 111 scores 1, any
    # switching path <= 1 + 1 + 1 - 5: best 000 (2). start = [0, 3] makes 111 score 4.
    e = np.array([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]])
    tr = np.array([[0.0, -5.0], [-5.0, 0.0]])
    path, score = losskit.viterbi(e, tr, [3])
    assert path.tolist() == [[0, 0, 0]] and score.tolist() == [2.0]
    path, score = losskit.viterbi(e, tr, [3], start=np.array([0.0, 3.0]))
    assert path.tolist() == [[1, 1, 1]] and score.tolist() == [4.0]
    # transition 0 -> 1 forbidden, all-zero scores: paths 00, 10, 11; log Z = log 3;
    # marginals [1/3, 2/3] then [2/3, 1/3].
    mu, log_z = losskit.marginals(np.zeros((1, 2, 2)), np.array([[0.0, NINF], [0.0, 0.0]]), [2])
    np.testing.assert_allclose(log_z, [L3], rtol=1e-15)
    np.testing.assert_allclose(mu, [[[1 / 3, 2 / 3], [2 / 3, 1 / 3]]], rtol=1e-15)


# ------------------------------------------------------------------------------------------
# 2. Log loss against pytorch-crf.
# ------------------------------------------------------------------------------------------
# torchcrf.CRF(num_tags, batch_first=True)(emissions, tags, mask, reduction) returns the
# log-likelihood s(gold) - log Z, summed ("sum"), averaged over the batch ("mean") or per
# sequence ("none"); LossKit's log loss is its negative (reduction "mean" without weights
# divides by n, as torch's mean does). Its transitions are [from, to] like ours, with
# start_transitions / end_transitions for start / end. It needs a left-aligned mask whose first
# column is on, so every length is >= 1 here, and it multiplies the scores past a length by
# mask 0, so those stay finite. float64 on both sides: 1e-12.

@pytest.fixture(scope="module")
def torchcrf():
    import torchcrf  # pytorch-crf, installed by make setup-peers: a missing peer fails

    return torchcrf


def torchcrf_log_loss(torchcrf, b: ChainBatch, reduction):
    import torch
    n, t_max, tags = b.shape
    crf = torchcrf.CRF(tags, batch_first=True).double()
    with torch.no_grad():
        crf.transitions.copy_(torch.tensor(b.transitions))
        crf.start_transitions.copy_(torch.tensor(b.start))
        crf.end_transitions.copy_(torch.tensor(b.end))
    e = torch.tensor(b.emissions, requires_grad=True)
    mask = torch.arange(t_max)[None, :] < torch.tensor(b.lengths, dtype=torch.int64)[:, None]
    tags_t = torch.tensor(np.where(mask.numpy(), b.gold, 0), dtype=torch.int64)
    loss = -crf(e, tags_t, mask=mask, reduction=reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    return (loss.detach().numpy(), e.grad.numpy(), crf.transitions.grad.numpy(),
            crf.start_transitions.grad.numpy(), crf.end_transitions.grad.numpy())


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_log_loss_vs_pytorch_crf(torchcrf, reduction, rng):
    n, t_max, tags = 12, 9, 5
    lengths = rng.integers(1, t_max + 1, size=n).astype(np.int32)
    lengths[:2] = [1, t_max]
    b = random_chain(rng, n, t_max, tags, start_end=True, poison_tail=False, lengths=lengths)
    b.gold = rng.integers(0, tags, size=(n, t_max)).astype(np.int32)
    got = losskit.chain(*b.model(), b.gold, start=b.start, end=b.end, reduction=reduction)
    want = torchcrf_log_loss(torchcrf, b, reduction)
    for name, g, w in zip(("loss",) + GRADS, got, want):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-12, err_msg=name)


# ------------------------------------------------------------------------------------------
# 3. Finite differences of the library's own loss.
# ------------------------------------------------------------------------------------------
# Fourth-order central differences (-F(+2h) + 8 F(+h) - 8 F(-h) + F(-2h)) / 12h in float64,
# h = 1e-3, on 3 sequences of length <= 7 over 4 tags (brute force can still list the 4**7
# paths to check the kinks), emissions ~ N(0, 2), other scores ~ N(0, 1), weights <= 2:
#  - a parameter appears at most T - 1 <= 6 times in a path, so a step of 2h moves the
#    difference of two path scores by at most 2h * 6 = 0.012; every max term (the vectors
#    s + t*alpha*c for t in {0, alpha, -alpha, f, -h}, and the oracle's score order among its
#    lowest-cost paths) is redrawn until its top-two gap exceeds 0.05, so no kink is in reach
#    and the max-based losses are exactly linear there (truncation 0);
#  - the smooth terms are log-sum-exps over paths: the k-th derivative w.r.t. one parameter is
#    the k-th cumulant of its count (<= 6), |F^(5)| <~ 6^5 / 16 ~ 500 at worst, so the
#    truncation h^4 |F^(5)| / 30 <~ 2e-11;
#  - rounding: (18/12) * |err F| / h with |err F| <~ 64 eps * |F| ~ 1e-12 for |F| <~ 100:
#    ~2e-9.
# So 1e-7, far below any real gradient error (a wrong entry is off by a probability or a count
# times a weight, >= ~1e-3).
FD_STEP = 1e-3
FD_TOL = 1e-7
FD_GAP = 0.05


def max_term_gap(case, s, unscaled):
    """The smallest top-two gap over every vector whose max a term of `case` could take, and
    over the scores of the oracle's lowest-cost paths."""
    o = case.options
    alpha = o.get("cost_scale", 1.0)
    f = 1.0 if o.get("fear_scale") is None else o["fear_scale"]
    h = 0.0 if o.get("hope_scale") is None else o["hope_scale"]
    gap = math.inf
    for t in (0.0, alpha, -alpha, f * alpha, -h * alpha):
        top = np.sort(s + t * unscaled)[-2:]
        gap = min(gap, top[1] - top[0])
    lowest = np.sort(s[unscaled == unscaled.min()])[-2:]
    if len(lowest) == 2:
        gap = min(gap, lowest[1] - lowest[0])
    return gap


def separated_chain(case, rng, costs):
    """3 sequences of lengths in [1, 7] (one of 7) over 4 tags, start/end, weights, all gold
    paths allowed, with no max term within FD_GAP of a kink."""
    tags = 4
    for _ in range(200):
        lengths = np.array([7, rng.integers(1, 8), rng.integers(1, 8)], dtype=np.int32)
        b = random_chain(rng, 3, 7, tags, start_end=True, costs=costs, lengths=lengths,
                         poison_tail=False)
        b.weight = rng.uniform(0.5, 2.0, size=3)
        ok = True
        for i, T in enumerate(lengths):
            Y = all_paths(int(T), tags)
            s = path_scores(b.emissions[i, :T], b.transitions, b.start, b.end, Y)
            if b.cost is None:
                unscaled = (Y != b.gold[i, :T]).sum(axis=1).astype(np.float64)
            else:
                unscaled = b.cost[i, np.arange(T), Y].sum(axis=1)
            if max_term_gap(case, s, unscaled) <= FD_GAP:
                ok = False
                break
        if ok:
            return b
    raise RuntimeError("could not draw a chain without near-ties")


@pytest.mark.parametrize("reduction, costs", [("none", "hamming"), ("mean", "real")])
@pytest.mark.parametrize("case", case_params())
def test_gradient_is_finite_difference_of_the_loss(case, reduction, costs, rng):
    b = separated_chain(case, rng, costs)
    kw = dict(case.options, reduction=reduction, cost=b.cost, weight=b.weight)
    params = dict(emissions=b.emissions, transitions=b.transitions, start=b.start, end=b.end)
    r = losskit.chain(b.emissions, b.transitions, b.lengths, b.gold, start=b.start, end=b.end,
                      **kw)
    grads = dict(emissions=r.d_emissions, transitions=r.d_transitions, start=r.d_start,
                 end=r.d_end)

    def total(name, index, t):
        p = {k: v.copy() for k, v in params.items()}
        p[name][index] += t
        out = losskit.chain(p["emissions"], p["transitions"], b.lengths, b.gold,
                            start=p["start"], end=p["end"], with_grad=False, **kw)
        return float(np.sum(out.loss))

    h = FD_STEP
    for name, value in params.items():
        for index in np.ndindex(value.shape):
            if name == "emissions" and index[1] >= b.lengths[index[0]]:
                assert grads[name][index] == 0.0
                continue
            fd = (-total(name, index, 2 * h) + 8 * total(name, index, h)
                  - 8 * total(name, index, -h) + total(name, index, -2 * h)) / (12 * h)
            assert abs(fd - grads[name][index]) < FD_TOL, (name, index, fd, grads[name][index])


# ------------------------------------------------------------------------------------------
# 4. float32 against float64, and named properties.
# ------------------------------------------------------------------------------------------
# float32: the inputs are rounded to float32 first and the float64 side evaluates exactly those
# values, so the only differences left are the library's float32 roundings. The header
# computes the dynamic programs in double, so these are essentially the output roundings;
# DESIGN.md §2 allows "a few float32 ulps of the magnitude of the inputs". Magnitude of
# sequence i: M_i = sum over its positions of max |e| + (T - 1) max |trans| + max |start| +
# max |end| + alpha * max(1, f, h) * T * max |cost| (the size of the augmented path scores whose
# max / log-sum-exp the losses take). The loss gets 8 ulps of the weighted sum of M_i; a
# gradient entry 8 ulps of its sequence's coefficient w_i (/ summed weight under MEAN) for
# d_emissions, of sum_i coef_i * T_i for the shared parameters (gradients are such
# coefficients times differences of marginals or of feature counts). Note that a gradient that
# is exactly 0 in float64 (e.g. fear and hope on the same path) may come out as ~1e-8 * coef in
# float32: the library rounds one term's share to float32 before subtracting the other's,
# in dense rows and lists as well. Continuous random inputs keep every argmax far (>> 1e-5)
# from a tie, so float32 rounding flips none.
F32_ULPS = 8


def magnitudes(case, b: ChainBatch):
    o = case.options
    alpha = o.get("cost_scale", 1.0)
    f = o.get("fear_scale") or 1.0
    h = o.get("hope_scale") or 0.0
    fin = (lambda a: 0.0 if a is None or not np.isfinite(a).any()
           else float(np.max(np.abs(a[np.isfinite(a)]))))
    m = np.zeros(len(b.lengths))
    for i, T in enumerate(b.lengths):
        if T == 0:
            continue
        e = b.emissions[i, :T].astype(np.float64)
        emax = sum(fin(row) for row in e)
        c = 1.0 if b.cost is None else fin(b.cost[i, :T].astype(np.float64))
        m[i] = (1.0 + emax + (T - 1) * fin(b.transitions) + fin(b.start) + fin(b.end)
                + alpha * max(1.0, f, h) * T * c)
    return m


def assert_f32(got, want, case, b, reduction):
    w = np.ones(len(b.lengths)) if b.weight is None else b.weight.astype(np.float64)
    # each sequence's coefficient in the output: w_i, divided by the summed weight under MEAN
    coef = w / w.sum() if reduction == "mean" and w.sum() > 0 else w
    wm = coef * magnitudes(case, b)
    loss_scale = wm if reduction == "none" else wm.sum()
    # gradient entries: coefficient times a difference of probabilities (emissions, <= 1 per
    # entry) or of feature counts (shared parameters, <= T_i per sequence)
    shared = float(np.sum(coef * np.maximum(b.lengths, 1)))
    grad_scales = (coef[:, None, None], shared, shared, shared)
    for name, g, ref, s in zip(("loss",) + GRADS, got, want, (loss_scale,) + grad_scales):
        assert np.asarray(g).dtype == np.float32, name
        ref = np.asarray(ref, np.float64)
        err = np.abs(np.asarray(g, np.float64) - ref)
        bound = F32_ULPS * EPS32 * (s + np.abs(ref))
        assert np.all(err <= bound), (name, np.max(err - bound), g, ref)


@pytest.mark.parametrize("case", case_params())
def test_f32_matches_f64(case, rng):
    # small: against the brute force; larger: against the library's float64 path on the same
    # float32-rounded inputs (both compute in double; same argmaxes).
    small = random_chain(rng, 7, 5, 3, start_end=True, costs="real", forbid=0.15,
                         gold_allowed=case.uses_gold).astype(np.float32)
    small.weight = weights(rng, 7).astype(np.float32)
    for reduction in REDUCTIONS:
        got, want = call(case, small, reduction)
        assert_f32(got, want, case, small, reduction)
    big = random_chain(rng, 16, 30, 6, start_end=True, costs="real", scale=3.0,
                       poison_tail=False)
    big.gold = rng.integers(0, 6, size=(16, 30)).astype(np.int32)
    big = big.astype(np.float32)
    big.weight = weights(rng, 16).astype(np.float32)
    for reduction in REDUCTIONS:
        kw = dict(case.options, reduction=reduction)
        got = losskit.chain(*big.model(), big.gold, **big.kwargs(), **kw)
        b64 = big.astype(np.float64)
        want = losskit.chain(*b64.model(), b64.gold, **b64.kwargs(), **kw)
        assert_f32(tuple(got), tuple(want), case, big, reduction)


def test_viterbi_and_marginals_f32_match_f64(rng):
    b = random_chain(rng, 12, 20, 5, start_end=True, forbid=0.1, poison_tail=False)
    b32 = b.astype(np.float32)
    b64 = b32.astype(np.float64)
    kw32 = dict(start=b32.start, end=b32.end)
    kw64 = dict(start=b64.start, end=b64.end)
    p32, s32 = losskit.viterbi(*b32.model(), **kw32)
    p64, s64 = losskit.viterbi(*b64.model(), **kw64)
    assert s32.dtype == np.float32
    np.testing.assert_array_equal(p32, p64)
    m = magnitudes(CHAIN_CASES[0], b64)
    assert np.all(np.abs(s32 - s64) <= F32_ULPS * EPS32 * m)
    mu32, z32 = losskit.marginals(*b32.model(), **kw32)
    mu64, z64 = losskit.marginals(*b64.model(), **kw64)
    assert mu32.dtype == z32.dtype == np.float32
    assert np.all(np.abs(z32 - z64) <= F32_ULPS * EPS32 * m)
    assert np.all(np.abs(mu32 - mu64) <= F32_ULPS * EPS32)


def large_batch(rng, n=10, t_max=25, tags=6, **kw):
    """Too long for brute force: for the properties below."""
    lengths = rng.integers(0, t_max + 1, size=n).astype(np.int32)
    lengths[:2] = [0, 1]
    b = random_chain(rng, n, t_max, tags, start_end=True, lengths=lengths, **kw)
    b.gold = np.where(np.arange(t_max) < lengths[:, None],
                      rng.integers(0, tags, size=(n, t_max)), 77).astype(np.int32)
    return b


def gold_scores(b: ChainBatch):
    """s(gold) of every sequence, in numpy (0 for length 0)."""
    out = np.zeros(len(b.lengths))
    for i, T in enumerate(b.lengths):
        if T:
            out[i] = path_scores(b.emissions[i, :T], b.transitions, b.start, b.end,
                                 b.gold[i, None, :T])[0]
    return out


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_marginals_sum_to_one_and_are_zero_past_the_length(dtype, rng):
    b = large_batch(rng, forbid=0.1).astype(dtype)
    mu, log_z = losskit.marginals(*b.model(), start=b.start, end=b.end)
    tol = 1e-12 if dtype == np.float64 else 8 * EPS32
    for i, T in enumerate(b.lengths):
        np.testing.assert_allclose(mu[i, :T].sum(axis=1), 1.0, rtol=0, atol=tol)
        assert np.all(mu[i, T:] == 0.0)
        assert np.all(mu[i] >= 0.0)
        # a forbidden emission has marginal exactly 0
        assert np.all(mu[i, :T][b.emissions[i, :T] == -np.inf] == 0.0)
    assert log_z[b.lengths == 0].tolist() == [0.0] * int(np.sum(b.lengths == 0))


def test_risk_with_hamming_cost_is_expected_wrong_tags(rng):
    """risk = E[sum_t [y_t != g_t]] = sum_{t < T} (1 - p(y_t = g_t)) by linearity of
    expectation (cost_scale 1, no weights, reduction none)."""
    b = large_batch(rng, forbid=0.1, gold_allowed=False)
    risk = losskit.chain(*b.model(), b.gold, loss="risk", start=b.start, end=b.end,
                         reduction="none").loss
    mu, _ = losskit.marginals(*b.model(), start=b.start, end=b.end)
    want = [sum(1.0 - mu[i, t, b.gold[i, t]] for t in range(T)) for i, T in enumerate(b.lengths)]
    np.testing.assert_allclose(risk, want, rtol=1e-12, atol=1e-12)


def test_log_loss_is_log_z_minus_gold_score_and_log_z_is_logsumexp(rng):
    """log loss = log Z - s(gold); log Z = the forward recursion (numpy) on long sequences and
    logsumexp over the brute-force path scores on short ones."""
    b = large_batch(rng)
    loss = losskit.chain(*b.model(), b.gold, start=b.start, end=b.end, reduction="none").loss
    _, log_z = losskit.marginals(*b.model(), start=b.start, end=b.end)
    np.testing.assert_allclose(loss, log_z - gold_scores(b), rtol=1e-12, atol=1e-11)
    for i, T in enumerate(b.lengths):  # the forward recursion, in numpy, on long sequences
        want = forward_scores(b.emissions[i, :T], b.transitions, b.start, b.end)[0] if T else 0.0
        assert abs(log_z[i] - want) <= 1e-12 * (1 + abs(want)), (i, log_z[i], want)
    small = random_chain(rng, 6, 5, 3, start_end=True, forbid=0.2)
    _, log_z = losskit.marginals(*small.model(), start=small.start, end=small.end)
    for i, T in enumerate(small.lengths):
        if T:
            s = path_scores(small.emissions[i, :T], small.transitions, small.start, small.end,
                            all_paths(int(T), 3))
            s = s[s > -np.inf]
            want = s.max() + math.log(np.sum(np.exp(s - s.max())))
            assert abs(log_z[i] - want) <= 1e-12 * (1 + abs(want)), (i, log_z[i], want)
        else:
            assert log_z[i] == 0.0


def log_space_posteriors(e, transitions, start, end):
    """Node and summed edge posteriors of one sequence by the textbook forward-backward in log
    space (NumPy, float64), independent of the library's scaled programs and their rescaling.
    Each log-table row is shifted by its max, and every posterior normalised at its own
    position (Z is the same sum at every t), so that no digit is lost to the size of log Z."""
    T, tags = e.shape
    lse = lambda a, axis: np.logaddexp.reduce(a, axis=axis)
    alpha = np.empty((T, tags))
    beta = np.zeros((T, tags))
    alpha[0] = start + e[0]
    alpha[0] -= alpha[0].max()
    for t in range(1, T):
        alpha[t] = lse(alpha[t - 1][:, None] + transitions, 0) + e[t]
        alpha[t] -= alpha[t].max()
    beta[T - 1] = end - end.max()
    for t in range(T - 2, -1, -1):
        beta[t] = lse(transitions + (e[t + 1] + beta[t + 1])[None, :], 1)
        beta[t] -= beta[t].max()
    softmax = lambda a: np.exp(a - lse(a.ravel(), 0))
    nodes = np.array([softmax(alpha[t] + beta[t]) for t in range(T)])
    edges = np.zeros((tags, tags))
    for t in range(1, T):
        edges += softmax(alpha[t - 1][:, None] + transitions + (e[t] + beta[t])[None, :])
    return nodes, edges


def test_long_sequences_log_loss_gradients_match_log_space_forward_backward(rng):
    # 400 positions: the scaled programs rescale their rows many times on the way (their max
    # drifts out of [2^-8, 2^8]); the gradients must still be the posteriors minus the gold.
    n, T, tags = 3, 400, 7
    e = rng.normal(0.0, 2.0, size=(n, T, tags))
    tr = rng.normal(0.0, 1.0, size=(tags, tags))
    st, en = rng.normal(size=tags), rng.normal(size=tags)
    lengths = np.array([T, T - 1, 250], np.int32)
    gold = rng.integers(0, tags, size=(n, T)).astype(np.int32)
    r = losskit.chain(e, tr, lengths, gold, start=st, end=en, reduction="sum")
    want_tr = np.zeros((tags, tags))
    want_st, want_en = np.zeros(tags), np.zeros(tags)
    for i, L in enumerate(lengths):
        nodes, edges = log_space_posteriors(e[i, :L], tr, st, en)
        y = gold[i, :L]
        onehot = np.zeros((L, tags))
        onehot[np.arange(L), y] = 1
        np.testing.assert_allclose(r.d_emissions[i, :L], nodes - onehot, rtol=0, atol=1e-12)
        assert not r.d_emissions[i, L:].any()
        want_tr += edges
        np.add.at(want_tr, (y[:-1], y[1:]), -1)
        want_st += nodes[0] - onehot[0]
        want_en += nodes[L - 1] - onehot[L - 1]
    np.testing.assert_allclose(r.d_transitions, want_tr, rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.d_start, want_st, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.d_end, want_en, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_viterbi_score_is_its_path_score_and_the_best(dtype, rng):
    """The score of the returned path, recomputed in numpy, is the returned score and the best
    score (max-plus forward recursion in numpy); -1 past each length; on short sequences the
    path and score are the brute-force best."""
    b = large_batch(rng, forbid=0.1).astype(dtype)
    path, score = losskit.viterbi(*b.model(), start=b.start, end=b.end)
    b64 = b.astype(np.float64)
    m = magnitudes(CHAIN_CASES[0], b64)
    tol = 1e-12 * m if dtype == np.float64 else F32_ULPS * EPS32 * m
    for i, T in enumerate(b.lengths):
        assert np.all(path[i, T:] == -1)
        if T == 0:
            assert score[i] == 0.0
            continue
        assert np.all((0 <= path[i, :T]) & (path[i, :T] < b.shape[2]))
        s = path_scores(b64.emissions[i, :T], b64.transitions, b64.start, b64.end,
                        path[i, None, :T].astype(np.int64))[0]
        assert abs(s - score[i]) <= tol[i]
        _, best = forward_scores(b64.emissions[i, :T], b64.transitions, b64.start, b64.end)
        assert abs(best - score[i]) <= tol[i]
    small = random_chain(rng, 6, 5, 3, start_end=True, forbid=0.2).astype(dtype)
    path, score = losskit.viterbi(*small.model(), start=small.start, end=small.end)
    s64 = small.astype(np.float64)
    want_path, want_score = reference_viterbi(*s64.model(), start=s64.start, end=s64.end)
    np.testing.assert_array_equal(path, want_path)
    np.testing.assert_allclose(score, want_score, rtol=4 * EPS32 if dtype == np.float32 else
                               1e-13, atol=1e-6 if dtype == np.float32 else 1e-13)


def test_perceptron_is_viterbi_score_minus_gold_score(rng):
    b = large_batch(rng)
    _, score = losskit.viterbi(*b.model(), start=b.start, end=b.end)
    loss = losskit.chain(*b.model(), b.gold, loss="perceptron", start=b.start, end=b.end,
                         reduction="none").loss
    np.testing.assert_allclose(loss, score - gold_scores(b), rtol=1e-12, atol=1e-11)
    assert np.all(loss >= 0.0)


def test_loss_orderings(rng):
    """Named properties on one batch (Hamming costs, cost_scale 1): softmax-margin >= log loss
    and >= hinge >= perceptron >= 0; log >= 0; ramp >= 0 and risk in [0, T]."""
    b = large_batch(rng, n=8, t_max=12, tags=4)
    run = {loss: losskit.chain(*b.model(), b.gold, loss=loss, start=b.start, end=b.end,
                               reduction="none").loss
           for loss in ("log", "perceptron", "hinge", "softmax_margin", "risk", "ramp")}
    tol = 1e-12
    assert np.all(run["softmax_margin"] >= run["log"] - tol)
    assert np.all(run["softmax_margin"] >= run["hinge"] - tol)
    assert np.all(run["hinge"] >= run["perceptron"] - tol)
    assert np.all(run["perceptron"] >= -tol) and np.all(run["log"] >= -tol)
    assert np.all(run["ramp"] >= -tol)
    assert np.all((run["risk"] >= -tol) & (run["risk"] <= b.lengths + tol))


def test_presets_equal_their_hope_fear_form(rng):
    """DESIGN.md §2: each preset is HOPE_FEAR with fixed (hope, h, fear, f)."""
    b = random_chain(rng, 6, 6, 3, start_end=True, costs="real", poison_tail=False)
    b.weight = weights(rng, 6)
    for loss, (hope, h, fear, f) in PRESETS.items():
        a = losskit.chain(*b.model(), b.gold, loss=loss, **b.kwargs(), reduction="sum",
                          cost_scale=1.5)
        g = losskit.chain(*b.model(), b.gold, loss="hope_fear", hope=hope, fear=fear,
                          hope_scale=h, fear_scale=f, **b.kwargs(), reduction="sum",
                          cost_scale=1.5)
        for name, x, y in zip(("loss",) + GRADS, a, g):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=f"{loss} {name}")


# ------------------------------------------------------------------------------------------
# 5. Errors and the batch rules.
# ------------------------------------------------------------------------------------------

def base_model(dtype=np.float64):
    """3 sequences of lengths 4, 2, 3 over 3 tags; gold all 0; start and end zeros."""
    rng = np.random.default_rng(5)
    e = rng.normal(size=(3, 4, 3)).astype(dtype)
    tr = rng.normal(size=(3, 3)).astype(dtype)
    return dict(emissions=e, transitions=tr, lengths=np.array([4, 2, 3], np.int32),
                gold=np.zeros((3, 4), np.int32), start=np.zeros(3, dtype),
                end=np.zeros(3, dtype))


def call_chain_raw(opt, m, cost, weight, outputs, shape=(3, 4, 3)):
    """lk_chain_f64 / _f32 (by the dtype of outputs[1]) called directly with sizes `shape` (the
    binding allocates its own outputs; this lets a test poison them, or pass NULL)."""
    e = m["emissions"]
    fn = _native.lib.lk_chain_f64 if outputs[1].dtype == np.float64 else _native.lib.lk_chain_f32
    n, t_max, tags = shape
    arrays = [e, m["transitions"], m["start"], m["end"], m["lengths"], m["gold"], cost, weight]
    return fn(ctypes.byref(opt), n, t_max, tags, *[_common.address(a) for a in arrays],
              *[_common.address(a) for a in outputs])


def poisoned_outputs(n, t_max, tags, dtype):
    return [np.full(shape, 7.0, dtype) for shape in ((n,), (n, t_max, tags), (tags, tags),
                                                     (tags,), (tags,))]


def _set(key, index, value):
    def mutate(m):
        m[key] = m[key].copy()
        m[key][index] = value
    return mutate


def _gold_forbidden_by_emission(m):
    _set("emissions", (1, 1, 0), -np.inf)(m)


LIBRARY_ERRORS = [
    # (id, mutate(model), kwargs, cost builder or None, name, message pattern)
    ("gold tag out of range", _set("gold", (1, 1), 3), {}, None, "LK_ERR_LABEL",
     r"gold\[1, 1\] = 3.*sequence 1"),
    ("negative gold tag", _set("gold", (2, 0), -1), {}, None, "LK_ERR_LABEL",
     r"gold\[2, 0\] = -1"),
    ("labels before values", lambda m: (_set("gold", (2, 2), 3)(m),
                                        _set("emissions", (0, 0, 0), np.inf)(m)),
     {}, None, "LK_ERR_LABEL", r"gold\[2, 2\] = 3"),
    ("+inf emission", _set("emissions", (2, 1, 0), np.inf), {}, None, "LK_ERR_DOMAIN",
     r"emissions\[2, 1, 0\]"),
    ("+inf transition", _set("transitions", (0, 1), np.inf), dict(loss="risk"), None,
     "LK_ERR_DOMAIN", r"transitions\[0, 1\]"),
    ("+inf start", _set("start", 1, np.inf), {}, None, "LK_ERR_DOMAIN", r"start\[1\]"),
    ("+inf end", _set("end", 2, np.inf), dict(loss="hinge"), None, "LK_ERR_DOMAIN",
     r"end\[2\]"),
    ("no allowed path (emissions)", _set("emissions", (1, 1, slice(None)), -np.inf),
     dict(loss="risk"), None, "LK_ERR_DOMAIN", r"sequence 1\b"),
    ("no allowed path (transitions)", lambda m: m.__setitem__(
        "transitions", np.full_like(m["transitions"], -np.inf)), dict(loss="ramp"), None,
     "LK_ERR_DOMAIN", r"sequence 0\b"),
    ("no allowed path (end)", lambda m: m.__setitem__("end", np.full_like(m["end"], -np.inf)),
     dict(loss="soft_ramp"), None, "LK_ERR_DOMAIN", r"sequence 0\b"),
] + [
    (f"forbidden gold path under {loss}", _gold_forbidden_by_emission, dict(loss=loss, **kw),
     None, "LK_ERR_DOMAIN", r"sequence 1\b.*position 1\b")
    for loss, kw in [("log", {}), ("perceptron", {}), ("hinge", {}), ("softmax_margin", {}),
                     ("hope_fear", dict(hope="gold", fear="max"))]
] + [
    ("forbidden gold transition under log", _set("transitions", (0, 0), -np.inf), {}, None,
     "LK_ERR_DOMAIN", r"sequence 0\b.*position 1\b"),
    ("forbidden gold start under hinge", _set("start", 0, -np.inf), dict(loss="hinge"), None,
     "LK_ERR_DOMAIN", r"sequence 0\b.*position 0\b"),
    ("NaN cost read", None, dict(loss="hinge"), (2, 1, 2, np.nan), "LK_ERR_DOMAIN",
     r"cost\[2, 1, 2\]"),
    ("+inf cost read by risk", None, dict(loss="risk"), (0, 3, 1, np.inf), "LK_ERR_DOMAIN",
     r"cost\[0, 3, 1\]"),
    ("-inf cost read by the oracle", None,
     dict(loss="hope_fear", hope="oracle", fear="max", fear_scale=0.0), (1, 0, 2, -np.inf),
     "LK_ERR_DOMAIN", r"cost\[1, 0, 2\]"),
    ("cost overflowing once scaled", None, dict(loss="softmax_margin", cost_scale=1e300),
     (0, 0, 1, 1e10), "LK_ERR_DOMAIN", r"cost\[0, 0, 1\]"),
    ("negative weight", None, dict(weight=np.array([1.0, -1.0, 1.0])), None, "LK_ERR_DOMAIN",
     r"weight\[1\]"),
    ("NaN weight", None, dict(weight=np.array([1.0, 1.0, np.nan])), None, "LK_ERR_DOMAIN",
     r"weight\[2\]"),
    ("squared", None, dict(loss="squared"), None, "LK_ERR_UNSUPPORTED", r"loss"),
    ("squentropy", None, dict(loss="squentropy"), None, "LK_ERR_UNSUPPORTED", r"loss"),
    ("negative cost_scale", None, dict(cost_scale=-1.0), None, "LK_ERR_OPTION", r"cost_scale"),
    ("NaN fear_scale", None, dict(loss="hope_fear", fear_scale=np.nan), None, "LK_ERR_OPTION",
     r"fear_scale"),
    ("negative threads", None, dict(threads=-2), None, "LK_ERR_OPTION", r"threads"),
]
STATUS = {"LK_ERR_NULL": 1, "LK_ERR_SIZE": 2, "LK_ERR_LABEL": 3, "LK_ERR_OPTION": 4,
          "LK_ERR_DOMAIN": 5, "LK_ERR_UNSUPPORTED": 6}


def build_cost(spec, dtype):
    if spec is None:
        return None
    cost = np.ones((3, 4, 3), dtype)
    i, t, y, value = spec
    cost[i, t, y] = value
    return cost


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mutate, kwargs, cost, name, pattern",
                         [pytest.param(*row[1:], id=row[0]) for row in LIBRARY_ERRORS])
def test_library_errors_raise_losskit_error_and_write_nothing(mutate, kwargs, cost, name,
                                                             pattern, dtype):
    m = base_model(dtype)
    if mutate is not None:
        mutate(m)
    kwargs = dict(kwargs)
    if "weight" in kwargs:
        kwargs["weight"] = kwargs["weight"].astype(dtype)
    c = build_cost(cost, dtype)
    with pytest.raises(losskit.LossKitError) as info:
        losskit.chain(m["emissions"], m["transitions"], m["lengths"], m["gold"],
                      start=m["start"], end=m["end"], cost=c, **kwargs)
    err = info.value
    assert err.name == name and err.status == STATUS[name]
    assert re.search(pattern, err.message), err.message
    # the same through the C function with every output poisoned: untouched on error
    weight = kwargs.pop("weight", None)
    opt = _common.make_options(reduction="none", **dict(dict(loss="log", cost_scale=1.0,
                                                             threads=0), **kwargs))
    outputs = poisoned_outputs(3, 4, 3, dtype)
    with pytest.raises(losskit.LossKitError) as raw:
        call_chain_raw(opt, m, c, weight, outputs)
    assert raw.value.name == name
    for out in outputs:
        assert np.all(out == 7.0)


@pytest.mark.parametrize("mutate, kwargs, cost", [
    pytest.param(_set("gold", (1, 2), 3), {}, None, id="gold out of range past the length"),
    pytest.param(_set("gold", (1, 3), -7), {}, None, id="negative gold past the length"),
    pytest.param(_set("emissions", (1, 3, 0), np.inf), {}, None, id="+inf emission past it"),
    pytest.param(_set("emissions", (2, 3, 1), np.nan), {}, None, id="NaN emission past it"),
    pytest.param(None, dict(loss="hinge"), (1, 2, 0, np.nan), id="NaN cost past the length"),
    pytest.param(_set("emissions", (0, 2, 1), -np.inf), dict(loss="hinge"), (0, 2, 1, np.nan),
                 id="NaN cost at a forbidden emission"),
    pytest.param(None, dict(loss="log"), (0, 0, 0, np.nan), id="NaN cost under log"),
    pytest.param(None, dict(loss="perceptron"), (0, 0, 0, np.inf), id="inf cost, perceptron"),
    pytest.param(_gold_forbidden_by_emission, dict(loss="risk"), None,
                 id="forbidden gold under risk"),
    pytest.param(_gold_forbidden_by_emission, dict(loss="ramp"), None,
                 id="forbidden gold under ramp"),
    pytest.param(_gold_forbidden_by_emission, dict(loss="soft_ramp"), None,
                 id="forbidden gold under soft_ramp"),
    pytest.param(_gold_forbidden_by_emission, dict(loss="infinite_ramp"), None,
                 id="forbidden gold under infinite_ramp"),
    pytest.param(_set("transitions", (0, 0), -np.inf),
                 dict(loss="hope_fear", hope="lse", fear="max", hope_scale=0.5), None,
                 id="forbidden gold transition under hope_fear lse"),
    pytest.param(_set("start", 0, -np.inf), dict(loss="hope_fear", hope="oracle"), "real",
                 id="forbidden gold start under hope_fear oracle"),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_what_is_not_an_error(mutate, kwargs, cost, dtype):
    """Inputs past a length are not read; costs are read only by the losses that use them and
    only where the emission is not -inf; a forbidden gold path is fine for the losses that do
    not read the gold score. Values as the brute force on the same inputs."""
    m = base_model(dtype)
    if mutate is not None:
        mutate(m)
    c = (np.random.default_rng(1).uniform(0, 2, size=(3, 4, 3)).astype(dtype)
         if cost == "real" else build_cost(cost, dtype))
    args = (m["emissions"], m["transitions"], m["lengths"], m["gold"])
    kw = dict(kwargs, start=m["start"], end=m["end"], cost=c, reduction="none")
    got = losskit.chain(*args, **kw)
    want = reference_chain(*args, **kw)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    for name, g, w in zip(("loss",) + GRADS, got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol, err_msg=name)


def test_raw_size_and_null_errors_write_nothing():
    """What the binding catches before the call, the C function reports itself: a length
    outside [0, t_max] (LK_ERR_SIZE, naming lengths[i]), NULL required pointers (LK_ERR_NULL),
    tags = 0 with n > 0 (LK_ERR_SIZE); a zero-weight sequence's length is not validated."""
    opt = _common.make_options(loss="log", reduction="none", cost_scale=1.0, threads=0)
    for bad, pattern in ((5, r"lengths\[1\] = 5"), (-1, r"lengths\[1\] = -1")):
        m = base_model()
        m["lengths"] = np.array([4, bad, 3], np.int32)
        outputs = poisoned_outputs(3, 4, 3, np.float64)
        with pytest.raises(losskit.LossKitError) as info:
            call_chain_raw(opt, m, None, None, outputs)
        assert info.value.name == "LK_ERR_SIZE", info.value
        assert re.search(pattern, info.value.message), info.value.message
        assert all(np.all(o == 7.0) for o in outputs)
        # zero weight: not read beyond the weight
        outputs = poisoned_outputs(3, 4, 3, np.float64)
        call_chain_raw(opt, m, None, np.array([1.0, 0.0, 1.0]), outputs)
        assert outputs[0][1] == 0.0 and np.all(outputs[1][1] == 0.0)
    for key in ("emissions", "transitions", "lengths", "gold"):
        m = base_model()
        m[key] = None
        outputs = poisoned_outputs(3, 4, 3, np.float64)
        with pytest.raises(losskit.LossKitError) as info:
            call_chain_raw(opt, m, None, None, outputs)
        assert info.value.name == "LK_ERR_NULL", (key, info.value)
        assert key in info.value.message, info.value.message
        assert all(np.all(o == 7.0) for o in outputs)
    m = base_model()
    with pytest.raises(losskit.LossKitError) as info:
        call_chain_raw(opt, m, None, None, [None, np.zeros(0)] + [None] * 3, shape=(3, 4, 0))
    assert info.value.name == "LK_ERR_SIZE"
    # n = 0: nothing is read, every pointer may be NULL; SUM and MEAN write 0
    for reduction in ("sum", "mean"):
        o = _common.make_options(loss="hinge", reduction=reduction, cost_scale=1.0, threads=0)
        loss = np.full(1, 7.0)
        _native.lib.lk_chain_f64(ctypes.byref(o), 0, 4, 3, *([None] * 8),
                                 loss.ctypes.data, None, None, None, None)
        assert loss[0] == 0.0


def call_decode_raw(which, m, path_or_mu, score_or_log_z, opt=None):
    e = m["emissions"]
    suffix = "f64" if e.dtype == np.float64 else "f32"
    fn = getattr(_native.lib, f"lk_chain_{which}_{suffix}")
    n, t_max, tags = e.shape
    arrays = [e, m["transitions"], m["start"], m["end"], m["lengths"], path_or_mu,
              score_or_log_z]
    return fn(None if opt is None else ctypes.byref(opt), n, t_max, tags,
              *[_common.address(a) for a in arrays])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mutate, name, pattern", [
    pytest.param(_set("emissions", (2, 1, 0), np.inf), "LK_ERR_DOMAIN",
                 r"emissions\[2, 1, 0\]", id="+inf emission"),
    pytest.param(_set("transitions", (1, 1), np.inf), "LK_ERR_DOMAIN", r"transitions\[1, 1\]",
                 id="+inf transition"),
    pytest.param(_set("start", 2, np.inf), "LK_ERR_DOMAIN", r"start\[2\]", id="+inf start"),
    pytest.param(_set("emissions", (2, 0, slice(None)), -np.inf), "LK_ERR_DOMAIN",
                 r"sequence 2\b", id="no allowed path"),
    pytest.param(_set("lengths", 1, 5), "LK_ERR_SIZE", r"lengths\[1\] = 5", id="length > t_max"),
])
@pytest.mark.parametrize("which", ["viterbi", "marginals"])
def test_decoding_errors_write_nothing(which, mutate, name, pattern, dtype):
    m = base_model(dtype)
    mutate(m)
    if name != "LK_ERR_SIZE":  # the binding catches a bad length itself (a ValueError)
        with pytest.raises(losskit.LossKitError) as info:
            getattr(losskit, which)(m["emissions"], m["transitions"], m["lengths"],
                                    start=m["start"], end=m["end"])
        assert info.value.name == name and re.search(pattern, info.value.message), info.value
    first = (np.full((3, 4), 7, np.int32) if which == "viterbi"
             else np.full((3, 4, 3), 7.0, dtype))
    second = np.full(3, 7.0, dtype)
    for opt in (None, _common.make_options(loss="log", reduction="mean", cost_scale=1.0,
                                           threads=1)):
        with pytest.raises(losskit.LossKitError) as info:
            call_decode_raw(which, m, first, second, opt)
        assert info.value.name == name and re.search(pattern, info.value.message), info.value
        assert np.all(first == 7) and np.all(second == 7.0)


@pytest.mark.parametrize("which", ["viterbi", "marginals"])
def test_decoding_needs_its_main_output_and_not_the_second(which):
    m = base_model()
    with pytest.raises(losskit.LossKitError) as info:
        call_decode_raw(which, m, None, np.zeros(3))
    assert info.value.name == "LK_ERR_NULL"
    first = np.zeros((3, 4), np.int32) if which == "viterbi" else np.zeros((3, 4, 3))
    call_decode_raw(which, m, first, None)  # score / log_z optional
    want = (reference_viterbi if which == "viterbi" else reference_marginals)(
        m["emissions"], m["transitions"], m["lengths"], start=m["start"], end=m["end"])[0]
    np.testing.assert_allclose(first, want, rtol=1e-12, atol=1e-14)


S = np.zeros((2, 3, 2))
T2 = np.zeros((2, 2))
LN = np.array([3, 1])
G = np.zeros((2, 3), np.int32)
BAD_ARGUMENTS = [
    ("emissions 2-D", dict(emissions=np.zeros((3, 2))), r"\bemissions\b"),
    ("emissions 4-D", dict(emissions=np.zeros((1, 2, 3, 2))), r"\bemissions\b"),
    ("transitions of the wrong shape", dict(transitions=np.zeros((2, 3))), r"\btransitions\b"),
    ("transitions 1-D", dict(transitions=np.zeros(4)), r"\btransitions\b"),
    ("gold of the wrong shape", dict(gold=np.zeros((2, 2), np.int32)), r"\bgold\b"),
    ("gold of floats with a fraction", dict(gold=np.full((2, 3), 0.5)), r"gold\[0, 0\] = 0\.5"),
    ("lengths of the wrong shape", dict(lengths=np.array([3])), r"\blengths\b"),
    ("length > t_max", dict(lengths=np.array([4, 1])), r"\blengths\b"),
    ("negative length", dict(lengths=np.array([3, -1])), r"\blengths\b"),
    ("start of the wrong shape", dict(start=np.zeros(3)), r"\bstart\b"),
    ("end of the wrong shape", dict(end=np.zeros((2, 1))), r"\bend\b"),
    ("cost of the wrong shape", dict(cost=np.zeros((2, 3))), r"\bcost\b"),
    ("weight of the wrong shape", dict(weight=np.ones(3)), r"\bweight\b"),
    ("unknown loss", dict(loss="crf"), r"\bloss\b"),
    ("unknown reduction", dict(reduction="avg"), r"\breduction\b"),
    ("hope for log", dict(hope="max"), r"\bhope\b"),
    ("fear oracle", dict(loss="hope_fear", fear="oracle"), r"\bfear\b"),
]


@pytest.mark.parametrize("kwargs, pattern", [pytest.param(*row[1:], id=row[0])
                                              for row in BAD_ARGUMENTS])
def test_bad_arguments_raise_value_error_naming_them(kwargs, pattern):
    model_only = set(kwargs) <= {"emissions", "transitions", "lengths", "start", "end"}
    kwargs = dict(kwargs)
    args = [kwargs.pop(k, d) for k, d in (("emissions", S), ("transitions", T2),
                                          ("lengths", LN), ("gold", G))]
    with pytest.raises(ValueError, match=pattern):
        losskit.chain(*args, **kwargs)
    decode = {k: v for k, v in kwargs.items() if k in ("start", "end")}
    if model_only:  # the same checks in viterbi and marginals
        for fn in (losskit.viterbi, losskit.marginals):
            with pytest.raises(ValueError, match=pattern):
                fn(*args[:3], **decode)


def test_label_smoothing_is_not_offered():
    with pytest.raises(TypeError, match="label_smoothing"):
        losskit.chain(S, T2, LN, G, label_smoothing=0.1)
    opt = _common.make_options(loss="log", reduction="none", cost_scale=1.0, threads=0,
                               label_smoothing=0.1)
    m = base_model()
    outputs = poisoned_outputs(3, 4, 3, np.float64)
    with pytest.raises(losskit.LossKitError) as info:
        call_chain_raw(opt, m, None, None, outputs)
    assert info.value.name == "LK_ERR_UNSUPPORTED"
    assert all(np.all(o == 7.0) for o in outputs)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", case_params())
def test_nan_emission_makes_its_sequence_nan(case, dtype, rng):
    """A NaN emission at a position < length: that sequence's loss and d_emissions (at its
    positions < length) are NaN, and so are the shared gradients (sums over the sequences);
    the other sequences' losses and d_emissions are as the brute force says."""
    b = random_chain(rng, 5, 4, 3, start_end=True, costs="real", poison_tail=False,
                     lengths=[4, 3, 4, 1, 2]).astype(dtype)
    b.emissions[2, 1, 0] = np.nan
    got = losskit.chain(*b.model(), b.gold, **b.kwargs(), reduction="none", **case.options)
    assert np.isnan(got.loss[2]) and np.all(np.isnan(got.d_emissions[2]))
    for name in GRADS[1:]:
        assert np.all(np.isnan(getattr(got, name))), name
    keep = [0, 1, 3, 4]
    clean = replace(b.astype(np.float64), weight=np.array([1.0, 1.0, 0.0, 1.0, 1.0]))
    want = reference_chain(*clean.model(), clean.gold, **clean.kwargs(), reduction="none",
                           **case.options)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got.loss[keep], want[0][keep], rtol=tol, atol=tol)
    np.testing.assert_allclose(got.d_emissions[keep], want[1][keep], rtol=tol, atol=tol)
    # under SUM and MEAN the total is NaN
    for reduction in ("sum", "mean"):
        r = losskit.chain(*b.model(), b.gold, **b.kwargs(), reduction=reduction,
                          **case.options)
        assert np.isnan(r.loss)


def test_nan_in_shared_parameters_makes_every_nonempty_sequence_nan(rng):
    """Header: NaN in transitions, start or end makes the loss of every sequence NaN (a
    length-0 sequence still has loss 0); viterbi score and log Z likewise."""
    b = random_chain(rng, 4, 3, 3, start_end=True, poison_tail=False, lengths=[3, 1, 0, 2])
    for key, index in (("transitions", (1, 2)), ("start", 0), ("end", 2)):
        m = dict(transitions=b.transitions.copy(), start=b.start.copy(), end=b.end.copy())
        m[key][index] = np.nan
        r = losskit.chain(b.emissions, m["transitions"], b.lengths, b.gold, start=m["start"],
                          end=m["end"], reduction="none")
        assert np.all(np.isnan(r.loss[[0, 1, 3]])) and r.loss[2] == 0.0, (key, r.loss)
        assert np.all(r.d_emissions[2] == 0.0)
        _, score = losskit.viterbi(b.emissions, m["transitions"], b.lengths, start=m["start"],
                                   end=m["end"])
        _, log_z = losskit.marginals(b.emissions, m["transitions"], b.lengths,
                                     start=m["start"], end=m["end"])
        assert np.all(np.isnan(score[[0, 1, 3]])) and score[2] == 0.0, key
        assert np.all(np.isnan(log_z[[0, 1, 3]])) and log_z[2] == 0.0, key


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_nan_emission_in_viterbi_and_marginals(dtype, rng):
    """Header: a NaN input makes that sequence's score NaN with an all -1 path, and its log Z
    and marginals NaN; the others are unaffected."""
    b = random_chain(rng, 3, 4, 3, poison_tail=False, lengths=[4, 3, 2]).astype(dtype)
    b.emissions[1, 2, 1] = np.nan
    path, score = losskit.viterbi(*b.model())
    mu, log_z = losskit.marginals(*b.model())
    assert np.isnan(score[1]) and np.all(path[1] == -1)
    assert np.isnan(log_z[1]) and np.all(np.isnan(mu[1, :3]))
    b64 = b.astype(np.float64)
    b64.emissions[1, 2, 1] = 0.0
    want_path, want_score = reference_viterbi(*b64.model())
    want_mu, want_z = reference_marginals(*b64.model())
    for i in (0, 2):
        np.testing.assert_array_equal(path[i], want_path[i])
        np.testing.assert_allclose(mu[i], want_mu[i], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", case_params())
def test_length_zero_sequences_have_zero_loss_and_gradient(case, dtype):
    """Every sequence of length 0, every input past the lengths poisoned (NaN, +inf, gold out of
    range, NaN costs): loss 0 under every reduction (the mean divides 0 by the weight), zero
    gradients; Viterbi score 0 with an all -1 path; log Z 0, zero marginals."""
    n, t_max, tags = 3, 4, 3
    e = np.full((n, t_max, tags), np.nan, dtype)
    e[:, ::2] = np.inf
    tr = np.zeros((tags, tags), dtype)
    lengths = np.zeros(n, np.int32)
    gold = np.full((n, t_max), 99, np.int32)
    cost = np.full((n, t_max, tags), np.nan, dtype)
    for reduction in REDUCTIONS:
        r = losskit.chain(e, tr, lengths, gold, cost=cost, reduction=reduction,
                          **case.options)
        assert np.all(np.asarray(r.loss) == 0.0)
        for name in GRADS:
            assert np.all(getattr(r, name) == 0.0), name
    path, score = losskit.viterbi(e, tr, lengths)
    assert np.all(path == -1) and np.all(score == 0.0)
    mu, log_z = losskit.marginals(e, tr, lengths)
    assert np.all(mu == 0.0) and np.all(log_z == 0.0)


@pytest.mark.parametrize("case", case_params())
def test_zero_weight_sequences_are_not_read(case, rng):
    """A zero-weight sequence's emissions (NaN, +inf), gold (out of range) and costs (NaN) are
    not read: it contributes exactly 0 and the rest is the brute force on the clean batch."""
    b = random_chain(rng, 6, 4, 3, start_end=True, costs="real", poison_tail=False,
                     gold_allowed=True)
    b.weight = np.array([1.0, 0.0, 2.0, 0.5, 0.0, 1.5])
    want = {red: reference_chain(*b.model(), b.gold, **b.kwargs(), reduction=red,
                                 **case.options) for red in REDUCTIONS}
    for i in (1, 4):
        b.emissions[i] = np.where(np.arange(3) % 2, np.inf, np.nan)
        b.gold[i] = 42
        b.cost[i] = np.nan
    for red in REDUCTIONS:
        got = losskit.chain(*b.model(), b.gold, **b.kwargs(), reduction=red, **case.options)
        assert_f64(tuple(got), want[red], red)
        if red == "none":
            assert got.loss[1] == 0.0 and got.loss[4] == 0.0
        assert np.all(got.d_emissions[[1, 4]] == 0.0)


def test_mean_over_zero_weight_is_zero(rng):
    b = random_chain(rng, 4, 3, 3, start_end=True, poison_tail=False)
    for loss in ("log", "hinge", "risk"):
        r = losskit.chain(*b.model(), b.gold, loss=loss, start=b.start, end=b.end,
                          weight=np.zeros(4), reduction="mean")
        assert r.loss == 0.0
        for name in GRADS:
            assert np.all(getattr(r, name) == 0.0)


def test_empty_batch():
    for reduction in ("sum", "mean"):
        r = losskit.chain(np.zeros((0, 5, 3)), np.zeros((3, 3)), np.zeros(0, np.int32),
                          np.zeros((0, 5), np.int32), loss="hinge", reduction=reduction)
        assert r.loss == 0.0 and r.d_emissions.shape == (0, 5, 3)
        assert np.all(r.d_transitions == 0.0) and np.all(r.d_start == 0.0)
    r = losskit.chain(np.zeros((0, 5, 3)), np.zeros((3, 3)), [], np.zeros((0, 5), np.int32),
                      reduction="none")
    assert r.loss.shape == (0,)
    path, score = losskit.viterbi(np.zeros((0, 2, 3)), np.zeros((3, 3)), [])
    assert path.shape == (0, 2) and score.shape == (0,)


def test_with_grad_false_and_result_types(rng):
    b = random_chain(rng, 4, 3, 3, start_end=True, poison_tail=False)
    r = losskit.chain(*b.model(), b.gold, with_grad=False, reduction="none")
    assert r.d_emissions is None and r.d_transitions is None and r.d_start is None
    assert r.d_end is None and r.loss.shape == (4,)
    assert isinstance(r, losskit.ChainResult)
    r32 = losskit.chain(*b.astype(np.float32).model(), b.gold, reduction="sum")
    assert np.asarray(r32.loss).dtype == np.float32
    assert all(getattr(r32, g).dtype == np.float32 for g in GRADS)
    v = losskit.viterbi(*b.model())
    assert isinstance(v, losskit.ViterbiResult)
    assert isinstance(losskit.marginals(*b.model()), losskit.MarginalsResult)


# ------------------------------------------------------------------------------------------
# 6. Threads: the same bits at any thread count.
# ------------------------------------------------------------------------------------------
# The library splits a batch across threads by work, sum over sequences of length * tags**2,
# one more thread per 2**17 of it (Sources/LossKit/Runtime/Parallel.swift, elementsPerThread): 64
# sequences of lengths in [25, 50] over 20 tags is ~1e6, well above 2 * 2**17, so threads=2
# and threads=0 (all cores) really split it.

@pytest.fixture(scope="module")
def big_chain():
    rng = np.random.default_rng(20240607)
    n, t_max, tags = 64, 50, 20
    lengths = rng.integers(25, t_max + 1, size=n).astype(np.int32)
    lengths[:3] = [0, 1, t_max]
    b = random_chain(rng, n, t_max, tags, start_end=True, costs="real", lengths=lengths,
                     poison_tail=False, forbid=0.0)
    b.gold = rng.integers(0, tags, size=(n, t_max)).astype(np.int32)
    b.weight = rng.uniform(0.5, 2.0, size=n)
    b.weight[5] = 0.0
    assert int(np.sum(b.lengths.astype(np.int64) * tags * tags)) > 2 * 2**17
    return b


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options", [dict(loss="log"), dict(loss="hinge"),
                                     dict(loss="hope_fear", hope="oracle", fear="lse")],
                         ids=["log", "hinge", "hope_fear-oracle-lse"])
def test_same_bits_at_any_thread_count(options, dtype, big_chain):
    b = big_chain.astype(dtype)
    for reduction in ("mean", "none"):
        runs = [losskit.chain(*b.model(), b.gold, **b.kwargs(), reduction=reduction, threads=t,
                              **options) for t in (1, 2, 0)]
        for t, r in zip((2, 0), runs[1:]):
            for name, x, y in zip(("loss",) + GRADS, r, runs[0]):
                assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), (t, name)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_decoding_same_bits_at_any_thread_count(dtype, big_chain):
    b = big_chain.astype(dtype)
    kw = dict(start=b.start, end=b.end)
    for fn in (losskit.viterbi, losskit.marginals):
        runs = [fn(*b.model(), threads=t, **kw) for t in (1, 2, 0)]
        for t, r in zip((2, 0), runs[1:]):
            for x, y in zip(r, runs[0]):
                assert x.tobytes() == y.tobytes(), (fn.__name__, t)
