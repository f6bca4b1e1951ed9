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

import mpmath
import numpy as np
import pytest

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


def mp_example(s, gold, cost, *, loss, cost_scale=1.0, fear=None, hope=None, fear_scale=1.0,
               hope_scale=1.0, label_smoothing=0.0):
    """(L, dL/ds, cond) of one example in exact arithmetic (mpmath, 60 digits) on the float
    values of s (k,), the unscaled costs (k,; None = 0/1 against the gold) and cost_scale.
    cond = sum_i |dL/dx_i| |x_i| over the scores, the costs and cost_scale: the conditioning
    term of the accuracy target 4u(|L| + cond) (issue "Trust")."""
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
        z = mpmath.fsum(mpmath.exp(sv[j] - m) for j in live)
        lse = m + mpmath.log(z)
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
        e = {j: mpmath.exp(v[j] - m) for j in live}
        z = mpmath.fsum(e.values())
        p = {j: e[j] / z for j in live}
        return m + mpmath.log(z), p, {j: a * p[j] for j in live}

    F, dF, cF = term(fk, f)
    H, dH, cH = term(hk, -h)
    L = F - H
    grad = [mpmath.mpf(dF.get(j, 0)) - dH.get(j, 0) for j in range(k)]
    dc = {j: mpmath.mpf(cF.get(j, 0)) - cH.get(j, 0) for j in live}  # dL/d(alpha c_j)
    cond = (mpmath.fsum(abs(grad[j] * sv[j]) for j in live)
            + 2 * mpmath.fsum(abs(dc[j] * alpha * c[j]) for j in live))  # the costs and alpha
    return L, grad, cond


def mp_reference(s, gold, cost, **kw):
    """(L, grad, cond, grad_cond) of `mp_example`, with grad_cond = max_j sum_i |dg_j/dx_i| |x_i|
    over the same inputs (scores, costs, cost_scale): the conditioning of the gradient row, by
    forward differences in 60-digit arithmetic (step 1e-30 relative: the error is of the order of
    the step, far below any float's rounding; the losses are smooth or piecewise linear there)."""
    L, grad, cond = mp_example(s, gold, cost, **kw)
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
        add(sv[i], mp_example(t, gold, cost, **kw))
    if cost is not None:
        cv = [_mp(x) for x in cost]
        for i in range(k):
            t = list(cv)
            t[i] = cv[i] * (1 + mpmath.mpf("1e-30"))
            add(cv[i], mp_example(s, gold, t, **kw))
    alpha = _mp(kw.get("cost_scale", 1.0))
    kw2 = dict(kw, cost_scale=alpha * (1 + mpmath.mpf("1e-30")))
    add(alpha, mp_example(s, gold, cost, **kw2))
    return L, grad, cond, max(total)


def assert_accurate(got_loss, got_grad, ref, dtype, *, factor=4.0, what=""):
    """The accuracy target (issue "Trust"): |L - L*| <= factor u (|L*| + cond); the gradient row
    within factor u (max_j |g*_j| + grad_cond) of its exact value, entry by entry, and no entry
    of the wrong sign where its exact value is above that level."""
    L, grad, cond, grad_cond = ref
    u = U[dtype]
    err = abs(_mp(got_loss) - L)
    bound = factor * u * (abs(L) + cond)
    assert err <= bound, f"{what}: loss {float(got_loss)!r} vs exact {mpmath.nstr(L, 17)}: error {mpmath.nstr(err, 3)} > {mpmath.nstr(bound, 3)}"
    if got_grad is None:
        return
    tol = factor * u * (max(abs(x) for x in grad) + grad_cond)
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


# ------------------------------------------------------------------------------------------
# 0/1 costs at a large cost_scale, with the gold the plain max (finding 4).
# ------------------------------------------------------------------------------------------

ZERO_ONE_LARGE_SCALE = [
    # (dtype, scores, gold, cost_scale, loss options)
    (np.float32, [0.25, -22.47, -23.47], 0, 20.0, dict(loss="softmax_margin")),
    (np.float32, [0.25, -22.47, -23.47], 0, 20.0, dict(loss="soft_ramp")),
    (np.float32, [0.25, -22.47, -23.47], 0, 20.0, dict(loss="hope_fear", fear="lse", hope="max")),
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
