"""L-Softmax, CosFace and ArcFace against exact arithmetic on the same float inputs.

Every expected value here is computed by mpmath at 80 significant digits from the exact values of
the float inputs (a float is a dyadic rational, so mpmath holds it exactly), following the
definitions in include/losskit.h literally: L-Softmax takes theta = arccos(f_y / (|w_y| |x|))
and psi(theta) = (-1)^j cos(m theta) - 2j with j = floor(m theta / pi); ArcFace takes
theta = arccos(cos_g) and cos(theta + M), with the fallback exactly where theta + M >= pi. The
library computes neither way (chords and atan2, no arccos), so the two share no code path.

The accuracy target: with u the unit roundoff of the input type,
  |loss - L| <= 4u (|L| + sum_i |dL/dz_i| |z_i|)       over every float input z_i,
and each gradient row g likewise against its own conditioning,
  max_t |g_t - G_t| <= 4u max_t (|G_t| + sum_i |dG_t/dz_i| |z_i|)   (+ 4 times the smallest
subnormal, the spacing of the output grid below the normal range),
which also rules out a wrong sign wherever an entry is above the row's rounding level. The
derivatives dG_t/dz_i are central differences of the exact gradient at 80 digits (step
1e-30 |z_i|: truncation ~1e-60, cancellation ~1e-50, far below any u).
"""

from __future__ import annotations

import ctypes
import math

import mpmath as mp
import numpy as np
import pytest

import losskit
from losskit import _native

mp.mp.dps = 80

U = {np.float32: 2.0 ** -24, np.float64: 2.0 ** -53}
# Below the normal range the grid spacing is absolute (the smallest subnormal): 4 of its units
# stand in for 4u there.
TINY = {np.float32: 4 * float(np.finfo(np.float32).smallest_subnormal),
        np.float64: 4 * float(np.finfo(np.float64).smallest_subnormal)}
DTYPES = (np.float32, np.float64)


# ------------------------------------------------------------------------------------------
# Exact references (mpmath)
# ------------------------------------------------------------------------------------------

def _mp(v):
    return mp.mpf(float(v))


def _lse_minus(z, target):
    """log sum exp(z) - target, exactly enough (80 digits)."""
    top = max(z)
    return top + mp.log(mp.fsum(mp.exp(v - top) for v in z)) - target


def lsoftmax_exact(X, W, y, m, lam):
    """One example of L-Softmax on mp inputs X (d) and W (k rows of d): (L, dX, dW) with
    dW a list of k rows. psi' = (-1)^j m sin(m theta) / sin(theta) (limit m, or (-1)^(m-1) m,
    where sin theta = 0); the gradient formula is the chain rule through
    f~_y = (lam f_y + a b psi(arccos(f_y / (a b)))) / (1 + lam), checked against mpmath's own
    differentiation in test_exact_reference_gradient."""
    k, d = len(W), len(X)
    lam = mp.mpf(lam)
    f = [mp.fsum(X[t] * W[j][t] for t in range(d)) for j in range(k)]
    a = mp.sqrt(mp.fsum(v * v for v in W[y]))
    b = mp.sqrt(mp.fsum(v * v for v in X))
    if m == 1 or a == 0 or b == 0:
        ft, alpha, beta = f[y], mp.mpf(1), mp.mpf(0)
    else:
        c = min(max(f[y] / (a * b), mp.mpf(-1)), mp.mpf(1))
        theta = mp.acos(c)
        j = min(int(mp.floor(m * theta / mp.pi)), m - 1)
        sign = -1 if j % 2 else 1
        psi = sign * mp.cos(m * theta) - 2 * j
        st = mp.sin(theta)
        ratio = mp.sin(m * theta) / st if st != 0 else (m if theta < 1 else (-1) ** (m - 1) * m)
        dpsi = sign * m * ratio
        ft = (lam * f[y] + a * b * psi) / (1 + lam)
        alpha = (lam + dpsi) / (1 + lam)
        beta = (psi - c * dpsi) / (1 + lam)
    z = list(f)
    z[y] = ft
    L = _lse_minus(z, ft)
    top = max(z)
    s = mp.fsum(mp.exp(v - top) for v in z)
    G = [mp.exp(v - top) / s for v in z]
    # G_y = p_y - 1 = -(sum of the others), without cancellation
    G[y] = -mp.fsum(G[j] for j in range(k) if j != y)
    dX = [mp.fsum(G[j] * W[j][t] for j in range(k)) for t in range(d)]
    dW = [[G[j] * X[t] for t in range(d)] for j in range(k)]
    if beta != 0 or alpha != 1:
        for t in range(d):
            dX[t] += G[y] * ((alpha - 1) * W[y][t] + (beta * a / b) * X[t])
            dW[y][t] += G[y] * ((alpha - 1) * X[t] + (beta * b / a) * W[y][t])
    return L, dX, dW


def angular_exact(C, g, loss, S, M, sin_floor=0.0):
    """One dense row of CosFace / ArcFace on mp cosines C: (L, dC). ArcFace's switch is decided
    exactly: theta_g + M < pi <=> cos_g > cos(pi - M) = -cos M. At cos_g = 1 the derivative is
    infinite; the header floors sin theta at sqrt(2u) (sin_floor) there."""
    S, M = mp.mpf(S), mp.mpf(M)
    live = [j for j in range(len(C)) if C[j] != -mp.inf]
    cl = [min(max(v, mp.mpf(-1)), mp.mpf(1)) if v != -mp.inf else v for v in C]
    inside = [C[j] == cl[j] for j in range(len(C))]
    z = [S * v for v in cl]
    cg = cl[g]
    if loss == "cosface":
        zg, slope = S * (cg - M), mp.mpf(1)
    elif cg > -mp.cos(M):
        th = mp.acos(cg)
        zg = S * mp.cos(th + M)
        slope = mp.cos(M) + cg * mp.sin(M) / max(mp.sin(th), mp.mpf(sin_floor))
    else:
        zg, slope = S * (cg - M * mp.sin(M)), mp.mpf(1)
    z[g] = zg
    zl = [z[j] for j in live]
    L = _lse_minus(zl, zg)
    top = max(zl)
    s = mp.fsum(mp.exp(v - top) for v in zl)
    p = {j: mp.exp(z[j] - top) / s for j in live}
    dC = [mp.mpf(0)] * len(C)
    for j in live:
        if j != g:
            dC[j] = S * p[j] if inside[j] else mp.mpf(0)
    gg = -mp.fsum(p[j] for j in live if j != g)
    dC[g] = S * gg * slope if inside[g] else mp.mpf(0)
    return L, dC


# ------------------------------------------------------------------------------------------
# The metric
# ------------------------------------------------------------------------------------------

def _jacobian_cond(grad_of, z, outputs):
    """For each output t of grad_of (a function of the flat input list z returning a flat list):
    sum_i |d out_t / d z_i| |z_i| by central differences at 80 digits."""
    cond = [mp.mpf(0)] * outputs
    for i, zi in enumerate(z):
        if zi == 0:
            continue
        h = abs(zi) * mp.mpf(10) ** -30
        zp, zm = list(z), list(z)
        zp[i] += h
        zm[i] -= h
        gp, gm = grad_of(zp), grad_of(zm)
        for t in range(outputs):
            cond[t] += abs((gp[t] - gm[t]) / (2 * h)) * abs(zi)
    return cond


def _row_excess(got, exact, cond, u, tiny):
    """max_t |got_t - exact_t| / (4u max_t(|exact_t| + cond_t) + tiny): <= 1 meets the target."""
    scale = max(abs(e) + c for e, c in zip(exact, cond))
    err = max(abs(_mp(g) - e) for g, e in zip(got, exact))
    return float(err / (4 * u * scale + tiny))


def lsoftmax_excess(x, w, y, m, lam=0.0, dtype=np.float64, what=""):
    """Runs one example through the library (reduction sum, n = 1) and returns the worst ratio
    error / allowed over the loss, the d_x row and the d_w rows (<= 1 meets the target)."""
    x = np.asarray(x, dtype).reshape(1, -1)
    w = np.asarray(w, dtype)
    k, d = w.shape
    got = losskit.lsoftmax(x, w, np.array([y]), margin=m, lam=lam, reduction="sum")
    X = [_mp(v) for v in x[0]]
    W = [[_mp(v) for v in row] for row in w]
    L, dX, dW = lsoftmax_exact(X, W, y, m, lam)
    u, tiny = U[dtype], TINY[dtype]
    z = X + [v for row in W for v in row]

    def split(zz):
        return zz[:d], [zz[d + j * d: d + (j + 1) * d] for j in range(k)]

    def loss_grad(zz):
        Xz, Wz = split(zz)
        _, gx, gw = lsoftmax_exact(Xz, Wz, y, m, lam)
        return gx + [v for row in gw for v in row]

    flat = dX + [v for row in dW for v in row]
    lcond = mp.fsum(abs(gi) * abs(zi) for gi, zi in zip(flat, z))
    ratios = {"loss": float(abs(_mp(got.loss) - L) / (4 * u * (abs(L) + lcond) + tiny))}
    hcond = _jacobian_cond(loss_grad, z, len(flat))
    ratios["d_x"] = _row_excess(got.d_x[0], dX, hcond[:d], u, tiny)
    for j in range(k):
        ratios[f"d_w[{j}]"] = _row_excess(got.d_w[j], dW[j], hcond[d + j * d: d + (j + 1) * d], u, tiny)
    return ratios, got, (L, dX, dW)


def angular_excess(cos_row, g, loss, S, M, dtype=np.float64):
    c = np.asarray(cos_row, dtype).reshape(1, -1)
    got = losskit.dense(c, np.array([g]), loss=loss, angular_scale=S, angular_margin=M, reduction="sum")
    C = [_mp(v) if np.isfinite(v) else -mp.inf for v in c[0]]
    L, dC = angular_exact(C, g, loss, S, M)
    u, tiny = U[dtype], TINY[dtype]
    live = [i for i in range(len(C)) if C[i] != -mp.inf]
    lcond = mp.fsum(abs(dC[i]) * abs(C[i]) for i in live)

    def grad_of(zz):
        full = list(C)
        for i, v in zip(live, zz):
            full[i] = v
        _, dz = angular_exact(full, g, loss, S, M)
        return [dz[i] for i in live]

    hcond = _jacobian_cond(grad_of, [C[i] for i in live], len(live))
    ratios = {"loss": float(abs(_mp(got.loss) - L) / (4 * u * (abs(L) + lcond) + tiny)),
              "grad": _row_excess([got.grad[0][i] for i in live], [dC[i] for i in live], hcond, u, tiny)}
    return ratios, got, (L, dC)


def assert_meets(ratios, what):
    bad = {key: r for key, r in ratios.items() if not r <= 1.0}
    assert not bad, f"{what}: error / allowed = {bad}"


def lsoftmax_raw(dtype, n, d, k, x, w, gold, *, margin=2, reduction="sum", loss_len=1):
    """lk_lsoftmax_f32/_f64 called directly with poisoned outputs: (status name, message, loss,
    d_x, d_w) — the outputs as the call left them (sizes from the real buffers, not n, d, k)."""
    from losskit import _common as c
    opt = c.make_options(loss="log", reduction=reduction, cost_scale=1.0, threads=0)
    opt.margin = margin
    loss = np.full(loss_len, 7.0, dtype)
    dx = np.full(x.size, 7.0, dtype)
    dw = np.full(w.size, 7.0, dtype)
    fn = _native.lib.lk_lsoftmax_f64 if dtype == np.float64 else _native.lib.lk_lsoftmax_f32
    try:
        fn(ctypes.byref(opt), n, d, k, x.ctypes.data, w.ctypes.data, gold.ctypes.data, None,
           loss.ctypes.data, dx.ctypes.data, dw.ctypes.data)
        status, message = "LK_OK", ""
    except losskit.LossKitError as e:
        status, message = e.name, e.message
    return status, message, loss, dx, dw


def untouched(*outputs):
    return all(np.all(o == 7.0) for o in outputs)


# ------------------------------------------------------------------------------------------
# The reference itself
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m, lam", [(1, 0.0), (2, 0.0), (3, 0.5), (4, 0.0)])
def test_exact_reference_gradient(rng, m, lam):
    # The analytic gradient of lsoftmax_exact against mpmath's own numerical derivative of its
    # loss (mp.diff at 80 digits), so that the gradient references rest on the loss definition.
    x = rng.standard_normal(3)
    w = rng.standard_normal((3, 3))
    X = [_mp(v) for v in x]
    W = [[_mp(v) for v in row] for row in w]
    _, dX, dW = lsoftmax_exact(X, W, 1, m, lam)
    for t in range(3):
        def along_x(h, t=t):
            Xh = list(X)
            Xh[t] += h
            return lsoftmax_exact(Xh, W, 1, m, lam)[0]

        def along_w(h, t=t):
            Wh = [list(r) for r in W]
            Wh[1][t] += h
            return lsoftmax_exact(X, Wh, 1, m, lam)[0]
        assert abs(mp.diff(along_x, 0) - dX[t]) < mp.mpf(10) ** -40
        assert abs(mp.diff(along_w, 0) - dW[1][t]) < mp.mpf(10) ** -40


# ------------------------------------------------------------------------------------------
# L-Softmax: the gold's logit overflowing (the header promises LK_ERR_DOMAIN)
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, big", [(np.float32, 1e20), (np.float64, 1e200)])
@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_lsoftmax_gold_logit_overflow_is_domain(dtype, big, m):
    # x = {big}, w = {big}, gold 0: theta = 0, psi = 1, the gold's logit |w||x| = big^2, which
    # overflows float (1e40) and double (1e400). Example 1 overflows; example 0 is fine.
    x = np.array([1.0, big], dtype)
    w = np.array([big], dtype)
    gold = np.array([0, 0], np.int32)
    status, message, loss, dx, dw = lsoftmax_raw(dtype, 2, 1, 1, x, w, gold, margin=m)
    assert status == "LK_ERR_DOMAIN", message
    assert "example 1" in message and "overflows" in message, message
    assert untouched(loss, dx, dw)


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e20), (np.float64, 1e200)])
def test_lsoftmax_moved_gold_logit_overflow_is_domain(dtype, big):
    # theta = pi/2 (x = (big, 0), w_0 = (0, big)): the plain logit x . w_0 is 0, but with m = 4
    # psi(pi/2) = cos(2 pi) - 2 * 2 = -3 and the moved logit -3 big^2 overflows.
    x = np.array([big, 0.0], dtype)
    w = np.array([0.0, big, 0.0, 1.0], dtype)
    status, message, loss, dx, dw = lsoftmax_raw(dtype, 1, 2, 2, x, w, np.array([0], np.int32), margin=4)
    assert status == "LK_ERR_DOMAIN" and "example 0" in message, message
    assert untouched(loss, dx, dw)


def test_lsoftmax_logit_partial_sums_overflow_is_domain():
    # float32 x = (1e20, 1e20), w_1 = (1e20, -1e20): x . w_1 = 1e40 - 1e40 = 0 exactly, but its
    # float32 terms overflow (inf - inf = NaN without FMA, inf with it): never LK_OK with NaN.
    x = np.array([1e20, 1e20], np.float32)
    w = np.array([1.0, 0.0, 1e20, -1e20], np.float32)
    status, message, loss, dx, dw = lsoftmax_raw(np.float32, 1, 2, 2, x, w, np.array([0], np.int32), margin=1)
    assert status == "LK_ERR_DOMAIN" and "example 0, class 1" in message, message
    assert untouched(loss, dx, dw)


# ------------------------------------------------------------------------------------------
# L-Softmax: byte sizes of every buffer
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n, d, k", [
    (2 ** 62, 0, 1),          # d = 0 with n > 0
    (2 ** 62, 1, 0),          # k = 0 with n > 0
    (2 ** 62, 1, 1),          # gold: n * 4 bytes = 2^64
    (2 ** 61, 1, 1),          # x: n * d * 4 = 2^63 bytes (float32; 2^64 for float64)
    (2 ** 60, 1, 16),         # the logits n * k * sizeof = 2^66 / 2^67 bytes
    (0, 2 ** 61, 2),          # n = 0 still writes d_w: k * d * sizeof overflows
    (0, 2, 2 ** 62),
    (2 ** 63 - 1, 1, 1),
])
def test_lsoftmax_sizes_without_bytes_are_size_errors(dtype, n, d, k):
    # Each shape names a buffer whose byte size does not exist; the call must say so before it
    # reads anything (the real buffers here hold 2 values each) and leave the outputs untouched.
    x = np.zeros(2, dtype)
    w = np.zeros(2, dtype)
    gold = np.zeros(2, np.int32)
    status, message, loss, dx, dw = lsoftmax_raw(dtype, n, d, k, x, w, gold)
    assert status == "LK_ERR_SIZE", message
    assert untouched(loss, dx, dw)


# ------------------------------------------------------------------------------------------
# L-Softmax accuracy against 80-digit arithmetic
# ------------------------------------------------------------------------------------------

def near_zero_case(seed, dtype, scale, tilt, d=4, k=3):
    """x close to w_0 (angle ~ tilt) with |x|, |w_0| ~ scale, the other classes pointing away:
    a gold logit ~ scale^2 psi(small) ahead of the others by ~2 scale^2, a loss of 1e-5 .. 1e-24."""
    rng = np.random.default_rng(seed)
    wy = rng.standard_normal(d)
    wy /= np.linalg.norm(wy)
    x = scale * (wy + tilt * rng.standard_normal(d))
    w = np.vstack([wy * scale] + [-scale * (wy + 0.5 * rng.standard_normal(d)) for _ in range(k - 1)])
    return x.astype(dtype), w.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 2, 3, 4])
@pytest.mark.parametrize("scale, tilt", [(3.0, 1e-4), (4.0, 1e-2), (5.0, 3e-2)])
def test_lsoftmax_near_zero_loss_meets_target(dtype, m, scale, tilt):
    # A rounded cos theta = f / (|w||x|) is off by u, which psi near theta = 0 magnifies m^2
    # times: before the angle was measured on the chords, m = 3, 4 missed the target by up to
    # 3.4x (float64) and 2.5x (float32).
    for seed in range(4):
        x, w = near_zero_case(seed, dtype, scale, tilt)
        ratios, got, exact = lsoftmax_excess(x, w, 0, m, dtype=dtype)
        assert exact[0] < 0.02
        assert_meets(ratios, f"seed {seed}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [10, 50, 1000])
def test_lsoftmax_large_margin_near_zero_meets_target(dtype, m):
    # theta below pi / (2m) keeps the loss near zero. The textbook gradient
    # psi' w_y + (psi - c psi') (|w|/|x|) x adds two terms of size m^2 |w| that cancel when theta is
    # small (float64 m = 10: 1.2 times the target with the angle already exact); the library
    # writes it around the short chord between the unit vectors instead.
    for seed in range(3):
        x, w = near_zero_case(seed, dtype, 4.0, 1e-3 / m, d=3)
        ratios, *_ = lsoftmax_excess(x, w, 0, m, dtype=dtype)
        assert_meets(ratios, f"seed {seed}")
    # x close to an axis and w_0 on it (the componentwise conditioning is smallest there)
    x = np.array([3.0, 3e-3 / m, 0.0])
    w = np.array([[3.0, 0.0, 0.0], [-3.0, 1.0, 0.5], [-2.0, -1.0, 1.0]])
    ratios, *_ = lsoftmax_excess(x.astype(dtype), w.astype(dtype), 0, m, dtype=dtype)
    assert_meets(ratios, "axis-aligned")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, lam", [(1, 0.0), (2, 0.0), (3, 0.0), (4, 0.0), (2, 1.0), (4, 100.0), (7, 0.0)])
def test_lsoftmax_standard_normal_meets_target(rng, dtype, m, lam):
    for _ in range(4):
        x = rng.standard_normal(5)
        w = rng.standard_normal((4, 5))
        y = int(rng.integers(4))
        ratios, *_ = lsoftmax_excess(x.astype(dtype), w.astype(dtype), y, m, lam=lam, dtype=dtype)
        assert_meets(ratios, f"gold {y}")


@pytest.mark.parametrize("scale", [1e-155, 1e-160, 1e-170, 1e-250, 1e-300, 1e-310])
@pytest.mark.parametrize("which", ["x", "w_y", "both"])
@pytest.mark.parametrize("m", [2, 3])
def test_lsoftmax_tiny_norms_f64(rng, scale, which, m):
    # |x| or |w_y| <= 1e-155: the plain sum of squares underflows (to 0 or to subnormals that
    # lost digits); before the norms were rescaled on underflow, d_x and d_w[y] were off by up
    # to 1e15 times the allowed error (140 % and wrong signs at 1e-160).
    x = rng.standard_normal(4)
    w = rng.standard_normal((3, 4))
    if which in ("x", "both"):
        x = x * scale
    if which in ("w_y", "both"):
        w[1] *= scale
    ratios, *_ = lsoftmax_excess(x, w, 1, m)
    assert_meets(ratios, f"{which} scaled by {scale}")


@pytest.mark.parametrize("which", ["x", "w_y"])
@pytest.mark.parametrize("scale", [1e-39, 1e-42])
def test_lsoftmax_subnormal_components_f32(rng, which, scale):
    # float32 rows of subnormal components: their float32 dot product x . w_y (what cos theta was
    # computed from) keeps only a few bits; the angle from the chords in double keeps them all.
    x = rng.standard_normal(4)
    w = rng.standard_normal((3, 4))
    if which == "x":
        x = x * scale
    else:
        w[1] *= scale
    ratios, *_ = lsoftmax_excess(x.astype(np.float32), w.astype(np.float32), 1, 3, dtype=np.float32)
    assert_meets(ratios, f"{which} scaled by {scale}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_lsoftmax_zero_norm_is_plain_logit(dtype):
    # |x| = 0: the header's rule is the plain logit f_y = 0 with the plain gradient (closed form:
    # logits all 0, loss log k = log 3, d_x = sum_j (1/3 - e_y) w_j, d_w = 0).
    x = np.zeros((1, 3), dtype)
    w = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 2.0], [0.0, -2.0, 1.0]], dtype)
    got = losskit.lsoftmax(x, w, np.array([1]), margin=3, reduction="sum")
    assert float(got.loss) == pytest.approx(math.log(3), rel=4 * U[dtype])
    expected = w.astype(np.float64).sum(axis=0) / 3 - w[1].astype(np.float64)
    np.testing.assert_allclose(got.d_x[0], expected, rtol=8 * U[dtype], atol=8 * U[dtype])
    assert np.all(got.d_w == 0.0)


# ------------------------------------------------------------------------------------------
# CosFace and ArcFace
# ------------------------------------------------------------------------------------------

def angular_loss_excess(cos_row, g, loss, S, M, dtype):
    """The loss alone: error / (4u (|L| + sum |dL/dc_j| |c_j|)), and the library's loss."""
    c = np.asarray(cos_row, dtype).reshape(1, -1)
    got = losskit.dense(c, np.array([g]), loss=loss, angular_scale=S, angular_margin=M, reduction="sum",
                        with_grad=False)
    C = [_mp(v) for v in c[0]]
    L, dC = angular_exact(C, g, loss, S, M, sin_floor=math.sqrt(2 * U[dtype]))
    cond = mp.fsum(abs(a) * abs(b) for a, b in zip(dC, C))
    return float(abs(_mp(got.loss) - L) / (4 * U[dtype] * (abs(L) + cond) + TINY[dtype])), float(got.loss), L


def test_arcface_switch_issue_example():
    # cos_g = -0.87758256189037265 lies one ulp above -cos(0.5) = -0.877582561890372716...:
    # theta_g + 0.5 < pi, so z_g = S cos(theta_g + 0.5) ~ -S (mpmath); the fallback
    # S (cos_g - 0.5 sin 0.5) = -1.117 S is what cos(pi - 0.5) rounded to double selected.
    cg = -0.87758256189037265
    assert mp.mpf(cg) > -mp.cos(mp.mpf(0.5))
    ratios, got, (L, _) = angular_excess([cg, 0.0, 0.25], 0, "arcface", 64.0, 0.5)
    assert_meets(ratios, "arcface at its threshold")
    assert float(got.loss) == pytest.approx(float(L), rel=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
def test_arcface_switch_is_exact_near_threshold(rng, dtype):
    # For margins M across [0, pi] (and the ends of the library's argument reductions), the two
    # or three floats on each side of -cos M: the branch taken must be mpmath's (the loss jumps
    # by ~0.1 S between the branches, far above the target).
    margins = list(rng.uniform(0.0, math.pi, 40)) + [0.5, 0.35, 1e-3, math.pi / 4, 0.78, 0.7800000000000001,
                                                     math.pi / 2, 2.35, 2.3500000000000003, 3.0, math.pi]
    for M in margins:
        M = float(M)
        t = dtype(float(-mp.cos(mp.mpf(M))))
        cands = [t]
        up = down = t
        for _ in range(3):
            up, down = np.nextafter(up, dtype(2)), np.nextafter(down, dtype(-2))
            cands += [up, down]
        for cg in cands:
            if not -1 < cg < 1:
                continue
            ratio, got, L = angular_loss_excess([cg, 0.0, -0.5], 0, "arcface", 64.0, M, dtype)
            assert ratio <= 1.0, f"M = {M!r}, cos_g = {float(cg)!r}: loss {got} against {float(L)}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_arcface_switch_float32_cosine_next_to_threshold(dtype):
    # A margin chosen as the double nearest arccos(v) for a float32 v: -cos M is then within
    # ~1e-17 of the float32 -v, closer than cos(pi - M) rounded to double can resolve.
    for v in (0.87758255, 0.5, 0.1, 0.99, 0.3333333):
        v32 = np.float32(v)
        M = float(mp.acos(mp.mpf(float(v32))))
        for cg in (-v32, np.nextafter(-v32, np.float32(1)), np.nextafter(-v32, np.float32(-1))):
            ratio, got, L = angular_loss_excess([float(cg), 0.2], 0, "arcface", 30.0, M, dtype)
            assert ratio <= 1.0, f"M = {M!r}, cos_g = {float(cg)!r}: loss {got} against {float(L)}"


def angular_rows(rng, regime, k=6):
    c = rng.uniform(-1, 1, k)
    if regime == "near-zero":       # the gold far ahead: a loss of 1e-8 .. 1e-60
        c[0] = rng.uniform(0.7, 0.999)
        c[1:] = rng.uniform(-1, -0.2, k - 1)
    elif regime == "near-one":      # cos_g next to 1, where dcos(theta + M)/dcos_g is large
        c[0] = 1 - 10.0 ** rng.uniform(-7, -2)
    return c


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["cosface", "arcface"])
@pytest.mark.parametrize("regime", ["normal", "near-zero", "near-one"])
def test_angular_meets_target(rng, dtype, loss, regime):
    for _ in range(6):
        c = angular_rows(rng, regime)
        S = float(rng.choice([1.0, 30.0, 64.0]))
        M = float(rng.choice([0.2, 0.35, 0.5, 1.0]))
        ratios, *_ = angular_excess(c.astype(dtype), 0, loss, S, M, dtype)
        assert_meets(ratios, f"{loss} S = {S}, M = {M}, cos = {c.astype(dtype).tolist()}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_arcface_near_threshold_meets_target(rng, dtype):
    # cos_g a little above and below -cos M (1e-6 .. 1e-3 away, so that the derivatives taken
    # for the conditioning stay on one branch).
    for _ in range(8):
        M = float(rng.uniform(0.1, 1.5))
        side = rng.choice([-1.0, 1.0])
        cg = -math.cos(M) + side * 10.0 ** rng.uniform(-6, -3)
        ratios, *_ = angular_excess(np.array([cg, 0.1, -0.3], dtype), 0, "arcface", 64.0, M, dtype)
        assert_meets(ratios, f"M = {M}, cos_g = {cg}")
