"""Extreme but finite values: regression tests for results that came back LK_OK with NaN or
infinity where the true value is finite (the header: only a true value beyond the type's
largest finite value is stored as +-INFINITY).

Expected values come from closed forms, evaluated with mpmath on exactly the float values the
library receives; never from the library's own output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import mpmath
import numpy as np
import pytest

import losskit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exact  # noqa: E402

mpmath.mp.dps = 60
DBL_MAX = float(np.finfo(np.float64).max)


def close(got, want, rel=1e-15):
    """got (a float) is finite and within rel of the exact want (an mpmath number)."""
    assert np.isfinite(got), got
    want = mpmath.mpf(want)
    assert abs(mpmath.mpf(float(got)) - want) <= rel * abs(want), (got, want)


# ------------------------------------------------------------------------------------------
# The batch mean: sum w_i loss_i overflows while the mean is finite.
def test_mean_of_losses_whose_weighted_sum_overflows_dense():
    s = np.array([[1e308, 0.0], [1e308, 0.0]])
    r = losskit.dense(s, np.array([1, 1]), loss="perceptron", reduction="mean")
    # Each perceptron loss is max(s) - s[gold] = 1e308; their mean is 1e308.
    close(r.loss, mpmath.mpf(1e308))
    np.testing.assert_array_equal(r.grad, [[0.5, -0.5], [0.5, -0.5]])


def test_mean_with_a_weight_whose_product_overflows_dense():
    # w * loss = 1e308 * 10 overflows; the mean (one example) is the loss, 10.
    s = np.array([[10.0, 0.0]])
    r = losskit.dense(s, np.array([1]), loss="perceptron", weight=np.array([1e308]), reduction="mean")
    close(r.loss, 10)


def test_mean_of_losses_whose_weighted_sum_overflows_chains():
    # One position, two tags, no transition read: the perceptron loss is max - gold = 2e307
    # (path scores stay below the chains' DBL_MAX / 8 bound); w * loss overflows for the first.
    e = np.array([[[2e307, 0.0]], [[2e307, 0.0]]])
    w = np.array([1e308, 1.0])
    r = losskit.chain(e, np.zeros((2, 2)), np.array([1, 1]), np.array([[1], [1]]), loss="perceptron",
                      weight=w, reduction="mean")
    loss = mpmath.mpf(2e307)
    want = (mpmath.mpf(w[0]) * loss + mpmath.mpf(w[1]) * loss) / (mpmath.mpf(w[0]) + mpmath.mpf(w[1]))
    close(r.loss, want)


# ------------------------------------------------------------------------------------------
# The square terms: the factor 2 c / K (or 2 c / (K - 1)) overflows where the gradient does not.
def softmax(s):
    z = mpmath.fsum(mpmath.exp(mpmath.mpf(v)) for v in s)
    return [mpmath.exp(mpmath.mpf(v)) / z for v in s]


def squentropy_gradient(s, gold, c):
    """c (p - e_gold) + c 2 s[y] / (K - 1) on y != gold (all unmasked)."""
    p, k = softmax(s), len(s)
    return [c * (p[y] - (1 if y == gold else 0)) + (0 if y == gold else c * 2 * mpmath.mpf(s[y]) / (k - 1))
            for y in range(k)]


@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("scores", [[0.0, 0.0], [0.0, 0.25]])
def test_squentropy_with_a_weight_whose_doubled_factor_overflows(structure, scores):
    s, w = np.array(scores), np.array([1e308])
    if structure == "dense":
        r = losskit.dense(s[None, :], np.array([0]), loss="squentropy", weight=w, reduction="none")
        grad = r.grad[0]
    else:
        r = losskit.lists(s, np.array([0, 2]), np.array([0]), loss="squentropy", weight=w, reduction="none")
        grad = r.grad
    want = squentropy_gradient(scores, 0, mpmath.mpf(1e308))
    for g, x in zip(grad, want):
        close(g, x, rel=4e-16)


@pytest.mark.parametrize("scores, gold", [([0.0, DBL_MAX], 1), ([-13.25, 21.25, DBL_MAX], 2),
                                          ([DBL_MAX, 0.0, 0.0], 2)])
def test_squared_gradient_near_dbl_max(scores, gold):
    # (2 / K) kappa (s[g] - M) on the gold and (2 / K) s[y] elsewhere (kappa = M = 1); finite
    # although the loss, about DBL_MAX^2 / K, is +inf.
    s = np.array([scores])
    r = losskit.dense(s, np.array([gold]), loss="squared", reduction="sum")
    k = len(scores)
    for y in range(k):
        v = mpmath.mpf(scores[y]) - (1 if y == gold else 0)
        want = 2 * v / k
        if want == 0:
            assert r.grad[0, y] == 0
        else:
            close(r.grad[0, y], want, rel=2.3e-16)
    assert r.loss == np.inf


def test_squentropy_float32_factor_overflows_float():
    # 2 c = 6e38 exceeds FLT_MAX; the gradient, about 3.2e38 at most, does not.
    s, w = np.array([[0.0, 0.25]], np.float32), np.array([3e38], np.float32)
    r = losskit.dense(s, np.array([0]), loss="squentropy", weight=w, reduction="none")
    want = squentropy_gradient([float(v) for v in s[0]], 0, mpmath.mpf(float(w[0])))
    for g, x in zip(r.grad[0], want):
        close(g, x, rel=3e-7)


# ------------------------------------------------------------------------------------------
# Risk at cost_scale DBL_MAX: R = alpha (1 - p[g]) under 0/1 costs, finite; its gradient
# p[j] (alpha c[j] - R) too. (Already right when this file was written; kept as a guard on the
# order of the risk's intermediates, alpha times a normalised sum.)
@pytest.mark.parametrize("layout", ["zero_one", "per_example"])
def test_risk_at_cost_scale_dbl_max(layout):
    scores, gold = [-15.75, -4.25, -17.0], 2
    s = np.array([scores])
    cost = None if layout == "zero_one" else np.array([[1.0, 1.0, 0.0]])
    r = losskit.dense(s, np.array([gold]), loss="risk", cost=cost, cost_scale=DBL_MAX, reduction="none")
    p, alpha = softmax(scores), mpmath.mpf(DBL_MAX)
    risk = alpha * (1 - p[gold])
    close(r.loss[0], risk, rel=4e-16)
    for j in range(3):
        c = 0 if j == gold else 1
        close(r.grad[0, j], p[j] * (alpha * c - risk), rel=1e-14)


# ------------------------------------------------------------------------------------------
# L-Softmax: a non-gold logit whose partial sums overflow (1e308 * 1e308 - 1e308 * 1e308) is
# NaN from NaN-free inputs; every CPU level must call it an overflow, never return NaN.
def test_lsoftmax_non_gold_logit_overflowing_in_its_partial_sums():
    x, w = np.array([[1e308, -1e308]]), np.array([[1.0, 1.0], [1e308, 1e308]])
    with pytest.raises(losskit.LossKitError) as e:
        losskit.lsoftmax(x, w, np.array([0]), margin=1, reduction="none")
    assert e.value.name == "LK_ERR_DOMAIN"
    assert "class 1" in str(e.value)


# ------------------------------------------------------------------------------------------
# The batch sum and mean when the weighted terms overflow with both signs, or their partial sums
# overflow although the result does not. Soft ramp on one-candidate lists with gold 0 has the loss
# lse(s + c) - lse(s - c) = 2c exactly (the cost may be negative), so the weighted sum is known
# exactly. The summed weights stay finite (under MEAN an infinite one is LK_ERR_DOMAIN).
SUM_CASES = [
    # +inf and -inf terms (w 2c = +-1.6e328): the true sum is one of them, or cancels.
    ([8e307, 8e307, 1.0], [1e20, -1e20, 4e307]),
    ([8e307, 8e307], [1e20, -1.0]),
    ([8e307, 1e300, 8e307], [-1e20, 3.0, 1e20]),
    ([8e307, 8e307, 2.0], [7.0, -7.0, 0.25]),
    # Partial sums overflow (1.5e308 + 1.5e308), the result does not.
    ([5e307, 5e307, 5e307], [1.5, 1.5, -2.0]),
    ([1.0, 1.0, 1.0], [7.5e307, 7.5e307, -8.5e307]),
    # Overflows truly under SUM (the mean is finite), with terms of both signs.
    ([5e307, 5e307, 5e307], [1e20, -1.0, 1e19]),
]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("case", range(len(SUM_CASES)))
def test_weighted_sums_whose_terms_or_partial_sums_overflow(case, reduction):
    weight, cost = (np.array(v, dtype=np.float64) for v in SUM_CASES[case])
    n = len(weight)
    scores = np.linspace(-1.0, 2.0, n)
    terms = [2 * mpmath.mpf(float(w)) * mpmath.mpf(float(c)) for w, c in zip(weight, cost)]
    total = mpmath.fsum(terms)
    largest = max(abs(t) for t in terms)
    if reduction == "mean":
        counted = mpmath.fsum(mpmath.mpf(float(w)) for w in weight)
        total /= counted
        largest /= counted
    r = losskit.lists(scores, np.arange(n + 1), np.zeros(n, dtype=np.int32), loss="soft_ramp", cost=cost,
                      weight=weight, reduction=reduction)
    got = float(r.loss)
    assert not np.isnan(got), (got, total)
    if abs(total) > DBL_MAX:
        assert got == (np.inf if total > 0 else -np.inf), (got, total)
    else:
        # The rounding of a sum: a few units of the largest term's size.
        assert abs(mpmath.mpf(got) - total) <= 4 * 2.0**-52 * largest, (got, total)


# ------------------------------------------------------------------------------------------
# Risk with costs of both signs near the type's largest value: the differences c[j] - c[argmax]
# (up to twice it) and their sum overflowed (NaN loss and gradient under cost_scale 0, inf
# elsewhere), though R = alpha sum_j p_j c_j and each gradient entry p_j (alpha c_j - R) are
# finite. Expected values from the definitions at 60 digits on the exact float inputs.
def _risk_exact(scores, costs, alpha):
    s = [mpmath.mpf(float(v)) for v in scores]
    c = [mpmath.mpf(float(v)) for v in costs]
    top = max(s)
    e = [mpmath.e ** (v - top) for v in s]
    z = mpmath.fsum(e)
    p = [v / z for v in e]
    a = mpmath.mpf(float(alpha))
    risk = a * mpmath.fsum(pj * cj for pj, cj in zip(p, c))
    return risk, [pj * (a * cj - risk) for pj, cj in zip(p, c)], [abs(a * pj * cj) for pj, cj in zip(p, c)]


RISK_CASES = [
    # The fuzzer's list: equal scores, costs -1e308, -12, -1e20 (cost_scale 0, 1, 0.5).
    (np.float64, [-3.0, -3.0, -3.0], [-1e308, -12.0, -1e20]),
    (np.float64, [0.0, 0.5, -1.0, 2.0], [1.5e308, -1.5e308, 1.7e308, -1e308]),
    (np.float64, [5.0, 5.0, 4.0, 5.0, 5.0, 3.0, 5.0, 5.0, 5.0], [1.7e308, -1.7e308] * 4 + [1e308]),
    (np.float32, [0.0, 0.5, -1.0, 2.0], [3e38, -3e38, 2.5e38, -1e38]),
    (np.float32, [1.0] * 17, [3.4e38, -3.4e38] * 8 + [1.0]),
]


@pytest.mark.parametrize("alpha", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("case", range(len(RISK_CASES)))
@pytest.mark.parametrize("structure", ["lists", "dense"])
def test_risk_with_costs_of_both_signs_near_the_largest_value(structure, case, alpha):
    dtype, scores, costs = RISK_CASES[case]
    s = np.array(scores, dtype=dtype)
    c = np.array(costs, dtype=dtype)
    k = len(s)
    if structure == "lists":
        r = losskit.lists(s, np.array([0, k]), np.array([0]), loss="risk", cost=c, cost_scale=alpha,
                          reduction="sum")
    else:
        r = losskit.dense(s.reshape(1, k), np.array([0]), loss="risk", cost=c.reshape(1, k),
                          cost_layout="per_example", cost_scale=alpha, reduction="sum")
    risk, grad, terms = _risk_exact(s, c, alpha)
    big = mpmath.mpf(float(np.finfo(dtype).max))
    u = mpmath.mpf(float(np.finfo(dtype).eps))
    # Norm-wise: the terms alpha p_j c_j cancel; a few roundings of the largest one.
    scale = max(terms)
    got = float(np.asarray(r.loss).ravel()[0])
    assert np.isfinite(got), (got, risk)
    assert abs(mpmath.mpf(got) - risk) <= 8 * u * scale + 8 * u * abs(risk), (got, risk)
    for j, (g, want) in enumerate(zip(np.asarray(r.grad, dtype=np.float64).ravel(), grad)):
        assert not np.isnan(g), (j, want)
        if abs(want) > big:
            assert g == (np.inf if want > 0 else -np.inf), (j, g, want)
        else:
            assert abs(mpmath.mpf(float(g)) - want) <= 8 * u * scale + 8 * u * abs(want), (j, g, want)


# ------------------------------------------------------------------------------------------
# Chains: costs near DBL_MAX under a small cost_scale. The path-score bound reads the scaled
# costs, but the chain summed the unscaled costs of a path (1e308 + 1e308 = inf, then times
# 0.01) and centred the risk's costs on unscaled differences (1e308 - -1e308 = inf, times 0 =
# NaN). Expected values by enumerating every path at 60 digits.
def _chain_exact(emissions, transitions, costs, gold, alpha, loss):
    import itertools
    T, S = emissions.shape
    mp = mpmath.mpf
    paths = list(itertools.product(range(S), repeat=T))

    def score(p):
        return mpmath.fsum([mp(float(emissions[t, y])) for t, y in enumerate(p)]
                           + [mp(float(transitions[a, b])) for a, b in zip(p, p[1:])])

    def cost(p):
        return mpmath.fsum(mp(float(costs[t, y])) for t, y in enumerate(p))

    a = mp(float(alpha))
    gold_score = score(tuple(gold))
    if loss == "hinge":
        return max(score(p) + a * cost(p) for p in paths) - gold_score
    if loss == "softmax_margin":
        v = [score(p) + a * cost(p) for p in paths]
        top = max(v)
        return top + mpmath.log(mpmath.fsum(mpmath.e ** (x - top) for x in v)) - gold_score
    v = [score(p) for p in paths]
    top = max(v)
    w = [mpmath.e ** (x - top) for x in v]
    z = mpmath.fsum(w)
    return a * mpmath.fsum(wi / z * cost(p) for wi, p in zip(w, paths))


CHAIN_COSTS = [
    (0.01, [[1e308, 0.0], [1e308, 0.0]], [1, 1]),
    (0.0, [[1e308, -1e308], [-1.7e308, 1.7e308]], [0, 1]),
    (1e-300, [[1.7e308, -1.7e308], [1.7e308, -1.7e308], [-1e308, 3.0]], [1, 0, 1]),
]


@pytest.mark.parametrize("loss", ["hinge", "softmax_margin", "risk"])
@pytest.mark.parametrize("case", range(len(CHAIN_COSTS)))
def test_chain_costs_near_the_largest_value_under_a_small_scale(case, loss):
    alpha, costs, gold = CHAIN_COSTS[case]
    c = np.array(costs)
    T, S = c.shape
    rng = np.random.default_rng(case)
    e = rng.normal(size=(T, S))
    tr = rng.normal(size=(S, S))
    r = losskit.chain(e[None], tr, np.array([T]), np.array([gold]), loss=loss, cost=c[None], cost_scale=alpha,
                      reduction="sum")
    want = _chain_exact(e, tr, c, gold, alpha, loss)
    got = float(r.loss)
    assert np.isfinite(got), (got, want)
    # The terms are up to alpha * 2 * 1.7e308 (or the scores): a few roundings of the largest.
    scale = max(abs(want), mpmath.mpf(alpha) * T * mpmath.mpf(1.7e308), 10)
    assert abs(mpmath.mpf(got) - want) <= 16 * 2.0**-52 * scale, (got, want)
    for g in (r.d_emissions, r.d_transitions):
        assert np.isfinite(g).all(), g


# ------------------------------------------------------------------------------------------
# L-Softmax: the gold's gradient term along x / |x| in d_x, c x_t / |x| with c = G_iy beta |w_y|,
# was formed as (c * (1 / |x|)) x_t, and the one along w_y / |w_y| in d_w likewise. A large
# |w_y| over a small |x| (for d_w a large |x| over a small |w_y|) made c / |x| overflow although
# the term is at most |c|: inf, then inf * 0 = NaN, came back with LK_OK (the long fuzz run:
# |w_y| = 1e300, |x| = 1.7e-38, gold logit -3.3e262); a small c over a large norm underflowed
# and the term was lost. Expected values: exact.lsoftmax_reference (60 digits on the exact float
# inputs, gradient = [d/dx, d/dw of every class row]) and the accuracy metric exact.score: the
# header's bounds (loss within 4u of its conditioning, the gradient normwise since d_x and d_w
# are products); the single examples below also meet the bound entry by entry (measured: at most
# 0.5 of it), the whole fuzz batch only normwise (see there).
FLT_MIN = float(np.finfo(np.float32).tiny)
DBL_MIN = float(np.finfo(np.float64).tiny)
FLT_TRUE_MIN = float(np.finfo(np.float32).smallest_subnormal)
LSM_FUZZ_X = [[24.0, 9.75, -13.5, 20.5], [5.25, 5.25, FLT_MIN, FLT_MIN], [-0.0, -0.0, -0.0, 5.25],
              [FLT_MIN, FLT_MIN, -0.0, -0.0]]
LSM_FUZZ_W = [[-1e300, -0.75, -19.5, -21.75], [-0.0, -25.0, -25.0, -25.0], [-25.0] * 4, [-25.0] * 4]


def _lsm_check(prec, loss, grad, ref, entrywise=True):
    """No NaN; an entry whose exact value exceeds the type's range is +-inf, every other one is
    finite; the loss and the gradient (normwise, and entry by entry unless told) within the
    metric's bound, no entry of the wrong sign."""
    grad = [float(v) for v in grad]
    assert not np.isnan(grad).any() and not np.isnan(float(loss)), grad
    rL, rG, signs, worst, rN = exact.score(prec, float(loss), grad, ref)
    assert rL <= 1, ("loss", float(loss), float(ref[0]), rL)
    assert rN <= 1, ("gradient normwise", rN)
    if entrywise:
        assert rG <= 1 and signs == 0, ("gradient", worst, grad[worst], float(ref[1][worst]), rG, signs)


def test_lsoftmax_fuzz_batch_with_a_class_row_of_1e300_and_features_of_flt_min():
    x, w = np.array(LSM_FUZZ_X), np.array(LSM_FUZZ_W)
    n, d = x.shape
    r = losskit.lsoftmax(x, w, np.zeros(n, np.int64), margin=2, reduction="sum")
    refs = [exact.lsoftmax_reference(2, tuple(x[i]), tuple(w.ravel()), 0, 0.0) for i in range(n)]
    # Row i of d_x is example i's; the loss (SUM) and d_w add over the examples, and so do their
    # conditioning numbers (the sum of theirs bounds the sum's: a bound no tighter than each).
    total = (mpmath.fsum(ref[0] for ref in refs),
             [g for ref in refs for g in ref[1][:d]] + [mpmath.fsum(t) for t in zip(*(ref[1][d:] for ref in refs))],
             False, mpmath.fsum(ref[3] for ref in refs),
             [c for ref in refs for c in ref[4][:d]] + [mpmath.fsum(t) for t in zip(*(ref[4][d:] for ref in refs))])
    # Normwise only: example 2 (x along e_3, theta = pi/2 - 2e-299) has d_x[2, 0] exactly 70.3 but
    # psi' w_y[0] = -4 cos(theta) (-1e300) from the angle rounded to double: about 2.4e284, which
    # is within the header's normwise bound (4u times the largest entry, 2.8e300), not entry by
    # entry; it is the same before and after the fix above.
    _lsm_check("f64", r.loss, np.concatenate([r.d_x.ravel(), r.d_w.ravel()]), total, entrywise=False)
    # The offending example, whose d_x row was [-inf, -inf, nan, nan]: its exact values are finite.
    assert np.isfinite(r.d_x[3]).all(), r.d_x[3]


LSM_CASES = [
    # (name, dtype, x, w (class 0 is the gold), margin, lambda)
    ("fuzz-example", np.float64, LSM_FUZZ_X[3], LSM_FUZZ_W, 2, 0.0),
    ("dx-1e300-over-1e-20", np.float64, [1e-20, -2e-20, 0.0, 3e-20], [[-1e300, 2e299, 0.0, 0.0], [1.0] * 4], 2, 0.0),
    ("dx-1e300-over-1e-20-m3-lam", np.float64, [1e-20, -2e-20, 0.0, 3e-20], [[-1e300, 2e299, 0.0, 0.0], [1.0] * 4],
     3, 0.5),
    ("dx-1e200-over-1e-144", np.float64, [1e-144, -2e-144, 0.0, 3e-144], [[-1e200, 2e199, 0.0, 0.0], [1.0] * 4],
     2, 0.0),
    ("dx-near-dbl-max", np.float64, [0.25, -0.1, 0.0, 0.05], [[-1.7e308, 3e307, 0.0, 0.0], [1.0] * 4], 2, 0.0),
    ("dx-near-dbl-max-over-1e-11", np.float64, [2.5e-11, -1e-11, 0.0, 5e-12], [[-1.7e308, 3e307, 0.0, 0.0], [1.0] * 4],
     2, 0.0),
    ("dx-dbl-min-features", np.float64, [DBL_MIN, -3 * DBL_MIN, 0.0, 2 * DBL_MIN],
     [[-1e300, 2e299, 0.0, 0.0], [1.0] * 4], 2, 0.0),
    ("dw-1e300-over-1e-20", np.float64, [-1e300, 2e299, 0.0, 0.0], [[1e-20, -2e-20, 0.0, 3e-20], [-1.0] * 4], 2, 0.0),
    ("dw-1e300-over-1e-20-m4", np.float64, [-1e300, 2e299, 0.0, 0.0], [[1e-20, -2e-20, 0.0, 3e-20], [-1.0] * 4],
     4, 0.0),
    ("dx-1e-200-under-1e150", np.float64, [1e150, -2e150, 0.0, 3e150],
     [[-1e-200, 2e-201, 0.0, 0.0], [1e-200, 0.0, 1e-200, 0.0]], 2, 0.0),
    ("dw-1e-200-under-1e150", np.float64, [-1e-200, 2e-201, 0.0, 0.0],
     [[1e150, -2e150, 0.0, 3e150], [1e-50, 0.0, 1e-50, 0.0]], 2, 0.0),
    ("f32-fuzz-example-near-flt-max", np.float32, LSM_FUZZ_X[3], [[-3e38, -0.75, -19.5, -21.75], LSM_FUZZ_W[1]],
     2, 0.0),
    ("f32-dx-1e30-over-1e-30", np.float32, [1e-30, -2e-30, 0.0, 3e-30], [[-1e30, 2e29, 0.0, 0.0], [1.0] * 4], 2, 0.0),
    ("f32-dx-subnormal-features", np.float32, [3 * FLT_TRUE_MIN, -5 * FLT_TRUE_MIN, 0.0, FLT_TRUE_MIN],
     [[-1e38, 2e37, 0.0, 0.0], [1.0] * 4], 2, 0.0),
    ("f32-dw-1e30-over-1e-30", np.float32, [-1e30, 2e29, 0.0, 0.0], [[1e-30, -2e-30, 0.0, 3e-30], [-1.0] * 4], 3, 0.5),
]


@pytest.mark.parametrize("name,dtype,x,w,m,lam", LSM_CASES, ids=[c[0] for c in LSM_CASES])
def test_lsoftmax_gold_terms_of_a_large_norm_over_a_small_one(name, dtype, x, w, m, lam):
    x, w = np.array([x], dtype), np.array(w, dtype)
    r = losskit.lsoftmax(x, w, np.array([0]), margin=m, lam=lam, reduction="none")
    ref = exact.lsoftmax_reference(m, tuple(map(float, x[0])), tuple(map(float, w.ravel())), 0, lam)
    _lsm_check("f32" if dtype == np.float32 else "f64", r.loss[0], np.concatenate([r.d_x[0], r.d_w.ravel()]), ref)
