"""bfloat16 dense rows (lk_dense_bf16, losskit.dense with bfloat16 scores).

The header's contract: the call is lk_dense_f32 on the scores widened to float (exact), so its
loss and float32 gradient (grad_f32) are lk_dense_f32's bits on those scores, and the bfloat16
gradient is that float32 gradient rounded to nearest even. The rounding is checked against
ml_dtypes' float32 -> bfloat16 conversion (an independent implementation), the widening against
ml_dtypes' bfloat16 -> float32, and the accuracy against lk_dense_f64 on the same widened scores
(test_bf16_accuracy_against_float64 prints the measured errors; the header quotes them).
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import ml_dtypes  # bfloat16 arrays (requirements-peers.txt)

import losskit
from losskit import _common, _native

BF16 = ml_dtypes.bfloat16
lib = _native.lib


def bf16_scores(rng, n, k, scale=3.0):
    return (rng.standard_normal((n, k)) * scale).astype(np.float32).astype(BF16)


CONFIGS = [
    dict(loss="log"),
    dict(loss="log", label_smoothing=0.1),
    dict(loss="perceptron"),
    dict(loss="hinge"),
    dict(loss="softmax_margin", cost_scale=2.0),
    dict(loss="risk"),
    dict(loss="ramp"),
    dict(loss="soft_ramp"),
    dict(loss="infinite_ramp"),
    dict(loss="squared", square_k=2.0, square_m=3.0),
    dict(loss="squentropy"),
    dict(loss="hope_fear", hope="max", fear="lse", hope_scale=1.0, fear_scale=0.5),
    dict(loss="log", z_loss=1e-2),
    dict(loss="softmax_margin", softcap=4.0, z_loss=1e-3),
    dict(loss="hinge", softcap=2.5),
]


def _with_costs(config, rng, n, k):
    """Per-example costs for the cost-reading losses (as float32: cost is float for bf16)."""
    if config["loss"] in ("softmax_margin", "risk", "ramp", "soft_ramp", "infinite_ramp"):
        return dict(config, cost=rng.uniform(0, 2, (n, k)).astype(np.float32), cost_layout="per_example")
    return config


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("k", [1, 7, 16, 33, 1000])
def test_bf16_is_float32_on_the_widened_scores(config, reduction, k):
    """Loss and grad_f32 bit for bit as lk_dense_f32 on the widened scores; the bfloat16 gradient
    is ml_dtypes' rounding of that gradient (k: tails of the 16-lane widening and narrowing)."""
    rng = np.random.default_rng(k * 31 + len(config))
    n = 9
    s = bf16_scores(rng, n, k)
    gold = rng.integers(0, k, n).astype(np.int32)
    gold[3] = -100  # ignored: zero gradient
    w = rng.uniform(0.5, 2, n).astype(np.float32)
    kw = _with_costs(config, rng, n, k)
    wide = s.astype(np.float32)
    assert np.array_equal(wide.view(np.uint32) >> 16, s.view(np.uint16))  # the widening is exact
    ref = losskit.dense(wide, gold, weight=w, reduction=reduction, **kw)
    got = losskit.dense(s, gold, weight=w, reduction=reduction, **kw)
    got32 = losskit.dense(s, gold, weight=w, reduction=reduction, grad_dtype="float32", **kw)
    np.testing.assert_array_equal(np.asarray(got.loss).view(np.uint32), np.asarray(ref.loss).view(np.uint32))
    np.testing.assert_array_equal(got32.grad.view(np.uint32), ref.grad.view(np.uint32))
    assert got.grad.dtype == BF16 and got32.grad.dtype == np.float32
    np.testing.assert_array_equal(got.grad.view(np.uint16), ref.grad.astype(BF16).view(np.uint16))
    assert not got.grad[3].view(np.uint16).any()


def test_raw_uint16_bits_with_dtype_keyword():
    rng = np.random.default_rng(5)
    s = bf16_scores(rng, 6, 40)
    gold = rng.integers(0, 40, 6)
    a = losskit.dense(s, gold)
    b = losskit.dense(s.view(np.uint16), gold, dtype="bfloat16")
    assert b.grad.dtype == np.uint16
    np.testing.assert_array_equal(a.grad.view(np.uint16), b.grad)
    assert a.loss == b.loss
    with pytest.raises(ValueError, match="dtype"):
        losskit.dense(s.astype(np.float32), gold, dtype="bfloat16")
    with pytest.raises(ValueError, match="grad_dtype"):
        losskit.dense(s.astype(np.float32), gold, grad_dtype="float32")


def test_rounding_ties_overflow_and_nan():
    """Narrowing on the values the rounding rule is about: exact ties (to even), the largest
    bfloat16 and past it (half an ulp rounds to inf), subnormal gradients, and NaN (stays a NaN)."""
    # A sum-reduced perceptron row gives the gradient -w at the gold and +w at the argmax:
    # so w is what is narrowed.
    s = np.array([[0.0, 1.0]], dtype=BF16)
    cases = [1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 1.0 + 2.0 ** -8 + 2.0 ** -20, 3.3895e38, 3.3961e38,
             float(np.finfo(np.float32).max), 1e-40, 3e-45, 2.0 ** -133 * 1.5]
    for weight in cases:
        w = np.array([weight], dtype=np.float32)
        r = losskit.dense(s, [0], loss="perceptron", weight=w, reduction="sum")
        expected = np.array([-w[0], w[0]], dtype=np.float32).astype(BF16)
        np.testing.assert_array_equal(r.grad[0].view(np.uint16), expected.view(np.uint16), err_msg=f"w = {weight!r}")
    # NaN in, NaN out (the loss and the row; a quiet NaN in bfloat16).
    s = np.array([[0.0, np.nan, 2.0]], dtype=BF16)
    r = losskit.dense(s, [0])
    assert np.isnan(r.loss) and np.isnan(r.grad.astype(np.float32)).all()


def test_bf16_accuracy_against_float64():
    """Measured: the bfloat16 call's loss and gradient against lk_dense_f64 on the same widened
    scores (so only the computation's error is measured, not the inputs' rounding to bfloat16).
    The loss is float32's (a few ulps of float32 of the row's scale); each gradient entry is
    within 2^-8 of itself (bfloat16 keeps 8 significant bits: half an ulp) plus float32's error."""
    rng = np.random.default_rng(11)
    n, k = 256, 32000
    s = bf16_scores(rng, n, k, scale=4.0)
    gold = rng.integers(0, k, n)
    worst_loss = worst_grad = 0.0
    for config in (dict(loss="log"), dict(loss="log", label_smoothing=0.1), dict(loss="squentropy"),
                   dict(loss="log", softcap=30.0, z_loss=1e-4)):
        ref = losskit.dense(s.astype(np.float64), gold, **config)
        got = losskit.dense(s, gold, **config)
        got32 = losskit.dense(s, gold, grad_dtype="float32", **config)
        loss_error = abs(float(got.loss) - ref.loss) / abs(ref.loss)
        scale = np.abs(ref.grad).max(axis=1, keepdims=True)
        grad_error = np.abs(got.grad.astype(np.float64) - ref.grad)
        relative = grad_error / np.maximum(np.abs(ref.grad), 2.0 ** -126)
        f32_error = np.abs(got32.grad.astype(np.float64) - ref.grad)
        # Per entry: bfloat16's half ulp of the entry, plus float32's error (measured alone).
        assert (grad_error <= 2.0 ** -8 * np.abs(ref.grad) + 2 * f32_error + 2.0 ** -133).all()
        assert (f32_error <= 64 * 2.0 ** -24 * scale).all()
        assert loss_error <= 16 * 2.0 ** -24
        worst_loss = max(worst_loss, loss_error)
        worst_grad = max(worst_grad, float(relative[np.abs(ref.grad) > 1e-30].max()))
    print(f"\nbfloat16 vs float64 on the widened scores (n = {n}, k = {k}): loss {worst_loss:.2e} relative, "
          f"gradient entries {worst_grad:.2e} relative at most (2^-8 = {2.0 ** -8:.2e})")


def _call(n, k, scores, gold, grad=None, grad_f32=None, opt=None, loss=None, weight=None, cost=None):
    o = opt or _native.init_options(_native.LOSSES["log"])
    out = loss if loss is not None else np.full(1, -7.0, dtype=np.float32)
    status = None
    try:
        lib.lk_dense_bf16(ctypes.byref(o), n, k, _common.address(scores), _common.address(gold),
                          _common.address(cost), _common.address(weight), _common.address(out),
                          _common.address(grad), _common.address(grad_f32))
    except _native.LossKitError as e:
        status = e
    return status, out


def test_bad_input_is_refused_and_outputs_untouched():
    """The checks are lk_dense_f32's: +inf score, label out of range, NULL scores, negative n —
    a status and a message naming the row and class; loss, grad and grad_f32 keep their bytes."""
    s = np.zeros((3, 5), dtype=BF16)
    s[1, 2] = np.inf
    gold = np.array([0, 1, 2], dtype=np.int32)
    g16 = np.full((3, 5), 0x1234, dtype=np.uint16)
    g32 = np.full((3, 5), 7.5, dtype=np.float32)
    for args, pattern in [((3, 5, s.view(np.uint16), gold), r"scores\[1, 2\]"),
                          ((3, 5, s.view(np.uint16) * 0, np.array([0, 5, 1], dtype=np.int32)), r"gold\[1\]"),
                          ((3, 5, None, gold), "scores is NULL"),
                          ((-1, 5, s.view(np.uint16), gold), "n = -1")]:
        error, out = _call(*args, grad=g16, grad_f32=g32)
        assert error is not None and __import__("re").search(pattern, str(error)), (pattern, error)
        assert out[0] == -7.0 and (g16 == 0x1234).all() and (g32 == 7.5).all()
    # The same message as lk_dense_f32 gives on the widened scores.
    with pytest.raises(losskit.LossKitError) as f32:
        losskit.dense(s.astype(np.float32), gold)
    with pytest.raises(losskit.LossKitError) as b16:
        losskit.dense(s, gold)
    assert str(f32.value) == str(b16.value)


def test_loss_only_and_threads_agree():
    """Neither gradient (the loss only), and 1 against 2 threads on rows that really split (k
    large enough for several chunks: Chunks.target is 2^14 values), the same bits."""
    rng = np.random.default_rng(3)
    n, k = 64, 4096  # 2^18 values: 16 chunks of 4 rows
    s = bf16_scores(rng, n, k)
    gold = rng.integers(0, k, n)
    assert n * k // (1 << 14) >= 2
    a = losskit.dense(s, gold, threads=1)
    b = losskit.dense(s, gold, threads=2)
    c = losskit.dense(s, gold, with_grad=False)
    assert a.loss == b.loss == c.loss and c.grad is None
    np.testing.assert_array_equal(a.grad.view(np.uint16), b.grad.view(np.uint16))


def test_torch_bfloat16_scores():
    """losskit.torch.dense on a bfloat16 tensor: lk_dense_bf16 on its bits. The loss is the
    float32 loss on the widened scores rounded to bfloat16; the gradient is the float32 gradient
    times the upstream gradient, rounded once (ml_dtypes' rounding as the reference); and
    PyTorch's own bfloat16 cross_entropy agrees within bfloat16's precision (a peer)."""
    import torch
    import torch.nn.functional as F

    import losskit.torch as lkt

    rng = np.random.default_rng(17)
    n, k = 12, 300
    s16 = bf16_scores(rng, n, k)
    gold = rng.integers(0, k, n)
    for reduction, upstream in (("mean", 1.0), ("sum", 0.37), ("none", None)):
        t = torch.from_numpy(s16.view(np.int16).copy()).view(torch.bfloat16).requires_grad_()
        loss = lkt.dense(t, torch.from_numpy(gold), reduction=reduction)
        assert loss.dtype == torch.bfloat16
        up = torch.from_numpy(rng.uniform(0.5, 2, n).astype(np.float32)) if upstream is None \
            else torch.tensor(upstream, dtype=torch.float32)
        loss.backward(up.to(torch.bfloat16))
        ref = losskit.dense(s16.astype(np.float32), gold, reduction=reduction)
        np.testing.assert_array_equal(loss.detach().float().numpy(),
                                      np.asarray(ref.loss, dtype=np.float32).astype(BF16).astype(np.float32))
        g = up.to(torch.bfloat16).float().numpy()
        g = g.reshape(-1, 1) if reduction == "none" else g
        expected = (ref.grad * g).astype(np.float32).astype(BF16)
        np.testing.assert_array_equal(t.grad.view(torch.int16).numpy().view(np.uint16), expected.view(np.uint16))
        peer = F.cross_entropy(t.detach(), torch.from_numpy(gold), reduction=reduction)
        np.testing.assert_allclose(loss.detach().float().numpy(), peer.float().numpy(), rtol=2 ** -7)


def test_grad_out_of_the_wrong_dtype_is_refused():
    """Found by review: a float32 grad_out took bfloat16 bits (viewed as uint16 before its dtype
    was checked)."""
    s = np.zeros((1, 4), dtype=BF16)
    with pytest.raises(ValueError, match="bfloat16"):
        losskit.dense(s, [0], grad_out=np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="bfloat16"):
        losskit.dense(s, [0], grad_out=np.zeros((1, 4), np.float32))
    out = np.zeros((1, 4), dtype=BF16)
    r = losskit.dense(s, [0], grad_out=out)
    assert r.grad.base is out or np.shares_memory(r.grad, out)
    r32 = losskit.dense(s, [0], grad_dtype="float32", grad_out=np.zeros((1, 4), np.float32))
    np.testing.assert_array_equal(r32.grad.astype(BF16).view(np.uint16), out.view(np.uint16))


def test_nothing_read_allocates_nothing():
    """Found by review: with every row ignored, lk_dense_f32 reads nothing and allocates nothing,
    whatever k; the bfloat16 call allocated threads * k widened floats and failed (LK_ERR_ALLOC)
    for k = 1e18. Both succeed with a loss of 0 now (buffers of 8 values: never read)."""
    o = _native.init_options(_native.LOSSES["log"])
    gold = np.array([-100], dtype=np.int32)
    k = 10 ** 18
    small16 = np.zeros(8, dtype=np.uint16)
    small32 = np.zeros(8, dtype=np.float32)
    for fn, scores in ((lib.lk_dense_f32, small32), (lib.lk_dense_bf16, small16)):
        out = np.full(1, -7.0, dtype=np.float32)
        args = [ctypes.byref(o), 1, k, _common.address(scores), _common.address(gold), None, None,
                _common.address(out), None]
        fn(*(args + [None] if fn is lib.lk_dense_bf16 else args))
        assert out[0] == 0


# ------------------------------------------------------------------------------------------------
# The fused linear layer + loss in bfloat16 (lk_linear_bf16)
# ------------------------------------------------------------------------------------------------

LINEAR_CONFIGS = [
    dict(loss="log"),
    dict(loss="log", label_smoothing=0.1, z_loss=1e-3),
    dict(loss="softmax_margin", cost_scale=2.0),
    dict(loss="hinge"),
    dict(loss="perceptron"),
    dict(loss="log", softcap=5.0),
]


@pytest.mark.parametrize("config", LINEAR_CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("ignored", [False, True])
def test_linear_bf16_is_float32_on_the_widened_inputs(config, reduction, ignored):
    """lk_linear_bf16 against lk_linear_f32 on x and w widened: the loss, d_b, d_x_f32 and d_w_f32
    bit for bit, d_x and d_w ml_dtypes' rounding of those; k = 600 spans three class tiles (256)
    and n = 70 two row blocks (64); ignored rows take the compacting path of both."""
    rng = np.random.default_rng(len(config) * 7 + ignored)
    n, d, k = 70, 24, 600
    x = (rng.standard_normal((n, d)) * 0.7).astype(np.float32).astype(BF16)
    w = (rng.standard_normal((k, d)) * 0.3).astype(np.float32).astype(BF16)
    b = rng.standard_normal(k).astype(np.float32)
    gold = rng.integers(0, k, n).astype(np.int32)
    if ignored:
        gold[::5] = -100
    kw = dict(config, bias=b, reduction=reduction)
    if config["loss"] == "softmax_margin":
        kw.update(cost=rng.uniform(0, 1, (n, k)).astype(np.float32), cost_layout="per_example")
    ref = losskit.linear(x.astype(np.float32), w.astype(np.float32), gold, **kw)
    got = losskit.linear(x, w, gold, **kw)
    got32 = losskit.linear(x, w, gold, grad_dtype="float32", **kw)
    np.testing.assert_array_equal(np.asarray(got.loss).view(np.uint32), np.asarray(ref.loss).view(np.uint32))
    for a, e in ((got32.d_x, ref.d_x), (got32.d_w, ref.d_w), (got.d_b, ref.d_b), (got32.d_b, ref.d_b)):
        np.testing.assert_array_equal(a.view(np.uint32), e.view(np.uint32))
    assert got.d_x.dtype == BF16 and got.d_w.dtype == BF16
    np.testing.assert_array_equal(got.d_x.view(np.uint16), ref.d_x.astype(BF16).view(np.uint16))
    np.testing.assert_array_equal(got.d_w.view(np.uint16), ref.d_w.astype(BF16).view(np.uint16))
    # Raw bits with dtype="bfloat16" give the same.
    raw = losskit.linear(x.view(np.uint16), w.view(np.uint16), gold, dtype="bfloat16", **kw)
    np.testing.assert_array_equal(raw.d_w, got.d_w.view(np.uint16))


def test_linear_bf16_errors_and_mixed_dtypes():
    x = np.zeros((2, 3), dtype=BF16)
    w = np.zeros((4, 3), dtype=BF16)
    w[2, 1] = np.inf
    with pytest.raises(losskit.LossKitError) as b16:
        losskit.linear(x, w, [0, 1])
    with pytest.raises(losskit.LossKitError) as f32:
        losskit.linear(x.astype(np.float32), w.astype(np.float32), [0, 1])
    assert str(b16.value) == str(f32.value) and "w[2, 1]" in str(b16.value)
    with pytest.raises(ValueError, match="both be bfloat16"):
        losskit.linear(x, np.zeros((4, 3), np.float32), [0, 1])
    with pytest.raises(ValueError, match="w has dtype float32"):
        losskit.linear(x.view(np.uint16), np.zeros((4, 3), np.float32), [0, 1], dtype="bfloat16")
    # Raw bits for x, ml_dtypes for w: each gradient in its input's dtype (found by review).
    w_ok = np.ones((4, 3), dtype=BF16)
    mixed = losskit.linear(x.view(np.uint16), w_ok, [0, 1], dtype="bfloat16")
    assert mixed.d_x.dtype == np.uint16 and mixed.d_w.dtype == BF16
    # Outputs untouched on error (through the C entry point itself).
    o = _native.init_options(_native.LOSSES["log"])
    g = np.array([0, 1], dtype=np.int32)
    dx = np.full((2, 3), 0x1234, dtype=np.uint16)
    dw32 = np.full((4, 3), 7.5, dtype=np.float32)
    out = np.full(1, -7.0, dtype=np.float32)
    with pytest.raises(losskit.LossKitError, match=r"w\[2, 1\]"):
        lib.lk_linear_bf16(ctypes.byref(o), 2, 3, 4, _common.address(x.view(np.uint16)),
                           _common.address(w.view(np.uint16)), None, _common.address(g), None, None,
                           _common.address(out), _common.address(dx), None, None, None, _common.address(dw32))
    assert out[0] == -7.0 and (dx == 0x1234).all() and (dw32 == 7.5).all()


def test_linear_bf16_accuracy_against_float64():
    """Measured: lk_linear_bf16 against lk_linear_f64 on the same widened x and w (W8's d, fewer
    classes): the loss is float32's; d_x and d_w within bfloat16's 2^-8 of each entry plus
    float32's error."""
    rng = np.random.default_rng(23)
    n, d, k = 128, 256, 2000
    x = (rng.standard_normal((n, d))).astype(np.float32).astype(BF16)
    w = (rng.standard_normal((k, d)) / 16).astype(np.float32).astype(BF16)
    gold = rng.integers(0, k, n)
    ref = losskit.linear(x.astype(np.float64), w.astype(np.float64), gold)
    got = losskit.linear(x, w, gold)
    got32 = losskit.linear(x, w, gold, grad_dtype="float32")
    loss_error = abs(float(got.loss) - ref.loss) / ref.loss
    assert loss_error <= 64 * 2.0 ** -24
    worst = {}
    for name in ("d_x", "d_w"):
        e = getattr(ref, name)
        g16 = getattr(got, name).astype(np.float64)
        g32 = getattr(got32, name).astype(np.float64)
        f32_error = np.abs(g32 - e)
        assert (np.abs(g16 - e) <= 2.0 ** -8 * np.abs(e) + 2 * f32_error + 2.0 ** -133).all()
        # Normwise (largest error over the largest entry): single entries of d_w are sums that
        # cancel, where float32's own relative error is large too.
        worst[name] = float(np.abs(g16 - e).max() / np.abs(e).max())
        worst[name + " f32"] = float(f32_error.max() / np.abs(e).max())
    print(f"\nlk_linear_bf16 vs float64 (n = {n}, d = {d}, k = {k}), normwise: loss {loss_error:.1e}; "
          + ", ".join(f"{key} {v:.1e}" for key, v in worst.items()))
