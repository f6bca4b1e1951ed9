"""Dense rows and candidate lists against exact arithmetic: regression tests for the defects the
"Trust" audit found in the flat structures (0/1-cost shortcuts at a large cost_scale, buffer
byte sizes, risk with 0/1 costs, exps below the normal range, label smoothing with one class,
cost-augmented scores rounded in the input type).

Expected values come from mpmath at 60 digits on exactly the float values the library receives
(`mp_example`), or from closed forms written next to them; the 0/1-cost cases are also compared
with the same call with the 0/1 costs written out per example, which takes no shortcut. Never
from the library's own output.
"""

from __future__ import annotations

import ctypes
import hashlib
import math
from pathlib import Path

import mpmath
import numpy as np
import pytest

import exact

import losskit
from losskit import _common, _native

mpmath.mp.dps = 60

U = {np.float32: 2.0 ** -24, np.float64: 2.0 ** -53}  # unit roundoff
DTYPES = [np.float32, np.float64]

# (fear kind, f, hope kind, h) of the presets that go through the terms (DESIGN.md §2).
PRESETS = {
    "log": ("lse", 0, "gold", 0),
    "perceptron": ("max", 0, "gold", 0),
    "hinge": ("max", 1, "gold", 0),
    "softmax_margin": ("lse", 1, "gold", 0),
    "ramp": ("max", 1, "max", 1),
    "soft_ramp": ("lse", 1, "lse", 1),
}


# ------------------------------------------------------------------------------------------
# The exact reference.
# ------------------------------------------------------------------------------------------

def _mp(x):
    return x if isinstance(x, mpmath.mpf) else mpmath.mpf(float(x))


def _masked(x):
    return not isinstance(x, mpmath.mpf) and np.isneginf(x)


def _mp_example(s, gold, cost, *, loss, cost_scale=1.0, fear=None, hope=None, fear_scale=1.0,
               hope_scale=1.0, label_smoothing=0.0):
    """(L, dL/ds, cond) of one example in exact arithmetic (mpmath, 60 digits) on the float
    values of s (k,), the unscaled costs (k,; None = 0/1 against the gold) and cost_scale.
    cond = sum_i |dL/dx_i| |x_i| over the scores, the costs and cost_scale: the conditioning
    term of the accuracy target 4u(|L| + cond)."""
    k = len(s)
    alpha = _mp(cost_scale)
    sv = [None if _masked(x) else _mp(x) for x in s]  # None: masked
    c = [mpmath.mpf(0 if j == gold else 1) for j in range(k)] if cost is None else [_mp(x) for x in cost]
    live = [j for j in range(k) if sv[j] is not None]
    if loss == "risk":
        m = max(sv[j] for j in live)
        e = {j: mpmath.exp(sv[j] - m) for j in live}
        z = mpmath.fsum(e.values())
        p = {j: e[j] / z for j in live}
        R = alpha * mpmath.fsum(p[j] * c[j] for j in live)
        grad = [p[j] * (alpha * c[j] - R) if j in p else mpmath.mpf(0) for j in range(k)]
        cond = mpmath.fsum(abs(grad[j] * sv[j]) for j in live) + 2 * abs(R)  # costs and alpha
        return R, grad, cond
    if loss == "log" and label_smoothing:
        eps = _mp(label_smoothing)
        K = len(live)
        m = max(sv[j] for j in live)
        top = min(j for j in live if sv[j] == m)
        z = 1 + mpmath.fsum(mpmath.exp(sv[j] - m) for j in live if j != top)
        lse = m + mpmath.log1p(z - 1)
        L = lse - (1 - eps) * sv[gold] - eps / K * mpmath.fsum(sv[j] for j in live)
        grad = [mpmath.exp(sv[j] - m) / z - (1 - eps) * (j == gold) - eps / K if j in live else mpmath.mpf(0)
                for j in range(k)]
        cond = mpmath.fsum(abs(grad[j] * sv[j]) for j in live)
        return L, grad, cond
    if loss == "hope_fear":
        fk, f, hk, h = fear, fear_scale, hope, hope_scale
    else:
        fk, f, hk, h = PRESETS[loss]
    f, h = _mp(f), _mp(h)

    def term(kind, a):
        """(value, dvalue/ds, dvalue/d(alpha c) per candidate)."""
        if kind == "gold":
            return sv[gold], {gold: 1}, {}
        v = {j: sv[j] + a * alpha * c[j] for j in live}
        m = max(v.values())
        if kind == "max":
            j = gold if v.get(gold) == m else min(j for j in live if v[j] == m)
            return v[j], {j: 1}, {j: a}
        top = min(j for j in live if v[j] == m)
        e = {j: mpmath.exp(v[j] - m) for j in live}
        rest = mpmath.fsum(e[j] for j in live if j != top)  # log1p form: 1 + 1e-305 is 1 at 60 digits
        p = {j: e[j] / (1 + rest) for j in live}
        return m + mpmath.log1p(rest), p, {j: a * p[j] for j in live}

    F, dF, cF = term(fk, f)
    H, dH, cH = term(hk, -h)
    L = F - H
    grad = [mpmath.mpf(dF.get(j, 0)) - dH.get(j, 0) for j in range(k)]
    dc = {j: mpmath.mpf(cF.get(j, 0)) - cH.get(j, 0) for j in live}  # dL/d(alpha c_j)
    cond = (mpmath.fsum(abs(grad[j] * sv[j]) for j in live)
            + 2 * mpmath.fsum(abs(dc[j] * alpha * c[j]) for j in live))  # the costs and alpha
    return L, grad, cond


# The references are pure functions of their float arguments and of this file: kept in
# exact.py's store (pytest's cache folder, shared with test_accuracy.py), so that the CPU levels
# of `make test` and later runs compute each once. The key carries a hash of this file.
SOURCE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


@pytest.fixture(scope="module", autouse=True)
def reference_store(request):
    with exact.kept_between_runs(request.config):
        yield


def _frozen(x):
    """A hashable, exact image of an argument: arrays by dtype and bytes, numbers by value."""
    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, x.tobytes())
    if isinstance(x, (list, tuple)):
        return tuple(_frozen(v) for v in x)
    if isinstance(x, mpmath.mpf):
        return ("mpf", mpmath.nstr(x, 70))
    if isinstance(x, (np.floating, float)):
        return ("float", type(x).__name__, float(x).hex())
    if isinstance(x, (np.integer, int)):
        return int(x)
    return x


def stored(fn):
    """fn, memoised in exact.py's store under this file's hash, the working precision and the
    exact image of its arguments. It works at 60 digits or more (mp.dps, which other test files
    set when imported, or a caller's workdps), whatever the order the files were imported in."""
    def cached(*args, **kw):
        dps = max(60, mpmath.mp.dps)
        key = (f"test_trust_flat.{fn.__name__}", SOURCE_HASH, dps, tuple(_frozen(a) for a in args),
               tuple(sorted((name, _frozen(v)) for name, v in kw.items())))
        if key not in exact.STORE:
            with mpmath.workdps(dps):
                exact.STORE[key] = fn(*args, **kw)
        return exact.STORE[key]
    return cached


mp_example = stored(_mp_example)


@stored
def mp_reference(s, gold, cost, **kw):
    """(L, grad, cond, grad_cond) of `mp_example`, with grad_cond = max_j sum_i |dg_j/dx_i| |x_i|
    over the same inputs (scores, costs, cost_scale): the conditioning of the gradient row, by
    forward differences in 60-digit arithmetic (step 1e-30 relative: the error is of the order of
    the step, far below any float's rounding; the losses are smooth or piecewise linear there)."""
    L, grad, cond = _mp_example(s, gold, cost, **kw)
    k = len(s)
    total = [mpmath.mpf(0)] * k

    def add(x, perturbed):
        if x == 0:
            return
        _, g2, _ = perturbed
        for j in range(k):
            total[j] += abs((g2[j] - grad[j]) / (x * mpmath.mpf("1e-30"))) * abs(x)

    sv = [x if _masked(x) else _mp(x) for x in s]
    for i in range(k):
        if _masked(s[i]):
            continue
        t = list(sv)
        t[i] = sv[i] * (1 + mpmath.mpf("1e-30"))
        add(sv[i], _mp_example(t, gold, cost, **kw))
    if cost is not None:
        cv = [_mp(x) for x in cost]
        for i in range(k):
            t = list(cv)
            t[i] = cv[i] * (1 + mpmath.mpf("1e-30"))
            add(cv[i], _mp_example(s, gold, t, **kw))
    alpha = _mp(kw.get("cost_scale", 1.0))
    kw2 = dict(kw, cost_scale=alpha * (1 + mpmath.mpf("1e-30")))
    add(alpha, _mp_example(s, gold, cost, **kw2))
    return L, grad, cond, max(total)


def assert_accurate(got_loss, got_grad, ref, dtype, *, factor=4.0, absolute=0.0, what=""):
    """The accuracy target: |L - L*| <= factor u (|L*| + cond); the gradient row
    within factor u (max_j |g*_j| + grad_cond) + absolute of its exact value, entry by entry, and
    no entry of the wrong sign where its exact value is above that level."""
    L, grad, cond, grad_cond = ref
    u = U[dtype]
    err = abs(_mp(got_loss) - L)
    bound = factor * u * (abs(L) + cond)
    assert err <= bound, f"{what}: loss {float(got_loss)!r} vs exact {mpmath.nstr(L, 17)}: error {mpmath.nstr(err, 3)} > {mpmath.nstr(bound, 3)}"
    if got_grad is None:
        return
    tol = factor * u * (max(abs(x) for x in grad) + grad_cond) + absolute
    for j, (gj, ej) in enumerate(zip(got_grad, grad)):
        e = abs(_mp(gj) - ej)
        assert e <= tol, f"{what}: grad[{j}] = {float(gj)!r} vs exact {mpmath.nstr(ej, 17)}: error {mpmath.nstr(e, 3)} > {mpmath.nstr(tol, 3)}"
        if abs(ej) > tol:  # above the row's rounding level
            assert np.sign(float(gj)) == np.sign(float(ej)), f"{what}: grad[{j}] has the wrong sign"


def per_example_costs(gold, k, dtype):
    """The 0/1 costs written out (LK_COST_PER_EXAMPLE), one row per example."""
    c = np.ones((len(gold), k), dtype=dtype)
    c[np.arange(len(gold)), gold] = 0
    return c


def dense1(s, gold, dtype, **kw):
    """One dense row, reduction "sum" (the example's own loss and gradient)."""
    return losskit.dense(np.asarray([s], dtype=dtype), [gold], reduction="sum", **kw)


def list1(s, gold, dtype, **kw):
    """The same example as one candidate list."""
    s = np.asarray(s, dtype=dtype)
    return losskit.lists(s, [0, len(s)], [gold], reduction="sum", **kw)


def one_with_costs(structure, s, c, gold, dtype, alpha, opts):
    """One example with its costs, as a dense row (LK_COST_PER_EXAMPLE) or a candidate list:
    the result and its gradient row."""
    if structure == "dense":
        got = dense1(s, gold, dtype, cost=c[None], cost_layout="per_example", cost_scale=alpha, **opts)
        return got, got.grad[0]
    got = list1(s, gold, dtype, cost=c, cost_scale=alpha, **opts)
    return got, got.grad


# ------------------------------------------------------------------------------------------
# 0/1 costs at a large cost_scale, with the gold the plain max.
# ------------------------------------------------------------------------------------------

ZERO_ONE_LARGE_SCALE = [
    # (dtype, scores, gold, cost_scale, loss options)
    (np.float32, [0.25, -22.47, -23.47], 0, 20.0, dict(loss="softmax_margin")),
    (np.float32, [0.25, -22.47, -23.47], 0, 20.0, dict(loss="soft_ramp")),
    (np.float32, [0.25, -22.47, -23.47], 0, 20.0, dict(loss="hope_fear", fear="lse", hope="max", fear_scale=1.0,
                                                       hope_scale=1.0)),
    (np.float64, [-12.09, 25.04, -27.17], 1, 50.81, dict(loss="soft_ramp")),
    (np.float64, [-12.09, 25.04, -27.17], 1, 50.81, dict(loss="softmax_margin")),
    (np.float32, [-1.07, -np.inf, -np.inf], 0, 89.0, dict(loss="softmax_margin")),
    (np.float64, [1.5], 0, 710.0, dict(loss="softmax_margin")),
    (np.float64, [1.5], 0, 710.0, dict(loss="soft_ramp")),
    # A row longer than a vector, the gold the plain max in the middle of it.
    (np.float32, [-3.0] * 9 + [2.0] + [-4.0] * 9, 9, 30.0, dict(loss="softmax_margin")),
    (np.float64, [-3.0] * 9 + [2.0] + [-4.0] * 9, 9, 700.0, dict(loss="soft_ramp")),
]


@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("dtype,s,gold,alpha,opts", ZERO_ONE_LARGE_SCALE)
def test_zero_one_fear_at_large_cost_scale(structure, dtype, s, gold, alpha, opts):
    # Exact: mpmath on the same float inputs; also the same call with the costs written out.
    s = np.asarray(s, dtype=dtype)
    call = dense1 if structure == "dense" else list1
    got = call(s, gold, dtype, cost_scale=alpha, **opts)
    ref = mp_reference(s, gold, None, cost_scale=alpha, **opts)
    assert np.isfinite(got.loss) and np.all(np.isfinite(got.grad))
    assert_accurate(got.loss, got.grad[0] if structure == "dense" else got.grad, ref, dtype,
                    what=f"{structure} {opts}")
    written = per_example_costs([gold], len(s), dtype)
    extra = dict(cost=written, cost_layout="per_example") if structure == "dense" else dict(cost=written[0])
    out = call(s, gold, dtype, cost_scale=alpha, **extra, **opts)
    assert_accurate(out.loss, out.grad[0] if structure == "dense" else out.grad, ref, dtype, what="written out")
    assert abs(float(got.loss) - float(out.loss)) <= 8 * U[dtype] * (abs(float(out.loss)) + float(ref[2]))


# ------------------------------------------------------------------------------------------
# Risk with 0/1 costs when the gold dominates (accuracy defect 1).
# ------------------------------------------------------------------------------------------

RISK_ZERO_ONE = [
    # (dtype, scores, gold). Exact R = alpha sum_{j != g} e^{s_j} / sum_j e^{s_j} (mpmath).
    (np.float64, [40.0, 0.0, 0.0], 0),  # R = 2 e^-40 / (1 + 2 e^-40) = 8.5e-18
    (np.float32, [20.0, 0.0, 0.0], 0),  # R = 4.1e-9
    (np.float64, [-0.9, 5.2, -50.1, 24.9], 2),  # R = 1 - 2.7e-33: never above the largest cost
    (np.float32, [-0.9, 5.2, -50.1, 24.9], 2),
    (np.float64, [700.0] + [0.0] * 40, 0),  # R = 40 e^-700, a normal number
    (np.float64, [3.0] + [-1.0] * 17 + [-np.inf] * 3, 0),  # longer than a vector, masked tail
    (np.float32, [-np.inf, 1.0, 0.5] + [30.0] + [0.0] * 13, 3),
]


@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("dtype,s,gold", RISK_ZERO_ONE)
def test_risk_zero_one_gold_dominates(structure, dtype, s, gold):
    s = np.asarray(s, dtype=dtype)
    call = dense1 if structure == "dense" else list1
    row = (lambda r: r.grad[0]) if structure == "dense" else (lambda r: r.grad)
    ref = mp_reference(s, gold, None, loss="risk")
    got = call(s, gold, dtype, loss="risk")
    assert_accurate(got.loss, row(got), ref, dtype, what=f"{structure} 0/1")
    assert float(got.loss) <= 1.0  # R never exceeds the largest cost
    # The same call with the costs written out (exact reference again, and the two agree).
    written = per_example_costs([gold], len(s), dtype)
    extra = dict(cost=written, cost_layout="per_example") if structure == "dense" else dict(cost=written[0])
    out = call(s, gold, dtype, loss="risk", **extra)
    assert_accurate(out.loss, row(out), ref, dtype, what=f"{structure} written out")
    assert float(out.loss) <= 1.0


# ------------------------------------------------------------------------------------------
# Exps below the smallest normal number (accuracy defect 2): a near-zero loss made of many
# subnormal terms is itself normal and keeps its value and gradient.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("dtype,top,others", [
    (np.float32, 88.0, 36),     # L = log1p(36 e^-88) = 2.18e-37 > FLT_MIN; each term 6.1e-39 < FLT_MIN
    (np.float32, 100.0, 3000),  # each term 3.7e-44 (a few subnormal bits); L = 1.1e-40 < FLT_MIN
    (np.float64, 709.0, 3000),  # L = log1p(3000 e^-709) = 3.7e-305; each term 1.2e-308 < DBL_MIN
    (np.float64, 740.0, 40),    # each term 4.2e-322 (subnormal); L = 1.7e-320
])
def test_log_loss_of_subnormal_terms(structure, dtype, top, others):
    # Closed form (mpmath): gold 0 ahead of `others` zeros by `top`:
    #   L = log1p(K e^-top),  dL/ds_0 = -K e^-top / (1 + K e^-top),  dL/ds_j = e^-top / (1 + K e^-top).
    s = np.array([top] + [0.0] * others, dtype=dtype)
    got = (dense1 if structure == "dense" else list1)(s, 0, dtype)
    grad = got.grad[0] if structure == "dense" else got.grad
    t = mpmath.exp(-_mp(top))
    L = mpmath.log1p(others * t)
    g0, gj = -others * t / (1 + others * t), t / (1 + others * t)
    tiny = float(np.finfo(dtype).tiny)
    smallest = float(np.finfo(dtype).smallest_subnormal)
    u = U[dtype]
    # The accuracy target 4u(|L| + cond), cond = sum_j |dL/ds_j| |s_j| = top |g0| (the row's
    # gradient has the same conditioning, top times its largest entry), plus the rounding of the
    # subnormal terms (each within one subnormal spacing: `others` of them).
    cond = top * abs(g0)
    assert abs(_mp(got.loss) - L) <= 4 * u * (L + cond) + others * smallest, (float(got.loss), L)
    assert abs(_mp(grad[0]) - g0) <= 4 * u * (abs(g0) + cond) + others * smallest
    for j in (1, others // 2, others):
        assert abs(_mp(grad[j]) - gj) <= 4 * u * (gj + cond) + smallest, (j, float(grad[j]), gj)
    if L > tiny:
        assert got.loss > 0 and grad[0] < 0 and grad[1] > 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_soft_losses_near_the_underflow_edge(dtype):
    # mpmath on the same float inputs: a row whose others trail the gold by 80..100 (float32) or
    # 700..740 (float64): softmax-margin and risk, each a normal number made of subnormal terms.
    rng = np.random.default_rng(7)
    lo, hi = (80, 100) if dtype == np.float32 else (700, 740)
    s = np.concatenate([[0.0], -rng.uniform(lo, hi, size=20)]).astype(dtype)
    for opts in (dict(loss="log"), dict(loss="risk"), dict(loss="softmax_margin", cost_scale=0.5)):
        with mpmath.workdps(800):  # p_g - 1 ~ 1e-305 needs 305 digits beside the 1
            ref = mp_reference(s, 0, None, **opts)
        got = dense1(s, 0, dtype, **opts)
        assert got.loss > 0
        assert_accurate(got.loss, got.grad[0], ref, dtype, what=str(opts))


# ------------------------------------------------------------------------------------------
# Label smoothing with one unmasked class (accuracy defect 7).
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.1, 0.3, 0.999])
def test_label_smoothing_one_unmasked_class(dtype, eps):
    # Closed form: with K = 1 the target (1 - eps) e_g + eps/K is e_g itself: loss 0, gradient 0
    # exactly (f32(0.1) - 0.1 = -1.49e-9 was left at the gold).
    s = np.array([[-np.inf, 2.5, -np.inf] + [-np.inf] * 14], dtype=dtype)
    got = losskit.dense(s, [1], label_smoothing=eps, reduction="sum")
    assert got.loss == 0
    assert np.all(got.grad == 0), got.grad


@pytest.mark.parametrize("dtype", DTYPES)
def test_label_smoothing_against_exact(dtype):
    # mpmath on the same float inputs, including masked classes (K counts the unmasked ones).
    rng = np.random.default_rng(11)
    s = rng.normal(size=19).astype(dtype)
    s[[3, 7]] = -np.inf
    for gold in (0, 12):
        ref = mp_reference(s, gold, None, loss="log", label_smoothing=0.1)
        got = dense1(s, gold, dtype, label_smoothing=0.1)
        assert_accurate(got.loss, got.grad[0], ref, dtype)


# ------------------------------------------------------------------------------------------
# Cost-augmented scores formed in double (accuracy defect 8): at |s| ~ 90 a loss of order 1
# keeps the digits that rounding s + f c to the input type would take (16-32 ulps in float64,
# ~2e-6 relative in float32).
# ------------------------------------------------------------------------------------------

WIDE_LOSSES = [
    dict(loss="ramp"),
    dict(loss="soft_ramp"),
    dict(loss="hinge"),
    dict(loss="softmax_margin"),
    dict(loss="hope_fear", fear="max", hope="lse", fear_scale=1.0, hope_scale=1.0),
    dict(loss="hope_fear", fear="lse", hope="max", fear_scale=0.7, hope_scale=1.3),
]


@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("costs", ["zero_one", "per_example"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", WIDE_LOSSES, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_wide_scores_keep_their_digits(structure, costs, dtype, opts, rng):
    # mpmath on the same float inputs: rows of 11 scores near +-90 whose top two are close, so
    # that the fear and hope terms pick the same or neighbouring candidates and the loss is of
    # order cost_scale, far below |s|.
    call = dense1 if structure == "dense" else list1
    for trial in range(6):
        s = (90 * rng.choice([-1, 1]) + rng.normal(scale=0.3, size=11)).astype(dtype)
        gold = int(rng.integers(11))
        alpha = float(rng.uniform(0.05, 0.8))
        if costs == "zero_one":
            cost, extra = None, {}
        else:
            cost = rng.uniform(0, 2, size=11).astype(dtype)
            cost[gold] = 0
            extra = dict(cost=cost[None, :], cost_layout="per_example") if structure == "dense" else dict(cost=cost)
        ref = mp_reference(s, gold, cost, cost_scale=alpha, **opts)
        got = call(s, gold, dtype, cost_scale=alpha, **extra, **opts)
        assert_accurate(got.loss, got.grad[0] if structure == "dense" else got.grad, ref, dtype,
                        what=f"trial {trial}")


# ------------------------------------------------------------------------------------------
# Byte sizes (dense rows and candidate lists): every buffer a call reads or
# writes has a byte size that exists, else LK_ERR_SIZE before anything is read.
# ------------------------------------------------------------------------------------------

def _raw_options(loss="log", reduction="none"):
    return _common.make_options(loss=loss, reduction=reduction, cost_scale=1.0, threads=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [2 ** 62, 2 ** 63 - 1, 2 ** 61 + 5, 2 ** 60])
def test_lists_huge_n_with_tiny_buffers(dtype, n):
    # (n + 1) * 8 bytes of offsets do not exist for any of these n: LK_ERR_SIZE naming n, with
    # nothing read (the buffers hold 4 entries; the gold is out of range and a score +inf, so a
    # read would show as another status) and nothing written (poisoned outputs stay).
    offsets = np.array([0, 1, 2, 3], dtype=np.int64)
    scores = np.array([np.inf, 0, 0, 0], dtype=dtype)
    gold = np.array([7, 7, 7, 7], dtype=np.int32)
    loss = np.full(4, 1234.5, dtype=dtype)
    grad = np.full(4, 1234.5, dtype=dtype)
    fn = _native.lib.lk_lists_f64 if dtype == np.float64 else _native.lib.lk_lists_f32
    opt = _raw_options()
    with pytest.raises(_native.LossKitError) as info:
        fn(ctypes.byref(opt), n, offsets.ctypes.data, scores.ctypes.data, gold.ctypes.data, None, None,
           loss.ctypes.data, grad.ctypes.data)
    assert info.value.name == "LK_ERR_SIZE" and "n" in info.value.message
    assert np.all(loss == 1234.5) and np.all(grad == 1234.5)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,k", [(2 ** 62, 1), (2 ** 61, 1), (2 ** 63 - 1, 1), (2 ** 40, 2 ** 23), (2 ** 63 - 1, 0),
                                 (2 ** 31, 2 ** 31)])
def test_dense_huge_shapes_with_tiny_buffers(dtype, n, k):
    # n * k * sizeof(T) bytes (which bounds gold's n * 4 and weight's and loss's n * sizeof(T))
    # do not exist, or k = 0 with n > 0: LK_ERR_SIZE before anything is read or written.
    scores = np.array([np.inf, 0, 0, 0], dtype=dtype)
    gold = np.array([7, 7, 7, 7], dtype=np.int32)
    loss = np.full(4, 1234.5, dtype=dtype)
    grad = np.full(4, 1234.5, dtype=dtype)
    fn = _native.lib.lk_dense_f64 if dtype == np.float64 else _native.lib.lk_dense_f32
    opt = _raw_options()
    with pytest.raises(_native.LossKitError) as info:
        fn(ctypes.byref(opt), n, k, scores.ctypes.data, gold.ctypes.data, None, None,
           loss.ctypes.data, grad.ctypes.data)
    assert info.value.name == "LK_ERR_SIZE", info.value
    assert np.all(loss == 1234.5) and np.all(grad == 1234.5)


# ------------------------------------------------------------------------------------------
# Long rows (>= 512 values: checked row by row, the survey reused by the computing pass) and
# short ones (screened, the computing pass finds what it needs): every path of the 0/1 and
# per-example shortcuts, the gold above, just above, and below the others.
# ------------------------------------------------------------------------------------------

LONG_LOSSES = [
    dict(loss="softmax_margin"),
    dict(loss="soft_ramp", cost_scale=0.6),
    dict(loss="hope_fear", fear="lse", hope="lse", fear_scale=1.5, hope_scale=0.5),
    dict(loss="hope_fear", fear="max", hope="lse", fear_scale=1.0, hope_scale=2.0),
    dict(loss="risk"),
    dict(loss="ramp", cost_scale=3.0),
]


@pytest.mark.parametrize("k", [600, 37])
@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("costs", ["zero_one", "per_example"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("opts", LONG_LOSSES, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_rows_long_and_short_against_exact(k, structure, costs, dtype, opts, rng):
    # mpmath on the same float inputs (loss and gradient); the loss against the target
    # 4u(|L| + cond); the gradient of a short row against its own conditioning, of a long one
    # against a coarse bound (its conditioning would take k^2 exact evaluations). Each
    # log-sum-exp term also carries
    # its exps' own error (2 ulp each: up to 4u absolute per term), which the target's
    # backward-error form does not count when the terms nearly cancel: allowed on top.
    call = dense1 if structure == "dense" else list1
    u = U[dtype]
    for lead, spread in ((5.0, 2.0), (0.4, 2.0), (-2.0, 2.0), (3.0, 40.0), (-1.0, 40.0)):
        # The gold's score above the others' max; spread 40 puts exps beyond e^64 of a wrong
        # centre (a log-sum-exp must centre on its own argmax).
        s = rng.normal(scale=spread, size=k)
        gold = int(rng.integers(k))
        s[gold] = np.max(np.delete(s, gold)) + lead
        s = s.astype(dtype)
        alpha = opts.get("cost_scale", 1.0)
        if costs == "zero_one":
            cost, extra = None, {}
        else:
            cost = rng.uniform(0, 2, size=k).astype(dtype)
            cost[gold] = 0
            extra = dict(cost=cost[None, :], cost_layout="per_example") if structure == "dense" else dict(cost=cost)
        got = call(s, gold, dtype, **extra, **opts)
        g = got.grad[0] if structure == "dense" else got.grad
        lse_terms = sum(1 for key in ("fear", "hope") if opts.get(key) == "lse") + \
            {"softmax_margin": 1, "soft_ramp": 2, "risk": 1}.get(opts["loss"], 0)
        if k <= 64:
            # Short rows: the gradient row against its own conditioning (mp_reference). A
            # difference of two softmaxes (two log-sum-exp terms) also carries the rounding of
            # the probabilities themselves, whose exps have their own 2-ulp error: up to 4u on
            # the scale of a probability (1), which the header states for these losses.
            L, grad, cond, grad_cond = mp_reference(s, gold, cost, **opts)
            tol = 4 * u * (max(abs(x) for x in grad) + grad_cond + (1 if lse_terms == 2 else 0))
            assert max(abs(_mp(a) - b) for a, b in zip(g, grad)) <= tol, lead
        else:
            L, grad, cond = mp_example(s, gold, cost, **opts)
        assert abs(_mp(got.loss) - L) <= 4 * u * (abs(L) + cond + lse_terms), (lead, float(got.loss), L)
        if k > 64:
            # Long rows: a coarse bound, the probabilities' scale (1 where two softmaxes are
            # subtracted, whose difference is far below them) times the inputs' magnitude.
            size = 1.0 if lse_terms == 2 else max(abs(x) for x in grad)
            scale = size * (1 + float(np.max(np.abs(s))) + 2 * alpha)
            worst = max(abs(_mp(a) - b) for a, b in zip(g, grad))
            assert worst <= 16 * u * scale, (lead, worst)


# ------------------------------------------------------------------------------------------
# Centred exponents whose parts overflow. A log-sum-exp over v = s + alpha c forms each
# exponent centred on the candidate j of the max, (s_k - s_j) + alpha (c_k - c_j); with costs (or
# scores) of both signs near the type's largest value a part overflows although v_k - v_j does
# not: inf * 0 = NaN under cost_scale 0 or -0 (the long fuzz run's findings), inf * 0.5 where
# the true exponent is 0 (a silently wrong loss).
# ------------------------------------------------------------------------------------------

F64_MAX = float(np.finfo(np.float64).max)
F32_MAX = float(np.finfo(np.float32).max)

CENTRED_PARTS_OVERFLOW = [
    # (dtype, scores, costs, gold, cost_scale, loss options)
    # The fuzzer's rows: costs 1e300 and -DBL_MAX, cost_scale -0 and 0.
    (np.float64, [1.25, 2.75, 2.5, -0.75], [-19.25, 1e300, -F64_MAX, 1.25], 1, -0.0, dict(loss="softmax_margin")),
    (np.float64, [1.25, 2.75, 2.5, -0.75], [-19.25, 1e300, -F64_MAX, 1.25], 1, 0.0, dict(loss="soft_ramp")),
    (np.float64, [-25.0, 1.25, -24.0, -8.0], [1e300, -F64_MAX, 20.0, 1e308], 2, 0.0,
     dict(loss="hope_fear", hope="gold", fear="lse", fear_scale=1.0)),
    # Every v is 0, but c_k - c_j overflows: exps of 1, not of the clamp's 32 (or NaN).
    (np.float64, [5e307, -5e307, 0.0], [-1e308, 1e308, 0.0], 2, 0.5, dict(loss="softmax_margin")),
    (np.float64, [5e307, -5e307, 0.0], [-1e308, 1e308, 0.0], 2, 0.5, dict(loss="soft_ramp")),
    (np.float32, [1.5e38, -1.5e38, 0.0], [-3e38, 3e38, 0.0], 2, 0.5, dict(loss="softmax_margin")),
    (np.float32, [1e38, -1e38, 0.0, 1.0], [-2e38, 2e38, 0.0, -3e38], 3, 0.0, dict(loss="softmax_margin")),
]


# F - H whose parts' differences overflow although each cost-augmented score is finite. The
# fear's candidate's cost near +DBL_MAX, the hope's near -DBL_MAX (hope = s - c), their scores of
# the other sign: max(s + c) - max(s - c) = 0.85M - 0.2M = 0.65M (M = DBL_MAX) was +inf with
# LK_OK, the split form taking (f.cost - h.cost) = 1.1M before the scores. A gold hope under a
# negative cost: hinge = max(s + c) - s_g = 0.3M + 0.6M = 0.9M, whose scores' difference is 1.2M.
# (Found by reading the code; float32 forms these differences in double, where they do not
# overflow: its rows are controls.)
M64, M32 = F64_MAX, F32_MAX
COSTS_DIFFERENCE_OVERFLOWS = [
    (np.float64, [-0.05 * M64, 0.4 * M64], [0.9 * M64, 0.2 * M64], 0, 1.0, dict(loss="ramp")),
    (np.float64, [-0.05 * M64, 0.4 * M64], [0.9 * M64, 0.2 * M64], 0, 1.0, dict(loss="soft_ramp")),
    (np.float64, [-0.05 * M64, 0.4 * M64], [0.9 * M64, 0.2 * M64], 0, 1.0,
     dict(loss="hope_fear", fear="lse", hope="lse", fear_scale=1.0, hope_scale=1.0)),
    (np.float64, [-0.05 * M64, 0.4 * M64], [0.9 * M64, 0.2 * M64], 0, 1.0,
     dict(loss="hope_fear", fear="max", hope="lse", fear_scale=1.0, hope_scale=1.0)),
    (np.float32, [-0.05 * M32, 0.4 * M32, 1.0], [0.9 * M32, 0.2 * M32, 0.5], 0, 1.0, dict(loss="ramp")),
    (np.float32, [-0.05 * M32, 0.4 * M32, 1.0], [0.9 * M32, 0.2 * M32, 0.5], 0, 1.0, dict(loss="soft_ramp")),
    (np.float64, [0.6 * M64, -0.6 * M64], [-0.3 * M64, 0.0], 1, 1.0, dict(loss="hinge")),
    (np.float64, [0.6 * M64, -0.6 * M64], [-0.3 * M64, 0.0], 1, 1.0, dict(loss="softmax_margin")),
    (np.float64, [0.6 * M64, -0.6 * M64, 1.0], [-0.3 * M64, 0.0, 2.0], 1, 1.0,
     dict(loss="hope_fear", fear="max", hope="gold", fear_scale=1.0)),
    (np.float32, [0.6 * M32, -0.6 * M32], [-0.3 * M32, 0.0], 1, 1.0, dict(loss="hinge")),
]


@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("dtype,s,c,gold,alpha,opts", COSTS_DIFFERENCE_OVERFLOWS)
def test_costs_difference_overflows(structure, dtype, s, c, gold, alpha, opts):
    s, c = np.asarray(s, dtype=dtype), np.asarray(c, dtype=dtype)
    got, grad = one_with_costs(structure, s, c, gold, dtype, alpha, opts)
    L, g, _ = mp_example(s, gold, c, cost_scale=alpha, **opts)
    assert np.isfinite(got.loss) and np.all(np.isfinite(grad)), (got.loss, grad)
    # Every term is one candidate's value here (the others' exps underflow to 0): the loss is a
    # difference of two sums of two floats, each rounded once.
    assert abs(_mp(got.loss) - L) <= 4 * U[dtype] * abs(L), (float(got.loss), mpmath.nstr(L, 17))
    for j in range(len(s)):
        assert abs(_mp(grad[j]) - g[j]) <= 4 * U[dtype], (j, grad[j], g[j])


@pytest.mark.parametrize("weight", [0.625, 0.4, 1.0, 2.0])
@pytest.mark.parametrize("loss", ["soft_ramp", "ramp"])
@pytest.mark.parametrize("structure", ["dense", "lists"])
def test_weighted_loss_of_an_example_beyond_double(structure, loss, weight):
    # The fuzzer's case (lists, soft ramp, weight 0.625): costs of -1e308 against scores near 0 and
    # -1e308 make F - H = -2e308 + ..., beyond double, while weight (F - H) = -1.25e308 is not;
    # it was stored as -inf. Expected: weight (F - H) at 50 digits; +-inf only where that is
    # beyond DBL_MAX (weights 1 and 2), else within 4u of it.
    s = np.array([8, 10.5, -1e308])
    c = np.array([-1e308, -1e308, -25.0])
    w = np.array([weight])
    if structure == "dense":
        got = losskit.dense(s[None], [1], cost=c[None], cost_layout="per_example", loss=loss, weight=w,
                            reduction="none").loss[0]
    else:
        got = losskit.lists(s, [0, 3], [1], cost=c, loss=loss, weight=w, reduction="none").loss[0]
    L, _, _ = mp_example(s, 1, c, loss=loss)
    big = mpmath.mpf(np.finfo(np.float64).max)

    def check(got, want):
        if abs(want) > big:
            assert got == (np.inf if want > 0 else -np.inf), (got, mpmath.nstr(want, 17))
        else:
            assert abs(_mp(got) - want) <= 4 * U[np.float64] * abs(want), (got, mpmath.nstr(want, 17))

    check(got, mpmath.mpf(weight) * L)
    # MEAN over this example and a second of loss 0: the mean is weight L / (weight + 1), finite
    # for every weight here although weight L is not for 1 and 2.
    s2, c2 = np.concatenate([s, [0.0, 0.0]]), np.concatenate([c, [0.0, 0.0]])
    w2 = np.array([weight, 1.0])
    if structure == "dense":
        mean = losskit.dense(np.array([s, [0.0, 0.0, 0.0]]), [1, 0], cost=np.array([c, [0.0, 0.0, 0.0]]),
                             cost_layout="per_example", loss=loss, weight=w2, reduction="mean").loss
    else:
        mean = losskit.lists(s2, [0, 3, 5], [1, 0], cost=c2, loss=loss, weight=w2, reduction="mean").loss
    check(mean, mpmath.mpf(weight) * L / (weight + 1))


@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("dtype,s,c,gold,alpha,opts", CENTRED_PARTS_OVERFLOW)
def test_centred_exponents_whose_parts_overflow(structure, dtype, s, c, gold, alpha, opts):
    s, c = np.asarray(s, dtype=dtype), np.asarray(c, dtype=dtype)
    got, grad = one_with_costs(structure, s, c, gold, dtype, alpha, opts)
    ref = mp_reference(s, gold, c, cost_scale=alpha, **opts)
    assert np.isfinite(got.loss) and np.all(np.isfinite(grad)), (got.loss, grad)
    # A difference of two softmaxes (soft ramp) has the header's further 4u per entry: with FMA
    # the two probabilities' products round apart even where they are the same.
    absolute = 4 * U[dtype] if opts["loss"] == "soft_ramp" else 0.0
    assert_accurate(got.loss, grad, ref, dtype, absolute=absolute, what=f"{structure} {opts}")
    if alpha == 0.5:
        # Here every s + alpha c is exactly 0 (the halves are exact): the bound above, which
        # counts the inputs' cancellation as conditioning, is loose; the exact values are not.
        L, g = ref[0], ref[1]
        assert abs(_mp(got.loss) - L) <= 8 * U[dtype] * (abs(L) + 1), (got.loss, L)
        for j in range(len(s)):
            assert abs(_mp(grad[j]) - g[j]) <= 8 * U[dtype] + absolute, (j, grad[j], g[j])


# ------------------------------------------------------------------------------------------
# The centre of the exps where rounding ties distinct v. With cost_scale 1e15 in float32 (1e20
# in double) every s_k + alpha rounds to the same value for scores tens apart; the exps were
# centred on the first of them, not on the exact max: exponents up to 47 (beyond the vector
# exp's range: NaN gradient and Hessian, an infinite loss; the long fuzz run's finding), or
# clamped at 32 (a wrong loss) with the costs written out.
# ------------------------------------------------------------------------------------------

TIED_BY_ROUNDING = [
    # (dtype, scores, gold, cost_scale)
    (np.float32, [-25.0, -25.0, -16.0, 19.25, 22.0], 0, 1e15),  # the fuzzer's row
    (np.float64, [-25.0, -25.0, -16.0, 19.25, 22.0], 0, 1e20),
    (np.float32, [30.0, -60.0, -1.0, -2.0], 0, 1e15),  # the gold the plain max
    (np.float32, [-40.0] * 9 + [7.5, 1.0] + [-np.inf] * 6, 10, 3e9),  # longer than a vector
]


@pytest.mark.parametrize("written", [False, True])
@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("dtype,s,gold,alpha", TIED_BY_ROUNDING)
def test_exps_centred_on_the_exact_max_when_rounding_ties(structure, written, dtype, s, gold, alpha):
    s = np.asarray(s, dtype=dtype)
    c = per_example_costs([gold], len(s), dtype) if written else None
    ref = mp_reference(s, gold, None, cost_scale=alpha, loss="softmax_margin")
    for hessian in (False, True):
        if structure == "dense":
            extra = dict(cost=c, cost_layout="per_example") if written else {}
            got = dense1(s, gold, dtype, cost_scale=alpha, loss="softmax_margin", with_hessian=hessian, **extra)
            grad, hess = got.grad[0], (got.hessian[0] if hessian else None)
        else:
            extra = dict(cost=c[0]) if written else {}
            got = list1(s, gold, dtype, cost_scale=alpha, loss="softmax_margin", with_hessian=hessian, **extra)
            grad, hess = got.grad, got.hessian
        assert_accurate(got.loss, grad, ref, dtype, what=f"{structure} written={written} hessian={hessian}")
        # Beyond the bound (which the huge scaled costs make loose): the softmax itself, which
        # is well conditioned in the scores: p_j = g_j off the gold, within a few ulps of 1.
        p = [ref[1][j] + (j == gold) for j in range(len(s))]
        for j in range(len(s)):
            if j != gold:
                assert abs(_mp(grad[j]) - p[j]) <= 8 * U[dtype] * p[j] + 1e-30, (j, grad[j], p[j])
        if hessian:
            # The diagonal of the Hessian of lse(v) - s_g: p (1 - p).
            for j in range(len(s)):
                want = p[j] * (1 - p[j])
                assert abs(_mp(hess[j]) - want) <= 16 * U[dtype] * want + 1e-30, (j, hess[j], want)


# ------------------------------------------------------------------------------------------
# Risk with 0/1 costs when the weight times cost_scale overflows: the gradient's factor
# weight alpha p_g / (1 + rest) was formed whole (inf, then inf * 0 = NaN where p_g is 0, or
# inf * e_j where the entry is finite; the long fuzz run's findings).
# ------------------------------------------------------------------------------------------

RISK_FACTOR_OVERFLOWS = [
    # (dtype, scores, gold, cost_scale, weight)
    (np.float64, [16.75, -100000.0, 19.0, -13.75], 1, F64_MAX, 1e200),
    (np.float64, [-8.0, -13.0, F64_MAX, 24.75, 9.0, 22.25], 2, 7.875, 1e308),
    (np.float64, [-0.87758256189037265, -np.inf, -10.5], 2, 7.625, 1e308),
    (np.float32, [0.0, -80.0, -80.0], 0, 1e30, 1e30),  # entries e^-80 1e60 = 1.8e25, finite
    (np.float32, [0.0, -80.0, -np.inf, -80.0] + [-90.0] * 6, 0, 1e30, 1e30),
]


@pytest.mark.parametrize("structure", ["dense", "lists"])
@pytest.mark.parametrize("dtype,s,gold,alpha,weight", RISK_FACTOR_OVERFLOWS)
def test_risk_zero_one_when_weight_times_scale_overflows(structure, dtype, s, gold, alpha, weight):
    s = np.asarray(s, dtype=dtype)
    w = np.asarray([weight], dtype=dtype)
    call = dense1 if structure == "dense" else list1
    got = call(s, gold, dtype, loss="risk", cost_scale=alpha, weight=w)
    grad = got.grad[0] if structure == "dense" else got.grad
    L, g, cond, grad_cond = mp_reference(s, gold, None, loss="risk", cost_scale=alpha)
    W = _mp(w[0])
    big = _mp(np.finfo(dtype).max)
    if W * L > big:
        assert float(got.loss) == np.inf
    else:
        assert abs(_mp(got.loss) - W * L) <= 8 * U[dtype] * W * (abs(L) + cond), (got.loss, W * L)
    tol = 8 * U[dtype] * W * (max(abs(x) for x in g) + grad_cond)
    for j, (gj, ej) in enumerate(zip(grad, g)):
        want = W * ej
        assert not np.isnan(gj), (j, want)
        if abs(want) > big:
            assert float(gj) == (np.inf if want > 0 else -np.inf), (j, gj, want)
        else:
            # Entry by entry against its own size too: p_j alpha p_g is one product of exps.
            assert abs(_mp(gj) - want) <= min(tol, 16 * U[dtype] * abs(want)) + _mp(np.finfo(dtype).tiny), \
                (j, gj, want)


@pytest.mark.parametrize("scores", [[1e308, 1e308, 0.0], [1.7e308, -1.7e308, 1.7e308, 5.0], [-1e308, -1e308, 3.0]])
def test_label_smoothing_whose_sum_of_scores_overflows(scores):
    """Found in review: the smoothing term eps (s[g] - mean) used the sum of the scores, which
    overflows double where the mean and the loss do not ([1e308, 1e308, 0] with eps = 0.2 gave
    -inf; the loss is 6.67e306). Exact: mpmath on the same doubles."""
    s = np.array([scores])
    g = np.array([0], dtype=np.int32)
    eps = 0.2
    got = losskit.dense(s, g, label_smoothing=eps, reduction="sum")  # (lists have no smoothing)
    with mpmath.workdps(60):
        v = [mpmath.mpf(float(x)) for x in scores]
        top = max(v)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(x - top) for x in v))
        exact_loss = lse - v[0] + eps * (v[0] - mpmath.fsum(v) / len(v))
    assert np.isfinite(got.loss)
    conditioning = sum(abs(float(x)) for x in scores)  # sum |dL/ds| |s| <= sum |s| (|dL/ds| <= 1)
    assert abs(got.loss - float(exact_loss)) <= 8 * U[np.float64] * (abs(float(exact_loss)) + conditioning)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weight", [2.0, 3.375])
def test_squared_loss_zero_miss_under_the_largest_kappa(dtype, weight):
    """Found by fuzzing (fuzzrun15): square_k = the type's largest value and a gold score equal
    to square_m. The gold's gradient 2 w kappa (s_g - M) / K is exactly 0, but w kappa overflowed
    first and inf * 0 gave NaN (float64; in float32, w kappa stays finite in double: the control).
    Closed form: 0 at the gold, 2 w s_j / K elsewhere."""
    big = float(np.finfo(dtype).max)
    s = np.array([[89.0, 1.0, -3.5]], dtype=dtype)
    g = np.array([0], dtype=np.int32)
    r = losskit.dense(s, g, loss="squared", square_k=big, square_m=89.0, weight=np.array([weight], dtype=dtype),
                      reduction="sum")
    assert r.grad[0, 0] == 0
    np.testing.assert_allclose(r.grad[0, 1:], 2 * weight * s[0, 1:].astype(np.float64) / 3, rtol=4 * U[dtype])
    np.testing.assert_allclose(r.loss, weight * (1.0 + 3.5 ** 2) / 3, rtol=4 * U[dtype])


# (dtype, score, square_k, square_m, softcap, weight): the cap's slope sech^2(s / c) far below
# the type's normal range, times a square-loss gradient 2 w kappa (s' - M) / K that overflows it.
SOFTCAP_FAR_PAST_THE_CAP = [
    # Found by fuzzing (fuzzrun15): slope e^(-9e8) (0 in double), gradient -2 DBL_MAX: NaN with
    # LK_OK (inf * 0); the product is 0.
    (np.float64, 2.25, float(np.finfo(np.float64).max), float(np.finfo(np.float64).max), 1e-8, 1.0),
    # slope 3e-330 (0 in double), gradient 2e616: product 6.9e286.
    (np.float64, 380.0, 1e308, -1e308, 1.0, 1.0),
    (np.float64, -365.5, 3e307, 1e308, 1.0, 0.75),
    # float32: slope 3e-52 (0 in float), gradient 2e60 (inf in float): product 6.1e8.
    (np.float32, 60.0, 1e30, -1e30, 1.0, 1.0),
    # float32, nothing overflows: slope 6.8e-48 (0 in float) times 2e38: 1.35e-9, not 0.
    (np.float32, 55.0, 1e20, -1e18, 1.0, 1.0),
    # float32: slope 1.5e-43, subnormal in float (3 % off), times -1.5e31.
    (np.float32, -25.0, 1e30, 2.0, 0.5, 3.0),
]


@pytest.mark.parametrize("dtype, score, kappa, m, cap, weight", SOFTCAP_FAR_PAST_THE_CAP)
def test_softcap_slope_below_the_normal_range_times_a_large_gradient(dtype, score, kappa, m, cap, weight):
    """dL/ds = w (2/K) kappa (c tanh(s/c) - M) sech^2(s/c), K = 1, in mpmath (exponents without
    bound) on the same float inputs: a slope that underflowed in the type was multiplied as 0
    (0 where the product is 1.35e-9) or as 0 times an overflowed gradient (NaN). The tolerance
    is the slope's own conditioning in s/c, 2|s/c| ulps, plus a few roundings."""
    s = np.array([[score]], dtype=dtype)
    r = losskit.dense(s, [0], loss="squared", square_k=kappa, square_m=m, softcap=cap,
                      weight=np.array([weight], dtype=dtype), reduction="sum")
    x = mpmath.mpf(float(s[0, 0])) / mpmath.mpf(cap)
    exact_grad = (mpmath.mpf(weight) * 2 * mpmath.mpf(kappa) * (mpmath.mpf(cap) * mpmath.tanh(x) - mpmath.mpf(m))
                  * mpmath.sech(x) ** 2)
    got = float(r.grad[0, 0])
    assert np.isfinite(got)
    expected = float(exact_grad) if abs(exact_grad) < np.finfo(dtype).max else None
    assert expected is not None
    if dtype == np.float32:
        expected = float(np.float32(expected))  # rounded to the output type
    tolerance = (4 + 2 * float(abs(x))) * U[dtype] * abs(expected) + float(np.finfo(dtype).smallest_subnormal)
    assert abs(got - expected) <= tolerance, (got, expected, float(exact_grad))
    if expected != 0:
        assert np.sign(got) == np.sign(expected)


def _mp_softcap_gradient(loss, scores, gold, cap, weight, kappa=1.0, m=1.0, costs=None):
    """w dL/ds' (the header's formulas) times sech^2(s/c), at s' = c tanh(s/c), in mpmath."""
    x = [mpmath.mpf(float(v)) / mpmath.mpf(cap) for v in scores]
    s = [mpmath.mpf(cap) * mpmath.tanh(v) for v in x]
    k = len(s)
    w = mpmath.mpf(weight)
    if loss == "squared":
        d = [2 * (mpmath.mpf(kappa) * (v - mpmath.mpf(m)) if j == gold else v) / k for j, v in enumerate(s)]
    elif loss == "squentropy":
        top = max(s)
        z = sum(mpmath.exp(v - top) for v in s)
        d = [mpmath.exp(v - top) / z - (1 if j == gold else 0) + (0 if j == gold else 2 * v / (k - 1))
             for j, v in enumerate(s)]
    else:  # risk, per-example costs
        top = max(s)
        z = sum(mpmath.exp(v - top) for v in s)
        p = [mpmath.exp(v - top) / z for v in s]
        c = [mpmath.mpf(float(v)) for v in costs]
        r = sum(pj * cj for pj, cj in zip(p, c))
        d = [pj * (cj - r) for pj, cj in zip(p, c)]
    return [w * dj * mpmath.sech(v) ** 2 for dj, v in zip(d, x)]


# (dtype, loss, scores, costs, softcap, weight): entries whose gradient before the cap's slope
# overflows the type but not after, for K >= 2 (the losses round coefficient / K or / a softmax
# denominator in the type: the rerun must stay where that rounding keeps its digits; found by
# review: +33 % in double, 0 in float).
SOFTCAP_OVERFLOW_BEFORE_THE_SLOPE = [
    (np.float64, "squared", [0.0, 1.7e308], None, 1e308, 3.0),
    (np.float64, "squared", [0.0, 1.7e308], None, 1e308, 10.0),
    (np.float64, "squentropy", [0.0, 1.7e308, 0.0], None, 1e308, 3.0),
    (np.float64, "risk", [1.0, -1.0], [-1e308, 1e308], 1.0, 12.0),
    (np.float64, "risk", [1.0, -1.0], [-1e308, 1e308], 1.0, 16.0),  # +-inf: beyond DBL_MAX
    (np.float32, "squared", [0.0, 3e38], None, 1e38, 5.0),
    (np.float32, "squared", [0.0, 3e38], None, 1e38, 7.0),
    (np.float32, "squared", [0.0, 3e38], None, 1e38, 1000.0),  # 9.8e38: +inf in float
    (np.float32, "squentropy", [1.0, 3e38, -2e38], None, 1e38, 4.0),
]


@pytest.mark.parametrize("dtype, loss, scores, costs, cap, weight", SOFTCAP_OVERFLOW_BEFORE_THE_SLOPE)
def test_softcap_gradient_that_overflows_before_the_slope(dtype, loss, scores, costs, cap, weight):
    s = np.array([scores], dtype=dtype)
    kw = {}
    if costs is not None:
        kw = dict(cost=np.array([costs], dtype=dtype), cost_layout="per_example")
    r = losskit.dense(s, [0], loss=loss, softcap=cap, weight=np.array([weight], dtype=dtype),
                      reduction="sum", **kw)
    exact_grad = _mp_softcap_gradient(loss, s[0], 0, cap, weight, costs=costs)
    for j, e in enumerate(exact_grad):
        expected = float(e)  # +-inf past DBL_MAX's rounding range
        if dtype == np.float32:
            expected = float(np.float32(expected))
        got = float(r.grad[0, j])
        if np.isinf(expected):
            assert got == expected, (j, got, expected)
        else:
            assert abs(got - expected) <= 16 * U[dtype] * abs(expected) + float(np.finfo(dtype).smallest_subnormal), \
                (j, got, expected)


# (dtype, square_k, square_m, z_loss, softcap, weight): one class scored 1, so that the gold's
# gradient is w (2 kappa (s' - M) + 2 lambda lse(s')) slope, lse(s') = s': the square loss's term
# and the z-loss's overflow the type with opposite signs (inf - inf: NaN with LK_OK; found by
# make test's fuzz-mutate on b8078e0), while their sum does not, or does.
Z_LOSS_AGAINST_SQUARED = [
    (np.float64, 1e308, 2.7, 1.6e308, None, 1.0),          # -2e307
    (np.float64, 1e308, 2.7, 1.6e308, 3.0, 0.75),          # capped: s' = 3 tanh(1/3)
    (np.float64, 1e308, -1e308, 1.6e308, None, 1.0),      # both positive: +inf in truth
    (np.float64, 1.7976931348623157e308, 1.7976931348623157e308, 1.7976931348623157e308, 1e300, 0.125),
    (np.float32, 1e38, 2.7, 1.6e38, None, 1.0),            # float: -2e37
    (np.float32, 1e38, 2.7, 1.6e38, 2.0, 2.0),
]


@pytest.mark.parametrize("dtype, kappa, m, lam, cap, weight", Z_LOSS_AGAINST_SQUARED)
def test_z_loss_and_square_loss_terms_beyond_the_type(dtype, kappa, m, lam, cap, weight):
    """Expected: mpmath on the same inputs (the header's formulas), rounded to the type."""
    s = np.array([[1.0]], dtype=dtype)
    r = losskit.dense(s, [0], loss="squared", square_k=kappa, square_m=m, z_loss=lam, softcap=cap,
                      weight=np.array([weight], dtype=dtype), reduction="sum")
    one = mpmath.mpf(1)
    if cap is None:
        sp, slope = one, one
    else:
        sp, slope = mpmath.mpf(cap) * mpmath.tanh(one / cap), mpmath.sech(one / cap) ** 2
    exact_grad = mpmath.mpf(weight) * (2 * mpmath.mpf(kappa) * (sp - mpmath.mpf(m)) + 2 * mpmath.mpf(lam) * sp) * slope
    expected = float(exact_grad)
    if dtype == np.float32:
        expected = float(np.float32(expected)) if abs(expected) < 3.5e38 else float(np.sign(expected) * np.inf)
    got = float(r.grad[0, 0])
    if np.isinf(expected):
        assert got == expected
    else:
        # The sum cancels: its error is u times the terms' magnitudes (each rounded once).
        terms = abs(mpmath.mpf(weight) * 2 * mpmath.mpf(kappa) * (sp - mpmath.mpf(m)) * slope) \
            + abs(mpmath.mpf(weight) * 2 * mpmath.mpf(lam) * sp * slope)
        assert abs(got - expected) <= 8 * U[dtype] * (abs(expected) + terms), (got, expected)


# The rerun of Shaping.finish on rows with a masked class: its K (unmasked classes) must be the
# row's own. Found by review of the first rerun in double, which treated the row as unmasked:
# the squared entry x 2/3, and the z-loss case with the wrong sign.
MASKED_RERUN = [
    (np.float64, "squared", [0.0, 1.7e308, -np.inf], dict(softcap=1e308), 3.0),
    (np.float64, "squentropy", [0.0, 1.7e308, 0.0, -np.inf], dict(softcap=1e308), 3.0),
    (np.float64, "squared", [1.0, -np.inf], dict(square_k=1e308, square_m=2.7, z_loss=1.6e308), 1.0),
    (np.float32, "squared", [1.0, -np.inf], dict(square_k=3e38, square_m=2.0, z_loss=2.9e38), 1.0),
]


@pytest.mark.parametrize("dtype, loss, scores, options, weight", MASKED_RERUN)
def test_shaped_rerun_keeps_masked_classes(dtype, loss, scores, options, weight):
    """Expected: the same call without the masked column (a masked class changes nothing else),
    whose entries are checked against mpmath by the tests above; the masked entry is 0."""
    s = np.array([scores], dtype=dtype)
    kw = dict(options, weight=np.array([weight], dtype=dtype), reduction="sum")
    r = losskit.dense(s, [0], loss=loss, **kw)
    unmasked = np.isfinite(s[0])
    ref = losskit.dense(s[:, unmasked], [0], loss=loss, **kw)
    np.testing.assert_array_equal(r.grad[0, unmasked], ref.grad[0])
    assert (r.grad[0, ~unmasked] == 0).all()
    # The z-loss case in closed form: w (2 kappa (1 - M) + 2 lambda) (lse = s' = 1, p = 1).
    if "z_loss" in options:
        square = weight * 2 * mpmath.mpf(options["square_k"]) * (1 - mpmath.mpf(options["square_m"]))
        z = weight * 2 * mpmath.mpf(options["z_loss"])
        # The sum cancels: u times the terms' magnitudes.
        assert abs(float(r.grad[0, 0]) - float(square + z)) <= 8 * U[dtype] * float(abs(square) + abs(z))


@pytest.mark.parametrize("k", [2, 3, 7])
def test_label_smoothing_on_rows_of_dbl_max(k):
    """Found by fuzzing (fuzzrun18): a row of k scores DBL_MAX under label smoothing. The sum of
    the scores overflows, and the mean summed in parts DBL_MAX / k rounded past DBL_MAX (+inf),
    so the loss was -inf. Closed form: lse - s[g] + eps (s[g] - mean) = log k."""
    big = float(np.finfo(np.float64).max)
    s = np.full((1, k), big)
    r = losskit.dense(s, [k - 1], loss="log", label_smoothing=1e-8, weight=np.array([2.25]), reduction="none")
    expected = 2.25 * math.log(k)
    assert abs(r.loss[0] - expected) <= 8 * U[np.float64] * expected
    assert np.isfinite(r.grad).all()


def test_label_smoothing_pulls_an_overflowing_log_loss_back():
    """Found by fuzzing (fuzzrun18): lse(s) - s[g] beyond DBL_MAX (a score of DBL_MAX, a gold of
    -1e300) while eps (s[g] - mean) brings the loss back below it: +inf was returned. mpmath."""
    big = float(np.finfo(np.float64).max)
    s = np.array([[big, -1e300, -1e300, -1e300, -1e300, -1e300]])
    eps = 0.9375
    r = losskit.dense(s, [2], loss="log", label_smoothing=eps, reduction="none")
    with mpmath.workdps(60):
        v = [mpmath.mpf(float(t)) for t in s[0]]
        top = max(v)
        lse = top + mpmath.log(sum(mpmath.exp(t - top) for t in v))
        exact_loss = lse - v[2] + eps * (v[2] - sum(v) / len(v))
    assert float(exact_loss) < big
    assert abs(r.loss[0] - float(exact_loss)) <= 8 * U[np.float64] * big
