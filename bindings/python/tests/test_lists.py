"""Candidate lists (losskit.lists, lk_lists_f32 / lk_lists_f64) against the independent float64
reference (tests/reference.py: reference_lists, which runs the dense per-example reference
example_loss on each list), against the dense rows, against finite differences, and the
binding's checks and error paths.

Expected values come from the reference or from closed forms written next to them — never from
the library's own output.
"""

from __future__ import annotations

import ctypes
import inspect
import math
import re

import numpy as np
import pytest

import losskit
from batches import ListBatch, random_batch, random_lists
from losskit import _common, _native
from reference import CASES, oracle_index, reference_dense, reference_lists

REDUCTIONS = ("none", "sum", "mean")
EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)

# Every loss configuration of the dense registry except label smoothing, which lists do not
# offer (include/losskit.h: LK_ERR_UNSUPPORTED; the Python function has no such parameter).
LIST_CASES = [c for c in CASES if "label_smoothing" not in c.options]


def case_params():
    return [pytest.param(c, id=c.id) for c in LIST_CASES]


def lists_for(case, rng, n, **kw):
    """A random list batch the case accepts: the gold stays unmasked when the loss reads it."""
    return random_lists(rng, n, gold_unmasked=case.uses_gold, **kw)


def call_both(case, batch, reduction, dtype=np.float64, **extra):
    """(library result, reference result) on `batch` rounded to `dtype`; the reference runs in
    float64 on exactly the values the library received."""
    b = batch.astype(dtype)
    kw = dict(case.options, reduction=reduction, **extra)
    got = losskit.lists(b.scores, b.offsets, b.gold, cost=b.cost, weight=b.weight, **kw)
    as64 = (lambda a: None if a is None else a.astype(np.float64))
    want = reference_lists(as64(b.scores), b.offsets, b.gold, cost=as64(b.cost),
                           weight=as64(b.weight), **kw)
    return (got.loss, got.grad), want


def magnitudes(case, batch):
    """M_i of every list: 1 + max |s| over its unmasked candidates + alpha * max(1, f, h) *
    max |c| over its candidates (|c| = 1 for 0/1 cost): the size of the cost-augmented scores
    s + f*alpha*c and s - h*alpha*c whose max / log-sum-exp the losses take. A difference of two
    such terms cannot be more accurate than a few ulps of M_i."""
    o = case.options
    alpha = o.get("cost_scale", 1.0)
    f = o.get("fear_scale") or 1.0
    h = o.get("hope_scale") or 0.0
    m = np.ones(batch.n)
    for i, (a, b) in enumerate(batch.spans()):
        if a == b:
            continue
        s = np.asarray(batch.scores[a:b], dtype=np.float64)
        finite = np.abs(s[np.isfinite(s)])
        cmax = 1.0 if batch.cost is None else float(np.max(np.abs(batch.cost[a:b])))
        m[i] = 1.0 + (finite.max() if finite.size else 0.0) + alpha * max(1.0, f, h) * cmax
    return m


def scales(case, batch, reduction):
    """(scale of the loss output, scale of each gradient entry (total,)): M_i weighted like the
    outputs — list i's loss and gradient scale with w_i, the sum with sum_i w_i M_i, the mean
    with that divided by the summed weight."""
    w = np.ones(batch.n) if batch.weight is None else np.asarray(batch.weight, np.float64)
    wm = w * magnitudes(case, batch)
    lengths = np.diff(batch.offsets)
    per_entry = np.repeat(wm, lengths)
    if reduction == "none":
        return wm, per_entry
    if reduction == "sum":
        return wm.sum(), per_entry
    denom = w.sum()
    if denom == 0:
        return 0.0, np.zeros(int(batch.offsets[-1]))
    return wm.sum() / denom, per_entry / denom


def assert_close(got, want, case, batch, reduction, ulps, eps):
    """|got - want| <= ulps * eps * (scale of the inputs + |want|), for the loss and for every
    gradient entry. The relative part covers the square losses, whose values grow like s^2."""
    loss_scale, grad_scale = scales(case, batch, reduction)
    got_loss, got_grad = got
    want_loss, want_grad = want
    if reduction == "none":
        assert np.shape(got_loss) == np.shape(want_loss)
    else:
        assert np.ndim(got_loss) == 0
    err = np.abs(np.asarray(got_loss, np.float64) - want_loss)
    bound = ulps * eps * (np.asarray(loss_scale) + np.abs(want_loss))
    bad = np.argwhere(~(err <= bound))
    assert bad.size == 0, (
        f"loss: got {got_loss!r}, want {want_loss!r}, |err| {err!r} > bound {bound!r}")
    gerr = np.abs(np.asarray(got_grad, np.float64) - want_grad)
    gbound = ulps * eps * (grad_scale + np.abs(want_grad))
    bad = np.argwhere(~(gerr <= gbound)).ravel()
    if bad.size:
        j = int(bad[0])
        i = int(np.searchsorted(batch.offsets, j, side="right")) - 1
        raise AssertionError(
            f"grad: {bad.size} entries differ, first at {j} (candidate {j - batch.offsets[i]} "
            f"of list {i}, gold {batch.gold[i]}): got {got_grad[j]!r}, want {want_grad[j]!r}, "
            f"bound {gbound[j]!r}")


# float64: library and reference are two float64 evaluations of the same formulas, each a few
# ulps of M_i from the exact value. 64 ulps (1.4e-14 of M_i, far inside the ~1e-12 asked for)
# leaves room for a different order of operations (lists of up to 40 candidates, sums over the
# batch) and still catches any error of the math, which would be O(1/K) of M_i or more.
F64_ULPS = 64


def assert_f64(got, want, case, batch, reduction):
    assert_close(got, want, case, batch, reduction, F64_ULPS, EPS64)


# ------------------------------------------------------------------------------------------
# Closed forms: a few lists whose every number is derived by hand, to pin the list rules
# (gold -1 -> oracle everywhere, 0/1 cost against the gold, K per list) independently of
# reference.py as well.
# ------------------------------------------------------------------------------------------

L3 = math.log(3.0)
E = math.e
CLOSED_FORMS = [
    # (id, options, scores, offsets, gold, cost, weight, per-list values, gradient)
    # list 0 = [0, log 3] gold 1: log(4/3), grad [1/4, -1/4]; list 1 = [5] gold 0: K = 1, 0.
    ("log-two-lists", dict(loss="log"), [0, L3, 5], [0, 2, 3], [1, 0], None, None,
     [math.log(4 / 3), 0.0], [0.25, -0.25, 0.0]),
    # gold -1, c = [2, 0, 1]: the oracle is candidate 1 (cost 0) and stands in for the gold:
    # lse([0, 0, log 3]) - 0 = log 5; grad [1/5, 1/5 - 1, 3/5]
    ("log-oracle", dict(loss="log"), [0, 0, L3], [0, 3], [-1], [2, 0, 1], None,
     [math.log(5)], [0.2, -0.8, 0.6]),
    # gold -1, c = [3, 2, 1]: the oracle is candidate 2 (lowest cost); s + c = [3, 3, 3] is
    # tied everywhere and the oracle, standing in for the gold, wins the tie (not the lowest
    # index 0): hinge 3 - s_2 = 1, gradient e_2 - e_2 = 0 (lowest index would give [1, 0, -1])
    ("hinge-oracle-wins-tie", dict(loss="hinge"), [0, 1, 2], [0, 3], [-1], [3, 2, 1], None,
     [1.0], [0.0, 0.0, 0.0]),
    # costs all 1, scores [1, 3, 2]: oracle = candidate 1 (highest score among equal costs, not
    # the lowest index 0); s + c = [2, 4, 3]: argmax 1 = oracle: 4 - 3 = 1, gradient 0
    ("hinge-oracle-by-score", dict(loss="hinge"), [1, 3, 2], [0, 3], [-1], [1, 1, 1], None,
     [1.0], [0.0, 0.0, 0.0]),
    # costs tied at 0 for candidates {0, 2}, scores tied at 2: oracle = lowest index 0;
    # perceptron max(s) = 2 tied at {0, 2}: the oracle 0 wins -> 0, gradient 0
    ("perceptron-oracle-by-index", dict(loss="perceptron"), [2, 1, 2], [0, 3], [-1],
     [0, 1, 0], None, [0.0], [0.0, 0.0, 0.0]),
    # cost None = 0/1 against the gold: list [0, 0] gold 0, c = [0, 1]:
    # softmax-margin lse([0, 1]) - 0 = log(1 + e)
    ("softmax_margin-zero-one", dict(loss="softmax_margin"), [0, 0], [0, 2], [0], None, None,
     [math.log(1 + E)], [1 / (1 + E) - 1, E / (1 + E)]),
    # c_gold != 0: c = [1, 0], gold 0, s = [0, 0]: hinge max([1, 0]) - 0 = 1 (the gold's own
    # augmented score wins): gradient e_0 - e_0 = 0
    ("hinge-gold-cost-nonzero", dict(loss="hinge"), [0, 0], [0, 2], [0], [1, 0], None,
     [1.0], [0.0, 0.0]),
    # risk with c = [1, 0, 1], p = [1/5, 1/5, 3/5]: R = 4/5, grad p (c - R)
    ("risk", dict(loss="risk"), [0, 0, L3], [0, 3], [1], [1, 0, 1], None, [0.8],
     [1 / 25, -4 / 25, 3 / 25]),
    # squared, K counts the list's unmasked candidates: [2, -inf, -1], gold 0, K = 2:
    # ((2 - 1)^2 + 1) / 2 = 1; grad (2/2) [1, 0, -1]
    ("squared-masked", dict(loss="squared"), [2, -np.inf, -1], [0, 3], [0], None, None,
     [1.0], [1.0, 0.0, -1.0]),
    # squentropy on a list of 1: 0 (lse(s) = s_g, no square term)
    ("squentropy-K1", dict(loss="squentropy"), [7], [0, 1], [0], None, None, [0.0], [0.0]),
    # weights and an empty zero-weight list between two lists: list 0 log(4/3) * 2,
    # list 1 empty (weight 0, gold 9 not validated), list 2 [0, 0] gold 1 log 2 * 3
    ("weights-empty-list", dict(loss="log"), [0, L3, 0, 0], [0, 2, 2, 4], [1, 9, 1], None,
     [2.0, 0.0, 3.0], [2 * math.log(4 / 3), 0.0, 3 * math.log(2)], [0.5, -0.5, 1.5, -1.5]),
    # infinite ramp, gold -1, c = [2, 1, 0]: oracle 2; s + c = [2, 1, 0.5] -> 2 - 0.5
    ("infinite_ramp-oracle", dict(loss="infinite_ramp"), [0, 0, 0.5], [0, 3], [-1], [2, 1, 0],
     None, [1.5], [1.0, 0.0, -1.0]),
    # hope_fear (max hope, h = 1; max fear, f = 1) = ramp, cost_scale 2: c = 2*[0, 1],
    # s + c = [0, 2.5] -> 2.5 at 1; s - c = [0, -1.5] -> 0 at 0: 2.5, grad [-1, 1]
    ("hope_fear-ramp-scale-2", dict(loss="hope_fear", hope="max", fear="max", hope_scale=1,
                                    fear_scale=1, cost_scale=2), [0, 0.5], [0, 2], [0], None,
     None, [2.5], [-1.0, 1.0]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options, scores, offsets, gold, cost, weight, values, grad",
                         [pytest.param(*row[1:], id=row[0]) for row in CLOSED_FORMS])
def test_closed_forms(options, scores, offsets, gold, cost, weight, values, grad, dtype):
    s = np.array(scores, dtype=dtype)
    c = None if cost is None else np.array(cost, dtype=dtype)
    w = None if weight is None else np.array(weight, dtype=dtype)
    o, g = np.array(offsets), np.array(gold)
    if dtype == np.float64:  # the reference agrees with the hand derivation ...
        ref = reference_lists(s, o, g, cost=c, weight=w, reduction="none", **options)
        np.testing.assert_allclose(ref[0], values, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(ref[1], grad, rtol=1e-14, atol=1e-15)
    # ... and so does the library: float64 to a few ulps; float32 to a few float32 ulps of
    # the inputs (all <= 8 here, weights <= 3)
    tol = 1e-14 if dtype == np.float64 else 8 * EPS32 * 8 * 3
    for reduction in REDUCTIONS:
        got = losskit.lists(s, o, g, cost=c, weight=w, reduction=reduction, **options)
        wsum = len(gold) if w is None else float(np.sum(w))
        want = {"none": np.array(values), "sum": np.sum(values),
                "mean": np.sum(values) / wsum}[reduction]
        gwant = np.array(grad) / (wsum if reduction == "mean" else 1.0)
        np.testing.assert_allclose(np.asarray(got.loss, np.float64), want, rtol=tol, atol=tol)
        np.testing.assert_allclose(got.grad.astype(np.float64), gwant, rtol=tol, atol=tol)


# ------------------------------------------------------------------------------------------
# 1. The library (float64) against the reference on random list batches.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", case_params())
def test_f64_matches_reference(case, reduction, rng):
    batches = {
        # lengths 1..40, masks, gold -1 (oracle) in a quarter of the lists, costs with
        # c_gold != 0, weights with zero weights and empty zero-weight lists
        "mixed": lists_for(case, rng, 24, oracle=0.25, mask=0.2, zero_weight=0.1, empty=0.1),
        # integer scores and costs: ties in every max, augmented max and oracle
        "ties": lists_for(case, rng, 30, max_len=8, ties=True, oracle=0.3, mask=0.15),
        # cost None: 0/1 against the gold (no gold -1 then)
        "zero-one": lists_for(case, rng, 20, costs=False, mask=0.2, zero_weight=0.1,
                              empty=0.1),
        # lists of length 1 only, and negative costs, unweighted
        "length-1": lists_for(case, rng, 12, max_len=1, oracle=0.5, negative_costs=True,
                              weighted=False),
        "negative-costs": lists_for(case, rng, 10, oracle=0.3, negative_costs=True, mask=0.1,
                                    weighted=False),
        # large magnitudes: every log-sum-exp must be max-shifted
        "large": lists_for(case, rng, 8, oracle=0.25, scale=1.0, offset=1e4, mask=0.1),
    }
    for name, batch in batches.items():
        got, want = call_both(case, batch, reduction)
        try:
            assert_f64(got, want, case, batch, reduction)
        except AssertionError as e:
            raise AssertionError(f"batch {name!r}: {e}") from None


@pytest.mark.parametrize("cost_scale", [0.0, 0.3, 4.0])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in LIST_CASES
                                  if "cost_scale" not in c.options])
def test_f64_cost_scales(case, cost_scale, rng):
    # cost_scale != 1 on every loss (for the losses that read no costs it must change nothing;
    # with 0 the oracle still uses the unscaled costs).
    batch = lists_for(case, rng, 16, max_len=12, oracle=0.3, mask=0.2, zero_weight=0.1)
    got, want = call_both(case, batch, "sum", cost_scale=cost_scale)
    assert_f64(got, want, case, batch, "sum")


@pytest.mark.parametrize("case", case_params())
def test_gold_minus_one_is_the_oracles_index(case, rng):
    # gold -1 behaves exactly like the gold set to the oracle's index (lowest unscaled cost,
    # then highest score, then lowest index — computed here by reference.oracle_index).
    for ties in (False, True):
        batch = lists_for(case, rng, 20, max_len=10, ties=ties, oracle=1.0, mask=0.2)
        explicit = batch.gold.copy()
        for i, (a, b) in enumerate(batch.spans()):
            s = batch.scores[a:b]
            explicit[i] = oracle_index(s, s > -np.inf, batch.cost[a:b])
        kw = dict(case.options, cost=batch.cost, weight=batch.weight, reduction="none")
        minus_one = losskit.lists(batch.scores, batch.offsets, batch.gold, **kw)
        named = losskit.lists(batch.scores, batch.offsets, explicit, **kw)
        assert_f64((minus_one.loss, minus_one.grad), (named.loss, named.grad), case, batch,
                   "none")


# ------------------------------------------------------------------------------------------
# 2. Dense rows and lists agree: a row of k classes = a list of the same k candidates.
# ------------------------------------------------------------------------------------------

def dense_as_lists(batch):
    """The dense batch as lists: offsets k*i, flat scores, per-candidate costs (the class
    matrix's row gold[i] for that layout), no cost for 0/1."""
    n, k = batch.scores.shape
    offsets = np.arange(n + 1, dtype=np.int64) * k
    if batch.cost_layout is None:
        cost = None
    elif batch.cost_layout == "per_example":
        cost = batch.cost.ravel()
    else:
        cost = np.concatenate([batch.cost[g] for g in batch.gold])
    return ListBatch(batch.scores.ravel(), offsets, batch.gold.copy(), cost, batch.weight)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ("zero_one", "per_example", "class_matrix"))
@pytest.mark.parametrize("case", case_params())
def test_dense_and_lists_agree(case, layout, dtype, rng):
    for k, kw in [(5, dict(mask=0.25, zero_weight=0.15)), (1, {}),
                  (4, dict(ties=True, mask=0.2)), (7, dict(scale=1.0, offset=1e4))]:
        d = random_batch(rng, 12, k, layout=layout, gold_unmasked=case.uses_gold, **kw)
        d = d.astype(dtype)
        lb = dense_as_lists(d)
        for reduction in REDUCTIONS:
            dense = losskit.dense(d.scores, d.gold, reduction=reduction,
                                  **dict(case.options, **d.kwargs()))
            lists = losskit.lists(lb.scores, lb.offsets, lb.gold, reduction=reduction,
                                  **dict(case.options, **lb.kwargs()))
            assert np.asarray(lists.loss).dtype == np.asarray(dense.loss).dtype == dtype
            # Same formula, same inputs: the two structures may only differ by the order of
            # the sums (a few ulps of the magnitude of the inputs). 4 ulps in float64, 8 float32
            # ulps (the float32 tolerance of the library, see the float32 test below).
            ulps, eps = (4, EPS64) if dtype == np.float64 else (8, EPS32)
            want = (np.asarray(dense.loss, np.float64), dense.grad.ravel().astype(np.float64))
            assert_close((lists.loss, lists.grad), want, case, lb, reduction, ulps, eps)


# ------------------------------------------------------------------------------------------
# 3. Finite differences of the library's own loss.
# ------------------------------------------------------------------------------------------

def augmented_vectors(case, s, unscaled):
    """The vectors whose max a max-based term takes: s, s + alpha*c, s - alpha*c,
    s + f*alpha*c, s - h*alpha*c (a superset of what any case uses)."""
    o = case.options
    alpha = o.get("cost_scale", 1.0)
    f = 1.0 if o.get("fear_scale") is None else o["fear_scale"]
    h = 0.0 if o.get("hope_scale") is None else o["hope_scale"]
    return [s + t * unscaled for t in (0.0, alpha, -alpha, f * alpha, -h * alpha)]


def top_gap(case, batch, i):
    """The smallest gap between the two largest entries of any augmented vector of list i
    (inf for a list of one unmasked candidate)."""
    a, b = batch.spans()[i]
    s = np.asarray(batch.scores[a:b], dtype=np.float64)
    active = s > -np.inf
    if active.sum() < 2:
        return math.inf
    if batch.cost is None:
        unscaled = np.ones(b - a)
        unscaled[batch.gold[i]] = 0.0
    else:
        unscaled = np.asarray(batch.cost[a:b], dtype=np.float64)
    gap = math.inf
    for v in augmented_vectors(case, s[active], unscaled[active]):
        top = np.sort(v)[-2:]
        gap = min(gap, top[1] - top[0])
    return gap


def separated_lists(case, rng, n, gap, redraw, **kw):
    """lists_for(...), with the finite scores of every list whose top_gap is below gap(i)
    drawn again (masks kept): no kink of a max term within reach of a perturbation, and no
    argmax that rounding could flip."""
    batch = lists_for(case, rng, n, **kw)
    for i, (a, b) in enumerate(batch.spans()):
        for _ in range(1000):
            if top_gap(case, batch, i) > gap(batch, i):
                break
            finite = np.isfinite(batch.scores[a:b])
            batch.scores[a:b][finite] = redraw(int(finite.sum()))
        else:
            raise RuntimeError("could not separate list %d" % i)
    return batch


# Fourth-order central differences, (-F(+2h) + 8 F(+h) - 8 F(-h) + F(-2h)) / 12h, in float64,
# h = 1e-3 on scores of size ~3 (lists of 1..6, weights <= 2):
#  - truncation h^4 |F^(5)| / 30: the smooth terms are log-sum-exps of unit-scale arguments
#    (derivatives O(1)) and squares (F^(5) = 0): ~1e-13;
#  - the max-based terms are piecewise linear: exact as long as no kink lies within 2h of the
#    point, which separated_lists guarantees (every top-two gap > 1e-2 = 10 * 2h, and the oracle
#    is decided by the continuous costs, never by a score tie);
#  - rounding (18/12) * |dF| / h with |dF| <= ~64 eps |F| ~ 1e-12 for |F| <= 100: ~2e-9.
# So 1e-7, still 1e5 times smaller than any real gradient error (a wrong entry is off by
# O(w/K) >= 1e-2).
FD_STEP = 1e-3
FD_TOL = 1e-7


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", case_params())
def test_gradient_is_finite_difference_of_the_loss(case, reduction, rng):
    batch = separated_lists(case, rng, 7, lambda b, i: 1e-2,
                            lambda size: rng.normal(0.0, 3.0, size),
                            max_len=6, oracle=0.3, mask=0.2, zero_weight=0.15, empty=0.15)
    kw = dict(case.options, cost=batch.cost, weight=batch.weight, reduction=reduction)
    grad = losskit.lists(batch.scores, batch.offsets, batch.gold, **kw).grad

    def total(s):
        return float(np.sum(losskit.lists(s, batch.offsets, batch.gold, with_grad=False,
                                          **kw).loss))

    h = FD_STEP
    for j in np.flatnonzero(np.isfinite(batch.scores)):
        def shifted(t):
            s = batch.scores.copy()
            s[j] += t
            return total(s)
        fd = (-shifted(2 * h) + 8 * shifted(h) - 8 * shifted(-h) + shifted(-2 * h)) / (12 * h)
        assert abs(fd - grad[j]) < FD_TOL, (j, fd, grad[j])


# ------------------------------------------------------------------------------------------
# 4. float32 against the float64 reference.
# ------------------------------------------------------------------------------------------

# The inputs are first rounded to float32 and the reference evaluates those very values in
# float64, so the only differences left are the library's own float32 roundings: of the
# augmented scores s + f*alpha*c and s - h*alpha*c, of each shift v - max v, of exp and of the
# output. Each is at most half an ulp of the list's magnitude M_i (sums accumulate in double, per
# the contract), so a handful of them stay within 8 float32 ulps of M_i — DESIGN.md §2's "a few
# float32 ulps of the magnitude of the inputs": a difference of two terms near 1e4 cannot be
# more accurate than ulp(1e4) ~ 1e-3, whatever the loss's own size. The square losses, whose
# values are ~s^2, get the same 8 ulps relative to the value.
# For the gradients of max-based terms, an argmax is only stable in float32 if its lead over
# the runner-up exceeds those roundings: random lists are redrawn until every top-two gap is
# above 32 float32 ulps of M_i (integer "ties" batches need no care: their ties are exact in
# both precisions, see test_reference.test_ties).
F32_ULPS = 8


@pytest.mark.parametrize("size", ["scale-3", "scale-1e4", "pm1e4", "ties"])
@pytest.mark.parametrize("case", case_params())
def test_f32_matches_f64_reference(case, size, rng):
    kw = dict(oracle=0.25, mask=0.2, zero_weight=0.1, empty=0.1, max_len=20)
    if size == "ties":
        batch = lists_for(case, rng, 24, ties=True, **dict(kw, max_len=8))
    else:
        scale, offset = {"scale-3": (3.0, 0.0), "scale-1e4": (1e4, 0.0),
                         "pm1e4": (1.0, 1e4)}[size]
        redraw = (lambda m: (rng.normal(0.0, scale, m)
                             + offset * rng.choice([-1.0, 1.0], m)).astype(np.float32))
        gap = lambda b, i: 32 * EPS32 * magnitudes(case, b)[i]  # noqa: E731
        batch = separated_lists(case, rng, 16, gap, redraw, scale=scale, offset=offset, **kw)
        batch = batch.astype(np.float32)
        # float32 rounding of the costs may not close a gap either: check on the rounded batch
        assert all(top_gap(case, batch, i) > 16 * EPS32 * magnitudes(case, batch)[i]
                   for i in range(batch.n))
    b32 = batch.astype(np.float32)
    for reduction in REDUCTIONS:
        got, want = call_both(case, b32, reduction, dtype=np.float32)
        assert got[1].dtype == np.float32
        assert np.asarray(got[0]).dtype == np.float32
        assert_close(got, want, case, b32, reduction, F32_ULPS, EPS32)


# ------------------------------------------------------------------------------------------
# Batch rules: zero-weight lists not read, masked costs not read, NaN, weights.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("with_cost", [True, False], ids=["cost", "zero-one"])
@pytest.mark.parametrize("case", case_params())
def test_zero_weight_lists_are_not_read(case, with_cost, rng):
    batch = lists_for(case, rng, 8, max_len=6, costs=with_cost, oracle=0.3 if with_cost else 0)
    s, g, c = batch.scores.copy(), batch.gold.copy(), None
    w = np.ones(8) if batch.weight is None else batch.weight.copy()
    if with_cost:
        c = batch.cost.copy()
    # list 2: weight 0, NaN / +inf scores, NaN costs and a gold outside the list;
    # list 5: weight 0, gold -1 (with or without costs: no oracle is needed), garbage scores;
    # list 6 becomes empty below (weight 0, gold 4).
    for i in (2, 5):
        a, b = batch.spans()[i]
        s[a:b] = np.nan
        s[a] = np.inf
        if c is not None:
            c[a:b] = np.nan
        w[i] = 0.0
    g[2], g[5] = 99, -1
    a, b = batch.spans()[6]
    s, c = np.delete(s, np.s_[a:b]), None if c is None else np.delete(c, np.s_[a:b])
    offsets = batch.offsets.copy()
    offsets[7:] -= b - a
    w[6], g[6] = 0.0, 4
    clean = ListBatch(s, offsets, g, c, w)
    keep = [i for i in range(8) if w[i] != 0]
    live = np.zeros(len(s), bool)
    for i in keep:
        live[offsets[i]:offsets[i + 1]] = True
    sub = ListBatch(s[live], np.concatenate([[0], np.cumsum(np.diff(offsets)[keep])]),
                    g[keep], None if c is None else c[live], w[keep])
    want = reference_lists(sub.scores, sub.offsets, sub.gold, cost=sub.cost, weight=sub.weight,
                           reduction="none", **case.options)
    for reduction in REDUCTIONS:
        got = losskit.lists(clean.scores, clean.offsets, clean.gold, cost=clean.cost,
                            weight=clean.weight, reduction=reduction, **case.options)
        assert np.all(got.grad[~live] == 0.0)  # exactly 0, never NaN
        if reduction == "none":
            assert np.all(got.loss[[2, 5, 6]] == 0.0)
            assert_f64((got.loss[keep], got.grad[live]), want, case, sub, "none")
        else:
            denom = 1.0 if reduction == "sum" else w.sum()  # zero weights add 0 to the mean's
            assert_f64((got.loss, got.grad[live]),                        # denominator
                       (float(np.sum(want[0])) / denom, want[1] / denom), case, sub, reduction)


@pytest.mark.parametrize("case", case_params())
def test_costs_of_masked_candidates_are_not_read(case, rng):
    batch = lists_for(case, rng, 12, max_len=10, oracle=0.3, mask=0.3)
    cost = np.where(np.isfinite(batch.scores), batch.cost, np.nan)
    kw = dict(case.options, weight=batch.weight, reduction="none")
    got = losskit.lists(batch.scores, batch.offsets, batch.gold, cost=cost, **kw)
    want = reference_lists(batch.scores, batch.offsets, batch.gold, cost=batch.cost, **kw)
    assert_f64((got.loss, got.grad), want, case, batch, "none")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", case_params())
def test_nan_score_makes_its_list_nan(case, dtype, rng):
    batch = lists_for(case, rng, 6, min_len=2, max_len=6, weighted=False).astype(dtype)
    s = batch.scores.copy()
    a, b = batch.spans()[2]
    s[a + 1] = np.nan
    kw = dict(case.options, cost=batch.cost)
    none = losskit.lists(s, batch.offsets, batch.gold, reduction="none", **kw)
    assert np.isnan(none.loss[2]) and np.all(np.isnan(none.grad[a:b]))
    rest = np.ones(len(s), bool)
    rest[a:b] = False
    others = np.arange(6) != 2
    assert np.all(np.isfinite(none.loss[others])) and np.all(np.isfinite(none.grad[rest]))
    for reduction in ("sum", "mean"):
        assert np.isnan(losskit.lists(s, batch.offsets, batch.gold, reduction=reduction,
                                      **kw).loss)


@pytest.mark.parametrize("case", case_params())
def test_weight_multiplies_and_none_weight_is_all_ones(case, rng):
    batch = lists_for(case, rng, 10, max_len=12, oracle=0.3, weighted=False)
    kw = dict(case.options, cost=batch.cost, reduction="none")
    plain = losskit.lists(batch.scores, batch.offsets, batch.gold, **kw)
    ones = losskit.lists(batch.scores, batch.offsets, batch.gold, weight=np.ones(10), **kw)
    np.testing.assert_array_equal(plain.loss, ones.loss)
    np.testing.assert_array_equal(plain.grad, ones.grad)
    w = rng.uniform(0.5, 3.0, 10)
    weighted = losskit.lists(batch.scores, batch.offsets, batch.gold, weight=w, **kw)
    np.testing.assert_allclose(weighted.loss, w * plain.loss, rtol=1e-14, atol=1e-300)
    # O(1) gradient differences rounded before or after the weight: a few ulps of w absolutely
    wg = np.repeat(w, np.diff(batch.offsets))
    np.testing.assert_allclose(weighted.grad, wg * plain.grad, rtol=1e-14, atol=1e-15 * 3)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mean_over_zero_weight_is_zero(dtype, rng):
    batch = random_lists(rng, 6, empty=0.3, oracle=0.3).astype(dtype)
    for loss in ("log", "risk", "infinite_ramp"):
        got = losskit.lists(batch.scores, batch.offsets, batch.gold, loss=loss,
                            cost=batch.cost, weight=np.zeros(6, dtype), reduction="mean")
        assert got.loss == 0.0 and not np.isnan(got.loss)
        assert np.all(got.grad == 0.0)


def test_loss_orderings_and_signs(rng):
    # costs >= 0, gold cost 0 (the 0/1 cost): softmax-margin >= log and >= hinge; perceptron,
    # hinge, risk, ramp, soft ramp and infinite ramp >= 0 (include/losskit.h, Properties).
    batch = random_lists(rng, 100, costs=False, mask=0.2)
    value = {name: losskit.lists(batch.scores, batch.offsets, batch.gold, loss=name,
                                 reduction="none").loss
             for name in ("log", "hinge", "softmax_margin", "perceptron", "risk", "ramp",
                          "soft_ramp", "infinite_ramp")}
    assert np.all(value["softmax_margin"] >= value["log"])
    assert np.all(value["softmax_margin"] >= value["hinge"])
    for name in ("perceptron", "hinge", "risk", "ramp", "soft_ramp", "infinite_ramp"):
        assert np.all(value[name] >= 0), name


# ------------------------------------------------------------------------------------------
# 5. The binding: argument checks, library errors, outputs.
# ------------------------------------------------------------------------------------------

S4 = np.zeros(4)
O2 = np.array([0, 3, 4])
G2 = np.array([0, 0])

BAD_ARGUMENTS = [
    ("2-D scores", dict(scores=np.zeros((2, 2)), offsets=np.array([0, 2, 4]), gold=G2),
     r"\bscores\b.*1-D"),
    ("0-D scores", dict(scores=np.float64(1.0), offsets=np.array([0, 1]), gold=[0]),
     r"\bscores\b"),
    ("complex scores", dict(scores=np.zeros(4, complex), offsets=O2, gold=G2), r"\bscores\b"),
    ("2-D offsets", dict(scores=S4, offsets=np.array([[0, 3], [3, 4]]), gold=G2),
     r"\boffsets\b"),
    ("empty offsets", dict(scores=np.zeros(0), offsets=np.zeros(0, np.int64), gold=[]),
     r"\boffsets\b"),
    ("float offsets", dict(scores=S4, offsets=np.array([0.0, 3.0, 4.0]), gold=G2),
     r"\boffsets\b.*integers"),
    ("offsets[-1] < len(scores)", dict(scores=S4, offsets=np.array([0, 1, 3]), gold=G2),
     r"offsets\[-1\] = 3.*4"),
    ("offsets[-1] > len(scores)", dict(scores=S4, offsets=np.array([0, 3, 9]), gold=G2),
     r"offsets\[-1\] = 9.*4"),
    ("gold too short", dict(scores=S4, offsets=O2, gold=np.array([0])), r"\bgold\b"),
    ("gold too long", dict(scores=S4, offsets=O2, gold=np.array([0, 0, 0])), r"\bgold\b"),
    ("gold with a fraction", dict(scores=S4, offsets=O2, gold=np.array([0.0, 0.25])),
     r"gold\[1\] = 0\.25"),
    ("cost too short", dict(scores=S4, offsets=O2, gold=G2, loss="hinge", cost=np.zeros(3)),
     r"\bcost\b"),
    ("cost 2-D", dict(scores=S4, offsets=O2, gold=G2, loss="hinge", cost=np.zeros((2, 2))),
     r"\bcost\b"),
    ("weight of the wrong length", dict(scores=S4, offsets=O2, gold=G2, weight=np.ones(3)),
     r"\bweight\b"),
    ("unknown loss", dict(scores=S4, offsets=O2, gold=G2, loss="cross_entropy"), r"\bloss\b"),
    ("unknown reduction", dict(scores=S4, offsets=O2, gold=G2, reduction="avg"),
     r"\breduction\b"),
    ("square_k for log", dict(scores=S4, offsets=O2, gold=G2, square_k=2.0), r"\bsquare_k\b"),
    ("hope for hinge", dict(scores=S4, offsets=O2, gold=G2, loss="hinge", hope="max"),
     r"\bhope\b"),
    ("fear oracle", dict(scores=S4, offsets=O2, gold=G2, loss="hope_fear", fear="oracle"),
     r"\bfear\b"),
    ("grad_out of the wrong shape", dict(scores=S4, offsets=O2, gold=G2,
                                         grad_out=np.zeros(3)), r"\bgrad_out\b"),
    ("grad_out of the wrong dtype", dict(scores=S4, offsets=O2, gold=G2,
                                         grad_out=np.zeros(4, np.float32)), r"\bgrad_out\b"),
    ("grad_out without grad", dict(scores=S4, offsets=O2, gold=G2, grad_out=np.zeros(4),
                                   with_grad=False), r"\bgrad_out\b"),
]


@pytest.mark.parametrize("kwargs, pattern", [pytest.param(*row[1:], id=row[0])
                                              for row in BAD_ARGUMENTS])
def test_bad_arguments_raise_value_error_naming_them(kwargs, pattern):
    kwargs = dict(kwargs)
    args = (kwargs.pop("scores"), kwargs.pop("offsets"), kwargs.pop("gold"))
    with pytest.raises(ValueError, match=pattern):
        losskit.lists(*args, **kwargs)


def test_label_smoothing_is_not_offered():
    assert "label_smoothing" not in inspect.signature(losskit.lists).parameters
    with pytest.raises(TypeError, match="label_smoothing"):
        losskit.lists(S4, O2, G2, label_smoothing=0.1)
    # ... and the C function rejects it as a dense-row notion (LK_ERR_UNSUPPORTED).
    opt = _common.make_options(loss="log", reduction="sum", cost_scale=1.0, threads=0,
                               label_smoothing=0.1)
    loss = np.full(1, 7.0)
    grad = np.full(4, 7.0)
    with pytest.raises(losskit.LossKitError) as info:
        call_raw(opt, O2, S4, G2, None, None, loss, grad)
    assert info.value.name == "LK_ERR_UNSUPPORTED"
    assert re.search("label_smoothing|label smoothing", info.value.message), info.value.message
    assert np.all(loss == 7.0) and np.all(grad == 7.0)


BAD_FROM_ARRAYS = [
    ("fewer cost arrays than lists",
     dict(scores=[np.zeros(2), np.zeros(3)], gold=[0, 0], cost=[np.zeros(2)]), r"\bcost\b"),
    ("cost[1] of another length",
     dict(scores=[np.zeros(2), np.zeros(3)], gold=[0, 0], cost=[np.zeros(2), np.zeros(2)]),
     r"cost\[1\]"),
    ("scores[1] 2-D", dict(scores=[np.zeros(2), np.zeros((1, 3))], gold=[0, 0]),
     r"scores\[1\]"),
    ("gold too short", dict(scores=[np.zeros(2), np.zeros(3)], gold=[0]), r"\bgold\b"),
]


@pytest.mark.parametrize("kwargs, pattern", [pytest.param(*row[1:], id=row[0])
                                              for row in BAD_FROM_ARRAYS])
def test_from_arrays_bad_arguments(kwargs, pattern):
    kwargs = dict(kwargs)
    with pytest.raises(ValueError, match=pattern):
        losskit.lists.from_arrays(kwargs.pop("scores"), kwargs.pop("gold"), loss="hinge",
                                  **kwargs)


def call_raw(opt, offsets, scores, gold, cost, weight, loss, grad):
    """lk_lists_f64 / _f32 called directly (the binding allocates its own loss buffer; this
    lets a test poison it)."""
    fn = _native.lib.lk_lists_f64 if scores.dtype == np.float64 else _native.lib.lk_lists_f32
    arrays = [np.ascontiguousarray(offsets, np.int64), scores,
              np.ascontiguousarray(gold, np.int32), cost, weight, loss, grad]
    return fn(ctypes.byref(opt), len(offsets) - 1, *[_common.address(a) for a in arrays])


LIBRARY_ERRORS = [
    # (id, scores, offsets, gold, kwargs, name, message pattern naming the example / index)
    ("offsets[0] != 0", S4, [1, 2, 4], [0, 0], {}, "LK_ERR_SIZE", r"offsets\[0\] = 1"),
    ("decreasing offsets", S4, [0, 3, 2, 4], [0, 0, 0], {}, "LK_ERR_SIZE",
     r"offsets\[2\] = 2.*offsets\[1\] = 3"),
    ("gold outside its list", S4, [0, 3, 4], [0, 5], {}, "LK_ERR_LABEL", r"gold\[1\] = 5"),
    ("gold of the previous list's range", S4, [0, 1, 4], [0, 3], {}, "LK_ERR_LABEL",
     r"gold\[1\] = 3"),
    ("gold -2", S4, [0, 3, 4], [0, -2], {}, "LK_ERR_LABEL", r"gold\[1\] = -2"),
    # an empty list of weight 1 whose gold is 0: that gold is outside [0, 0), and gold labels
    # are checked before values (DESIGN.md §2, order of checks)
    ("gold 0 in an empty list", S4, [0, 3, 3, 4], [0, 0, 0], {}, "LK_ERR_LABEL",
     r"gold\[1\] = 0"),
    ("gold -1 with cost None", S4, [0, 3, 4], [0, -1], dict(loss="hinge"), "LK_ERR_NULL",
     r"gold\[1\] = -1"),
    ("gold -1 with cost None, loss reading no costs", S4, [0, 3, 4], [-1, 0], {},
     "LK_ERR_NULL", r"gold\[0\] = -1"),
    ("empty list with weight != 0", S4, [0, 3, 3, 4], [0, -1, 0], dict(cost=np.ones(4)),
     "LK_ERR_DOMAIN", r"example 1"),
    ("+inf score", np.array([0.0, 1.0, 2.0, np.inf]), [0, 3, 4], [0, 0], {}, "LK_ERR_DOMAIN",
     r"scores\[3\]"),
    ("NaN cost read", S4, [0, 3, 4], [0, 0],
     dict(loss="risk", cost=np.array([0.0, 1.0, 1.0, np.nan])), "LK_ERR_DOMAIN", r"cost\[3\]"),
    ("NaN cost read by the oracle", S4, [0, 3, 4], [0, -1],
     dict(loss="log", cost=np.array([0.0, 1.0, 1.0, np.nan])), "LK_ERR_DOMAIN", r"cost\[3\]"),
    ("infinite cost read", S4, [0, 3, 4], [1, 0],
     dict(loss="hinge", cost=np.array([0.0, np.inf, 1.0, 0.0])), "LK_ERR_DOMAIN",
     r"cost\[1\]"),
    ("every candidate masked", np.array([0.0, 1.0, 2.0, -np.inf]), [0, 3, 4], [0, 0],
     dict(loss="risk", cost=np.ones(4)), "LK_ERR_DOMAIN", r"example 1"),
    ("masked gold under log", np.array([0.0, -np.inf, 2.0, 0.0]), [0, 3, 4], [1, 0], {},
     "LK_ERR_DOMAIN", r"scores\[1\]"),
    ("negative weight", S4, [0, 3, 4], [0, 0], dict(weight=np.array([1.0, -1.0])),
     "LK_ERR_DOMAIN", r"weight\[1\]"),
    ("NaN weight", S4, [0, 3, 4], [0, 0], dict(weight=np.array([np.nan, 1.0])),
     "LK_ERR_DOMAIN", r"weight\[0\]"),
    ("negative cost_scale", S4, [0, 3, 4], [0, 0], dict(cost_scale=-1.0), "LK_ERR_OPTION",
     r"cost_scale"),
    ("negative threads", S4, [0, 3, 4], [0, 0], dict(threads=-1), "LK_ERR_OPTION", r"threads"),
    # order of checks: options, sizes, labels (NULL cost with gold -1 found there), values
    ("options before sizes", S4, [1, 2, 4], [0, 0], dict(cost_scale=np.nan), "LK_ERR_OPTION",
     r"cost_scale"),
    ("sizes before labels", S4, [0, 3, 2, 4], [7, 7, 7], {}, "LK_ERR_SIZE", r"offsets\[2\]"),
    ("labels before values", np.array([np.inf, 0.0, 0.0, 0.0]), [0, 3, 4], [0, 5], {},
     "LK_ERR_LABEL", r"gold\[1\] = 5"),
    ("NULL cost for the oracle before values", np.array([np.inf, 0.0, 0.0, 0.0]), [0, 3, 4],
     [0, -1], {}, "LK_ERR_NULL", r"gold\[1\] = -1"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scores, offsets, gold, kwargs, name, pattern",
                         [pytest.param(*row[1:], id=row[0]) for row in LIBRARY_ERRORS])
def test_library_errors_raise_losskit_error(scores, offsets, gold, kwargs, name, pattern,
                                            dtype):
    kwargs = dict(kwargs)
    for key in ("cost", "weight"):
        if key in kwargs:
            kwargs[key] = kwargs[key].astype(dtype)
    s = np.asarray(scores, dtype=dtype)
    poisoned = np.full(len(s), 7.0, dtype=dtype)
    with pytest.raises(losskit.LossKitError) as info:
        losskit.lists(s, np.array(offsets), np.array(gold), grad_out=poisoned, **kwargs)
    err = info.value
    assert err.name == name and err.status == {
        "LK_ERR_NULL": 1, "LK_ERR_SIZE": 2, "LK_ERR_LABEL": 3, "LK_ERR_OPTION": 4,
        "LK_ERR_DOMAIN": 5}[name]
    assert err.message and re.search(pattern, err.message), err.message
    assert np.all(poisoned == 7.0)  # outputs untouched on error
    # the same through the C function, with the loss buffer poisoned too
    opt = _common.make_options(loss=kwargs.pop("loss", "log"), reduction="none",
                               cost_scale=kwargs.pop("cost_scale", 1.0),
                               threads=kwargs.pop("threads", 0))
    loss = np.full(len(gold), 7.0, dtype=dtype)
    with pytest.raises(losskit.LossKitError) as raw:
        call_raw(opt, np.array(offsets), s, np.array(gold), kwargs.get("cost"),
                 kwargs.get("weight"), loss, poisoned)
    assert raw.value.name == name
    assert np.all(loss == 7.0) and np.all(poisoned == 7.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_result_types(dtype, rng):
    batch = random_lists(rng, 5, max_len=6, oracle=0.4).astype(dtype)
    for reduction in REDUCTIONS:
        r = losskit.lists(batch.scores, batch.offsets, batch.gold, loss="hinge",
                          cost=batch.cost, reduction=reduction)
        assert isinstance(r, losskit.ListsResult) and r._fields == ("loss", "grad") and r.hessian is None
        assert r.grad.dtype == dtype and r.grad.shape == batch.scores.shape
        if reduction == "none":
            assert isinstance(r.loss, np.ndarray) and r.loss.shape == (5,)
            assert r.loss.dtype == dtype
        else:
            assert np.ndim(r.loss) == 0 and r.loss.dtype == dtype
    assert losskit.lists(batch.scores, batch.offsets, batch.gold, loss="hinge",
                         cost=batch.cost, with_grad=False).grad is None


def test_float64_takes_the_f64_path_and_others_f32():
    # log loss of [0, 1e-9], gold 0 = log 2 + 5e-10 + O(1e-19): only float64 holds the 5e-10.
    r = losskit.lists(np.array([0.0, 1e-9]), [0, 2], [0], reduction="sum")
    assert isinstance(r.loss, np.float64) and abs(r.loss - (math.log(2) + 5e-10)) < 1e-15
    for dtype in (np.float32, np.float16, np.int64):
        r = losskit.lists(np.array([0, 1, 2], dtype=dtype), [0, 3], [2], reduction="sum")
        assert isinstance(r.loss, np.float32) and r.grad.dtype == np.float32
        # log(1 + e + e^2) - 2, within float32 ulps of the inputs (<= 2)
        assert abs(r.loss - (math.log(1 + E + E * E) - 2)) < 8 * EPS32 * 3


def test_empty_batch():
    for dtype in (np.float64, np.float32):
        s = np.zeros(0, dtype)
        for reduction in ("sum", "mean"):
            r = losskit.lists(s, np.array([0]), np.array([], np.int32), reduction=reduction)
            assert r.loss == 0.0 and r.grad.shape == (0,) and r.grad.dtype == dtype
        assert losskit.lists(s, [0], [], reduction="none").loss.shape == (0,)


def test_grad_out_is_written_and_returned(rng):
    batch = random_lists(rng, 6, max_len=9, oracle=0.3)
    for dtype in (np.float64, np.float32):
        b = batch.astype(dtype)
        out = np.full(b.scores.shape, 123.0, dtype)
        r = losskit.lists(b.scores, b.offsets, b.gold, loss="soft_ramp", cost=b.cost,
                          weight=b.weight, grad_out=out)
        assert r.grad is out
        fresh = losskit.lists(b.scores, b.offsets, b.gold, loss="soft_ramp", cost=b.cost,
                              weight=b.weight)
        np.testing.assert_array_equal(out, fresh.grad)
        assert r.loss == fresh.loss


def test_grad_out_may_not_alias_scores():
    s = np.zeros(4)
    with pytest.raises(ValueError, match="overlap"):
        losskit.lists(s, O2, G2, grad_out=s)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in LIST_CASES[::3]])
def test_from_arrays_equals_the_flat_call(case, dtype, rng):
    batch = lists_for(case, rng, 9, max_len=7, oracle=0.3, mask=0.2, empty=0.2).astype(dtype)
    parts = [batch.scores[a:b] for a, b in batch.spans()]
    costs = [batch.cost[a:b] for a, b in batch.spans()]
    for reduction in REDUCTIONS:
        kw = dict(case.options, weight=batch.weight, reduction=reduction)
        flat = losskit.lists(batch.scores, batch.offsets, batch.gold, cost=batch.cost, **kw)
        split = losskit.lists.from_arrays(parts, batch.gold, cost=costs, **kw)
        np.testing.assert_array_equal(split.loss, flat.loss)
        assert isinstance(split.grad, list) and len(split.grad) == batch.n
        for (a, b), g in zip(batch.spans(), split.grad):
            assert g.shape == (b - a,) and g.dtype == dtype
            np.testing.assert_array_equal(g, flat.grad[a:b])
    assert losskit.lists.from_arrays(parts, batch.gold, cost=costs, with_grad=False,
                                     **dict(case.options, weight=batch.weight)).grad is None


def test_from_arrays_dtypes_and_lists():
    # Python lists of floats are float64; one float32 part makes the whole batch float32.
    r = losskit.lists.from_arrays([[0.0, L3], [5.0]], [1, 0], reduction="none")
    np.testing.assert_allclose(r.loss, [math.log(4 / 3), 0.0], rtol=1e-15)
    assert r.loss.dtype == np.float64
    np.testing.assert_allclose(r.grad[0], [0.25, -0.25], rtol=1e-15)
    mixed = losskit.lists.from_arrays([np.array([0.0, L3]), np.array([5.0], np.float32)],
                                      [1, 0], reduction="none")
    assert mixed.loss.dtype == np.float32 and mixed.grad[0].dtype == np.float32


# ------------------------------------------------------------------------------------------
# 6. Threads: the same bits at any thread count.
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def big_lists():
    """> 2**18 candidates in lists of 1..200 (enough for the library to split the batch by
    candidates across threads), with masks, gold -1 and zero weights."""
    rng = np.random.default_rng(20240607)
    batch = random_lists(rng, 3000, max_len=200, oracle=0.2, mask=0.05, zero_weight=0.05,
                         gold_unmasked=True)
    assert batch.offsets[-1] > 2**18
    return batch


@pytest.mark.parametrize("case", case_params())
def test_same_bits_at_any_thread_count(case, big_lists):
    b = big_lists
    for dtype in (np.float64, np.float32):
        bd = b if dtype == np.float64 else b.astype(np.float32)
        for reduction in ("mean", "none"):
            runs = [losskit.lists(bd.scores, bd.offsets, bd.gold, cost=bd.cost,
                                  weight=bd.weight, reduction=reduction, threads=t,
                                  **case.options)
                    for t in (1, 2, 0)]
            for t, r in zip((2, 0), runs[1:]):
                assert np.asarray(r.loss).tobytes() == np.asarray(runs[0].loss).tobytes(), t
                assert r.grad.tobytes() == runs[0].grad.tobytes(), t


# ------------------------------------------------------------------------------------------
# 7. Screened and checked chunks. Validation screens each chunk of lists (about 2**14
#    candidates) at once; only a chunk where the screen finds a NaN, an infinity (a mask) or a
#    cost too large is checked list by list, and its lists then reuse what that check learnt.
#    Both routes must give the reference's values, and the same bits.
# ------------------------------------------------------------------------------------------

def unmasked_lists(case, rng, n):
    """Lists with nothing for the screen to object to (no -inf, no NaN), of 1..200 candidates:
    several chunks, gold -1 in a fifth of them, zero weights."""
    return lists_for(case, rng, n, max_len=200, oracle=0.2, zero_weight=0.05)


@pytest.mark.parametrize("case", case_params())
def test_screened_chunks_match_reference(case, rng):
    batch = unmasked_lists(case, rng, 600)
    assert batch.offsets[-1] > 3 * 2**14  # several chunks
    got, want = call_both(case, batch, "none")
    assert_f64(got, want, case, batch, "none")


@pytest.mark.parametrize("case", case_params())
def test_a_checked_chunk_gives_the_screened_bits(case, rng):
    # One -inf in list j sends j's chunk through the per-list checks; every other list of the
    # batch, in that chunk or another, must keep its bits.
    clean = unmasked_lists(case, rng, 300)
    lengths = np.diff(clean.offsets)
    j = int(np.flatnonzero(lengths >= 2)[len(lengths) // 3])
    a = int(clean.offsets[j])
    masked_candidate = a + (1 if clean.gold[j] == 0 else 0)
    others = np.ones(clean.n, bool)
    others[j] = False
    candidates = np.repeat(others, lengths)
    for dtype in (np.float64, np.float32):
        b = clean.astype(dtype)
        scores = b.scores.copy()
        scores[masked_candidate] = -np.inf
        runs = [losskit.lists(s, b.offsets, b.gold, cost=b.cost, weight=b.weight,
                              reduction="none", **case.options)
                for s in (b.scores, scores)]
        assert runs[0].loss[others].tobytes() == runs[1].loss[others].tobytes()
        assert runs[0].grad[candidates].tobytes() == runs[1].grad[candidates].tobytes()


# ------------------------------------------------------------------------------------------
# 8. Rounding of s + w c, and its overflow in float32.
# ------------------------------------------------------------------------------------------

def fused_and_unfused(s, w, c):
    """s + w c rounded once (a fused multiply-add) and twice (product, then sum), in float64."""
    from fractions import Fraction
    return float(Fraction(s) + Fraction(w) * Fraction(c)), s + w * c


@pytest.mark.parametrize("structure", ["lists", "dense"])
def test_a_tie_of_cost_augmented_values_goes_to_the_gold_however_they_round(structure):
    # The hope max(s - 0.1 c) over s = [x, 1.5], c = [0, 24], gold 1. 1.5 - 0.1 * 24 rounds to
    # one value once (a fused multiply-add: the AVX2 and AVX-512 builds) and to a lower one
    # twice (the baseline build). The fear max(s) is the gold, so the gradient is zero exactly
    # when the hope picks the gold too.
    opts = dict(loss="hope_fear", hope="max", fear="max", hope_scale=1.0, fear_scale=0.0,
                cost_scale=0.1, reduction="none")

    def gold_wins(x):
        s, c = np.array([x, 1.5]), np.array([0.0, 24.0])
        if structure == "lists":
            r = losskit.lists(s, np.array([0, 2]), np.array([1], np.int32), cost=c, **opts)
        else:
            r = losskit.dense(s[None], np.array([1], np.int32), cost=c[None],
                              cost_layout="per_example", **opts)
        return not np.asarray(r.grad).any()

    fused, unfused = fused_and_unfused(1.5, -0.1, 24.0)
    assert unfused < fused
    # A score strictly between the two roundings tells which one this build computes (no tie
    # either way): the gold wins against it only if its value is the fused one.
    between = np.nextafter(unfused, fused)
    assert unfused < between < fused
    mine, other = (fused, unfused) if gold_wins(between) else (unfused, fused)
    # x equal to the build's own value: a tie, which goes to the gold.
    assert gold_wins(mine)
    # the other rounding: no tie; the gold wins exactly when it is the larger.
    assert gold_wins(other) == (other < mine)


def test_float32_score_plus_scaled_cost_overflowing_is_a_domain_error():
    s = np.array([3e38, 0.0, 1.0], np.float32)
    c = np.array([3e38, 0.0, 1.0], np.float32)
    gold = np.array([1], np.int32)
    for call in (lambda: losskit.lists(s, np.array([0, 3]), gold, cost=c, loss="softmax_margin"),
                 lambda: losskit.dense(s[None], gold, cost=c[None], cost_layout="per_example",
                                       loss="hinge")):
        with pytest.raises(losskit.LossKitError) as info:
            call()
        assert info.value.name == "LK_ERR_DOMAIN" and re.search(r"cost\[0", info.value.message)
    # the same values in float64 are fine
    r = losskit.lists(s.astype(np.float64), np.array([0, 3]), gold, cost=c.astype(np.float64),
                      loss="softmax_margin", reduction="none")
    assert np.isfinite(r.loss).all()


def test_cost_scale_overflowing_float32_is_an_option_error():
    s, c, gold = np.zeros(3), np.array([0.0, 1.0, 1.0]), np.array([0], np.int32)
    for dtype in (np.float32, np.float64):
        calls = [lambda: losskit.lists(s.astype(dtype), np.array([0, 3]), gold, cost=c.astype(dtype),
                                       loss="softmax_margin", cost_scale=1e39),
                 lambda: losskit.dense(s[None].astype(dtype), gold, loss="hinge", cost_scale=1e39)]
        for call in calls:
            if dtype == np.float64:
                assert np.isfinite(call().loss)
                continue
            with pytest.raises(losskit.LossKitError) as info:
                call()
            assert info.value.name == "LK_ERR_OPTION" and "cost_scale" in info.value.message
