"""The angular-margin losses (LK_LOSS_COSFACE, LK_LOSS_ARCFACE) against an independent NumPy
reference written here in float64.

The reference follows the papers literally: ArcFace takes theta_g = arccos(cos_g) and then
cos(theta_g + M) (the library deliberately never takes an arccos, so the two computations share
no code path). Expected gradients are central finite differences of that reference — never the
library's own numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import losskit
from reference import reduction_factors

SCALES = (1.0, 30.0, 64.0)
MARGINS = (0.0, 0.2, 0.35, 0.5, 1.0)
REDUCTIONS = ("none", "sum", "mean")
LOSSES = ("cosface", "arcface")
EPS32 = float(np.finfo(np.float32).eps)


# ------------------------------------------------------------------------------------------
# Reference (float64)
# ------------------------------------------------------------------------------------------

def arcface_threshold(m: float) -> float:
    """cos(pi - M): above it z_g = S cos(theta_g + M), at or below it the fallback."""
    return math.cos(math.pi - m)


def ref_row(cos_row, g, loss, s, m):
    """The unweighted loss of one row: lse(z) - z[g] over the unmasked classes."""
    row = np.asarray(cos_row, dtype=np.float64)
    live = np.isfinite(row)
    c = np.clip(row[live], -1.0, 1.0)
    z = s * c
    cg = min(max(float(row[g]), -1.0), 1.0)
    if loss == "cosface":
        zg = s * (cg - m)
    elif cg > arcface_threshold(m):
        theta = np.arccos(cg)
        zg = s * np.cos(theta + m)
    else:
        zg = s * (cg - m * math.sin(m))
    z[np.flatnonzero(live) == g] = zg
    top = z.max()
    return float(top + np.log(np.sum(np.exp(z - top))) - zg)


def ref_rows(cos, gold, loss, s, m, ignore_label=-100):
    """(n,) unweighted per-row losses, 0 for ignored rows."""
    return np.array([0.0 if g == ignore_label else ref_row(cos[i], g, loss, s, m)
                     for i, g in enumerate(gold)])




def ref_angular(cos, gold, loss, s, m, *, weight=None, reduction="mean", ignore_label=-100):
    per = ref_rows(cos, gold, loss, s, m, ignore_label) * reduction_factors(
        gold, weight, reduction, ignore_label)
    return per if reduction == "none" else float(per.sum())


def fd_grad(cos, gold, loss, s, m, *, weight=None, reduction="mean", ignore_label=-100,
            h=1e-6):
    """Central differences of the reference. Row i's loss depends on row i only, so column j of
    every row is shifted at once and each row's own difference read off; the per-row
    differences are then weighted as the reduction weighs the rows. Masked entries get 0."""
    cos = np.asarray(cos, dtype=np.float64)
    n, k = cos.shape
    f = reduction_factors(gold, weight, reduction, ignore_label)
    grad = np.zeros((n, k))
    for j in range(k):
        finite = np.isfinite(cos[:, j])
        up, down = cos.copy(), cos.copy()
        up[finite, j] += h
        down[finite, j] -= h
        d = (ref_rows(up, gold, loss, s, m, ignore_label)
             - ref_rows(down, gold, loss, s, m, ignore_label)) / (2 * h)
        grad[:, j] = np.where(finite, d * f, 0.0)
    return grad


def angular_batch(rng, n, k, loss, m, *, mask=0.2, ignore_label=-100):
    """Cosines in [-0.95, 0.95] (away from the clamp at +-1), some classes masked (never the
    gold), one ignored row, one zero-weight row, weights in [0.5, 2]. Under ArcFace with M > 0,
    row 0's gold lies below cos(pi - M) (the fallback) and row 1's just above it; no cosine
    lies within 1e-3 of the threshold (the kink of the ArcFace branch)."""
    cos = rng.uniform(-0.95, 0.95, size=(n, k))
    gold = rng.integers(0, k, size=n).astype(np.int32)
    if loss == "arcface":
        thr = arcface_threshold(m)
        near = np.abs(cos - thr) < 1e-3
        cos[near] += 3e-3
        if m > 0:
            cos[0, gold[0]] = (thr - 1.0) / 2  # fallback branch, away from -1 and thr
            cos[1, gold[1]] = min(thr + 0.05, 0.9)
            assert cos[0, gold[0]] < thr < cos[1, gold[1]]
    masked = rng.random((n, k)) < mask
    masked[np.arange(n), gold] = False
    cos[masked] = -np.inf
    weight = rng.uniform(0.5, 2.0, size=n)
    weight[3] = 0.0
    gold[2] = ignore_label
    return cos, gold, weight


def grad_scale(s, weight, reduction, gold, ignore_label=-100):
    """Magnitude of a gradient entry: S (times ArcFace's factor, <= 1 + 1/sin theta <= 5 for
    |cos| <= 0.95 or 1 in the fallback) times the row's weight under the reduction."""
    f = reduction_factors(gold, weight, reduction, ignore_label)
    return 5.0 * s * np.maximum(f, 1e-300)[:, None]


def assert_fd(got_grad, want_grad, scale):
    """|got - fd| <= 1e-6 * (gradient scale) + 1e-6 |fd|: the FD truncation (~h^2 S^3 f''') and
    rounding (~eps |f| / h) are both below 1e-7 of the scale for h = 1e-6."""
    err = np.abs(got_grad - want_grad)
    bound = 1e-6 * scale + 1e-6 * np.abs(want_grad)
    bad = np.argwhere(~(err <= bound))
    assert bad.size == 0, (
        f"{len(bad)} gradient entries differ, first at {tuple(bad[0])}: got "
        f"{got_grad[tuple(bad[0])]!r}, finite difference {want_grad[tuple(bad[0])]!r}")


def test_reference_closed_forms():
    # The reference itself on hand-computed rows: CosFace [0.5, 0.2] gold 0, S = 2, M = 0.25:
    # z = [2 * 0.25, 2 * 0.2] = [0.5, 0.4] -> log(e^0.5 + e^0.4) - 0.5
    assert ref_row([0.5, 0.2], 0, "cosface", 2.0, 0.25) == pytest.approx(
        math.log(math.exp(0.5) + math.exp(0.4)) - 0.5, rel=1e-15)
    # ArcFace, cos_g = cos(pi/3) = 0.5, M = pi/6: z_g = S cos(pi/2) = 0; other z = S * 0
    assert ref_row([0.5, 0.0], 0, "arcface", 3.0, math.pi / 6) == pytest.approx(
        math.log(2.0), rel=1e-14)
    # ArcFace fallback: M = 1, cos_g = -0.9 < cos(pi - 1) = -0.5403
    zg = 2.0 * (-0.9 - math.sin(1.0))
    assert ref_row([-0.9, 0.1], 0, "arcface", 2.0, 1.0) == pytest.approx(
        math.log(math.exp(zg) + math.exp(0.2)) - zg, rel=1e-15)
    # The fallback is the usual "cos_g - M sin M" of the ArcFace code: not continuous at the
    # threshold (z_g jumps from -S to S (-cos M - M sin M)), but still decreasing in theta_g.
    for m in (0.2, 0.5, 1.0):
        thr = arcface_threshold(m)
        zs = [ref_row([c, -1.0], 0, "arcface", 1.0, m) for c in (thr + 1e-3, thr - 1e-3)]
        assert zs[0] < zs[1]  # the loss grows as the gold cosine falls across the threshold


# ------------------------------------------------------------------------------------------
# Values and gradients against the reference
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("m", MARGINS)
@pytest.mark.parametrize("s", SCALES)
@pytest.mark.parametrize("loss", LOSSES)
def test_value_and_gradient_match_reference(loss, s, m, reduction, rng):
    cos, gold, weight = angular_batch(rng, 8, 5, loss, m)
    got = losskit.dense(cos, gold, loss=loss, angular_scale=s, angular_margin=m,
                        weight=weight, reduction=reduction)
    want = ref_angular(cos, gold, loss, s, m, weight=weight, reduction=reduction)
    # the values are two float64 evaluations of O(S (1 + M)) logits: 1e-13 of that scale,
    # times the weights (<= 2 per row; summed under "sum")
    vscale = (s * (1 + m) + math.log(5)) * (np.sum(weight) if reduction == "sum" else 2.0)
    np.testing.assert_allclose(got.loss, want, rtol=1e-13, atol=1e-13 * vscale)
    if reduction == "none":
        assert got.loss[2] == 0.0  # ignored row
        assert got.loss[3] == 0.0  # zero weight
    assert got.grad.dtype == np.float64
    # ignored, zero-weight rows and masked classes: exactly 0
    assert np.all(got.grad[2] == 0.0) and np.all(got.grad[3] == 0.0)
    assert np.all(got.grad[~np.isfinite(cos)] == 0.0)
    want_grad = fd_grad(cos, gold, loss, s, m, weight=weight, reduction=reduction)
    assert_fd(got.grad, want_grad, grad_scale(s, weight, reduction, gold))


@pytest.mark.parametrize("loss", LOSSES)
def test_default_options_and_custom_ignore_label(loss, rng):
    # Defaults: S = 64, M = 0.35 (CosFace) or 0.5 (ArcFace); ignore_label may be any int.
    cos, gold, weight = angular_batch(rng, 6, 4, loss, 0.35 if loss == "cosface" else 0.5,
                                      ignore_label=7)
    m = 0.35 if loss == "cosface" else 0.5
    got = losskit.dense(cos, gold, loss=loss, weight=weight, reduction="sum", ignore_label=7)
    want = ref_angular(cos, gold, loss, 64.0, m, weight=weight, reduction="sum", ignore_label=7)
    np.testing.assert_allclose(got.loss, want, rtol=1e-13)
    want_grad = fd_grad(cos, gold, loss, 64.0, m, weight=weight, reduction="sum",
                        ignore_label=7)
    assert_fd(got.grad, want_grad, grad_scale(64.0, weight, "sum", gold, 7))


@pytest.mark.parametrize("m", (0.2, 0.5, 1.0, 2.0))
@pytest.mark.parametrize("s", SCALES)
def test_arcface_fallback_closed_form(s, m):
    # Every gold below cos(pi - M): z_g = S (cos_g - M sin M), dz_g/dcos_g = S.
    thr = arcface_threshold(m)
    golds = np.array([thr - 0.01, (thr - 1) / 2, -1.0 + 1e-3])
    rows = np.array([[cg, 0.3, -0.2] for cg in golds])
    gold = np.zeros(3, dtype=np.int32)
    got = losskit.dense(rows, gold, loss="arcface", angular_scale=s, angular_margin=m,
                        reduction="none")
    for i, cg in enumerate(golds):
        z = np.array([s * (cg - m * math.sin(m)), s * 0.3, s * -0.2])
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        want = math.log(np.exp(z - z.max()).sum()) + z.max() - z[0]
        assert got.loss[i] == pytest.approx(want, rel=1e-13, abs=1e-13 * s)
        np.testing.assert_allclose(got.grad[i], s * (p - [1, 0, 0]), rtol=1e-12,
                                   atol=1e-13 * s)


def test_mean_over_zero_weight_is_zero():
    cos = np.array([[0.2, 0.5], [0.9, -0.3]])
    for loss in LOSSES:
        got = losskit.dense(cos, np.array([0, -100]), loss=loss, weight=np.array([0.0, 3.0]),
                            reduction="mean")
        assert got.loss == 0.0
        assert np.all(got.grad == 0.0)


# ------------------------------------------------------------------------------------------
# M = 0 is the log loss on S cos
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("s", SCALES)
@pytest.mark.parametrize("loss", LOSSES)
def test_zero_margin_is_log_loss_on_scaled_cosines(loss, s, reduction, rng):
    cos, gold, weight = angular_batch(rng, 9, 6, loss, 0.0)
    got = losskit.dense(cos, gold, loss=loss, angular_scale=s, angular_margin=0.0,
                        weight=weight, reduction=reduction)
    log = losskit.dense(s * cos, gold, loss="log", weight=weight, reduction=reduction)
    # ArcFace's cos(theta + 0) is evaluated without arccos; a few ulps of S apart at most
    np.testing.assert_allclose(got.loss, log.loss, rtol=1e-13, atol=1e-13 * s)
    np.testing.assert_allclose(got.grad, s * log.grad, rtol=1e-12, atol=1e-13 * s)


# ------------------------------------------------------------------------------------------
# The clamp into [-1, 1]
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", (np.float64, np.float32))
@pytest.mark.parametrize("loss", LOSSES)
def test_cosines_outside_unit_interval_are_clamped(loss, dtype):
    cos = np.array([[0.3, 1.5, -0.2, -2.0],    # non-gold entries outside
                    [1.25, 0.1, -0.4, 0.6],    # gold above 1
                    [-3.0, 0.2, 0.7, -0.1],    # gold below -1
                    [0.4, 1.0000001, -1.0000001, 0.0]], dtype=dtype)
    gold = np.array([0, 0, 0, 0])
    outside = np.abs(cos.astype(np.float64)) > 1
    clipped = np.clip(cos, -1, 1).astype(dtype)
    kw = dict(loss=loss, angular_scale=10.0, angular_margin=0.3, reduction="none")
    got = losskit.dense(cos, gold, **kw)
    ref = losskit.dense(clipped, gold, **kw)
    np.testing.assert_array_equal(got.loss, ref.loss)
    want = ref_rows(cos.astype(np.float64), gold, loss, 10.0, 0.3)
    tol = 1e-13 if dtype == np.float64 else 64 * EPS32 * 14
    np.testing.assert_allclose(got.loss, want, rtol=tol, atol=tol)
    # the clamp's derivative: 0 outside, and elsewhere the gradient of the clipped input
    assert np.all(got.grad[outside] == 0.0)
    np.testing.assert_array_equal(got.grad[~outside], ref.grad[~outside])
    assert np.all(np.isfinite(got.grad))


def test_cosines_exactly_at_plus_minus_one_are_not_clamped_away():
    # Inside [-1, 1] (the boundary included) the gradient is the unclamped one: S (p_z - e_g)
    # for CosFace; only a cosine strictly outside gets the clamp's 0.
    s, m = 4.0, 0.2
    cos = np.array([[0.5, 1.0, -1.0]])
    got = losskit.dense(cos, np.array([0]), loss="cosface", angular_scale=s, angular_margin=m,
                        reduction="sum")
    z = s * np.array([0.5 - m, 1.0, -1.0])
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(got.grad[0], s * (p - [1, 0, 0]), rtol=1e-13)
    assert got.grad[0, 1] != 0.0 and got.grad[0, 2] != 0.0


@pytest.mark.parametrize("dtype", (np.float64, np.float32))
@pytest.mark.parametrize("m", (0.2, 0.5, 1.0))
def test_arcface_gold_cosine_one_has_finite_gradient(m, dtype):
    s = 30.0
    cos = np.array([[1.0, 0.2, -0.5]], dtype=dtype)
    got = losskit.dense(cos, np.array([0]), loss="arcface", angular_scale=s, angular_margin=m,
                        reduction="sum")
    assert np.all(np.isfinite(got.grad)) and np.isfinite(got.loss)
    # theta_g = 0: z_g = S cos M
    z = s * np.array([math.cos(m), 0.2, -0.5], dtype=np.float64)
    if dtype == np.float32:
        z[1:] = s * cos[0, 1:].astype(np.float64)
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    want = math.log(np.exp(z - z.max()).sum()) + z.max() - z[0]
    tol = 1e-13 if dtype == np.float64 else 64 * EPS32
    assert float(got.loss) == pytest.approx(want, rel=tol, abs=tol * s)
    # Header: sin theta_g is floored at sqrt(2u) (u = unit roundoff of the input type), so the
    # gold's entry is S (p_g - 1) (cos M + sin M / sqrt(2u)): large, finite, negative.
    u = float(np.finfo(dtype).eps) / 2
    factor = math.cos(m) + math.sin(m) / math.sqrt(2 * u)
    want_g = s * (p[0] - 1) * factor
    assert got.grad[0, 0] < 0
    assert float(got.grad[0, 0]) == pytest.approx(want_g, rel=1e-3 if dtype == np.float32 else 1e-6)
    np.testing.assert_allclose(got.grad[0, 1:], s * p[1:], rtol=tol, atol=tol * s)


# ------------------------------------------------------------------------------------------
# float32 against float64
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", (0.0, 0.35, 1.0))
@pytest.mark.parametrize("s", SCALES)
@pytest.mark.parametrize("loss", LOSSES)
def test_float32_agrees_with_float64(loss, s, m, rng):
    cos, gold, weight = angular_batch(rng, 12, 7, loss, m)
    c32, w32 = cos.astype(np.float32), weight.astype(np.float32)
    c64, w64 = c32.astype(np.float64), w32.astype(np.float64)
    kw = dict(loss=loss, angular_scale=s, angular_margin=m, reduction="none")
    got = losskit.dense(c32, gold, weight=w32, **kw)
    ref = losskit.dense(c64, gold, weight=w64, **kw)
    assert got.loss.dtype == np.float32 and got.grad.dtype == np.float32
    np.testing.assert_allclose(ref.loss, ref_angular(c64, gold, loss, s, m, weight=w64,
                                                     reduction="none"), rtol=1e-13, atol=1e-12)
    # float32: the logits S cos carry ~1 ulp of S (1 + M) each, so the loss is off by a few
    # such ulps (times the weight <= 2) and p_z by that relative error, the gradient S p_z
    # (times ArcFace's factor) by S times it. 16 ulps (observed: under 2).
    zmax = s * (1 + m) + 1
    np.testing.assert_allclose(got.loss, ref.loss, rtol=16 * EPS32, atol=16 * EPS32 * zmax * 2)
    np.testing.assert_allclose(got.grad, ref.grad, rtol=16 * EPS32,
                               atol=16 * EPS32 * 2 * s * zmax)


# ------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------

def raises_lk(name, fn, *args, **kw):
    with pytest.raises(losskit.LossKitError) as info:
        fn(*args, **kw)
    assert info.value.name == name, str(info.value)
    assert info.value.message  # the library's message names the culprit
    return info.value


@pytest.mark.parametrize("dtype", (np.float64, np.float32))
@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("options", [
    dict(angular_scale=0.0), dict(angular_scale=-1.0), dict(angular_scale=math.inf),
    dict(angular_scale=math.nan), dict(angular_margin=-0.1), dict(angular_margin=4.0),
    dict(angular_margin=math.nan), dict(angular_margin=math.pi + 1e-9),
])
def test_bad_angular_options(loss, options, dtype):
    cos = np.array([[0.1, 0.2]], dtype=dtype)
    err = raises_lk("LK_ERR_OPTION", losskit.dense, cos, np.array([0]), loss=loss, **options)
    assert "angular" in err.message


@pytest.mark.parametrize("loss", LOSSES)
def test_scale_overflow_in_float32(loss):
    cos = np.array([[0.1, 0.2]])
    # S (1 + M) > FLT_MAX = 3.4e38: rejected in float32, accepted in float64
    for s, m in [(3e38, 0.5), (1e38, 3.0)]:
        raises_lk("LK_ERR_OPTION", losskit.dense, cos.astype(np.float32), np.array([0]),
                  loss=loss, angular_scale=s, angular_margin=m)
        got = losskit.dense(cos, np.array([0]), loss=loss, angular_scale=s, angular_margin=m)
        assert np.isfinite(got.loss)
    # S = 1e38 with M = 0.35 or 0.5 gives S (1 + M) <= 1.5e38 < FLT_MAX: accepted in float32;
    # a margin that pushes S (1 + M) past FLT_MAX is not.
    ok = losskit.dense(cos.astype(np.float32), np.array([0]), loss=loss, angular_scale=1e38,
                       angular_margin=0.35)
    assert np.isfinite(ok.loss) and np.all(np.isfinite(ok.grad))
    raises_lk("LK_ERR_OPTION", losskit.dense, cos.astype(np.float32), np.array([0]),
              loss=loss, angular_scale=1e38, angular_margin=2.5)
    # the boundary case in float64
    raises_lk("LK_ERR_OPTION", losskit.dense, cos, np.array([0]), loss=loss,
              angular_scale=1e308, angular_margin=1.0)


@pytest.mark.parametrize("loss", LOSSES)
def test_scale_overflow_is_an_option_error_before_sizes(loss):
    # An option is checked before the pointers and sizes, also when n = 0 (DESIGN.md §2): the
    # float32 overflow of S (1 + M) too, which depends on the input type.
    kw = dict(loss=loss, angular_scale=3e38, angular_margin=0.5)
    for rows in (np.zeros((0, 2), np.float32), np.zeros((1, 0), np.float32)):
        err = raises_lk("LK_ERR_OPTION", losskit.dense, rows, np.zeros(len(rows), np.int64), **kw)
        assert "angular_scale" in err.message
    assert losskit.dense(np.zeros((0, 2)), np.zeros(0, np.int64), reduction="sum", **kw).loss == 0


def test_pi_margin_is_accepted():
    cos = np.array([[0.1, 0.2]])
    for loss in LOSSES:
        got = losskit.dense(cos, np.array([0]), loss=loss, angular_scale=2.0,
                            angular_margin=math.pi)
        assert np.isfinite(got.loss)
        np.testing.assert_allclose(got.loss, ref_angular(cos, [0], loss, 2.0, math.pi),
                                   rtol=1e-13)


@pytest.mark.parametrize("loss", LOSSES)
def test_value_errors(loss):
    cos = np.array([[0.1, 0.2], [0.3, -0.4]])
    raises_lk("LK_ERR_LABEL", losskit.dense, cos, np.array([0, 2]), loss=loss)
    raises_lk("LK_ERR_LABEL", losskit.dense, cos, np.array([-1, 0]), loss=loss)
    raises_lk("LK_ERR_DOMAIN", losskit.dense, np.array([[0.1, np.inf]]), np.array([0]),
              loss=loss)
    raises_lk("LK_ERR_DOMAIN", losskit.dense, np.array([[-np.inf, -np.inf]]), np.array([0]),
              loss=loss)
    raises_lk("LK_ERR_DOMAIN", losskit.dense, cos, np.array([0, 1]), loss=loss,
              weight=np.array([1.0, -1.0]))
    raises_lk("LK_ERR_DOMAIN", losskit.dense, cos, np.array([0, 1]), loss=loss,
              weight=np.array([1.0, np.nan]))


@pytest.mark.parametrize("loss", LOSSES)
def test_masked_gold_and_unvalidated_zero_weight_gold(loss):
    # lse(z) - z[g] uses the gold's cosine: a masked gold has no defined loss
    raises_lk("LK_ERR_DOMAIN", losskit.dense, np.array([[-np.inf, 0.3]]), np.array([0]),
              loss=loss)
    # a zero-weight row is not read beyond its weight and label: its gold is not validated
    got = losskit.dense(np.array([[0.1, 0.3], [0.5, 0.2]]), np.array([0, 9]), loss=loss,
                        weight=np.array([1.0, 0.0]), reduction="none")
    assert got.loss[1] == 0.0 and np.all(got.grad[1] == 0.0)


@pytest.mark.parametrize("loss", LOSSES)
def test_angular_losses_are_dense_only(loss):
    raises_lk("LK_ERR_UNSUPPORTED", losskit.lists, np.array([0.1, 0.2, 0.3]),
              np.array([0, 2, 3]), np.array([0, 0]), loss=loss)
    emissions = np.zeros((1, 3, 2))
    raises_lk("LK_ERR_UNSUPPORTED", losskit.chain, emissions, np.zeros((2, 2)), np.array([3]),
              np.zeros((1, 3), dtype=np.int32), loss=loss)


def test_angular_options_only_for_angular_losses():
    cos = np.array([[0.1, 0.2]])
    with pytest.raises(ValueError, match="angular_scale"):
        losskit.dense(cos, np.array([0]), loss="log", angular_scale=30.0)
    with pytest.raises(ValueError, match="angular_margin"):
        losskit.dense(cos, np.array([0]), loss="hinge", angular_margin=0.5)
    with pytest.raises(ValueError):
        losskit.dense(cos[0], np.array([0]), loss="cosface")
    with pytest.raises(ValueError):
        losskit.dense(cos, np.array([0, 1]), loss="arcface")
    with pytest.raises(ValueError):
        losskit.dense(cos, np.array([0]), loss="arcface", weight=np.array([1.0, 2.0]))
