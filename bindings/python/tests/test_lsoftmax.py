"""L-Softmax (lk_lsoftmax_f32/_f64 through losskit.lsoftmax) against an independent NumPy
reference written here in float64.

The reference takes the paper's route, which the library avoids: theta = arccos(f_y / (|w_y||x|)),
j = floor(theta m / pi) clipped to [0, m - 1], psi = (-1)^j cos(m theta) - 2j, and for the
gradient dpsi/dcos = (-1)^j m sin(m theta) / sin(theta) (the library measures theta from the
chords between the unit vectors, with atan2, and forms the gradient around the shorter chord). Expected gradients are finite differences of the reference, or the
reference's own analytic gradient (itself checked against finite differences here).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import losskit
from reference import reduction_factors

REDUCTIONS = ("none", "sum", "mean")
LAMBDAS = (0.0, 1.0, 100.0)
EPS32 = float(np.finfo(np.float32).eps)


# ------------------------------------------------------------------------------------------
# Reference (float64)
# ------------------------------------------------------------------------------------------

def psi_ref(theta, m):
    theta = np.asarray(theta, dtype=np.float64)
    j = np.clip(np.floor(theta * m / np.pi), 0, m - 1)
    return (-1.0) ** j * np.cos(m * theta) - 2.0 * j


def dpsi_dcos_ref(theta, m):
    """d psi / d cos(theta) = (dpsi/dtheta) / (dcos/dtheta) = (-1)^j m sin(m theta) / sin theta
    (limits m at theta = 0 and (-1)^(m-1) m at pi)."""
    theta = np.asarray(theta, dtype=np.float64)
    j = np.clip(np.floor(theta * m / np.pi), 0, m - 1)
    st = np.sin(theta)
    safe = np.abs(st) > 1e-12
    ratio = np.where(safe, np.sin(m * theta) / np.where(safe, st, 1.0),
                     np.where(theta < 1.0, float(m), (-1.0) ** (m - 1) * m))
    return (-1.0) ** j * m * ratio




def ref_lsoftmax(x, w, gold, *, margin=2, lam=0.0, weight=None, reduction="mean",
                 ignore_label=-100, grad=True):
    """(loss, d_x, d_w) in float64; d_x, d_w from the analytic gradient derived by hand:
    with c = f_y / (|x||w_y|), Psi(c) = psi(arccos c) and Psi' = dpsi/dcos,
      d(|x||w_y| Psi(c))/dx = Psi' w_y + (Psi - c Psi') |w_y|/|x| x   (and symmetrically for w_y),
    so the gold adds G_iy [(a - 1) w_y + b |w_y|/|x| x] to the plain G w, with
    a = (lam + Psi')/(1 + lam), b = (Psi - c Psi')/(1 + lam)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    m = margin
    n, _ = x.shape
    k = w.shape[0]
    fac = reduction_factors(gold, weight, reduction, ignore_label)
    f = x @ w.T
    per = np.zeros(n)
    G = np.zeros((n, k))
    extra_x = np.zeros_like(x)
    extra_w = np.zeros_like(w)
    for i in range(n):
        y = gold[i]
        if y == ignore_label or (weight is not None and weight[i] == 0.0):
            continue  # ignored and zero-weight rows: loss 0, gradient 0
        fy = f[i, y]
        nx, nw = np.linalg.norm(x[i]), np.linalg.norm(w[y])
        if nx == 0.0 or nw == 0.0:
            ft, a, b, c = fy, 1.0, 0.0, 0.0
        else:
            c = float(np.clip(fy / (nx * nw), -1.0, 1.0))
            theta = np.arccos(c)
            ps = float(psi_ref(theta, m))
            dps = float(dpsi_dcos_ref(theta, m))
            ft = (lam * fy + nx * nw * ps) / (1.0 + lam)
            a = (lam + dps) / (1.0 + lam)
            b = (ps - c * dps) / (1.0 + lam)
        z = f[i].copy()
        z[y] = ft
        top = z.max()
        e = np.exp(z - top)
        per[i] = top + np.log(e.sum()) - ft
        p = e / e.sum()
        p[y] -= 1.0
        G[i] = fac[i] * p
        if b != 0.0 or a != 1.0:
            extra_x[i] = G[i, y] * ((a - 1.0) * w[y] + b * nw / nx * x[i])
            extra_w[y] += G[i, y] * ((a - 1.0) * x[i] + b * nx / nw * w[y])
    per = per * fac
    loss = per if reduction == "none" else float(per.sum())
    if not grad:
        return loss
    return loss, G @ w + extra_x, G.T @ x + extra_w


def total(loss):
    return float(np.sum(loss))


def fd_ref(x, w, gold, h=1e-6, **kw):
    """Central differences of the reference's total output w.r.t. every entry of x and w."""
    f = lambda xx, ww: total(ref_lsoftmax(xx, ww, gold, grad=False, **kw))  # noqa: E731
    dx = np.zeros_like(x)
    dw = np.zeros_like(w)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        dx[idx] = (f(up, w) - f(down, w)) / (2 * h)
    for idx in np.ndindex(w.shape):
        up, down = w.copy(), w.copy()
        up[idx] += h
        down[idx] -= h
        dw[idx] = (f(x, up) - f(x, down)) / (2 * h)
    return dx, dw


def angled_batch(rng, n, d, k, m, *, x_norm=(0.5, 2.0), w_scale=1.0):
    """x rows at angles theta uniform in (0.05, pi - 0.05) from their gold's w row (so every
    piece j of psi is visited), at least 1e-3 from every kink j pi / m; random norms."""
    w = rng.normal(0.0, w_scale, size=(k, d))
    gold = rng.integers(0, k, size=n).astype(np.int32)
    kinks = np.arange(1, m) * np.pi / m
    x = np.empty((n, d))
    for i in range(n):
        while True:
            theta = rng.uniform(0.05, np.pi - 0.05)
            if kinks.size == 0 or np.min(np.abs(kinks - theta)) > 1e-3:
                break
        u = w[gold[i]] / np.linalg.norm(w[gold[i]])
        v = rng.normal(size=d)
        v -= (v @ u) * u
        v /= np.linalg.norm(v)
        x[i] = rng.uniform(*x_norm) * (math.cos(theta) * u + math.sin(theta) * v)
    return x, w, gold


def assert_close_to(got, want, scale, rel, what):
    err = np.abs(np.asarray(got, np.float64) - want)
    bound = rel * scale + rel * np.abs(want)
    bad = np.argwhere(~(err <= bound))
    assert bad.size == 0, (
        f"{what}: {len(bad)} entries differ, first at {tuple(bad[0])}: got "
        f"{np.asarray(got)[tuple(bad[0])]!r}, want {np.asarray(want)[tuple(bad[0])]!r}")


# ------------------------------------------------------------------------------------------
# The reference checked on its own
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", range(1, 9))
def test_reference_psi_is_continuous_and_decreasing(m):
    t = np.linspace(0.0, np.pi, 20001)
    p = psi_ref(t, m)
    assert p[0] == 1.0
    assert p[-1] == pytest.approx(1 - 2 * m, abs=1e-12)
    step = np.diff(p)
    assert np.all(step < 0), "psi must be strictly decreasing"
    # continuous: |dpsi/dtheta| = m |sin(m theta)| <= m, so no step exceeds m dt
    assert np.max(-step) <= m * (t[1] - t[0]) * (1 + 1e-9)
    # at the piece boundaries j pi/m both pieces agree
    for j in range(1, m):
        tb = j * np.pi / m
        left = (-1.0) ** (j - 1) * math.cos(m * tb) - 2 * (j - 1)
        right = (-1.0) ** j * math.cos(m * tb) - 2 * j
        assert left == pytest.approx(right, abs=1e-12)
    # m = 1 is cos theta
    if m == 1:
        np.testing.assert_allclose(p, np.cos(t), atol=1e-15)
    # dpsi/dcos matches a difference quotient of psi(arccos c)
    c = np.cos(t[100:-100:97])
    h = 1e-6
    fd = (psi_ref(np.arccos(c + h), m) - psi_ref(np.arccos(c - h), m)) / (2 * h)
    np.testing.assert_allclose(dpsi_dcos_ref(np.arccos(c), m), fd, rtol=1e-5, atol=1e-5 * m * m)


@pytest.mark.parametrize("m", (1, 2, 3, 4))
def test_reference_gradient_is_finite_difference_of_its_value(m, rng):
    x, w, gold = angled_batch(rng, 4, 3, 3, m)
    weight = rng.uniform(0.5, 2.0, size=4)
    _, dx, dw = ref_lsoftmax(x, w, gold, margin=m, lam=0.5, weight=weight, reduction="sum")
    fx, fw = fd_ref(x, w, gold, margin=m, lam=0.5, weight=weight, reduction="sum")
    np.testing.assert_allclose(dx, fx, rtol=1e-6, atol=1e-7 * m * m)
    np.testing.assert_allclose(dw, fw, rtol=1e-6, atol=1e-7 * m * m)


# ------------------------------------------------------------------------------------------
# m = 1 is the log loss on x @ w.T
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lam", LAMBDAS)
def test_margin_one_is_log_loss(lam, reduction, rng):
    n, d, k = 9, 6, 5
    x = rng.normal(size=(n, d))
    w = rng.normal(size=(k, d))
    gold = rng.integers(0, k, size=n).astype(np.int32)
    gold[4] = -100
    weight = rng.uniform(0.5, 2.0, size=n)
    got = losskit.lsoftmax(x, w, gold, margin=1, lam=lam, weight=weight, reduction=reduction)
    log = losskit.dense(x @ w.T, gold, loss="log", weight=weight, reduction=reduction)
    G = log.grad
    # the two differ only by the rounding of the dot products (and of |x||w| cos theta)
    scale = np.max(np.abs(x)) * np.max(np.abs(w)) * d * 2
    np.testing.assert_allclose(got.loss, log.loss, rtol=1e-13, atol=1e-13 * scale * n)
    np.testing.assert_allclose(got.d_x, G @ w, rtol=1e-12, atol=1e-13 * scale)
    np.testing.assert_allclose(got.d_w, G.T @ x, rtol=1e-12, atol=1e-13 * scale * n)
    assert np.all(got.d_x[4] == 0.0)


# ------------------------------------------------------------------------------------------
# Finite differences of the reference against the library's gradients
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("lam", LAMBDAS)
@pytest.mark.parametrize("m", (1, 2, 3, 4))
def test_gradients_are_finite_differences_of_reference(m, lam, reduction, rng):
    n, d, k = 6, 4, 3
    x, w, gold = angled_batch(rng, n, d, k, m)
    weight = rng.uniform(0.5, 2.0, size=n)
    gold[1] = -100          # ignored
    weight[2] = 0.0         # zero weight
    kw = dict(margin=m, lam=lam, weight=weight, reduction=reduction)
    got = losskit.lsoftmax(x, w, gold, **kw)
    want = ref_lsoftmax(x, w, gold, **kw)
    vscale = (2 * m) * 2.0 * np.max(np.linalg.norm(w, axis=1)) + math.log(k)
    np.testing.assert_allclose(got.loss, want[0], rtol=1e-12, atol=1e-13 * vscale * 2 * n)
    if reduction == "none":
        assert got.loss[1] == 0.0 and got.loss[2] == 0.0
    assert np.all(got.d_x[1] == 0.0) and np.all(got.d_x[2] == 0.0)
    fx, fw = fd_ref(x, w, gold, **kw)
    # gradient scale: |Psi'| <= m^2, norms O(2), weights <= 2 (FD error observed ~1e-9)
    gscale = (1 + m * m) * 2.0 * max(np.max(np.abs(x)), np.max(np.abs(w))) * 2.0
    assert_close_to(got.d_x, fx, gscale, 1e-6, "d_x")
    assert_close_to(got.d_w, fw, gscale * n, 1e-6, "d_w")
    # and the analytic reference agrees with both
    assert_close_to(got.d_x, want[1], gscale, 1e-12, "d_x vs analytic")
    assert_close_to(got.d_w, want[2], gscale * n, 1e-12, "d_w vs analytic")


def test_custom_ignore_label_and_mean_over_zero_weight(rng):
    x, w, gold = angled_batch(rng, 5, 3, 4, 3)
    gold[[0, 3]] = 2**31 - 1
    got = losskit.lsoftmax(x, w, gold, margin=3, ignore_label=2**31 - 1, reduction="none")
    want = ref_lsoftmax(x, w, gold, margin=3, ignore_label=2**31 - 1, reduction="none")
    np.testing.assert_allclose(got.loss, want[0], rtol=1e-12, atol=1e-12)
    assert got.loss[0] == 0.0 and got.loss[3] == 0.0
    np.testing.assert_allclose(got.d_w, want[2], rtol=1e-10, atol=1e-11)
    # mean over zero weight: 0 with a zero gradient, never NaN
    z = losskit.lsoftmax(x, w, gold, margin=3, weight=np.zeros(5), reduction="mean")
    assert z.loss == 0.0 and np.all(z.d_x == 0.0) and np.all(z.d_w == 0.0)


def test_with_grad_false_and_empty_batch(rng):
    x, w, gold = angled_batch(rng, 4, 3, 2, 2)
    a = losskit.lsoftmax(x, w, gold, with_grad=False)
    b = losskit.lsoftmax(x, w, gold)
    assert a.d_x is None and a.d_w is None
    assert a.loss == b.loss
    for reduction in ("sum", "mean"):
        e = losskit.lsoftmax(np.zeros((0, 3)), w, np.zeros(0, dtype=np.int32),
                             reduction=reduction)
        assert e.loss == 0.0
        assert e.d_x.shape == (0, 3)
        np.testing.assert_array_equal(e.d_w, np.zeros((2, 3)))


# ------------------------------------------------------------------------------------------
# psi through the library: d = 2, w_0 = (1, 0), w_1 = 0, x = (cos t, sin t), lam = 0.
# Then f~_0 = psi(t), f_1 = 0 and the loss is log(1 + exp(-psi(t))).
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("m", range(1, 9))
def test_psi_sweep_through_library(m):
    near = np.array([1e-12, 1e-9, 1e-6, 1e-3])
    t = np.unique(np.concatenate([[0.0], near, np.linspace(0.0, np.pi, 361),
                                  np.arange(1, m) * np.pi / m,   # the piece boundaries
                                  np.arange(1, m) * np.pi / m + 1e-7,
                                  np.arange(1, m) * np.pi / m - 1e-7,
                                  np.pi - near, [np.pi]]))
    x = np.stack([np.cos(t), np.sin(t)], axis=1)
    w = np.array([[1.0, 0.0], [0.0, 0.0]])
    gold = np.zeros(len(t), dtype=np.int32)
    got = losskit.lsoftmax(x, w, gold, margin=m, lam=0.0, reduction="none")
    # the reference on exactly these inputs
    want = ref_lsoftmax(x, w, gold, margin=m, reduction="none", grad=False)
    # the closed form in t itself
    closed = np.logaddexp(0.0, -psi_ref(t, m))
    np.testing.assert_allclose(want, closed, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.loss, want, rtol=1e-13, atol=1e-13 * m * m)
    # psi recovered from the library: psi(0) = 1, psi(pi) = 1 - 2m, non-increasing, and
    # continuous (|dpsi/dt| <= m)
    psi = -np.log(np.expm1(got.loss))
    assert psi[0] == pytest.approx(1.0, abs=1e-12)
    assert psi[-1] == pytest.approx(1 - 2 * m, abs=1e-11)
    step = np.diff(psi)
    assert np.all(step <= 1e-12)
    assert np.all(-step <= m * np.diff(t) * (1 + 1e-6) + 1e-12)


@pytest.mark.parametrize("m", (2, 3, 5))
def test_gold_logit_scales_with_the_norms(m, rng):
    # |w_y| |x| psi(theta): scale x by r and w_0 by q at fixed angles
    t = rng.uniform(0.1, np.pi - 0.1, size=7)
    r = rng.uniform(0.2, 3.0, size=7)
    q = 1.7
    x = r[:, None] * np.stack([np.cos(t), np.sin(t)], axis=1)
    w = np.array([[q, 0.0], [0.0, 0.0]])
    got = losskit.lsoftmax(x, w, np.zeros(7, dtype=np.int32), margin=m, reduction="none")
    np.testing.assert_allclose(got.loss, np.logaddexp(0.0, -r * q * psi_ref(t, m)),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("m", (1, 2, 3, 4, 5))
def test_parallel_and_antiparallel_rows(m, rng):
    # theta = 0 and theta = pi (cos theta = +-1, the clamp's edge): psi = 1 and 1 - 2m, and the
    # gradient takes dpsi/dcos at its limits m^2 and m^2 (T_m'(+-1) = (+-1)^(m-1) m^2, times
    # (-1)^j with j = m - 1 at pi).
    w = rng.normal(size=(3, 4))
    x = np.stack([2.0 * w[0], -0.5 * w[1], rng.normal(size=4)])
    gold = np.array([0, 1, 2], dtype=np.int32)
    for lam in (0.0, 1.0):
        got = losskit.lsoftmax(x, w, gold, margin=m, lam=lam, reduction="sum")
        want = ref_lsoftmax(x, w, gold, margin=m, lam=lam, reduction="sum")
        assert np.isfinite(got.loss)
        np.testing.assert_allclose(got.loss, want[0], rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(got.d_x, want[1], rtol=1e-9, atol=1e-12 * m * m)
        np.testing.assert_allclose(got.d_w, want[2], rtol=1e-9, atol=1e-12 * m * m)


# ------------------------------------------------------------------------------------------
# Zero vectors: the angle is undefined, the gold keeps its plain logit f_y = 0
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", (np.float64, np.float32))
@pytest.mark.parametrize("lam", (0.0, 1.0))
@pytest.mark.parametrize("m", (2, 3))
def test_zero_vectors_fall_back_to_plain_logit(m, lam, dtype, rng):
    d, k = 5, 3
    x = rng.normal(size=(4, d))
    x[0] = 0.0
    x[3] = 0.0
    w = rng.normal(size=(k, d))
    w[1] = 0.0
    gold = np.array([2, 1, 1, 0], dtype=np.int32)   # every row has |x| = 0 or |w_y| = 0
    x, w = x.astype(dtype), w.astype(dtype)
    got = losskit.lsoftmax(x, w, gold, margin=m, lam=lam, reduction="sum")
    assert np.isfinite(got.loss)
    assert np.all(np.isfinite(got.d_x)) and np.all(np.isfinite(got.d_w))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    log = losskit.dense(x64 @ w64.T, gold, loss="log", reduction="sum")
    G = log.grad
    tol = 1e-13 if dtype == np.float64 else 32 * EPS32 * np.sqrt(d)
    scale = np.max(np.abs(x64)) * np.max(np.abs(w64)) * d
    np.testing.assert_allclose(got.loss, log.loss, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(got.d_x, G @ w64, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(got.d_w, G.T @ x64, rtol=tol, atol=tol * scale * 4)
    # rows 0 and 3 have x = 0: all logits 0, loss log k each
    none = losskit.lsoftmax(x, w, gold, margin=m, lam=lam, reduction="none")
    np.testing.assert_allclose(none.loss[[0, 3]], math.log(k), rtol=tol)


def test_zero_vectors_mixed_with_regular_rows(rng):
    x, w, gold = angled_batch(rng, 6, 4, 3, 3)
    x[1] = 0.0
    w[2] = 0.0
    gold[4] = 2
    for reduction in REDUCTIONS:
        got = losskit.lsoftmax(x, w, gold, margin=3, lam=0.2, reduction=reduction)
        want = ref_lsoftmax(x, w, gold, margin=3, lam=0.2, reduction=reduction)
        np.testing.assert_allclose(got.loss, want[0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(got.d_x, want[1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.d_w, want[2], rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Ragged shapes of the blocked products; float32; threads
# ------------------------------------------------------------------------------------------

def big_case(rng, n=37, d=70, k=300, m=3):
    x, w, gold = angled_batch(rng, n, d, k, m, x_norm=(2.0, 6.0), w_scale=1 / math.sqrt(d))
    weight = rng.uniform(0.5, 2.0, size=n)
    gold[[5, 20]] = -100
    weight[11] = 0.0
    return x, w, gold, weight


@pytest.mark.parametrize("lam", (0.0, 0.5))
@pytest.mark.parametrize("m", (2, 3))
def test_large_ragged_case_matches_reference(m, lam, rng):
    x, w, gold, weight = big_case(rng, m=m)
    kw = dict(margin=m, lam=lam, weight=weight, reduction="mean")
    got = losskit.lsoftmax(x, w, gold, **kw)
    want = ref_lsoftmax(x, w, gold, **kw)
    np.testing.assert_allclose(got.loss, want[0], rtol=1e-12)
    gscale = (1 + m * m) * np.max(np.abs(x)) * np.max(np.abs(w)) * math.sqrt(x.shape[1])
    assert_close_to(got.d_x, want[1], gscale, 1e-11, "d_x")
    assert_close_to(got.d_w, want[2], gscale, 1e-11, "d_w")
    assert np.all(got.d_x[[5, 11, 20]] == 0.0)
    # the analytic reference along random directions: central differences of the reference
    f = lambda xx, ww: ref_lsoftmax(xx, ww, gold, grad=False, **kw)  # noqa: E731
    h = 1e-6
    for _ in range(3):
        u = rng.normal(size=x.shape)
        v = rng.normal(size=w.shape)
        fd = (f(x + h * u, w + h * v) - f(x - h * u, w - h * v)) / (2 * h)
        lib = np.sum(got.d_x * u) + np.sum(got.d_w * v)
        assert lib == pytest.approx(fd, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("m", (1, 2, 4))
@pytest.mark.parametrize("lam", (0.0, 1.0))
def test_float32_agrees_with_float64(m, lam, rng):
    n, d, k = 23, 37, 19
    x, w, gold = angled_batch(rng, n, d, k, m, x_norm=(1.0, 3.0), w_scale=1 / math.sqrt(d))
    weight = rng.uniform(0.5, 2.0, size=n)
    gold[3] = -100
    x32, w32, wt32 = x.astype(np.float32), w.astype(np.float32), weight.astype(np.float32)
    kw = dict(margin=m, lam=lam, reduction="none")
    got = losskit.lsoftmax(x32, w32, gold, weight=wt32, **kw)
    assert got.loss.dtype == got.d_x.dtype == got.d_w.dtype == np.float32
    args64 = (x32.astype(np.float64), w32.astype(np.float64), gold)
    ref = losskit.lsoftmax(*args64, weight=wt32.astype(np.float64), **kw)
    want = ref_lsoftmax(*args64, weight=wt32.astype(np.float64), **kw)
    np.testing.assert_allclose(ref.loss, want[0], rtol=1e-12, atol=1e-12)
    # float32 dot products carry ~sqrt(d) ulps of |x||w|, which psi's slope (~m on the angle)
    # amplifies; the gradients are such errors of p times rows of w (d_x) or of x (d_w), and
    # weights <= 2. 4 sqrt(d) (1 + m) ulps (observed: under 1/4 of that).
    nxw = np.max(np.linalg.norm(x, axis=1)) * np.max(np.linalg.norm(w, axis=1))
    err = 4 * EPS32 * math.sqrt(d) * (1 + m)
    np.testing.assert_allclose(got.loss, ref.loss, rtol=err, atol=err * nxw * 2)
    np.testing.assert_allclose(got.d_x, ref.d_x, rtol=err,
                               atol=err * nxw * 2 * (1 + m) * np.max(np.abs(w)))
    np.testing.assert_allclose(got.d_w, ref.d_w, rtol=err,
                               atol=err * nxw * 2 * (1 + m) * np.max(np.abs(x)))


@pytest.mark.parametrize("dtype", (np.float64, np.float32))
def test_threads_bit_identical(dtype, rng):
    n, d, k = 64, 128, 512
    x = rng.normal(size=(n, d)).astype(dtype)
    w = (rng.normal(size=(k, d)) / math.sqrt(d)).astype(dtype)
    gold = rng.integers(0, k, size=n).astype(np.int32)
    weight = rng.uniform(0.5, 2.0, size=n).astype(dtype)
    gold[7] = -100
    for reduction in ("none", "mean"):
        kw = dict(margin=4, lam=0.3, weight=weight, reduction=reduction)
        one = losskit.lsoftmax(x, w, gold, threads=1, **kw)
        two = losskit.lsoftmax(x, w, gold, threads=2, **kw)
        every = losskit.lsoftmax(x, w, gold, threads=0, **kw)
        three = losskit.lsoftmax(x, w, gold, threads=3, **kw)
        for a, b, c, e in zip(one, two, every, three):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
            np.testing.assert_array_equal(np.asarray(a), np.asarray(c))
            np.testing.assert_array_equal(np.asarray(a), np.asarray(e))


def test_large_margin_value(rng):
    # m = 1000 (the largest allowed): the library's psi against cos(m arccos c)
    x, w, gold = angled_batch(rng, 5, 3, 4, 1000, x_norm=(0.01, 0.02), w_scale=0.01)
    got = losskit.lsoftmax(x, w, gold, margin=1000, reduction="none")
    want = ref_lsoftmax(x, w, gold, margin=1000, reduction="none", grad=False)
    np.testing.assert_allclose(got.loss, want, rtol=1e-9, atol=1e-10)


# ------------------------------------------------------------------------------------------
# NaN and errors
# ------------------------------------------------------------------------------------------

def test_nan_reaches_its_losses(rng):
    x, w, gold = angled_batch(rng, 4, 3, 3, 2)
    xn = x.copy()
    xn[1, 2] = np.nan
    got = losskit.lsoftmax(xn, w, gold, reduction="none")
    assert np.isnan(got.loss[1]) and np.all(np.isfinite(got.loss[[0, 2, 3]]))
    wn = w.copy()
    wn[0, 0] = np.nan
    assert np.all(np.isnan(losskit.lsoftmax(x, wn, gold, reduction="none").loss))
    assert np.isnan(losskit.lsoftmax(x, wn, gold, reduction="sum").loss)


def raises_lk(name, *args, **kw):
    with pytest.raises(losskit.LossKitError) as info:
        losskit.lsoftmax(*args, **kw)
    assert info.value.name == name, str(info.value)
    assert info.value.message
    return info.value


@pytest.mark.parametrize("dtype", (np.float64, np.float32))
def test_errors(dtype):
    x = np.array([[1.0, 0.5], [0.2, -0.3]], dtype=dtype)
    w = np.array([[0.4, 0.1], [-0.2, 0.7], [0.3, 0.3]], dtype=dtype)
    gold = np.array([0, 2], dtype=np.int32)
    for options in (dict(margin=0), dict(margin=1001), dict(margin=-3), dict(lam=-1.0),
                    dict(lam=math.nan), dict(lam=math.inf), dict(threads=-1)):
        raises_lk("LK_ERR_OPTION", x, w, gold, **options)
    losskit.lsoftmax(x, w, gold, margin=1000)  # the bound itself is allowed
    raises_lk("LK_ERR_LABEL", x, w, np.array([0, 3]))
    raises_lk("LK_ERR_LABEL", x, w, np.array([-1, 0]))
    for bad in (np.inf, -np.inf):
        xb = x.copy()
        xb[1, 0] = bad
        raises_lk("LK_ERR_DOMAIN", xb, w, gold)
        wb = w.copy()
        wb[2, 1] = bad
        raises_lk("LK_ERR_DOMAIN", x, wb, gold)
    raises_lk("LK_ERR_DOMAIN", x, w, gold, weight=np.array([1.0, -0.5]))
    raises_lk("LK_ERR_DOMAIN", x, w, gold, weight=np.array([np.inf, 1.0]))
    # a row of x that is not read (ignored) may hold anything
    xb = x.copy()
    xb[1, 0] = np.inf
    got = losskit.lsoftmax(xb, w, np.array([0, -100]))
    assert np.isfinite(got.loss) and np.all(got.d_x[1] == 0.0)
    # a logit that overflows the input type
    big = 1e200 if dtype == np.float64 else 1e20
    raises_lk("LK_ERR_DOMAIN", np.array([[big, 0.0]], dtype=dtype),
              np.array([[big, 0.0], [0.0, 1.0]], dtype=dtype), np.array([1]))


def test_zero_weight_row_gold_is_not_validated(rng):
    x, w, gold = angled_batch(rng, 3, 2, 2, 2)
    gold[1] = 99
    got = losskit.lsoftmax(x, w, gold, weight=np.array([1.0, 0.0, 1.0]), reduction="none")
    assert got.loss[1] == 0.0 and np.all(got.d_x[1] == 0.0)


def test_gold_logit_overflow():
    # x = (1e154, 0), w_0 = (0, 1e154), w_1 = (0, 1): f = (0, 0), |x||w_0| = 1e308, theta = pi/2.
    x = np.array([[1e154, 0.0]])
    w = np.array([[0.0, 1e154], [0.0, 1.0]])
    # m = 2: psi(pi/2) = -cos(pi) - 2 = -1: f~_0 = -1e308 (finite), loss lse(-1e308, 0) + 1e308
    got = losskit.lsoftmax(x, w, np.array([0]), margin=2, reduction="sum")
    assert got.loss == pytest.approx(1e308, rel=1e-14)
    # m = 4: psi(pi/2) = cos(2 pi) - 4 = -3: f~_0 = -3e308 overflows double
    raises_lk("LK_ERR_DOMAIN", x, w, np.array([0]), margin=4, lam=0.0)
    # float32: |x||w_0| = 1e40 (norms in double); psi = -1 (m = 2): -1e40 overflows float...
    x32, w32 = np.array([[1e20, 0.0]], np.float32), np.array([[0.0, 1e20], [0.0, 1.0]], np.float32)
    raises_lk("LK_ERR_DOMAIN", x32, w32, np.array([0]), margin=2, lam=0.0)
    # ... but with lam = 1e30 the gold's logit is -1e40 / (1 + 1e30) = -1e10: finite, loss 1e10
    got = losskit.lsoftmax(x32, w32, np.array([0]), margin=2, lam=1e30, reduction="sum")
    assert float(got.loss) == pytest.approx(1e10, rel=1e-6)
    assert np.all(np.isfinite(got.d_x)) and np.all(np.isfinite(got.d_w))


def test_gold_logit_finite_despite_large_norm_product_f64():
    # |x||w_y| psi overflows double although the gold's logit does not: no LK_ERR_DOMAIN.
    # m = 4, theta = pi/2: psi = -3, |x||w_0| = 1e308, lam = 1e300:
    # f~_0 = (1e300 * 0 + 1e308 * (-3)) / (1 + 1e300) = -3e8, so loss = lse(-3e8, 0) + 3e8 = 3e8.
    x = np.array([[1e154, 0.0]])
    w = np.array([[0.0, 1e154], [0.0, 1.0]])
    got = losskit.lsoftmax(x, w, np.array([0]), margin=4, lam=1e300, reduction="sum")
    assert got.loss == pytest.approx(3e8, rel=1e-12)
    assert np.all(np.isfinite(got.d_x)) and np.all(np.isfinite(got.d_w))


def test_shape_errors_are_value_errors():
    x = np.ones((2, 3))
    w = np.ones((4, 3))
    gold = np.array([0, 1])
    for args, kw in [((np.ones(3), w, gold), {}),
                     ((x, np.ones((4, 2)), gold), {}),
                     ((x, np.ones(3), gold), {}),
                     ((x, w, np.array([0, 1, 2])), {}),
                     ((x, w, np.array([0.0, 1.5])), {}),
                     ((x, w, gold), dict(weight=np.ones(3))),
                     ((x, w, gold), dict(margin=2.5)),
                     ((x, w, gold), dict(reduction="avg"))]:
        with pytest.raises(ValueError):
            losskit.lsoftmax(*args, **kw)
