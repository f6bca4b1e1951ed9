"""L-Softmax with example weights near the largest finite number: no NaN from finite input.

The gradient's products G w and G^T x (G = weight (p - e_y)) add a positive part and a negative
one; with weights near FLT_MAX / DBL_MAX those partial sums overflowed to inf - inf = NaN in the
input type, although the true values are finite (or overflow, which the header stores as
+-inf). Expected values: d = 1 and k = 2, where theta is 0 or pi and everything is scalar, from
the definitions at 50 digits with mpmath on the exact float inputs:
  gold logit = |w_y| |x| psi(theta), psi(0) = 1, psi(pi) = -(2m - 1) (j = m - 1),
  the other logit x w_j; loss_i = weight_i (logsumexp(f_i) - f_iy); d/dx and d/dw by hand
  (psi is constant in theta's neighbourhood when d = 1).
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import losskit

mp.mp.dps = 50


def exact(x, w, gold, weight, m, reduction):
    """Loss (per example or reduced) and d_x, d_w at 50 digits, from the definitions."""
    n, k = len(x), len(w)
    x = [mp.mpf(float(v)) for v in x]
    w = [mp.mpf(float(v)) for v in w]
    weight = [mp.mpf(float(v)) for v in weight]
    psi_pi = -(2 * m - 1)
    losses, dx, dw = [], [mp.mpf(0)] * n, [mp.mpf(0)] * k
    counted = sum(weight) if reduction == "mean" else mp.mpf(1)
    for i in range(n):
        y = gold[i]
        f, dfdx, dfdw = [], [], []
        for j in range(k):
            if j != y or x[i] * w[j] == 0:
                f.append(x[i] * w[j]); dfdx.append(w[j]); dfdw.append(x[i])
            else:
                s = 1 if x[i] * w[j] > 0 else psi_pi
                f.append(s * abs(w[j]) * abs(x[i]))
                dfdx.append(s * abs(w[j]) * mp.sign(x[i]))
                dfdw.append(s * abs(x[i]) * mp.sign(w[j]))
        top = max(f)
        z = sum(mp.e ** (v - top) for v in f)
        losses.append(weight[i] * (top + mp.log(z) - f[y]))
        c = weight[i] / counted
        for j in range(k):
            g = c * (mp.e ** (f[j] - top) / z - (1 if j == y else 0))
            dx[i] += g * dfdx[j]
            dw[j] += g * dfdw[j]
    if reduction == "sum":
        losses = [sum(losses)]
    elif reduction == "mean":
        losses = [sum(losses) / counted]
    return losses, dx, dw


def check(got, want, dtype, what):
    """Each value: +-inf exactly where the true value exceeds the type's range, else within a few
    roundings of the true value (relative to the largest true value of its kind: the terms
    cancel)."""
    got = np.atleast_1d(np.asarray(got, dtype=np.float64))
    big = mp.mpf(float(np.finfo(dtype).max))
    scale = max([abs(v) for v in want if abs(v) <= big] + [mp.mpf(0)])
    u = float(np.finfo(dtype).eps)
    for t, (g, v) in enumerate(zip(got, want)):
        assert not math.isnan(g), f"{what}[{t}] is NaN (true value {mp.nstr(v, 8)})"
        if abs(v) > big * (1 + mp.mpf(u) / 2):
            assert g == (math.inf if v > 0 else -math.inf), f"{what}[{t}] = {g}, true {mp.nstr(v, 8)}"
        else:
            assert abs(mp.mpf(g) - v) <= 8 * u * (abs(v) + scale * mp.mpf(u)), \
                f"{what}[{t}] = {g!r}, true {mp.nstr(v, 17)}"


CASES = [
    # The fuzzer's case (float32, NONE, m = 2).
    (np.float32, [10, -4, -23.75, -16.25], [-9.5, -13], [1, 9.99999968e+37, 1.00000002e+20, 40], 2),
    # Both gold signs, the weights at FLT_MAX.
    (np.float32, [3, -2, 0.5, -7], [4, -1.5], [3.4028235e38, 3.4028235e38, 1, 2e38], 3),
    (np.float32, [1e-3, 5, -5, 2], [2, 3], [3e38, 1e30, 3e38, 0.5], 2),
    # float64 with weights near DBL_MAX (under MEAN the weighted sum 1e308 * loss overflowed
    # to +inf, though the mean is finite).
    (np.float64, [10, -4, -23.75, -16.25], [-9.5, -13], [1, 1e308, 1e300, 40], 2),
    (np.float64, [3, -2, 0.5, -7], [4, -1.5], [1.7976931348623157e308, 1.5e308, 1, 1e308], 3),
]


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_huge_weights_no_nan(case, reduction):
    dtype, x, w, weight, m = CASES[case]
    gold = [0] * len(x)
    x_a = np.array(x, dtype=dtype).reshape(-1, 1)
    w_a = np.array(w, dtype=dtype).reshape(-1, 1)
    wt = np.array(weight, dtype=dtype)
    if reduction == "mean" and not math.isfinite(sum(float(v) for v in wt)):
        # The header: a MEAN whose summed weight is not finite is LK_ERR_DOMAIN.
        with pytest.raises(losskit.LossKitError, match="weight") as info:
            losskit.lsoftmax(x_a, w_a, gold, margin=m, weight=wt, reduction=reduction)
        assert info.value.name == "LK_ERR_DOMAIN"
        return
    r = losskit.lsoftmax(x_a, w_a, gold, margin=m, weight=wt, reduction=reduction)
    losses, dx, dw = exact(x_a[:, 0], w_a[:, 0], gold, wt, m, reduction)
    check(r.d_x[:, 0], dx, dtype, "d_x")
    check(r.d_w[:, 0], dw, dtype, "d_w")
    loss = np.atleast_1d(np.asarray(r.loss, dtype=np.float64))
    assert not np.isnan(loss).any(), f"loss {loss}"
    check(loss, losses, dtype, "loss")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m", [2, 4, 10])
@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_huge_weights_general_rows(dtype, m, reduction):
    """d = 3, k = 4 (the textbook and the chord forms), weights within a few powers of two of the
    largest finite number next to ordinary ones, against the 80-digit reference of
    test_trust_angular (lsoftmax_exact, the chain rule through arccos). Norm-wise per output:
    +-inf exactly where the true value overflows, else within 64 u of the largest finite true
    value of that output (the weights' rows dominate it; the point is no NaN and no wrong inf)."""
    from test_trust_angular import lsoftmax_exact

    rng = np.random.default_rng(m * 7 + (dtype == np.float64))
    n, d, k = 6, 3, 4
    x = (rng.normal(size=(n, d)) * 3).astype(dtype)
    w = (rng.normal(size=(k, d)) * 3).astype(dtype)
    x[1] = w[2] * dtype(0.5)  # theta = 0 exactly or nearly: the chord form at m = 10
    gold = np.array([0, 2, 1, 3, 2, 0])
    top = float(np.finfo(dtype).max)
    weight = np.array([top / 2, top, 1.0, top / 4, 0.75, top / 8], dtype=dtype)
    r = losskit.lsoftmax(x, w, gold, margin=m, weight=weight, reduction=reduction)
    X = [[mp.mpf(float(v)) for v in row] for row in x]
    W = [[mp.mpf(float(v)) for v in row] for row in w]
    dx, dw, losses = [], [[mp.mpf(0)] * d for _ in range(k)], []
    for i in range(n):
        L, gx, gw = lsoftmax_exact(X[i], W, int(gold[i]), m, 0)
        c = mp.mpf(float(weight[i]))
        losses.append(c * L)
        dx.append([c * v for v in gx])
        for j in range(k):
            for t in range(d):
                dw[j][t] += c * gw[j][t]
    big = mp.mpf(top)
    u = float(np.finfo(dtype).eps)

    def near(got, want, what):
        got = np.asarray(got, dtype=np.float64).ravel()
        want = [v for row in want for v in (row if isinstance(row, list) else [row])]
        scale = max([abs(v) for v in want if abs(v) <= big] + [mp.mpf(0)])
        for t, (g, v) in enumerate(zip(got, want)):
            assert not math.isnan(g), f"{what}[{t}] is NaN (true {mp.nstr(v, 8)})"
            if abs(v) > big * (1 + mp.mpf(u)):
                assert g == (math.inf if v > 0 else -math.inf), f"{what}[{t}] = {g}, true {mp.nstr(v, 8)}"
            elif abs(v) < big * (1 - mp.mpf(u)):
                assert abs(mp.mpf(g) - v) <= 64 * u * scale, f"{what}[{t}] = {g!r}, true {mp.nstr(v, 17)}"

    near(r.d_x, dx, "d_x")
    near(r.d_w, dw, "d_w")
    near(r.loss, losses if reduction == "none" else [mp.fsum(losses)], "loss")


def normwise(got, want, what):
    big = mp.mpf(float(np.finfo(np.float64).max))
    u = float(np.finfo(np.float64).eps)
    scale = max([abs(v) for v in want if abs(v) <= big] + [mp.mpf(0)])
    for t, (g, v) in enumerate(zip(np.asarray(got, dtype=np.float64), want)):
        assert not math.isnan(g), f"{what}[{t}] is NaN (true value {mp.nstr(v, 8)})"
        if abs(v) > big * (1 + mp.mpf(u) / 2):
            assert g == (math.inf if v > 0 else -math.inf), f"{what}[{t}] = {g}, true {mp.nstr(v, 8)}"
        else:
            assert abs(mp.mpf(g) - v) <= 16 * u * scale, f"{what}[{t}] = {g!r}, true {mp.nstr(v, 17)}"


@pytest.mark.parametrize("case", [(0, 2), (0, 3), (0, 4), (1, 2)])
def test_feature_norm_beyond_double(case):
    """Rows of x whose norm |x| exceeds DBL_MAX (two entries of 1.5e308) while the gold's logit
    |w_y| |x| psi and every gradient entry are finite: the gold terms beta |x| v (d_w) were formed
    as (beta |x|) first, which overflowed to inf (and to NaN times a zero gradient at k = 1).
    Expected values: lsoftmax_exact (80 digits, the chain rule through arccos); +-inf exactly
    where a true value overflows, else within 16 u of the largest finite true value of the same
    output (the textbook form's terms, m^2 times the result, cancel: the header's norm-wise
    accuracy of L-Softmax gradients)."""
    from test_trust_angular import lsoftmax_exact

    cases = [
        # k = 2: finite d_w entries that |x| beta alone exceeds.
        (np.array([[1.5e308, 1.5e308], [2.0, -23.75]]), np.array([[0.1, -0.09], [0.0, 0.0]]), [0, 0]),
        # k = 1 (the fuzzer's case): the loss and G are 0, and so are the gradients.
        (np.array([[-2.25, 1e308], [2.0, -23.75]]), np.array([[6.75, 6.5]]), [0, 0]),
    ]
    which, m = case
    for x, w, gold in cases[which:which + 1]:
        for reduction in ("none", "sum", "mean"):
            r = losskit.lsoftmax(x, w, gold, margin=m, reduction=reduction)
            X = [[mp.mpf(float(v)) for v in row] for row in x]
            W = [[mp.mpf(float(v)) for v in row] for row in w]
            c = mp.mpf(1) / 2 if reduction == "mean" else mp.mpf(1)
            dw = [[mp.mpf(0)] * 2 for _ in range(len(w))]
            losses, dx = [], []
            for i in range(2):
                L, gx, gw = lsoftmax_exact(X[i], W, gold[i], m, 0)
                losses.append(L)
                dx.append([c * v for v in gx])
                for j in range(len(w)):
                    for t in range(2):
                        dw[j][t] += c * gw[j][t]
            normwise(r.d_w.ravel(), [v for row in dw for v in row], f"d_w (k={len(w)}, {reduction})")
            normwise(r.d_x.ravel(), [v for row in dx for v in row], f"d_x (k={len(w)}, {reduction})")
            want = losses if reduction == "none" else [mp.fsum(losses) * c]
            check(r.loss, want, np.float64, f"loss (k={len(w)}, {reduction})")


@pytest.mark.parametrize("dtype, tiny, huge", [(np.float64, 1e-310, 1e308), (np.float32, 1e-40, 3e38)])
def test_huge_weight_over_tiny_class_rows(dtype, tiny, huge):
    """A weight near the largest finite number on a row whose class rows are subnormal (the
    fuzzer's case: d = 1, every w_j = 1e-310, x = 15.75, weight 1e308, m = 2). The terms of d_x
    are about weight * |w| (finite), but G' = weight (p - e_y) times the gold's product share
    (m^2 = 4 at theta = 0) and the gold's gradient times beta (-3) exceeded the range before the
    tiny norm scaled them down: inf - inf = NaN in d_x on success. Expected: `exact` (50 digits);
    d_x is 0 in exact arithmetic (the logits are equal and the terms cancel), so within a few
    roundings of the terms' size weight |w| (and the subnormal spacing); d_w overflows to +-inf."""
    x = np.array([[tiny], [tiny], [15.75]], dtype=dtype)
    w = np.full((4, 1), tiny, dtype=dtype)
    gold = [0, 2, 1]
    weight = np.array([1, 1, huge], dtype=dtype)
    r = losskit.lsoftmax(x, w, gold, weight=weight, margin=2, reduction="none")
    losses, dx, dw = exact(x[:, 0], w[:, 0], gold, weight, 2, "none")
    u = float(np.finfo(dtype).eps)
    spacing = float(np.finfo(dtype).smallest_subnormal)
    for i in range(3):
        terms = mp.mpf(float(weight[i])) * 4 * abs(mp.mpf(float(w[0, 0])))  # |G'_y| |w_y| bounds each
        g = float(r.d_x[i, 0])
        assert not math.isnan(g), f"d_x[{i}] is NaN (true value {mp.nstr(dx[i], 8)})"
        assert abs(mp.mpf(g) - dx[i]) <= 8 * u * terms + 8 * spacing, \
            f"d_x[{i}] = {g!r}, true {mp.nstr(dx[i], 17)}, terms {mp.nstr(terms, 3)}"
    check(r.d_w[:, 0], dw, dtype, "d_w")
    check(r.loss, losses, dtype, "loss")
