"""Soft-capping and z-loss on dense rows (lk_options softcap, z_loss), against exact arithmetic.

Per example, with s' = c tanh(s / c) (or s' = s without a cap), the loss is L(s') +
lambda lse(s')^2 for any loss L of the catalogue. Expected values: the same definitions at 40
digits with mpmath on the exact float inputs, the gradient by mpmath's own differentiation of
that function (mp.diff, at 40 digits: exact to far below the float's rounding); nothing of
LossKit's is used. Peers (PyTorch's cross_entropy over a tanh cap plus a z-loss by autograd) are
in test_peers.py.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import losskit



def _lse(v):
    live = [x for x in v if x != -mp.inf]
    top = max(live)
    return top + mp.log(mp.fsum(mp.e ** (x - top) for x in live))


def exact_loss(loss, s, gold, *, softcap, z_loss, alpha=1.0):
    """The example's loss at 40 digits: s as mpf (masked: -inf), 0/1 costs scaled by alpha."""
    c = None if softcap is None else mp.mpf(softcap)
    v = [x if x == -mp.inf or c is None else c * mp.tanh(x / c) for x in s]
    k = len(v)
    cost = [mp.mpf(0) if j == gold else mp.mpf(alpha) for j in range(k)]
    live = [j for j in range(k) if v[j] != -mp.inf]
    up = [v[j] + cost[j] if v[j] != -mp.inf else -mp.inf for j in range(k)]
    down = [v[j] - cost[j] if v[j] != -mp.inf else -mp.inf for j in range(k)]
    if loss == "log":
        base = _lse(v) - v[gold]
    elif loss == "perceptron":
        base = max(v[j] for j in live) - v[gold]
    elif loss == "hinge":
        base = max(up[j] for j in live) - v[gold]
    elif loss == "softmax_margin":
        base = _lse(up) - v[gold]
    elif loss == "ramp":
        base = max(up[j] for j in live) - max(down[j] for j in live)
    elif loss == "soft_ramp":
        base = _lse(up) - _lse(down)
    elif loss == "risk":
        z = _lse(v)
        base = mp.fsum(mp.e ** (v[j] - z) * cost[j] for j in live)
    elif loss == "squared":
        K = len(live)
        base = ((v[gold] - 1) ** 2 + mp.fsum(v[j] ** 2 for j in live if j != gold)) / K
    elif loss == "squentropy":
        K = len(live)
        base = _lse(v) - v[gold] + mp.fsum(v[j] ** 2 for j in live if j != gold) / (K - 1)
    else:
        raise ValueError(loss)
    return base + mp.mpf(z_loss) * _lse(v) ** 2


def exact_row(loss, row, gold, **kw):
    """(loss, gradient) of one row at 40 digits; a masked entry's gradient is 0. (Within
    mp.workdps: mpmath's precision is global, and other test modules set their own.)"""
    with mp.workdps(40):
        return _exact_row(loss, row, gold, **kw)


def _exact_row(loss, row, gold, **kw):
    s = [mp.mpf(float(x)) if math.isfinite(x) else -mp.inf for x in row]
    value = exact_loss(loss, s, gold, **kw)
    grad = []
    for j in range(len(s)):
        if s[j] == -mp.inf:
            grad.append(mp.mpf(0))
            continue

        def f(t, j=j):
            moved = list(s)
            moved[j] = t
            return exact_loss(loss, moved, gold, **kw)

        grad.append(mp.diff(f, s[j]))
    return value, grad


LOSSES = ["log", "perceptron", "hinge", "softmax_margin", "ramp", "soft_ramp", "risk", "squared",
          "squentropy"]


def rows(dtype):
    """Rows with no ties: ordinary scores, one masked class, and scores far beyond the cap (the
    cap's slope 4 exp(-2|s|/c), which 1 - tanh^2 would lose entirely)."""
    rng = np.random.default_rng(7)
    s = rng.normal(0, 4, size=(6, 5))
    s[1, 3] = -np.inf
    s[2] = [40.5, -3.25, 1.5, 60.25, -75.0]  # |s| / c up to 15 at c = 5
    s[3] = [0.001, -0.002, 0.0005, 0.003, -0.0015]  # tanh's small-argument branch
    s[4] = [2.4, 2.6, -2.45, 2.55, -2.7]  # |s| / c around 1/2: both branches of the cap
    return s.astype(dtype), np.array([0, 2, 3, 1, 4, 2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("softcap, z_loss", [(5.0, 0.0), (None, 0.3), (5.0, 0.3), (0.75, 1e-4)])
@pytest.mark.parametrize("loss", LOSSES)
def test_matches_exact(loss, softcap, z_loss, dtype):
    """Each example's loss within 8u of |L| + sum |dL/ds| |s| (its conditioning), each gradient
    entry within 8u of the row's largest exact entry plus its own size; u of the input type.
    (The digits of a saturated cap's slope, far below the row's largest entry:
    test_saturated_slope_keeps_its_digits.)"""
    s, g = rows(dtype)
    r = losskit.dense(s, g, loss=loss, softcap=softcap, z_loss=z_loss, reduction="none")
    u = float(np.finfo(dtype).eps)
    for i in range(len(g)):
        want, grad = exact_row(loss, s[i], int(g[i]), softcap=softcap, z_loss=z_loss)
        scale = abs(want) + mp.fsum(abs(d * mp.mpf(float(x))) for d, x in zip(grad, s[i]) if math.isfinite(x))
        assert abs(mp.mpf(float(r.loss[i])) - want) <= 8 * u * scale, \
            f"row {i}: loss {r.loss[i]!r}, exact {mp.nstr(want, 17)}"
        top = max(abs(d) for d in grad)
        for j, d in enumerate(grad):
            got = mp.mpf(float(r.grad[i, j]))
            # + 1e-30: mp.diff's own error at 40 digits, where the exact entry is 0; soft ramp,
            # a difference of two softmaxes: + 4u absolute (the header's bound for it; the cap's
            # slope is at most 1)
            absolute = mp.mpf(10) ** -30 + (4 * u if loss == "soft_ramp" else 0)
            assert abs(got - d) <= 8 * u * (top + abs(d)) + absolute, \
                f"row {i}, class {j}: grad {r.grad[i, j]!r}, exact {mp.nstr(d, 17)}"


def test_saturated_slope_keeps_its_digits():
    """s / c = 15: ds'/ds = 4 exp(-30) / (1 + exp(-30))^2 = 3.7e-13, which 1 - tanh^2 formed from
    a rounded tanh (1 - 2^-53 or 1) would give as 0 or 2.2e-16: the entry's relative error stays
    at a few u in float64."""
    s = np.array([[75.0, 0.0, -1.0]])
    r = losskit.dense(s, [1], loss="log", softcap=5.0, reduction="sum")
    want, grad = exact_row("log", s[0], 1, softcap=5.0, z_loss=0.0)
    assert 1e-13 < grad[0] < 1e-12
    assert abs(mp.mpf(float(r.grad[0, 0])) - grad[0]) <= 4 * 2.0 ** -52 * grad[0], (r.grad[0, 0], grad[0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_masked_class_stays_masked(dtype):
    """-inf is a masked class under the cap (not -c): no probability, gradient 0."""
    s = np.array([[1.0, -np.inf, 2.0]], dtype=dtype)
    capped = losskit.dense(s, [0], softcap=3.0, z_loss=0.1, reduction="sum")
    assert capped.grad[0, 1] == 0
    without = losskit.dense(np.array([[1.0, 2.0]], dtype=dtype), [0], softcap=3.0, z_loss=0.1, reduction="sum")
    assert capped.loss == without.loss
    assert capped.grad[0, 0] == without.grad[0, 0] and capped.grad[0, 2] == without.grad[0, 1]


def test_defaults_change_nothing():
    """z_loss = 0 and no cap: the same bits as a call without the options."""
    rng = np.random.default_rng(3)
    s = rng.normal(size=(50, 9))
    g = rng.integers(0, 9, 50)
    for loss in LOSSES:
        a = losskit.dense(s, g, loss=loss)
        b = losskit.dense(s, g, loss=loss, z_loss=0.0, softcap=None)
        assert a.loss == b.loss and np.array_equal(a.grad, b.grad)


def test_weights_reductions_and_ignored_rows():
    """The shaped loss is weighted, ignored and reduced like any loss: MEAN over the weights of
    the rows not ignored, their gradients scaled alike, an ignored row's gradient 0."""
    rng = np.random.default_rng(4)
    s = rng.normal(0, 3, size=(5, 4))
    g = np.array([0, -100, 3, 1, 2])
    w = np.array([0.5, 2.0, 1.5, 0.0, 3.0])
    kw = dict(loss="softmax_margin", softcap=2.0, z_loss=0.05)
    each = losskit.dense(s, g, weight=w, reduction="none", **kw)
    mean = losskit.dense(s, g, weight=w, reduction="mean", **kw)
    counted = w[[0, 2, 3, 4]].sum()
    assert each.loss[1] == 0 and not each.grad[1].any() and not each.grad[3].any()
    np.testing.assert_allclose(mean.loss, each.loss.sum() / counted, rtol=1e-14)
    np.testing.assert_allclose(mean.grad, each.grad / counted, rtol=1e-14, atol=1e-300)


def test_same_bits_at_any_thread_count():
    """Rows split over threads (n k = 2^19 elements, past the 2^17 per thread of the header, so
    2 threads really split: asserted below) give the same bits as one thread."""
    rng = np.random.default_rng(5)
    n, k = 4096, 128
    assert n * k // 2 ** 17 >= 2
    s = rng.normal(0, 5, size=(n, k)).astype(np.float32)
    g = rng.integers(0, k, n)
    one = losskit.dense(s, g, loss="log", softcap=4.0, z_loss=1e-3, threads=1)
    for threads in (2, 8):
        other = losskit.dense(s, g, loss="log", softcap=4.0, z_loss=1e-3, threads=threads)
        assert one.loss == other.loss and np.array_equal(one.grad, other.grad)


def test_huge_weight_and_nan_scores():
    """A weight of 1e307 (the entries near DBL_MAX / 10) gives finite gradients where they are finite (masked classes 0, not
    inf * 0 = NaN); a NaN score makes its row's loss and gradient NaN, as without the options."""
    s = np.array([[1.0, -np.inf, 2.0], [np.nan, 0.0, 1.0]])
    r = losskit.dense(s, [0, 1], weight=np.array([1e307, 1.0]), softcap=3.0, z_loss=0.5, reduction="none")
    assert r.grad[0, 1] == 0 and np.isfinite(r.grad[0]).all()
    assert np.isnan(r.loss[1]) and np.isnan(r.grad[1]).all()


@pytest.mark.parametrize("bad, status", [(dict(z_loss=-1.0), "LK_ERR_OPTION"), (dict(z_loss=math.nan), "LK_ERR_OPTION"),
                                         (dict(softcap=-2.0), "LK_ERR_OPTION"),
                                         (dict(softcap=math.inf), "LK_ERR_OPTION")])
def test_bad_options(bad, status):
    with pytest.raises(losskit.LossKitError) as info:
        losskit.dense(np.zeros((2, 3)), [0, 1], **bad)
    assert info.value.name == status
    assert next(iter(bad)) in str(info.value)


def test_softcap_zero_is_refused_in_python():
    """softcap=0 would mean "off" to the C struct; the keyword's "off" is None."""
    with pytest.raises(ValueError, match="softcap=None"):
        losskit.dense(np.zeros((2, 3)), [0, 1], softcap=0)


def test_elsewhere_unsupported():
    """Lists, chains, L-Softmax and the Hessian refuse the options (LK_ERR_UNSUPPORTED), through
    the C struct directly (the Python keywords exist on dense rows only)."""
    import ctypes

    from losskit._common import init_options
    from losskit._native import lib

    s = np.zeros(3)
    offsets = np.array([0, 3], dtype=np.int64)
    gold = np.array([0], dtype=np.int32)
    out = np.zeros(1)
    opt = init_options(1)
    opt.z_loss = math.nan
    with pytest.raises(losskit.LossKitError, match="z_loss") as info:
        lib.lk_lsoftmax_f64(ctypes.byref(opt), 1, 2, 3, np.ones(2).ctypes.data, np.ones(6).ctypes.data,
                            gold.ctypes.data, None, out.ctypes.data, None, None)
    assert info.value.name == "LK_ERR_OPTION"  # outside its domain before being unsupported
    for field, value in (("z_loss", 0.5), ("softcap", 2.0)):
        opt = init_options(1)
        setattr(opt, field, value)
        with pytest.raises(losskit.LossKitError, match=field) as info:
            lib.lk_lists_f64(ctypes.byref(opt), 1, offsets.ctypes.data, s.ctypes.data, gold.ctypes.data,
                             None, None, out.ctypes.data, None)
        assert info.value.name == "LK_ERR_UNSUPPORTED"
        with pytest.raises(losskit.LossKitError, match=field) as info:
            lib.lk_dense_hessian_f64(ctypes.byref(opt), 1, 3, s.ctypes.data, gold.ctypes.data, None, None,
                                     out.ctypes.data, None, np.zeros(3).ctypes.data)
        assert info.value.name == "LK_ERR_UNSUPPORTED"
        x = np.ones((1, 2))
        w = np.ones((3, 2))
        with pytest.raises(losskit.LossKitError, match=field) as info:
            lib.lk_lsoftmax_f64(ctypes.byref(opt), 1, 2, 3, x.ctypes.data, w.ctypes.data, gold.ctypes.data,
                                None, out.ctypes.data, None, None)
        assert info.value.name == "LK_ERR_UNSUPPORTED"
        e = np.zeros((1, 2, 3))
        t = np.zeros((3, 3))
        lengths = np.array([2], dtype=np.int32)
        tags = np.zeros((1, 2), dtype=np.int32)
        with pytest.raises(losskit.LossKitError, match=field) as info:
            lib.lk_chain_f64(ctypes.byref(opt), 1, 2, 3, e.ctypes.data, t.ctypes.data, None, None,
                             lengths.ctypes.data, tags.ctypes.data, None, None, out.ctypes.data,
                             None, None, None, None)
        assert info.value.name == "LK_ERR_UNSUPPORTED"


def test_old_struct_size_keeps_the_defaults():
    """A caller compiled against the 112-byte lk_options (before 0.3.0): bytes past it, even
    garbage, are not read; the call is the unshaped loss."""
    import ctypes

    from losskit._common import init_options
    from losskit._native import lib

    s = np.array([[1.0, 3.0, -2.0]])
    gold = np.array([0], dtype=np.int32)
    opt = init_options(1)
    opt.size = 112
    opt.z_loss = -7.0  # would be LK_ERR_OPTION if read
    opt.softcap = 1.0
    out = np.zeros(1)
    lib.lk_dense_f64(ctypes.byref(opt), 1, 3, s.ctypes.data, gold.ctypes.data, None, None, out.ctypes.data, None)
    assert out[0] == losskit.dense(s, gold, reduction="mean").loss


@pytest.mark.parametrize("loss", ["log", "ramp"])
def test_saturated_scores_under_a_huge_z_loss(loss):
    """A score of 1e300 under softcap 1 (slope 0 in double) with z_loss 1e308: the z-loss's entry
    coefficient 2 lambda lse p overflows alone, and times the slope made inf * 0 = NaN on success
    (the fuzzer's case: dense, RAMP, MEAN). Each entry is now lambda (p slope) 2 lse coefficient:
    0 at the saturated score, and elsewhere the closed form coefficient slope (dL/ds' + 2 lambda
    lse(s') softmax(s')) at 40 digits within 8u (+-inf where it overflows)."""
    s = np.array([[1e300, 0.25, -1.0]])
    r = losskit.dense(s, [1], loss=loss, softcap=1.0, z_loss=1e308, reduction="sum")
    assert not np.isnan(r.grad).any(), r.grad
    assert r.grad[0, 0] == 0
    with mp.workdps(40):
        v = [mp.tanh(mp.mpf(float(x))) for x in s[0]]
        slope = [1 - mp.tanh(mp.mpf(float(x))) ** 2 for x in s[0]]
        m = max(v)
        total = mp.fsum(mp.e ** (x - m) for x in v)
        lse = m + mp.log(total)
        p = [mp.e ** (x - m) / total for x in v]
        if loss == "log":
            dl = [p[j] - (1 if j == 1 else 0) for j in range(3)]
        else:  # ramp, 0/1 costs: argmax of s' + c is class 0, of s' - c class 0 too: 0
            dl = [mp.mpf(0)] * 3
        big = mp.mpf(np.finfo(np.float64).max)
        for j in (1, 2):
            want = slope[j] * (dl[j] + 2 * mp.mpf(1e308) * lse * p[j])
            if abs(want) > big:
                assert r.grad[0, j] == (np.inf if want > 0 else -np.inf), (j, r.grad[0, j], mp.nstr(want, 8))
            else:
                assert abs(mp.mpf(float(r.grad[0, j])) - want) <= 8 * 2.0 ** -52 * abs(want), \
                    (j, r.grad[0, j], mp.nstr(want, 17))


def test_z_loss_entries_whose_two_lse_overflows():
    """lse(s') = 1.37e308 under softcap = DBL_MAX: 2 lse alone overflows, and (lambda p) (2 lse)
    was 0 * inf = NaN for the classes of p = 0 (make test's fuzz-mutate case: RAMP, MEAN). The
    entries are now one product scaled once: 0 where p = 0, and the finite true value where the
    weight brings it back (0.25 lambda 2 lse p slope = 1.5e308 at the capped maximum)."""
    big = np.finfo(np.float64).max
    s = np.array([[21.25, big, 7.0]])
    r = losskit.dense(s, [0], loss="ramp", softcap=big, z_loss=5.1875, weight=np.array([0.25]),
                      reduction="sum")
    assert not np.isnan(r.grad).any(), r.grad
    assert r.grad[0, 0] == 0 and r.grad[0, 2] == 0
    with mp.workdps(40):
        c = mp.mpf(big)
        v = [c * mp.tanh(mp.mpf(x) / c) for x in s[0]]
        slope = 1 - mp.tanh(mp.mpf(big) / c) ** 2
        m = max(v)
        total = mp.fsum(mp.e ** (x - m) for x in v)
        lse = m + mp.log(total)
        want = mp.mpf(0.25) * slope * 2 * mp.mpf(5.1875) * lse * mp.e ** (v[1] - m) / total
    assert abs(mp.mpf(float(r.grad[0, 1])) - want) <= 8 * 2.0 ** -52 * want, (r.grad[0, 1], mp.nstr(want, 17))


@pytest.mark.parametrize("z_loss, finite", [(np.finfo(np.float64).max, False), (np.finfo(np.float64).max / 10, True)])
def test_z_loss_beyond_double_against_a_loss_beyond_minus_double(z_loss, finite):
    """RAMP with costs of -DBL_MAX (F - H = -2 DBL_MAX) and a z-loss near or beyond DBL_MAX: the
    sum was -inf + inf = NaN on success (the fuzzer's case). The halves give it: +inf where the
    true sum overflows, else the true sum (here 1.6e307, from two terms of 3.6e308) within 8u of
    the terms."""
    big = np.finfo(np.float64).max
    s = np.array([[-25.0, -25.0]])
    cost = np.array([[-1e308, -25.0], [-big, -big]])
    r = losskit.dense(s, [1], loss="ramp", cost=cost, cost_layout="class_matrix", softcap=5.1875,
                      z_loss=z_loss, reduction="sum", with_grad=False)
    with mp.workdps(40):
        v = 5.1875 * mp.tanh(mp.mpf(-25) / mp.mpf(5.1875))
        lse = v + mp.log(2)
        fh = -2 * mp.mpf(big)
        want = fh + mp.mpf(z_loss) * lse ** 2
    assert not np.isnan(r.loss)
    if not finite:
        assert want > mp.mpf(big) and r.loss == np.inf
    else:
        assert abs(want) < mp.mpf(big)
        assert abs(mp.mpf(float(r.loss)) - want) <= 8 * 2.0 ** -52 * abs(fh), (r.loss, mp.nstr(want, 17))


def test_z_loss_eighth_formed_from_lambda_first():
    """lambda = 1.2e308 and lse = 1 + ln 2: lambda lse overflows although lambda lse^2 / 8 does
    not; the eighths of F - H = -2 DBL_MAX and of the z-loss gave +inf where the true sum is
    -1.55e307 (review). lambda / 8 is formed first."""
    big = np.finfo(np.float64).max
    r = losskit.dense(np.array([[1.0, 1.0]]), [1], loss="ramp", cost=np.array([[-1e308, -25.0], [-big, -big]]),
                      cost_layout="class_matrix", z_loss=1.2e308, reduction="sum", with_grad=False)
    with mp.workdps(40):
        want = -2 * mp.mpf(big) + mp.mpf(1.2e308) * (1 + mp.log(2)) ** 2
    assert abs(mp.mpf(float(r.loss)) - want) <= 8 * 2.0 ** -52 * 2 * mp.mpf(big), (r.loss, mp.nstr(want, 17))
