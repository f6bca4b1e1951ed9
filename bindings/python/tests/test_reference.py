"""The library against the independent NumPy reference (tests/reference.py), loss by loss.

Expected values come from closed forms (first table) or from reference.py, which is itself
checked against the closed forms and against finite differences below — never from the library.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

import losskit
from batches import random_batch
from reference import CASES, PRESETS, reference_dense

LAYOUTS = ("zero_one", "per_example", "class_matrix")
REDUCTIONS = ("none", "sum", "mean")
EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)


def case_params():
    return [pytest.param(c, id=c.id) for c in CASES]


def batch_for(case, rng, n, k, **kw):
    """A random batch the case accepts: the gold stays unmasked only when the loss reads it."""
    return random_batch(rng, n, k, gold_unmasked=case.uses_gold, **kw)


def call_both(case, batch, reduction, dtype=np.float64):
    kw = dict(case.options, reduction=reduction, **batch.kwargs())
    b = batch.astype(dtype)
    got = losskit.dense(b.scores, b.gold, **dict(kw, cost=b.cost, weight=b.weight))
    # The reference always runs in float64, on the inputs exactly as the library received them.
    want = reference_dense(b.scores.astype(np.float64), b.gold,
                           **dict(kw, cost=None if b.cost is None else b.cost.astype(np.float64),
                                  weight=None if b.weight is None else b.weight.astype(np.float64)))
    return got, want


def scales(case, batch, reduction):
    """Magnitude of the inputs each output depends on, for the tolerances.

    Row i: M_i = 1 + max over unmasked j of |s_ij| + cost_scale * max_j |c_ij|, the size of the
    cost-augmented scores whose max / log-sum-exp every loss takes (a difference of two such
    terms cannot be more accurate than a few ulps of M_i). Weighted like the outputs: the loss
    of row i and its gradient row scale with w_i, the sum with sum_i w_i M_i, the mean with that
    divided by the summed weight of the non-ignored rows.
    Returns (scale of the loss output, scale of each gradient entry, shape (n, 1)).
    """
    s = np.asarray(batch.scores, dtype=np.float64)
    n, k = s.shape
    finite = np.where(np.isfinite(s), np.abs(s), 0.0)
    alpha = case.options.get("cost_scale", 1.0)
    if batch.cost is None:
        cmax = np.ones(n)
    elif batch.cost_layout == "per_example":
        cmax = np.abs(batch.cost).max(axis=1)
    else:
        cmax = np.full(n, np.abs(batch.cost).max())
    m = 1.0 + finite.max(axis=1) + alpha * cmax
    w = np.ones(n) if batch.weight is None else np.asarray(batch.weight, dtype=np.float64)
    live = batch.gold != batch.ignore_label
    wm = np.where(live, w * m, 0.0)
    if reduction == "none":
        return wm, wm[:, None]
    total = wm.sum()
    if reduction == "sum":
        return total, wm[:, None]
    denom = w[live].sum()
    if denom == 0:
        return 0.0, np.zeros((n, 1))
    return total / denom, wm[:, None] / denom


def assert_close(got, want, case, batch, reduction, ulps, eps):
    """|got - want| <= ulps * eps * (scale of the inputs) + ulps * eps * |want|.

    The relative part covers the square losses, whose values grow like s^2 rather than s."""
    loss_scale, grad_scale = scales(case, batch, reduction)
    got_loss, got_grad = got[:2]  # the result also carries the Hessian (None here)
    want_loss, want_grad = want
    if reduction == "none":
        assert np.shape(got_loss) == np.shape(want_loss)
    else:
        assert np.ndim(got_loss) == 0
    err = np.abs(np.asarray(got_loss, np.float64) - want_loss)
    bound = ulps * eps * (np.asarray(loss_scale) + np.abs(want_loss))
    assert np.all(err <= bound), (
        f"loss: got {got_loss!r}, want {want_loss!r}, |err| {err!r} > bound {bound!r}")
    gerr = np.abs(np.asarray(got_grad, np.float64) - want_grad)
    gbound = ulps * eps * (grad_scale + np.abs(want_grad))
    bad = np.argwhere(~(gerr <= gbound))
    assert bad.size == 0, (
        f"grad: {len(bad)} entries differ, first at {tuple(bad[0])}: got "
        f"{got_grad[tuple(bad[0])]!r}, want {want_grad[tuple(bad[0])]!r}, "
        f"bound {gbound[tuple(bad[0])]!r}")


# float64: library and reference are two float64 computations of the same formulas, each a few
# ulps of the input magnitude from the exact value; 64 ulps (1.4e-14 relative) leaves room for a
# different order of operations and still catches any error of the math (which would be O(1)).
F64_ULPS = 64


def assert_f64(got, want, case, batch, reduction):
    assert_close(got, want, case, batch, reduction, F64_ULPS, EPS64)


# ------------------------------------------------------------------------------------------
# Closed forms: each expected number shows where it comes from. They pin the reference and the
# library to the formulas of include/losskit.h.
# ------------------------------------------------------------------------------------------

E = math.e
L3 = math.log(3.0)
CLOSED_FORMS = [
    # (id, options, scores, gold, per-example cost or None, expected value, expected gradient)
    ("log", dict(loss="log"), [0, L3], 1, None, math.log(4 / 3), [1 / 4, -1 / 4]),
    ("log-masked", dict(loss="log"), [0, L3, -np.inf], 1, None, math.log(4 / 3),
     [1 / 4, -1 / 4, 0]),
    # eps = 0.2, K = 2: lse - 0.8 s_1 - 0.1 (s_0 + s_1) = log 4 - 0.9 log 3;
    # grad p - (0.8 e_1 + 0.1) = [0.25 - 0.1, 0.75 - 0.9]
    ("log-smoothing", dict(loss="log", label_smoothing=0.2), [0, L3], 1, None,
     math.log(4) - 0.9 * L3, [0.15, -0.15]),
    # the masked class is not in K = 2 nor in the sum: same as above
    ("log-smoothing-masked", dict(loss="log", label_smoothing=0.2), [0, -np.inf, L3], 2, None,
     math.log(4) - 0.9 * L3, [0.15, 0, -0.15]),
    # far from the decision: log1p(e^-40) = e^-40 to 1e-35; the naive lse - s_g would be 0
    ("log-near-zero", dict(loss="log"), [0, -40], 0, None, math.exp(-40),
     [-math.exp(-40), math.exp(-40)]),
    ("perceptron", dict(loss="perceptron"), [1, 3, 2], 0, None, 2.0, [-1, 1, 0]),
    ("perceptron-tie-gold", dict(loss="perceptron"), [2, 2, 0], 1, None, 0.0, [0, 0, 0]),
    ("perceptron-tie-lowest", dict(loss="perceptron"), [0, 2, 2], 0, None, 2.0, [-1, 1, 0]),
    # s + c = [1, 2.5, 1]: 2.5 - 1
    ("hinge", dict(loss="hinge"), [1, 1.5, 0], 0, None, 1.5, [-1, 1, 0]),
    # s + c = [2, 2, 1]: the gold is tied for the max, so it wins: loss 0, gradient 0
    ("hinge-tie-gold", dict(loss="hinge"), [2, 1, 0], 0, None, 0.0, [0, 0, 0]),
    # cost_scale 2: s + c = [0, 2, 2.5] -> 2.5 - 0
    ("hinge-scaled", dict(loss="hinge", cost_scale=2), [0, 0, 0.5], 0, None, 2.5, [-1, 0, 1]),
    # lse([0, 1]) - 0 = log(1 + e); grad softmax([0, 1]) - e_0
    ("softmax_margin", dict(loss="softmax_margin"), [0, 0], 0, None, math.log(1 + E),
     [1 / (1 + E) - 1, E / (1 + E)]),
    # p = [1/4, 3/4], c = [0, 1]: R = 3/4, grad p (c - R) = [-3/16, 3/16]
    ("risk", dict(loss="risk"), [0, L3], 0, None, 0.75, [-3 / 16, 3 / 16]),
    # p over all candidates, not exp(s_g) in the numerator: c = [1, 0, 1], p = [1/5, 1/5, 3/5]
    # R = 4/5, grad [1/5 * 1/5, 1/5 * -4/5, 3/5 * 1/5]
    ("risk-per-example", dict(loss="risk"), [0, 0, L3], 1, [1, 0, 1], 0.8,
     [1 / 25, -4 / 25, 3 / 25]),
    # s + c = [0, 1.5, 1] -> argmax 1; s - c = [0, -0.5, -1] -> argmax 0: 1.5 - 0
    ("ramp", dict(loss="ramp"), [0, 0.5, 0], 0, None, 1.5, [-1, 1, 0]),
    # lse([0, 1]) - lse([0, -1]) = log(1 + e) - log(1 + 1/e) = 1
    ("soft_ramp", dict(loss="soft_ramp"), [0, 0], 0, None, 1.0,
     [(1 - E) / (1 + E), (E - 1) / (1 + E)]),
    # c = [1, 0, 2]: s + c = [1, -1, 7] -> argmax 2; oracle = class 1 (cost 0): 7 - (-1)
    ("infinite_ramp", dict(loss="infinite_ramp"), [0, -1, 5], 0, [1, 0, 2], 8.0, [0, -1, 1]),
    # c = [0, 1, 0]: s + c = [3, 1, 3] tied at {0, 2}, the gold 2 wins; oracle: cost 0 at
    # {0, 2}, scores tied at 3, lowest index 0: 3 - 3 = 0, gradient e_2 - e_0
    ("infinite_ramp-ties", dict(loss="infinite_ramp"), [3, 0, 3], 2, [0, 1, 0], 0.0,
     [-1, 0, 1]),
    # cost_scale 0: max(s) = 2 at class 1; the oracle still uses the unscaled cost: class 2
    ("infinite_ramp-scale-0", dict(loss="infinite_ramp", cost_scale=0), [0, 2, 1], 0,
     [1, 1, 0], 1.0, [0, 1, -1]),
    # K = 3 (class 3 masked): ((2 - 1)^2 + 1 + 9) / 3; grad (2/3) [1, -1, 3]
    ("squared", dict(loss="squared"), [2, -1, 3, -np.inf], 0, None, 11 / 3,
     [2 / 3, -2 / 3, 2.0, 0]),
    # kappa 2, M 0.5, K = 2: (2 * 1.5^2 + 1) / 2 = 2.75; grad [2/2 * 2 * 1.5, 2/2 * -1]
    ("squared-k-m", dict(loss="squared", square_k=2, square_m=0.5), [2, -1], 0, None, 2.75,
     [3.0, -1.0]),
    # lse([0, 1, -1]) - 0 + (1 + 1) / 2; grad p - e_0 + (2/2) [0, 1, -1]
    ("squentropy", dict(loss="squentropy"), [0, 1, -1], 0, None,
     math.log(1 + E + 1 / E) + 1.0,
     [1 / (1 + E + 1 / E) - 1, E / (1 + E + 1 / E) + 1, (1 / E) / (1 + E + 1 / E) - 1]),
    ("squentropy-k1", dict(loss="squentropy"), [5.0], 0, None, 0.0, [0.0]),
    # K = 1 by masking: the square term is 0 and lse(s) = s_g
    ("squentropy-K1-masked", dict(loss="squentropy"), [-np.inf, 2.0, -np.inf], 1, None, 0.0,
     [0.0, 0.0, 0.0]),
    # max([0, 1]) - lse([0, -1]) = 1 - log(1 + 1/e); grad e_1 - softmax([0, -1])
    ("hope_fear-lse-max", dict(loss="hope_fear", hope="lse", fear="max", hope_scale=1,
                               fear_scale=1), [0, 0], 0, None, 1 - math.log(1 + 1 / E),
     [-E / (1 + E), E / (1 + E)]),
    # defaults (gold, lse, f = 1) = softmax-margin
    ("hope_fear-defaults", dict(loss="hope_fear"), [0, 0], 0, None, math.log(1 + E),
     [1 / (1 + E) - 1, E / (1 + E)]),
    # oracle hope with c = [2, 1, 0] and f = 0: max(s) - s_2 = 4 - 1
    ("hope_fear-oracle", dict(loss="hope_fear", hope="oracle", fear="max", fear_scale=0),
     [4, 0, 1], 0, [2, 1, 0], 3.0, [1, 0, -1]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("options, scores, gold, cost, value, grad",
                         [pytest.param(*row[1:], id=row[0]) for row in CLOSED_FORMS])
def test_closed_forms(options, scores, gold, cost, value, grad, dtype):
    s = np.array([scores], dtype=dtype)
    g = np.array([gold])
    c = None if cost is None else np.array([cost], dtype=dtype)
    kw = dict(options, reduction="sum")
    if c is not None:
        kw["cost_layout"] = "per_example"
    ref_value, ref_grad = reference_dense(s.astype(np.float64), g, cost=c, **kw)
    got = losskit.dense(s, g, cost=c, **kw)
    # float64: a few ulps of the values; float32: a few float32 ulps of the inputs (<= 5 here)
    # and relative float32 ulps for the tiny log-near-zero value.
    rtol, atol = (1e-14, 1e-14) if dtype == np.float64 else (8 * EPS32, 8 * EPS32 * 5)
    if value != 0 and abs(value) < 1e-10:
        atol = 0.0  # the whole point of this row: a tiny loss keeps its relative digits
    if dtype == np.float64:  # the reference itself (on float32-rounded inputs it differs)
        np.testing.assert_allclose(ref_value, value, rtol=1e-14, atol=1e-300)
        np.testing.assert_allclose(ref_grad[0], grad, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(float(got.loss), value, rtol=rtol, atol=atol)
    # gradient entries are O(1): an absolute tolerance of a few ulps of 1 (f64) or of the
    # inputs (f32), even where the exact value is tiny
    gatol = 1e-15 if dtype == np.float64 else 8 * EPS32 * 5
    np.testing.assert_allclose(got.grad[0].astype(np.float64), grad, rtol=rtol, atol=gatol)


def test_reductions_closed_form():
    # row 0: log(4/3), grad [1/4, -1/4]; row 1: log 2, grad [-1/2, 1/2]; weights 1 and 3
    s = np.array([[0.0, L3], [0.0, 0.0], [7.0, 1.0]])
    g = np.array([1, 0, -100])  # row 2 ignored
    w = np.array([1.0, 3.0, 5.0])
    l0, l1 = math.log(4 / 3), math.log(2)
    g0, g1 = np.array([0.25, -0.25]), np.array([-0.5, 0.5])
    none = losskit.dense(s, g, weight=w, reduction="none")
    np.testing.assert_allclose(none.loss, [l0, 3 * l1, 0.0], rtol=1e-14)
    np.testing.assert_allclose(none.grad, [g0, 3 * g1, [0, 0]], rtol=1e-14, atol=1e-16)
    total = losskit.dense(s, g, weight=w, reduction="sum")
    np.testing.assert_allclose(total.loss, l0 + 3 * l1, rtol=1e-14)
    np.testing.assert_allclose(total.grad, [g0, 3 * g1, [0, 0]], rtol=1e-14, atol=1e-16)
    # the mean divides by 1 + 3: the ignored row's weight 5 does not count
    mean = losskit.dense(s, g, weight=w, reduction="mean")
    np.testing.assert_allclose(mean.loss, (l0 + 3 * l1) / 4, rtol=1e-14)
    np.testing.assert_allclose(mean.grad, [g0 / 4, 3 * g1 / 4, [0, 0]], rtol=1e-14, atol=1e-16)
    for reduction, got in [("none", none), ("sum", total), ("mean", mean)]:
        want = reference_dense(s, g, weight=w, reduction=reduction)
        np.testing.assert_allclose(got.loss, want[0], rtol=1e-14)
        np.testing.assert_allclose(got.grad, want[1], rtol=1e-14, atol=1e-16)


def test_class_matrix_row_is_gold():
    # class matrix row g: with gold 1 the costs are row 1 = [5, 0, 1]; s + c = [5, 0, 2]
    cost = np.array([[0.0, 1.0, 1.0], [5.0, 0.0, 1.0], [2.0, 2.0, 0.0]])
    got = losskit.dense(np.array([[0.0, 0.0, 1.0]]), np.array([1]), loss="hinge", cost=cost,
                        cost_layout="class_matrix", reduction="sum")
    assert got.loss == 5.0
    np.testing.assert_array_equal(got.grad, [[1.0, -1.0, 0.0]])


# ------------------------------------------------------------------------------------------
# The reference checked on its own: gradients by finite differences, presets = general form.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", case_params())
def test_reference_gradient_is_finite_difference_of_its_value(case, rng):
    # Fourth-order central differences, (-f(+2h) + 8 f(+h) - 8 f(-h) + f(-2h)) / 12h, in float64
    # with h = 1e-4 on scores of size ~3: truncation ~h^4 f^(5) ~ 1e-16 for the smooth losses;
    # the max-based ones are piecewise linear, exact unless a kink lies within 2h (the random
    # scores and costs are continuous, their gaps ~0.1); rounding ~eps |f| / h ~ 1e-11. Hence 1e-8.
    batch = batch_for(case, rng, 6, 4, layout="per_example", mask=0.2)
    kw = dict(case.options, reduction="sum", **batch.kwargs())
    _, grad = reference_dense(batch.scores, batch.gold, **kw)
    h = 1e-4
    f = lambda s: reference_dense(s, batch.gold, **kw)[0]  # noqa: E731
    for i, j in np.argwhere(np.isfinite(batch.scores)):
        def shifted(t):
            s = batch.scores.copy()
            s[i, j] += t
            return f(s)
        fd = (-shifted(2 * h) + 8 * shifted(h) - 8 * shifted(-h) + shifted(-2 * h)) / (12 * h)
        assert abs(fd - grad[i, j]) < 1e-8, (i, j, fd, grad[i, j])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", case_params())
def test_library_gradient_is_finite_difference_of_its_loss(case, reduction, rng):
    # The gradient is that of exactly what was written to loss, under every reduction (weights,
    # an ignored row, the mean's denominator). Same fourth-order differences as above.
    batch = batch_for(case, rng, 5, 3, layout="class_matrix", mask=0.2)
    batch.gold[2] = batch.ignore_label
    kw = dict(case.options, reduction=reduction, **batch.kwargs())
    grad = losskit.dense(batch.scores, batch.gold, **kw).grad
    h = 1e-4

    def total(s):
        return float(np.sum(losskit.dense(s, batch.gold, with_grad=False, **kw).loss))

    for i, j in np.argwhere(np.isfinite(batch.scores)):
        def shifted(t):
            s = batch.scores.copy()
            s[i, j] += t
            return total(s)
        fd = (-shifted(2 * h) + 8 * shifted(h) - 8 * shifted(-h) + shifted(-2 * h)) / (12 * h)
        assert abs(fd - grad[i, j]) < 1e-8, (i, j, fd, grad[i, j])


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_reference_presets_are_the_general_form(preset, rng):
    hope, h, fear, f = PRESETS[preset]
    batch = random_batch(rng, 12, 5, layout="per_example", mask=0.2,
                         gold_unmasked=hope == "gold")
    a = reference_dense(batch.scores, batch.gold, loss=preset, reduction="none",
                        **batch.kwargs())
    b = reference_dense(batch.scores, batch.gold, loss="hope_fear", hope=hope, hope_scale=h,
                        fear=fear, fear_scale=f, reduction="none", **batch.kwargs())
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-13, atol=1e-13)
    # ... and so is the library's preset.
    c = losskit.dense(batch.scores, batch.gold, loss="hope_fear", hope=hope, hope_scale=h,
                      fear=fear, fear_scale=f, reduction="none", **batch.kwargs())
    np.testing.assert_allclose(c.loss, a[0], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(c.grad, a[1], rtol=1e-13, atol=1e-13)


# ------------------------------------------------------------------------------------------
# The library (float64) against the reference on random batches.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", case_params())
def test_f64_matches_reference(case, layout, reduction, rng):
    batches = [
        # masked classes, weights, ignored and zero-weight rows
        batch_for(case, rng, 16, 5, layout=layout, mask=0.25, ignore=0.15, zero_weight=0.1),
        # n == k (the layout is given explicitly), negative costs, no weights
        batch_for(case, rng, 6, 6, layout=layout, negative_costs=True, weighted=False),
        # two classes, a custom ignore label inside [0, k) is still "ignored"
        batch_for(case, rng, 9, 2, layout=layout, ignore=0.3, ignore_label=1),
    ]
    for batch in batches:
        got, want = call_both(case, batch, reduction)
        assert_f64(got, want, case, batch, reduction)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", case_params())
def test_k_equals_one(case, reduction, rng):
    batch = batch_for(case, rng, 7, 1, layout="per_example", ignore=0.2)
    got, want = call_both(case, batch, reduction)
    assert_f64(got, want, case, batch, reduction)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", case_params())
def test_ties(case, layout, dtype, rng):
    # Integer scores in [-2, 2] and integer costs: maxima, augmented maxima and oracles are
    # tied in most rows, so the tie rules (gold first, then lowest index; oracle by cost, then
    # score, then index) decide the gradients. Small integers are exact in float32 too, and so
    # are s + c and s - c for the scales of the registry, so both paths see the same ties.
    for mask in (0.0, 0.3):
        batch = batch_for(case, rng, 40, 4, layout=layout, ties=True, mask=mask)
        got, want = call_both(case, batch, "none", dtype=dtype)
        if dtype == np.float64:
            assert_f64(got, want, case, batch, "none")
        else:
            assert_close(got, want, case, batch, "none", F32_ULPS, EPS32)


LARGE = {"scale-1e4": dict(scale=1e4),                 # scores spread over +-3e4
         "pm1e4": dict(scale=1.0, offset=1e4)}        # +-1e4 + O(1): close competitors


@pytest.mark.parametrize("large", LARGE)
@pytest.mark.parametrize("layout", ("zero_one", "per_example"))
@pytest.mark.parametrize("case", case_params())
def test_large_magnitudes(case, layout, large, rng):
    # scores of size ~1e4: exp overflows unless every log-sum-exp is max-shifted.
    batch = batch_for(case, rng, 12, 6, layout=layout, mask=0.2, **LARGE[large])
    for reduction in REDUCTIONS:
        got, want = call_both(case, batch, reduction)
        assert np.all(np.isfinite(got[0])) and np.all(np.isfinite(got[1]))
        assert_f64(got, want, case, batch, reduction)


# ------------------------------------------------------------------------------------------
# The float32 path against the float64 reference.
# ------------------------------------------------------------------------------------------

# Tolerance of the float32 path. The inputs are first rounded to float32 and the reference
# evaluates those very values in float64, so the only differences left are the library's own
# float32 roundings: of the augmented scores s + f*c and s - h*c, of each shift v - max v, of exp
# and of the output itself. Each is at most half an ulp of the magnitude M_i of the row's
# augmented scores (sums accumulate in double, per the contract), so a handful of them stay
# within 8 float32 ulps of M_i (8 * 1.2e-7 * M_i) — the contract's "a few float32 ulps of the
# magnitude of the inputs"; the square losses, whose values are ~s^2, get the same 8 ulps
# relative to the value.
F32_ULPS = 8


@pytest.mark.parametrize("size", ["scale-3"] + list(LARGE))
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", case_params())
def test_f32_matches_f64_reference(case, layout, size, rng):
    batch = batch_for(case, rng, 16, 5, layout=layout, mask=0.2, ignore=0.1,
                      **LARGE.get(size, dict(scale=3.0)))
    for reduction in REDUCTIONS:
        got, want = call_both(case, batch, reduction, dtype=np.float32)
        assert got[1].dtype == np.float32
        assert_close(got, want, case, batch.astype(np.float32), reduction, F32_ULPS, EPS32)


# ------------------------------------------------------------------------------------------
# Batch rules: zero total weight, ignored / zero-weight rows not read, NaN propagation.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", case_params())
def test_mean_over_zero_weight_is_zero(case, dtype, rng):
    batch = batch_for(case, rng, 5, 3, layout="per_example").astype(dtype)
    for weight, gold in [(np.zeros(5), batch.gold),                      # all weight 0
                         (batch.weight, np.full(5, -100, np.int32))]:    # all ignored
        got = losskit.dense(batch.scores, gold, weight=weight, reduction="mean",
                            **dict(case.options, cost=batch.cost, cost_layout="per_example"))
        assert got.loss == 0.0 and not np.isnan(got.loss)
        assert np.all(got.grad == 0.0)


@pytest.mark.parametrize("case", case_params())
def test_ignored_and_zero_weight_rows_are_not_read(case, rng):
    batch = batch_for(case, rng, 8, 4, layout="per_example", weighted=True)
    s, g, w, c = batch.scores.copy(), batch.gold.copy(), batch.weight.copy(), batch.cost.copy()
    # row 1: weight 0 with an out-of-range gold, NaN and +inf scores and a NaN cost;
    # row 5: ignored (gold == ignore_label) with the same garbage.
    for i in (1, 5):
        s[i] = [np.nan, np.inf, -np.inf, 1.0]
        c[i] = np.nan
    w[1], g[1] = 0.0, 99
    g[5] = -100
    kw = dict(case.options, cost=c, cost_layout="per_example", weight=w)
    keep = np.array([i not in (1, 5) for i in range(8)])
    want = reference_dense(s[keep], g[keep], **dict(kw, cost=c[keep], weight=w[keep],
                                                    reduction="none"))
    for reduction in REDUCTIONS:
        got = losskit.dense(s, g, reduction=reduction, **kw)
        assert np.all(got.grad[~keep] == 0.0)  # exactly 0, never NaN
        if reduction == "none":
            assert np.all(got.loss[~keep] == 0.0)
            np.testing.assert_allclose(got.loss[keep], want[0], rtol=1e-13, atol=1e-13)
        else:
            denom = 1.0 if reduction == "sum" else w[keep].sum()
            np.testing.assert_allclose(got.loss, want[0].sum() / denom, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(got.grad[keep] * (1.0 if reduction != "mean"
                                                     else w[keep].sum()),
                                   want[1], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", case_params())
def test_costs_of_masked_classes_are_not_read(case, rng):
    # Costs are read only for unmasked classes (and never by LOG, PERCEPTRON, SQUARED,
    # SQUENTROPY): NaN / inf there must not turn into LK_ERR_DOMAIN or a NaN result.
    batch = batch_for(case, rng, 10, 5, layout="per_example", mask=0.3)
    cost = np.where(np.isfinite(batch.scores), batch.cost, np.nan)
    cost[0, np.isneginf(batch.scores[0])] = np.inf
    kw = dict(case.options, cost_layout="per_example", weight=batch.weight, reduction="none")
    got = losskit.dense(batch.scores, batch.gold, cost=cost, **kw)
    want = reference_dense(batch.scores, batch.gold, cost=batch.cost, **kw)
    assert_f64((got.loss, got.grad), want, case, batch, "none")
    if not case.uses_costs:
        everywhere = np.full_like(batch.cost, np.nan)
        got = losskit.dense(batch.scores, batch.gold, cost=everywhere, **kw)
        assert_f64((got.loss, got.grad), want, case, batch, "none")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", case_params())
def test_nan_score_makes_its_row_nan(case, dtype, rng):
    batch = batch_for(case, rng, 6, 4, layout="per_example", weighted=False).astype(dtype)
    s = batch.scores.copy()
    s[2, 3] = np.nan
    kw = dict(case.options, cost=batch.cost, cost_layout="per_example")
    none = losskit.dense(s, batch.gold, reduction="none", **kw)
    assert np.isnan(none.loss[2]) and np.all(np.isnan(none.grad[2]))
    others = np.arange(6) != 2
    assert np.all(np.isfinite(none.loss[others])) and np.all(np.isfinite(none.grad[others]))
    for reduction in ("sum", "mean"):
        got = losskit.dense(s, batch.gold, reduction=reduction, **kw)
        assert np.isnan(got.loss)
        assert np.all(np.isnan(got.grad[2]))


# ------------------------------------------------------------------------------------------
# Named properties.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", case_params())
def test_weight_multiplies_and_none_weight_is_all_ones(case, rng):
    batch = batch_for(case, rng, 10, 4, layout="per_example", weighted=False)
    kw = dict(case.options, cost=batch.cost, cost_layout="per_example", reduction="none")
    plain = losskit.dense(batch.scores, batch.gold, **kw)
    ones = losskit.dense(batch.scores, batch.gold, weight=np.ones(10), **kw)
    np.testing.assert_array_equal(plain.loss, ones.loss)
    np.testing.assert_array_equal(plain.grad, ones.grad)
    w = rng.uniform(0.5, 3.0, 10)
    weighted = losskit.dense(batch.scores, batch.gold, weight=w, **kw)
    np.testing.assert_allclose(weighted.loss, w * plain.loss, rtol=1e-14, atol=1e-300)
    # the gradient is a difference of O(1) terms (p - e_g, softmax - softmax) whose rounding
    # depends on when w is applied: a few ulps of 1 times w, absolutely
    np.testing.assert_allclose(weighted.grad, w[:, None] * plain.grad, rtol=1e-14, atol=1e-15)


# A pass runs on min(threads, chunks, work / 2**17) threads, work = n * k values cut in chunks of
# 2**14 // k rows (include/losskit.h, lk_options.threads): 4096 rows of 160 = 5 * 2**17 values
# in 41 chunks, so every count below up to 5 really splits the batch (0: all cores).
SPLIT_N, SPLIT_K, SPLIT_THREADS = 4096, 160, (0, 1, 2, 5)


def threads_used(requested, n, k):
    """The threads the documented rule gives a dense batch of n rows of k."""
    chunks = -(-n // max(1, 2**14 // k))
    cores = int(os.environ.get("LOSSKIT_NUM_THREADS", "0") or 0) or os.cpu_count() or 1
    return max(1, min(requested or cores, chunks, n * k // 2**17))


@pytest.mark.parametrize("case", case_params())
def test_same_bits_at_any_thread_count(case, rng):
    assert [threads_used(t, SPLIT_N, SPLIT_K) for t in SPLIT_THREADS[1:]] == [1, 2, 5]
    batch = batch_for(case, rng, SPLIT_N, SPLIT_K, layout="per_example", mask=0.1)
    for reduction in ("mean", "none"):
        kw = dict(case.options, reduction=reduction, **batch.kwargs())
        runs = [losskit.dense(batch.scores, batch.gold, threads=t, **kw) for t in SPLIT_THREADS]
        for t, r in zip(SPLIT_THREADS[1:], runs[1:]):
            assert r.loss.tobytes() == runs[0].loss.tobytes(), t
            assert r.grad.tobytes() == runs[0].grad.tobytes(), t


# Validation screens each chunk of rows (about 2**14 values) at once; only a chunk where the
# screen finds a NaN, an infinity (a mask) or a cost too large is checked row by row, and its
# rows then reuse what that check learnt. Both routes must give the reference's values, and the
# same bits.

@pytest.mark.parametrize("layout", ("zero_one", "per_example"))
@pytest.mark.parametrize("case", case_params())
def test_screened_chunks_match_reference(case, layout, rng):
    batch = batch_for(case, rng, 3000, 20, layout=layout, ignore=0.05, zero_weight=0.05)
    got, want = call_both(case, batch, "none")
    assert_f64(got, want, case, batch, "none")


@pytest.mark.parametrize("layout", ("zero_one", "per_example"))
@pytest.mark.parametrize("case", case_params())
def test_a_checked_chunk_gives_the_screened_bits(case, layout, rng):
    # One -inf in row j sends j's chunk through the per-row checks; every other row must keep
    # its bits.
    clean = batch_for(case, rng, 3000, 20, layout=layout, zero_weight=0.05)
    j = 1234
    others = np.arange(clean.scores.shape[0]) != j
    for dtype in (np.float64, np.float32):
        b = clean.astype(dtype)
        scores = b.scores.copy()
        scores[j, (b.gold[j] + 1) % scores.shape[1]] = -np.inf
        kw = dict(case.options, reduction="none", **b.kwargs())
        runs = [losskit.dense(s, b.gold, **kw) for s in (b.scores, scores)]
        assert runs[0].loss[others].tobytes() == runs[1].loss[others].tobytes()
        assert runs[0].grad[others].tobytes() == runs[1].grad[others].tobytes()


def test_loss_orderings_and_signs(rng):
    # With costs >= 0 and 0 for the gold: softmax-margin >= log and >= hinge; perceptron,
    # hinge, risk, ramp, soft ramp and infinite ramp >= 0 (include/losskit.h, Properties).
    batch = random_batch(rng, 200, 6, layout="class_matrix", mask=0.2)
    kw = dict(reduction="none", **batch.kwargs())
    value = {name: losskit.dense(batch.scores, batch.gold, loss=name, **kw).loss
             for name in ("log", "hinge", "softmax_margin", "perceptron", "risk", "ramp",
                          "soft_ramp", "infinite_ramp")}
    assert np.all(value["softmax_margin"] >= value["log"])
    assert np.all(value["softmax_margin"] >= value["hinge"])
    for name in ("perceptron", "hinge", "risk", "ramp", "soft_ramp", "infinite_ramp"):
        assert np.all(value[name] >= 0), name
