"""The fused linear layer + loss (losskit.linear, lk_linear_f32/_f64) against exact arithmetic.

Expected values: the logits z = x w^T + b summed exactly (mpmath, 40 digits) from the float
inputs, then each loss and its G = dloss/dz from the closed forms (softmax, one-hots, the cap's
derivative 1 - tanh^2, the z-loss's 2 lambda lse softmax), and d_x = G w, d_w = G^T x,
d_b = column sums of G, all at 40 digits; nothing of LossKit's is used. k spans several class
tiles (256) and n several row blocks (64), so the tiles' merging is exercised. PyTorch's
x @ w.T + b with F.cross_entropy is in test_peers.py.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest

import losskit
from kept import Store


# The exact results, kept between runs (they cost seconds each).
RESULTS = Store("linear-exact", __file__)


@pytest.fixture(scope="module", autouse=True)
def _kept(request):
    with RESULTS.kept_between_runs(request.config):
        yield


def _exact(x, w, b, gold, **kw):
    """(per-example losses, d_x, d_w, d_b) at 40 digits (within mp.workdps: mpmath's precision is
    global, and other test modules set their own)."""
    with mp.workdps(40):
        return _exact40(x, w, b, gold, **kw)


def _exact40(x, w, b, gold, *, loss, cost_scale=1.0, label_smoothing=0.0, z_loss=0.0, softcap=None,
             weight=None, reduction="sum", costs=None):
    """_exact's body; costs an (n, k) array or None (0/1)."""
    n, d = x.shape
    k = w.shape[0]
    X = [[mp.mpf(float(v)) for v in row] for row in x]
    W = [[mp.mpf(float(v)) for v in row] for row in w]
    B = [mp.mpf(0)] * k if b is None else [mp.mpf(float(v)) for v in b]
    wt = [mp.mpf(1)] * n if weight is None else [mp.mpf(float(v)) for v in weight]
    counted = mp.fsum(wt) if reduction == "mean" else mp.mpf(1)
    losses, G = [], []
    for i in range(n):
        g = int(gold[i])
        z = [mp.fsum(X[i][t] * W[j][t] for t in range(d)) + B[j] for j in range(k)]
        if softcap is None:
            s, slope = z, [mp.mpf(1)] * k
        else:
            c = mp.mpf(softcap)
            s = [c * mp.tanh(v / c) for v in z]
            slope = [1 - mp.tanh(v / c) ** 2 for v in z]
        cost = [mp.mpf(0) if j == g else mp.mpf(1) for j in range(k)] if costs is None \
            else [mp.mpf(float(v)) for v in costs[i]]
        a = 0 if loss in ("log", "perceptron") else mp.mpf(cost_scale)
        v = [s[j] + a * cost[j] for j in range(k)]
        top = max(v)
        if loss in ("log", "softmax_margin"):
            total = mp.fsum(mp.e ** (u - top) for u in v)
            fear = top + mp.log(total)
            dfear = [mp.e ** (u - top) / total for u in v]
        else:  # a max: the first argmax, the gold on a tie
            arg = g if v[g] == top else v.index(top)
            fear = top
            dfear = [mp.mpf(1 if j == arg else 0) for j in range(k)]
        value = fear - s[g]
        dl = [dfear[j] - (1 if j == g else 0) for j in range(k)]
        if label_smoothing:
            eps = mp.mpf(label_smoothing)
            value += eps * (s[g] - mp.fsum(s) / k)
            dl = [dl[j] + (eps if j == g else 0) - eps / k for j in range(k)]
        if z_loss:
            m = max(s)
            total = mp.fsum(mp.e ** (u - m) for u in s)
            lse = m + mp.log(total)
            value += mp.mpf(z_loss) * lse ** 2
            dl = [dl[j] + 2 * mp.mpf(z_loss) * lse * mp.e ** (s[j] - m) / total for j in range(k)]
        losses.append(wt[i] * value)
        G.append([wt[i] / counted * dl[j] * slope[j] for j in range(k)])
    dx = [[mp.fsum(G[i][j] * W[j][t] for j in range(k)) for t in range(d)] for i in range(n)]
    dw = [[mp.fsum(G[i][j] * X[i][t] for i in range(n)) for t in range(d)] for j in range(k)]
    db = [mp.fsum(G[i][j] for i in range(n)) for j in range(k)]
    return losses, dx, dw, db


exact = RESULTS.memoised_by_digest(_exact)


def close(got, want, u, what, scale=None):
    """Norm-wise: every entry within 16 u of the largest exact entry of its output (the logits are
    length-d dot products rounded in the input type; G w sums k terms). Measured here: at most
    5.4 u (float64 loss) and 4.6 u (float32 d_x) over test_matches_exact's cases."""
    got = np.asarray(got, dtype=np.float64).ravel()
    flat = [v for row in want for v in (row if isinstance(row, list) else [row])]
    top = scale if scale is not None else max(abs(v) for v in flat)
    for t, (g, v) in enumerate(zip(got, flat)):
        assert abs(mp.mpf(g) - v) <= 16 * u * top + mp.mpf(10) ** -30, \
            f"{what}[{t}] = {g!r}, exact {mp.nstr(v, 17)} (largest {mp.nstr(top, 5)})"


def problem(dtype, n=66, d=5, k=300, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(dtype)
    w = (rng.normal(size=(k, d)) * 0.7).astype(dtype)
    b = rng.normal(size=k).astype(dtype)
    g = rng.integers(0, k, n)
    return x, w, b, g


CASES = [dict(loss="log"), dict(loss="log", label_smoothing=0.2), dict(loss="softmax_margin", cost_scale=1.5),
         dict(loss="hinge"), dict(loss="perceptron"), dict(loss="log", z_loss=0.01, softcap=3.0),
         dict(loss="hinge", z_loss=0.02, softcap=2.0), dict(loss="softmax_margin", z_loss=0.05)]


@pytest.mark.parametrize("case, dtype", [(c, np.float64) for c in range(len(CASES))]
                         + [(c, np.float32) for c in (0, 2, 6)])
def test_matches_exact(case, dtype):
    """n = 66 rows (two row blocks), k = 300 classes (two tiles, the last ragged), with a bias
    and weights, under SUM; each output norm-wise within 16 u of its exact value."""
    kw = CASES[case]
    x, w, b, g = problem(dtype)
    weight = np.linspace(0.5, 2.0, len(g)).astype(dtype)
    r = losskit.linear(x, w, g, bias=b, weight=weight, reduction="none", **kw)
    losses, dx, dw, db = exact(x, w, b, g, weight=weight, reduction="sum", **kw)
    u = float(np.finfo(dtype).eps)
    close(r.loss, losses, u, "loss", scale=max(max(abs(v) for v in losses), mp.mpf(1)))
    close(r.d_x, dx, u, "d_x")
    close(r.d_w, dw, u, "d_w")
    close(r.d_b, db, u, "d_b")


@pytest.mark.parametrize("layout", ["per_example", "class_matrix"])
def test_costs(layout):
    """softmax-margin and hinge with written-out costs: the same as the 0/1 layout's loss when
    the costs are 0/1, and against exact arithmetic with general ones."""
    x, w, b, g = problem(np.float64, n=20, k=300, seed=3)
    n, k = len(g), w.shape[0]
    rng = np.random.default_rng(4)
    if layout == "per_example":
        cost = rng.uniform(0, 2, size=(n, k))
        cost[np.arange(n), g] = 0
        rows = cost
    else:
        cost = rng.uniform(0, 2, size=(k, k))
        np.fill_diagonal(cost, 0)
        rows = cost[g]
    for loss in ("softmax_margin", "hinge"):
        r = losskit.linear(x, w, g, bias=b, loss=loss, cost=cost, cost_layout=layout, reduction="sum")
        losses, dx, dw, db = exact(x, w, b, g, loss=loss, costs=rows)
        u = float(np.finfo(np.float64).eps)
        close([r.loss], [mp.fsum(losses)], u, f"{loss} loss")
        close(r.d_x, dx, u, f"{loss} d_x")
        close(r.d_w, dw, u, f"{loss} d_w")


def test_same_as_dense_on_the_logits():
    """float64: linear(x, w, b) equals dense(x @ w.T + b) (NumPy's product), and its gradients the
    chain rule through it, to a few ulps; under MEAN with ignored rows and zero weights."""
    x, w, b, g = problem(np.float64, n=150, d=16, k=700, seed=5)
    g[[3, 50, 149]] = -100
    weight = np.ones(len(g))
    weight[[7, 8]] = 0
    x[3] = np.nan  # an ignored row is not read
    for kw in CASES:
        r = losskit.linear(x, w, g, bias=b, weight=weight, **kw)
        z = np.nan_to_num(x) @ w.T + b
        dn = losskit.dense(z, g, weight=weight, **kw)
        np.testing.assert_allclose(r.loss, dn.loss, rtol=1e-13)
        np.testing.assert_allclose(r.d_x, dn.grad @ w, rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r.d_w, dn.grad.T @ np.nan_to_num(x), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(r.d_b, dn.grad.sum(0), rtol=1e-12, atol=1e-15)
        assert not r.d_x[[3, 7, 8, 50, 149]].any()


def test_same_bits_at_any_thread_count():
    """n = 256 rows (4 blocks of 64) and k = 600 classes (3 tiles), d = 64: the logits' product
    per tile is 256 * 256 * 64 / 8 = 2^19 >= 2 * 2^17 "elements", so 2 threads really split
    (the header's per-thread minimum); the same bits at 1, 2 and 8 threads."""
    n, d, k = 256, 64, 600
    assert n // 64 >= 2 and n * 256 * d // 8 >= 2 * 2 ** 17
    rng = np.random.default_rng(6)
    x = rng.normal(size=(n, d)).astype(np.float32)
    w = (rng.normal(size=(k, d)) * 0.2).astype(np.float32)
    g = rng.integers(0, k, n)
    one = losskit.linear(x, w, g, threads=1, z_loss=1e-3, softcap=10.0)
    for threads in (2, 8):
        other = losskit.linear(x, w, g, threads=threads, z_loss=1e-3, softcap=10.0)
        assert one.loss == other.loss
        for a, c in zip(one[1:3], other[1:3]):
            assert np.array_equal(a, c)


@pytest.mark.parametrize("loss", ["log", "softmax_margin", "hinge", "perceptron"])
def test_ties_with_the_gold(loss):
    """A zero-initialised head (every logit equal, the usual start of training): the gold takes
    the tie from an earlier class; the loss is log k (log-sum-exp) or 0 (max), and the gradients
    are the exact ones. (The tie once left the old argmax's exp out of the sum: log 3, not log 4.)"""
    x = np.ones((2, 3))
    w = np.zeros((4, 3))
    gold = [0, 2]
    r = losskit.linear(x, w, gold, bias=np.zeros(4), loss=loss, reduction="none")
    losses, dx, dw, db = exact(x, w, np.zeros(4), np.array(gold), loss=loss)
    close(r.loss, losses, 2.0 ** -52, "loss", scale=mp.mpf(1))
    close(r.d_w, dw, 2.0 ** -52, "d_w", scale=mp.mpf(1))
    close(r.d_b, db, 2.0 ** -52, "d_b", scale=mp.mpf(1))


def test_large_coefficients():
    """Weights that make the bound of the products overflow double (1e308 times 2 ...): the units'
    shift is found in exponents; the gradients are exact, or +-inf where they overflow. (An
    overflowing bound once gave a shift of 2^-2000 = 0: every gradient 0.)"""
    x = np.array([[1.0]])
    w = np.array([[1.0], [0.0]])
    r = losskit.linear(x, w, [0], bias=np.zeros(2), weight=np.array([1e308]), reduction="sum")
    losses, dx, dw, db = exact(x, w, np.zeros(2), np.array([0]), loss="log", weight=np.array([1e308]))
    close(r.d_b, db, 2.0 ** -52, "d_b")
    close(r.d_x, dx, 2.0 ** -52, "d_x")
    close(r.d_w, dw, 2.0 ** -52, "d_w")
    x = np.array([[1e300]])
    w = np.array([[1e-300], [0.0]])
    r = losskit.linear(x, w, [0], weight=np.array([1e10]), reduction="sum")
    losses, dx, dw, db = exact(x, w, None, np.array([0]), loss="log", weight=np.array([1e10]))
    close(r.d_x, dx, 2.0 ** -52, "d_x")
    assert r.d_w[0, 0] == -np.inf and r.d_w[1, 0] == np.inf  # 1e10 (p - 1) 1e300 overflows


def test_parts_near_the_largest_double():
    """Logits -0.9 DBL_MAX and 0.9 DBL_MAX with label smoothing 0.9: F - H = 1.8 DBL_MAX overflows
    on the way, the loss 0.99 DBL_MAX does not (it was +inf). With a cost-augmented logit beyond
    the type (softmax-margin, a cost of DBL_MAX): LK_ERR_DOMAIN, as on dense rows."""
    big = np.finfo(np.float64).max
    r = losskit.linear(np.ones((1, 1)), np.array([[-0.9 * big], [0.9 * big]]), [0], label_smoothing=0.9,
                       reduction="sum")
    with mp.workdps(40):
        z = [mp.mpf(-0.9 * big), mp.mpf(0.9 * big)]
        want = max(z) + mp.log(1 + mp.e ** (min(z) - max(z))) - mp.mpf(0.1) * z[0] - mp.mpf(0.45) * (z[0] + z[1])
    assert abs(mp.mpf(float(r.loss)) - want) <= 8 * 2.0 ** -52 * want, (r.loss, mp.nstr(want, 17))
    with pytest.raises(losskit.LossKitError, match="cost-augmented") as info:
        losskit.linear(np.ones((1, 1)), np.array([[0.9 * big], [0.5 * big]]), [0], loss="softmax_margin",
                       cost=np.array([[0.0, big]]), cost_layout="per_example")
    assert info.value.name == "LK_ERR_DOMAIN"


def test_z_loss_parts_formed_from_lambda_first():
    """softmax-margin with costs of -DBL_MAX and z_loss = 1.2e308 (review): the parts' eighths
    formed lambda lse first, which overflowed where lambda lse^2 / 8 does not: +inf where the
    loss is 1.64e308."""
    big = np.finfo(np.float64).max
    r = losskit.linear(np.ones((1, 1)), np.array([[1.0], [1.0]]), [0], loss="softmax_margin",
                       cost=np.array([[-big, -big]]), cost_layout="per_example", z_loss=1.2e308, reduction="sum",
                       with_grad=False)
    with mp.workdps(40):
        lse = 1 + mp.log(2)
        fear = 1 - mp.mpf(big) + mp.log(2)  # lse(z + c) with both classes at 1 - DBL_MAX
        want = fear - 1 + mp.mpf(1.2e308) * lse ** 2
    assert abs(mp.mpf(float(r.loss)) - want) <= 8 * 2.0 ** -52 * 2 * mp.mpf(big), (r.loss, mp.nstr(want, 17))


def test_huge_weights_stay_finite():
    """A weight near DBL_MAX: G is formed in units of a power of two, so the products' partial
    sums do not overflow to inf - inf = NaN; the outputs are the exact values scaled back."""
    x, w, b, g = problem(np.float64, n=10, k=300, seed=7)
    weight = np.ones(len(g))
    weight[2] = 1e300
    r = losskit.linear(x, w, g, bias=b, weight=weight, reduction="sum")
    ref = losskit.linear(x, w, g, bias=b, weight=weight / 1e300, reduction="sum")
    for a, c in ((r.d_x, ref.d_x), (r.d_w, ref.d_w), (r.d_b, ref.d_b)):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, c * 1e300, rtol=1e-12, atol=1e-300)


def test_errors():
    x, w, b, g = problem(np.float64, n=4, k=10)
    with pytest.raises(losskit.LossKitError) as info:
        losskit.linear(x, w, g, loss="risk")
    assert info.value.name == "LK_ERR_UNSUPPORTED"
    bad = x.copy()
    bad[1, 2] = np.nan
    with pytest.raises(losskit.LossKitError, match=r"x\[1, 2\]") as info:
        losskit.linear(bad, w, g)
    assert info.value.name == "LK_ERR_DOMAIN"
    big = np.full((1, 2), 1e200)
    with pytest.raises(losskit.LossKitError, match="overflows") as info:
        losskit.linear(big, np.full((3, 2), 1e200), [0])
    assert info.value.name == "LK_ERR_DOMAIN"
    with pytest.raises(losskit.LossKitError, match="gold") as info:
        losskit.linear(x, w, [0, 1, 2, 10])
    assert info.value.name == "LK_ERR_LABEL"
    with pytest.raises(losskit.LossKitError, match="overflows") as info:  # the bias makes it overflow
        losskit.linear(np.ones((1, 1)), np.array([[1e308], [0.0]]), [0], bias=np.array([1e308, 0.0]))
    assert info.value.name == "LK_ERR_DOMAIN"
    with pytest.raises(losskit.LossKitError, match="overflows float32"):
        losskit.linear(np.ones((1, 1), np.float32), np.array([[3e38], [0]], np.float32), [0],
                       bias=np.array([3e38, 0], np.float32))
    bias = b.copy()
    bias[4] = np.inf
    with pytest.raises(losskit.LossKitError, match=r"bias\[4\]"):
        losskit.linear(x, w, g, bias=bias)


def test_sizes_of_bias_and_d_b():
    """n = 0, d = 0, k = 2^62: k * d is 0, but the bias and d_b (k values each) have no byte size:
    LK_ERR_SIZE, d_b untouched (the empty batch once wrote 2^62 zeros into it: the fuzzer's case)."""
    import ctypes

    from losskit._common import init_options
    from losskit._native import lib

    opt = init_options(1)
    d_b = np.full(8, 7.0, dtype=np.float32)
    loss = np.full(1, 7.0, dtype=np.float32)
    with pytest.raises(losskit.LossKitError, match="bias, d_b") as info:
        lib.lk_linear_f32(ctypes.byref(opt), 0, 0, 2 ** 62, None, None, np.zeros(8, np.float32).ctypes.data,
                          None, None, None, loss.ctypes.data, None, None, d_b.ctypes.data)
    assert info.value.name == "LK_ERR_SIZE"
    assert (d_b == 7).all() and loss[0] == 7


def test_empty_batch():
    """n = 0: the loss is 0 (SUM, MEAN) and d_w, d_b are zero."""
    w = np.ones((5, 3))
    r = losskit.linear(np.zeros((0, 3)), w, np.zeros(0, dtype=np.int32), bias=np.ones(5), reduction="sum")
    assert r.loss == 0 and not r.d_w.any() and not r.d_b.any() and r.d_x.shape == (0, 3)


def test_outputs_untouched_on_error():
    """A failing call (a logit that overflows, found in the first pass) writes nothing."""
    import ctypes

    from losskit._common import init_options
    from losskit._native import lib

    x = np.array([[1.0, 1e200], [1.0, 2.0]])
    w = np.array([[1.0, 1e200], [3.0, 4.0]])
    gold = np.array([0, 1], dtype=np.int32)
    loss = np.full(1, 7.0)
    d_x = np.full((2, 2), 7.0)
    d_w = np.full((2, 2), 7.0)
    opt = init_options(1)
    with pytest.raises(losskit.LossKitError):
        lib.lk_linear_f64(ctypes.byref(opt), 2, 2, 2, x.ctypes.data, w.ctypes.data, None, gold.ctypes.data,
                          None, None, loss.ctypes.data, d_x.ctypes.data, d_w.ctypes.data, None)
    assert (loss == 7).all() and (d_x == 7).all() and (d_w == 7).all()
    assert math.isfinite(loss[0])
