"""The diagonal of the Hessian w.r.t. the scores (lk_dense_hessian_*, lk_lists_hessian_*;
losskit.dense / losskit.lists with with_hessian=True).

Checked against:
  - fourth-order central differences of LossKit's own gradient, in float64, for every loss that
    has a Hessian, on dense rows and candidate lists, under every reduction, with and without
    weights (the examples are independent, so perturbing column j of every row at once gives
    every row's d grad[i, j] / d s[i, j] from four calls);
  - closed forms: the log loss's p (1 - p) (with label smoothing too), squared's 2/K, 2 kappa/K;
  - scikit-learn's HalfMultinomialLoss.gradient_hessian (its hessian is p (1 - p)), with weights;
  - the max-based losses: exactly 0;
  - float32 against float64;
  - errors: the statuses and messages of the plain calls, every output untouched.
"""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import losskit
from losskit import _common
from losskit._native import lib

# Losses with a Hessian that is not 0 almost everywhere, with their options, and the max-based
# ones (Hessian 0). "hope_fear" appears with every pair of terms that has an LSE side.
SMOOTH = [
    ("log", {}),
    ("log_smoothed", {"loss": "log", "label_smoothing": 0.2}),
    ("softmax_margin", {}),
    ("risk", {}),
    ("soft_ramp", {}),
    ("squared", {"square_k": 2.5, "square_m": 0.5}),
    ("squentropy", {}),
    ("hope_fear_lse_gold", {"loss": "hope_fear", "fear": "lse", "hope": "gold", "fear_scale": 0.7}),
    ("hope_fear_lse_lse", {"loss": "hope_fear", "fear": "lse", "hope": "lse", "fear_scale": 1.5,
                           "hope_scale": 0.5}),
    ("hope_fear_lse_max", {"loss": "hope_fear", "fear": "lse", "hope": "max", "hope_scale": 1.0}),
    ("hope_fear_max_lse", {"loss": "hope_fear", "fear": "max", "hope": "lse", "hope_scale": 2.0}),
    ("hope_fear_lse_oracle", {"loss": "hope_fear", "fear": "lse", "hope": "oracle"}),
]
ANGULAR = [
    ("cosface", {"angular_scale": 4.0, "angular_margin": 0.3}),
    ("arcface", {"angular_scale": 4.0, "angular_margin": 0.5}),
]
MAX_BASED = [
    ("perceptron", {}), ("hinge", {}), ("ramp", {}), ("infinite_ramp", {}),
    ("hope_fear_max_gold", {"loss": "hope_fear", "fear": "max", "hope": "gold"}),
    ("hope_fear_max_max", {"loss": "hope_fear", "fear": "max", "hope": "max", "hope_scale": 1.0}),
    ("hope_fear_max_oracle", {"loss": "hope_fear", "fear": "max", "hope": "oracle"}),
]
LISTS_ONLY_DENSE = {"log_smoothed", "cosface", "arcface"}  # dense-row notions


def options(name, extra):
    kw = dict(extra)
    kw.setdefault("loss", name)
    return kw


def dense_batch(rng, n, k, *, angular=False, masked=False):
    if angular:
        s = rng.uniform(-0.9, 0.9, size=(n, k))
    else:
        s = rng.normal(scale=1.5, size=(n, k))
    g = rng.integers(0, k, size=n)
    cost = rng.uniform(0.0, 2.0, size=(n, k))
    cost[np.arange(n), g] = 0.0
    if masked:
        # Mask one class that is not the gold in every other row.
        for i in range(0, n, 2):
            j = (g[i] + 1) % k
            s[i, j] = -np.inf
    return s, g, cost


def dense_call(s, g, cost, kw, **more):
    kw = dict(kw)
    if kw["loss"] in ("cosface", "arcface"):
        cost = None
    return losskit.dense(s, g, cost=cost, cost_layout=None if cost is None else "per_example",
                         **kw, **more)


def fourth_order(f, s, step):
    """d f_j / d s_j for every column j at once, f(s) of the same shape as s: fourth-order central
    differences, column by column, every row perturbed together (rows are independent)."""
    out = np.zeros_like(s)
    for j in range(s.shape[1]):
        def at(t):
            x = s.copy()
            x[:, j] += t
            return f(x)[:, j]
        out[:, j] = (-at(2 * step) + 8 * at(step) - 8 * at(-step) + at(-2 * step)) / (12 * step)
    return out


# The step and tolerance: the gradient is smooth (analytic) away from the masked classes and
# ArcFace's threshold; fourth-order differences with h = 1e-3 have truncation error about
# h^4 |d^5 g| ~ 1e-12 and rounding about u |g| / h ~ 1e-13 for gradients of size 1 (measured:
# at most 3e-13). The angular losses' derivatives carry s^2 = 16 and, for ArcFace, 1/sin^3 theta
# (measured: 2e-8 at s = 4): their tolerance is looser.
STEP = 1e-3


def tolerance(loss):
    return 1e-7 if loss in ("cosface", "arcface") else 1e-10


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("name, extra", SMOOTH + ANGULAR, ids=[c[0] for c in SMOOTH + ANGULAR])
def test_dense_hessian_is_the_derivative_of_the_gradient(name, extra, reduction, weighted, rng):
    kw = options(name, extra)
    angular = kw["loss"] in ("cosface", "arcface")
    n, k = 6, 5
    s, g, cost = dense_batch(rng, n, k, angular=angular, masked=not angular)
    weight = rng.uniform(0.2, 3.0, size=n) if weighted else None
    if weighted:
        weight[1] = 0.0  # a zero-weight row: Hessian 0
    call = dict(weight=weight, reduction=reduction)
    result = dense_call(s, g, cost, kw, with_hessian=True, **call)
    assert result.hessian.shape == s.shape and result.hessian.dtype == np.float64

    def gradient(x):
        grad = dense_call(x, g, cost, kw, **call).grad
        return np.where(np.isfinite(x), grad, 0.0)

    finite = np.where(np.isfinite(s), s, -np.inf)
    expected = fourth_order(gradient, finite, STEP)
    expected[~np.isfinite(s)] = 0.0
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(result.hessian, expected, rtol=0, atol=tolerance(kw["loss"]) * scale)
    assert np.all(result.hessian[~np.isfinite(s)] == 0)  # masked classes
    if weighted:
        assert np.all(result.hessian[1] == 0)
    # Non-trivial: the check above must not pass on zeros.
    assert np.abs(result.hessian).max() > 1e-3
    # The loss and gradient are those of the plain call.
    plain = dense_call(s, g, cost, kw, **call)
    np.testing.assert_array_equal(result.loss, plain.loss)
    np.testing.assert_array_equal(result.grad, plain.grad)


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
@pytest.mark.parametrize("name, extra", [c for c in SMOOTH if c[0] not in LISTS_ONLY_DENSE],
                         ids=[c[0] for c in SMOOTH if c[0] not in LISTS_ONLY_DENSE])
def test_lists_hessian_is_the_derivative_of_the_gradient(name, extra, reduction, rng):
    kw = options(name, extra)
    lengths = np.array([3, 1, 5, 2, 4, 6])
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    total = offsets[-1]
    s = rng.normal(scale=1.5, size=total)
    cost = rng.uniform(0.0, 2.0, size=total)
    gold = np.array([rng.integers(0, m) for m in lengths])
    gold[4] = -1  # the oracle stands in
    s[offsets[2] + (gold[2] + 1) % lengths[2]] = -np.inf  # a masked candidate
    weight = rng.uniform(0.2, 3.0, size=len(lengths))
    call = dict(loss=kw.pop("loss"), cost=cost, weight=weight, reduction=reduction, **kw)
    if call["loss"] in ("squared", "squentropy") or (call["loss"] == "hope_fear" and kw.get("hope") == "gold") \
            or call["loss"] == "log":
        gold[4] = 0  # these losses use the gold score; -1 would need the oracle's
    result = losskit.lists(s, offsets, gold, with_hessian=True, **call)

    # Perturb the j-th candidate of every list at once (lists are independent).
    index = np.full((len(lengths), lengths.max()), -1)
    for i, m in enumerate(lengths):
        index[i, :m] = offsets[i] + np.arange(m)
    expected = np.zeros(total)
    for j in range(lengths.max()):
        rows = index[:, j] >= 0
        at_j = index[rows, j]
        live = at_j[np.isfinite(s[at_j])]

        def grad_at(t):
            x = s.copy()
            x[live] += t
            return losskit.lists(x, offsets, gold, **call).grad[live]
        expected[live] = (-grad_at(2 * STEP) + 8 * grad_at(STEP) - 8 * grad_at(-STEP)
                          + grad_at(-2 * STEP)) / (12 * STEP)
    scale = max(1.0, np.abs(expected).max())
    np.testing.assert_allclose(result.hessian, expected, rtol=0, atol=tolerance(call["loss"]) * scale)
    assert np.all(result.hessian[~np.isfinite(s)] == 0)
    assert np.abs(result.hessian).max() > 1e-3
    # from_arrays splits it like the gradient.
    parts = [s[offsets[i]:offsets[i + 1]] for i in range(len(lengths))]
    costs = [cost[offsets[i]:offsets[i + 1]] for i in range(len(lengths))]
    split = losskit.lists.from_arrays(parts, gold, cost=costs, with_hessian=True,
                                      **{key: v for key, v in call.items() if key != "cost"})
    np.testing.assert_array_equal(np.concatenate(split.hessian), result.hessian)


def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("epsilon", [0.0, 0.1])
def test_log_loss_hessian_is_p_one_minus_p(epsilon, rng):
    s = rng.normal(scale=3.0, size=(8, 7))
    g = rng.integers(0, 7, size=8)
    weight = rng.uniform(0.5, 2.0, size=8)
    r = losskit.dense(s, g, loss="log", label_smoothing=epsilon, weight=weight, reduction="sum",
                      with_hessian=True)
    p = softmax(s)
    np.testing.assert_allclose(r.hessian, weight[:, None] * p * (1 - p), rtol=1e-13, atol=0)
    mean = losskit.dense(s, g, loss="log", label_smoothing=epsilon, weight=weight, with_hessian=True)
    np.testing.assert_allclose(mean.hessian, weight[:, None] * p * (1 - p) / weight.sum(), rtol=1e-13)


def test_log_loss_hessian_keeps_its_digits_when_the_gold_dominates():
    # p_g = 1 / (1 + 2 e^-40): 1 - p_g ~ 8.5e-18 is below float64's resolution near 1, so
    # p (1 - p) formed as p - p^2 would be 0; the entry is 2 e^-40 / (1 + 2 e^-40)^2.
    s = np.array([[40.0, 0.0, 0.0]])
    r = losskit.dense(s, np.array([0]), loss="log", with_hessian=True)
    tiny = np.exp(-40.0)
    np.testing.assert_allclose(r.hessian[0], [2 * tiny / (1 + 2 * tiny) ** 2,
                                              tiny * (1 + tiny) / (1 + 2 * tiny) ** 2,
                                              tiny * (1 + tiny) / (1 + 2 * tiny) ** 2], rtol=1e-14)
    r32 = losskit.dense(s.astype(np.float32), np.array([0]), loss="log", with_hessian=True)
    np.testing.assert_allclose(r32.hessian[0], r.hessian[0], rtol=1e-6)


def test_squared_hessian_closed_form(rng):
    s = rng.normal(size=(4, 5))
    s[2, 3] = -np.inf
    g = np.array([0, 4, 1, 2])
    r = losskit.dense(s, g, loss="squared", square_k=3.0, reduction="sum", with_hessian=True)
    k = np.array([5, 5, 4, 5], dtype=float)[:, None]
    expected = np.broadcast_to(2 / k, s.shape).copy()
    expected[np.arange(4), g] = 2 * 3.0 / k[:, 0]
    expected[2, 3] = 0
    np.testing.assert_allclose(r.hessian, expected, rtol=1e-15)


def test_sklearn_half_multinomial_hessian(rng):
    from sklearn._loss.loss import HalfMultinomialLoss  # installed by make setup-python

    n, k = 40, 6
    raw = rng.normal(scale=2.0, size=(n, k))
    y = rng.integers(0, k, size=n)
    weight = rng.uniform(0.1, 2.0, size=n)
    grad, hess = HalfMultinomialLoss(n_classes=k).gradient_hessian(
        y_true=y.astype(np.float64), raw_prediction=raw, sample_weight=weight)
    r = losskit.dense(raw, y, loss="log", weight=weight, reduction="sum", with_hessian=True)
    np.testing.assert_allclose(r.grad, grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r.hessian, hess, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("name, extra", MAX_BASED, ids=[c[0] for c in MAX_BASED])
def test_max_based_losses_have_zero_hessian(name, extra, structure, rng):
    kw = options(name, extra)
    s, g, cost = dense_batch(rng, 5, 4)
    if structure == "dense":
        r = dense_call(s, g, cost, kw, with_hessian=True)
        plain = dense_call(s, g, cost, kw)
    else:
        offsets = np.arange(0, 21, 4)
        call = dict(kw, cost=cost.ravel())
        r = losskit.lists(s.ravel(), offsets, g, with_hessian=True, **call)
        plain = losskit.lists(s.ravel(), offsets, g, **call)
    assert np.all(r.hessian == 0) and not np.signbit(r.hessian).any()
    np.testing.assert_array_equal(r.grad, plain.grad)
    # The gradient is piecewise constant: its differences are 0 too (no ties in random scores).
    if structure == "dense":
        moved = dense_call(s + 1e-4 * rng.normal(size=s.shape), g, cost, kw).grad
        np.testing.assert_array_equal(moved, plain.grad)


@pytest.mark.parametrize("name, extra", SMOOTH + ANGULAR, ids=[c[0] for c in SMOOTH + ANGULAR])
def test_float32_agrees_with_float64(name, extra, rng):
    kw = options(name, extra)
    angular = kw["loss"] in ("cosface", "arcface")
    s, g, cost = dense_batch(rng, 16, 9, angular=angular, masked=not angular)
    s32, cost32 = s.astype(np.float32), cost.astype(np.float32)
    r64 = dense_call(s32.astype(np.float64), g, cost32.astype(np.float64), kw, reduction="sum",
                     with_hessian=True)
    r32 = dense_call(s32, g, cost32, kw, reduction="sum", with_hessian=True)
    assert r32.hessian.dtype == np.float32
    # Each entry within a few float32 ulps of the row's largest Hessian term (differences of two
    # softmax terms and risk's 1 - 2p are absolute-accurate, not relative).
    scale = np.abs(r64.hessian).max(axis=1, keepdims=True) + 1.0
    assert np.all(np.abs(r32.hessian - r64.hessian) <= 8 * np.finfo(np.float32).eps * scale)


def test_nan_score_poisons_its_row_only():
    s = np.array([[0.0, np.nan, 1.0], [0.5, 0.1, -0.2]])
    r = losskit.dense(s, np.array([0, 1]), loss="log", with_hessian=True, reduction="none")
    assert np.all(np.isnan(r.hessian[0])) and np.all(np.isfinite(r.hessian[1]))


def test_ignored_rows_get_zero_and_without_hessian_is_none(rng):
    s = rng.normal(size=(3, 4))
    r = losskit.dense(s, np.array([1, -100, 2]), with_hessian=True)
    assert np.all(r.hessian[1] == 0) and np.all(r.hessian[[0, 2]] > 0)
    assert losskit.dense(s, np.array([1, 0, 2])).hessian is None
    assert losskit.lists(s.ravel(), np.array([0, 4, 8, 12]), np.array([1, 0, 2])).hessian is None
    empty = losskit.dense(np.zeros((0, 4)), np.zeros(0, np.int32), with_hessian=True)
    assert empty.hessian.shape == (0, 4)


# --- errors: the statuses and messages of the plain calls; outputs untouched ------------------

def dense_raw(hessian, dtype, opt, n, k, s, g, cost, weight, outputs):
    suffix = "f64" if dtype == np.float64 else "f32"
    addr = _common.address
    if hessian:
        fn = getattr(lib, f"lk_dense_hessian_{suffix}")
        return fn(ctypes.byref(opt), n, k, addr(s), addr(g), addr(cost), addr(weight),
                  *[addr(o) for o in outputs])
    fn = getattr(lib, f"lk_dense_{suffix}")
    return fn(ctypes.byref(opt), n, k, addr(s), addr(g), addr(cost), addr(weight),
              *[addr(o) for o in outputs[:2]])


DENSE_ERRORS = [
    # id, loss, n, k, scores, gold, cost, weight, status
    ("null-scores", "log", 2, 3, None, [0, 1], None, None, "LK_ERR_NULL"),
    ("null-gold", "log", 2, 3, [[0, 1, 2], [1, 0, 2]], None, None, None, "LK_ERR_NULL"),
    ("negative-n", "log", -1, 3, [[0, 1, 2]], [0], None, None, "LK_ERR_SIZE"),
    ("zero-k", "log", 1, 0, [[0.0]], [0], None, None, "LK_ERR_SIZE"),
    ("gold-out-of-range", "hinge", 2, 3, [[0, 1, 2], [1, 0, 2]], [0, 3], None, None, "LK_ERR_LABEL"),
    ("plus-inf-score", "risk", 2, 3, [[0, np.inf, 2], [1, 0, 2]], [0, 1], None, None, "LK_ERR_DOMAIN"),
    ("negative-weight", "soft_ramp", 2, 3, [[0, 1, 2], [1, 0, 2]], [0, 1], None, [1, -1], "LK_ERR_DOMAIN"),
    ("masked-gold", "squared", 1, 3, [[-np.inf, 1, 2]], [0], None, None, "LK_ERR_DOMAIN"),
    ("cost-null", "softmax_margin", 1, 3, [[0, 1, 2]], [0], "per_example_null", None, "LK_ERR_NULL"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", DENSE_ERRORS, ids=[c[0] for c in DENSE_ERRORS])
def test_dense_hessian_errors_are_those_of_lk_dense(case, dtype):
    _, loss, n, k, scores, gold, cost, weight, status = case
    opt = _common.make_options(loss=loss, reduction="none", cost_scale=1.0, threads=0)
    if cost == "per_example_null":
        opt.cost_layout = 1
        cost = None
    s = None if scores is None else np.ascontiguousarray(scores, dtype=dtype)
    g = None if gold is None else np.ascontiguousarray(gold, dtype=np.int32)
    w = None if weight is None else np.ascontiguousarray(weight, dtype=dtype)
    found = []
    for hessian in (False, True):
        outputs = [np.full(8, 7.0, dtype), np.full(16, 7.0, dtype), np.full(16, 7.0, dtype)]
        with pytest.raises(losskit.LossKitError) as info:
            dense_raw(hessian, dtype, opt, n, k, s, g, cost, w, outputs)
        assert all(np.all(o == 7.0) for o in outputs), "an output was written although the call failed"
        found.append((info.value.name, info.value.message))
    assert found[0][0] == status
    assert found[1] == found[0]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lists_hessian_errors_are_those_of_lk_lists(dtype):
    suffix = "f64" if dtype == np.float64 else "f32"
    addr = _common.address
    cases = [  # offsets, scores, gold, status
        ([1, 2], [0.0, 1.0], [0], "LK_ERR_SIZE"),           # offsets[0] != 0
        ([0, 2, 1], [0.0, 1.0], [0, 0], "LK_ERR_SIZE"),     # decreasing
        ([0, 2], [0.0, 1.0], [2], "LK_ERR_LABEL"),          # gold outside its list
        ([0, 2], [0.0, 1.0], [-1], "LK_ERR_NULL"),          # oracle without costs
        ([0, 2], [0.0, np.inf], [0], "LK_ERR_DOMAIN"),
    ]
    opt = _common.make_options(loss="softmax_margin", reduction="none", cost_scale=1.0, threads=0)
    for offsets, scores, gold, status in cases:
        o = np.array(offsets, np.int64)
        s = np.array(scores, dtype)
        g = np.array(gold, np.int32)
        found = []
        for name in (f"lk_lists_{suffix}", f"lk_lists_hessian_{suffix}"):
            outputs = [np.full(8, 7.0, dtype) for _ in range(3)]
            args = [addr(x) for x in outputs[:3 if "hessian" in name else 2]]
            with pytest.raises(losskit.LossKitError) as info:
                getattr(lib, name)(ctypes.byref(opt), len(g), addr(o), addr(s), addr(g), None, None, *args)
            assert all(np.all(x == 7.0) for x in outputs)
            found.append((info.value.name, info.value.message))
        assert found[0][0] == status, (offsets, scores, gold, found)
        assert found[1] == found[0]


def test_null_hessian_is_the_plain_call(rng):
    s = rng.normal(size=(5, 4))
    g = rng.integers(0, 4, size=5)
    opt = _common.make_options(loss="risk", reduction="none", cost_scale=1.0, threads=0)
    loss1, grad1 = np.empty(5), np.empty((5, 4))
    loss2, grad2 = np.empty(5), np.empty((5, 4))
    addr = _common.address
    lib.lk_dense_f64(ctypes.byref(opt), 5, 4, addr(s), addr(g.astype(np.int32)), None, None,
                     addr(loss1), addr(grad1))
    lib.lk_dense_hessian_f64(ctypes.byref(opt), 5, 4, addr(s), addr(g.astype(np.int32)), None, None,
                             addr(loss2), addr(grad2), None)
    np.testing.assert_array_equal(loss1, loss2)
    np.testing.assert_array_equal(grad1, grad2)
    # Hessian alone (loss and grad NULL) equals the Hessian with them.
    h1, h2 = np.empty((5, 4)), np.empty((5, 4))
    lib.lk_dense_hessian_f64(ctypes.byref(opt), 5, 4, addr(s), addr(g.astype(np.int32)), None, None,
                             None, None, addr(h1))
    lib.lk_dense_hessian_f64(ctypes.byref(opt), 5, 4, addr(s), addr(g.astype(np.int32)), None, None,
                             addr(loss2), addr(grad2), addr(h2))
    np.testing.assert_array_equal(h1, h2)


def test_same_bits_at_one_and_two_threads(rng):
    # Enough rows to be split across threads (2^17 values per thread).
    s = rng.normal(size=(40000, 8))
    g = rng.integers(0, 8, size=40000)
    one = losskit.dense(s, g, loss="soft_ramp", threads=1, with_hessian=True)
    two = losskit.dense(s, g, loss="soft_ramp", threads=2, with_hessian=True)
    np.testing.assert_array_equal(one.hessian, two.hessian)


def test_results_still_unpack_to_loss_and_grad():
    """The Hessian is an attribute of the result, not a third tuple field: code written as
    `loss, grad = losskit.dense(...)` keeps working, with or without with_hessian."""
    s = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]])
    loss, grad = losskit.dense(s, [2, 0], with_hessian=True)
    r = losskit.dense(s, [2, 0], with_hessian=True)
    assert len(r) == 2 and r.hessian.shape == s.shape
    loss, grad = losskit.lists(s.ravel(), [0, 3, 6], [2, 0], with_hessian=True)
    assert losskit.lists(s.ravel(), [0, 3, 6], [2, 0]).hessian is None
