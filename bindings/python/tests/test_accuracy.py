"""The exact-arithmetic accuracy suite: every loss x structure x precision x regime against
50-digit references computed in mpmath from the exact values of the float inputs (tests/exact.py,
whose docstring defines the metric: error / (4u (|v| + sum_j |dv/dx_j| |x_j|) + smallest normal)
per loss and per gradient entry, <= 1 passes, plus the sign rule).

One test per (loss, structure, regime) runs both precisions (float32 inputs are chosen exactly
representable in float32, so one reference serves both). The default run keeps the mpmath work
small; `--accuracy-large` (conftest.py) or LOSSKIT_ACCURACY=large adds more random draws, chains
of T = 4, and rows of 128256 classes.

The table (loss x structure x precision x regime -> max ratio of the loss, of the gradient, wrong
signs; and, for information only, the gradient's ratio under a row-norm reading of the bound):
    python3 tests/test_accuracy.py --table [--large]        (prints every cell)
    python3 -m pytest tests/test_accuracy.py --accuracy-table  (prints it after the run)
"""

from __future__ import annotations

import math
import os
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exact  # noqa: E402

import losskit  # noqa: E402

LARGE = os.environ.get("LOSSKIT_ACCURACY", "") == "large"
DRAWS = 4 if LARGE else 1
PRECS = ("f32", "f64")
DTYPE = {"f32": np.float32, "f64": np.float64}
INF = np.inf

# ------------------------------------------------------------------------------------------
# Losses: the name in the table -> (reference spec, keyword options of losskit, eps)
# ------------------------------------------------------------------------------------------

LOSSES = {
    "log": ({"name": "log"}, {"loss": "log"}),
    "log_ls": ({"name": "log"}, {"loss": "log", "label_smoothing": 0.1}),
    "perceptron": ({"name": "perceptron"}, {"loss": "perceptron"}),
    "hinge": ({"name": "hinge"}, {"loss": "hinge"}),
    "softmax_margin": ({"name": "softmax_margin"}, {"loss": "softmax_margin"}),
    "risk": ({"name": "risk"}, {"loss": "risk"}),
    "ramp": ({"name": "ramp"}, {"loss": "ramp"}),
    "soft_ramp": ({"name": "soft_ramp"}, {"loss": "soft_ramp"}),
    "infinite_ramp": ({"name": "infinite_ramp"}, {"loss": "infinite_ramp"}),
    "squared": ({"name": "squared"}, {"loss": "squared", "square_k": 2.0, "square_m": 0.5}),
    "squentropy": ({"name": "squentropy"}, {"loss": "squentropy"}),
}
HOPE_FEAR = {  # (hope, hope_scale, fear, fear_scale)
    "hf_gold_lse_f2": ("gold", 0.0, "lse", 2.0),
    "hf_max_lse": ("max", 1.0, "lse", 1.0),
    "hf_lse_max": ("lse", 1.0, "max", 1.0),
    "hf_lse_lse": ("lse", 0.5, "lse", 2.0),
    "hf_oracle_lse": ("oracle", 0.0, "lse", 1.0),
}
for _name, (_h, _hs, _f, _fs) in HOPE_FEAR.items():
    LOSSES[_name] = ({"name": "hope_fear", "hope": _h, "hope_scale": _hs, "fear": _f,
                      "fear_scale": _fs},
                     {"loss": "hope_fear", "hope": _h, "hope_scale": _hs, "fear": _f,
                      "fear_scale": _fs})

COST_LOSSES = {"hinge", "softmax_margin", "risk", "ramp", "soft_ramp", "infinite_ramp"} | set(HOPE_FEAR)
GOLD_LOSSES = {"log", "log_ls", "perceptron", "hinge", "softmax_margin", "squared", "squentropy",
               "hf_gold_lse_f2"}
CHAIN_LOSSES = [name for name in LOSSES if name not in ("log_ls", "squared", "squentropy")]
LIST_LOSSES = [name for name in LOSSES if name != "log_ls"]


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng([20261206, zlib.crc32(repr(key).encode())])


def f32(a) -> np.ndarray:
    """Values exactly representable in float32 (kept as float64 arrays)."""
    return np.asarray(a, dtype=np.float32).astype(np.float64)


# ------------------------------------------------------------------------------------------
# Dense rows and lists: the calls of each regime
# ------------------------------------------------------------------------------------------

class Call:
    """One library call: rows (list of 1-D float64 arrays of exactly representable values),
    gold per row, unscaled costs per row (None: 0/1 against the gold, as the library's default),
    alpha, weights, and the precisions it runs in."""

    def __init__(self, rows, gold, costs=None, alpha=1.0, weight=None, precs=PRECS, note=""):
        self.rows = [np.asarray(r, dtype=np.float64) for r in rows]
        self.gold = list(gold)
        self.costs = None if costs is None else [np.asarray(c, dtype=np.float64) for c in costs]
        self.alpha = float(alpha)
        self.weight = None if weight is None else [float(w) for w in weight]
        self.precs = precs
        self.note = note

    def row_costs(self, i):
        if self.costs is not None:
            return self.costs[i]
        return (np.arange(len(self.rows[i])) != self.gold[i]).astype(np.float64)

    def describe(self, i, loss, structure, prec):
        c = None if self.costs is None else self.costs[i].tolist()
        w = None if self.weight is None else self.weight[i]
        return (f"{structure} {loss} {prec}: scores={self.rows[i].tolist()!r} gold={self.gold[i]} "
                f"cost={c!r} cost_scale={self.alpha!r} weight={w!r} {self.note}")


def _costs(rng, rows, gold):
    """Per-candidate costs: multiples of 1/4 in [0, 2], the gold's 0."""
    out = []
    for r, g in zip(rows, gold):
        c = rng.integers(0, 9, size=len(r)) / 4.0
        if g >= 0:
            c[g] = 0.0
        out.append(c)
    return out


def _normal_rows(rng, n, k, scale=1.0, shift=0.0):
    return [f32(shift + scale * rng.standard_normal(k)) for _ in range(n)]


def _with_costs(calls, loss, rng):
    """Each cost-reading loss runs every call with 0/1 costs and again with random costs."""
    out = []
    for c in calls:
        out.append(c)
        if loss in COST_LOSSES and c.costs is None and c.alpha == 1.0:
            out.append(Call(c.rows, c.gold, _costs(rng, c.rows, c.gold), c.alpha, c.weight,
                            c.precs, c.note))
    return out


def dense_calls(loss, regime):
    rng = _rng("dense", loss, regime)
    n = 2 * DRAWS
    calls = []
    if regime == "normal":
        rows = _normal_rows(rng, n, 5)
        calls = [Call(rows, rng.integers(0, 5, n))]
    elif regime == "wide":
        rows = _normal_rows(rng, n, 5, 1.5, 90.0) + [f32(rng.choice([-90.0, 90.0], 5) + rng.standard_normal(5))]
        calls = [Call(rows, rng.integers(0, 5, n + 1))]
    elif regime == "nearzero":
        for gaps, precs in (((20.0, 45.0, 70.0, 87.0), PRECS), ((300.0, 700.0), ("f64",))):
            rows, gold = [], []
            for gap in gaps:
                r = f32(rng.standard_normal(5))
                g = int(rng.integers(0, 5))
                r[g] = float(np.float32(max(np.delete(r, g)) + gap))
                rows.append(r)
                gold.append(g)
            calls.append(Call(rows, gold, precs=precs))
    elif regime == "ties":
        rows = [[2.0, 2.0, 0.0, -1.0, 2.0], [2.0, 2.0, 0.0, -1.0, 2.0], [1.0] * 5,
                [0.5, -3.0, 0.5, 0.5, 0.25]]
        calls = [Call(rows, [0, 3, 2, 1])]
    elif regime == "k2":
        rows = _normal_rows(rng, n + 1, 2)
        calls = [Call(rows, rng.integers(0, 2, n + 1))]
    elif regime == "masked":
        rows = _normal_rows(rng, n, 6)
        gold = rng.integers(0, 6, n)
        for r, g in zip(rows, gold):
            r[[(g + 1) % 6, (g + 3) % 6]] = -INF
        allbut = [np.where(np.arange(4) == g, v, -INF) for g, v in ((1, 0.75), (3, -2.5))]
        calls = [Call(rows, gold), Call(allbut, [1, 3])]
    elif regime == "weights":
        rows = _normal_rows(rng, 2, 5)
        calls = [Call(rows, rng.integers(0, 5, 2), weight=[float(np.float32(1e30)),
                                                           float(np.float32(1e-30))])]
    elif regime == "cost_scale":
        if loss not in COST_LOSSES:
            return []
        rows = _normal_rows(rng, n, 5)
        calls = [Call(rows, rng.integers(0, 5, n), alpha=1000.0),
                 Call([f32([0.25, -22.47, -23.47])], [0], alpha=20.0, note="(0/1 costs under a large cost_scale)"),
                 Call([[-12.09, 25.04, -27.17]], [1], alpha=50.81, precs=("f64",),
                      note="(0/1 costs under a large cost_scale)"),
                 Call([f32([-1.07, -INF, -INF])], [0], alpha=89.0, note="(0/1 costs under a large cost_scale)"),
                 Call([[0.5]], [0], alpha=710.0, precs=("f64",), note="(0/1 costs under a large cost_scale)")]
    elif regime == "issue":
        if loss == "risk":
            calls = [Call([[40.0, 0.0, 0.0]], [0], note="(0/1 risk, dominant gold)"),
                     Call([[20.0, 0.0, 0.0]], [0], note="(0/1 risk, dominant gold)"),
                     Call([[-0.9, 5.2, -50.1, 24.9]], [2], precs=("f64",), note="(0/1 risk, dominant gold)"),
                     Call([f32([-0.9, 5.2, -50.1, 24.9])], [2], note="(0/1 risk, dominant gold)")]
        elif loss == "log":
            calls = [Call([[88.0] + [0.0] * 36], [0], note="(near-zero loss from subnormal exps)"),
                     Call([[709.0] + [0.0] * 3000], [0], precs=("f64",), note="(near-zero loss from subnormal exps)")]
        elif loss == "log_ls":
            calls = [Call([[-INF, 0.5, -INF]], [1], note="(label smoothing, one unmasked class)")]
        else:
            return []
    elif regime == "big":
        # One row of 32000 classes by default (log loss); the large run adds softmax-margin and
        # a row of 128256 classes. The closed-form reference costs ~0.15 ms per class.
        if loss not in ("log", "softmax_margin") or (loss != "log" and not LARGE):
            return []
        sizes = (32000, 128256) if LARGE else (32000,)
        calls = [Call([f32(2 * rng.standard_normal(k))], [int(rng.integers(0, k))]) for k in sizes]
        if loss == "softmax_margin":  # 0/1 costs only: a random cost row adds nothing new here
            return calls
    return _with_costs(calls, loss, rng)


def list_calls(loss, regime):
    """Lists of varying length built like the dense regimes (several lists per call)."""
    rng = _rng("lists", loss, regime)
    lengths = [3, 5, 1, 4] * DRAWS
    if regime == "normal":
        rows = [f32(rng.standard_normal(m)) for m in lengths]
        calls = [Call(rows, [int(rng.integers(0, m)) for m in lengths])]
    elif regime == "wide":
        rows = [f32(90.0 + 1.5 * rng.standard_normal(m)) for m in lengths]
        calls = [Call(rows, [int(rng.integers(0, m)) for m in lengths])]
    elif regime == "nearzero":
        calls = []
        for gaps, precs in (((20.0, 45.0, 87.0), PRECS), ((700.0,), ("f64",))):
            rows, gold = [], []
            for gap, m in zip(gaps, (4, 6, 3)):
                r = f32(rng.standard_normal(m))
                g = int(rng.integers(0, m))
                r[g] = float(np.float32(max(np.delete(r, g)) + gap))
                rows.append(r)
                gold.append(g)
            calls.append(Call(rows, gold, precs=precs))
    elif regime == "ties":
        calls = [Call([[2.0, 2.0, 0.0], [1.0, 3.0, 3.0, 3.0], [0.5, 0.5]], [1, 0, 1])]
    elif regime == "masked":
        rows = [f32([0.3, -INF, 1.2, -0.4]), f32([-INF, 2.0, -INF]), f32([-1.5, -INF, -0.5, 0.25, -INF])]
        calls = [Call(rows, [0, 1, 3])]
    elif regime == "weights":
        rows = [f32(rng.standard_normal(m)) for m in (4, 3)]
        calls = [Call(rows, [1, 2], weight=[float(np.float32(1e30)), float(np.float32(1e-30))])]
    elif regime == "cost_scale":
        if loss not in COST_LOSSES:
            return []
        rows = [f32(rng.standard_normal(m)) for m in (4, 3)]
        calls = [Call(rows, [1, 0], alpha=1000.0),
                 Call([f32([0.25, -22.47, -23.47])], [0], alpha=20.0, note="(0/1 costs under a large cost_scale)")]
    elif regime == "oracle":
        if loss not in COST_LOSSES:
            return []
        rows = [f32(rng.standard_normal(m)) for m in (4, 5)]
        calls = [Call(rows, [-1, -1], costs=_costs(rng, rows, [-1, -1]))]
    else:
        return []
    return _with_costs(calls, loss, rng)


def _run_rows(call, loss, structure, prec):
    """Call the library; returns (losses, gradient rows) or an exception."""
    _, opts = LOSSES[loss]
    dt = DTYPE[prec]
    w = None if call.weight is None else np.array(call.weight, dtype=dt)
    if structure == "dense":
        scores = np.array(call.rows, dtype=dt)
        cost = None if call.costs is None else np.array(call.costs, dtype=dt)
        r = losskit.dense(scores, np.array(call.gold), cost=cost, weight=w, reduction="none",
                          cost_scale=call.alpha, **opts)
        return list(r.loss), list(r.grad)
    flat = np.concatenate(call.rows).astype(dt)
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in call.rows])]).astype(np.int64)
    cost = None if call.costs is None else np.concatenate(call.costs).astype(dt)
    r = losskit.lists(flat, offsets, np.array(call.gold), cost=cost, weight=w, reduction="none",
                      cost_scale=call.alpha, **opts)
    return list(r.loss), np.split(r.grad, offsets[1:-1])


def _row_reference(call, i, loss):
    spec, opts = LOSSES[loss]
    w = 1.0 if call.weight is None else call.weight[i]
    k = len(call.rows[i])
    if k > 5000:
        costs = call.row_costs(i) if loss in COST_LOSSES else np.zeros(k)
        return exact.big_row_reference(call.rows[i], costs, call.gold[i],
                                       call.alpha, w)
    return exact.dense_reference(spec, call.rows[i], call.row_costs(i), call.gold[i], call.alpha,
                                 w, opts.get("label_smoothing", 0.0), opts.get("square_k", 1.0),
                                 opts.get("square_m", 1.0))


# ------------------------------------------------------------------------------------------
# Chains
# ------------------------------------------------------------------------------------------

class ChainCall:
    """One sequence: emissions (T, tags), transitions, start, end, gold path, costs (T, tags) or
    None (Hamming), alpha, weight."""

    def __init__(self, e, tr, start, end, gold, costs=None, alpha=1.0, weight=None, precs=PRECS,
                 note=""):
        self.e = np.asarray(e, np.float64)
        self.tr = np.asarray(tr, np.float64)
        self.start = np.asarray(start, np.float64)
        self.end = np.asarray(end, np.float64)
        self.gold = list(gold)
        self.costs = None if costs is None else np.asarray(costs, np.float64)
        self.alpha, self.weight, self.precs, self.note = float(alpha), weight, precs, note

    def unscaled_costs(self):
        if self.costs is not None:
            return self.costs
        T, tags = self.e.shape
        return np.array([[float(y != self.gold[t]) for y in range(tags)] for t in range(T)])

    def describe(self, loss, prec):
        c = None if self.costs is None else self.costs.tolist()
        return (f"chain {loss} {prec}: emissions={self.e.tolist()!r} transitions={self.tr.tolist()!r} "
                f"start={self.start.tolist()!r} end={self.end.tolist()!r} gold={self.gold} cost={c!r} "
                f"cost_scale={self.alpha!r} weight={self.weight!r} {self.note}")


def chain_calls(loss, regime):
    rng = _rng("chain", loss, regime)
    T, tags = (4, 3) if LARGE else (3, 3)

    def rnd(scale=1.0, shift=0.0, T=T, tags=tags):
        return (f32(shift + scale * rng.standard_normal((T, tags))),
                f32(0.5 * rng.standard_normal((tags, tags))),
                f32(0.5 * rng.standard_normal(tags)), f32(0.5 * rng.standard_normal(tags)),
                [int(v) for v in rng.integers(0, tags, T)])

    calls = []
    if regime == "normal":
        calls = [ChainCall(*rnd()) for _ in range(DRAWS)]
    elif regime == "wide":
        calls = [ChainCall(*rnd(1.0, 30.0))]
    elif regime == "nearzero":
        e = np.zeros((3, 3))
        e[[0, 1, 2], [0, 1, 2]] = 35.0
        calls = [ChainCall(e, np.zeros((3, 3)), np.zeros(3), np.zeros(3), [0, 1, 2],
                           note="(chain soft ramp near zero)")]
        e, tr, st, en, gold = rnd()
        e[np.arange(T), gold] += 20.0
        calls.append(ChainCall(e, tr, st, en, gold))
    elif regime == "ties":
        e = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 2.0], [1.0, 0.0, 1.0]])
        calls = [ChainCall(e, np.zeros((3, 3)), np.zeros(3), np.zeros(3), [0, 1, 2]),
                 ChainCall(e, np.zeros((3, 3)), np.zeros(3), np.zeros(3), [1, 2, 0])]
    elif regime == "k2":
        calls = [ChainCall(*rnd(T=3, tags=2))]
    elif regime == "masked":
        e, tr, st, en, gold = rnd()
        for t in range(T):
            e[t, (gold[t] + 1) % tags] = -INF
        tr[(gold[0] + 2) % tags, gold[0]] = -INF
        calls = [ChainCall(e, tr, st, en, gold)]
        e, tr, st, en, gold = rnd()  # every tag but the gold's masked: one path left
        e = np.where(np.arange(tags)[None, :] == np.array(gold)[:, None], e, -INF)
        calls.append(ChainCall(e, tr, st, en, gold))
    elif regime == "weights":
        for w in (float(np.float32(1e30)), float(np.float32(1e-30))):
            calls.append(ChainCall(*rnd(), weight=w))
    elif regime == "cost_scale":
        if loss not in COST_LOSSES:
            return []
        calls = [ChainCall(*rnd(), alpha=20.0), ChainCall(*rnd(), alpha=1000.0)]
        e, tr, st, en, gold = rnd(T=2, tags=2)
        calls.append(ChainCall(e, tr, st, en, gold, alpha=1e38, precs=("f32",),
                               note="(extreme magnitudes on chains)"))
    elif regime == "extreme":  # extreme magnitudes on chains
        e = np.zeros((2, 2))
        e[0, 0] = 1e16
        calls = [ChainCall(e, np.zeros((2, 2)), np.zeros(2), np.zeros(2), [0, 1], precs=("f32",),
                           note="(extreme magnitudes on chains)")]
        e = np.zeros((2, 2))
        e[0, 0] = 1e15
        calls.append(ChainCall(e, np.zeros((2, 2)), np.zeros(2), np.zeros(2), [0, 1],
                               precs=("f32",), note="(extreme magnitudes on chains)"))
        e = np.array([[1e300, -1e300], [0.5, -0.25]])
        calls.append(ChainCall(e, np.zeros((2, 2)), np.zeros(2), np.zeros(2), [0, 1],
                               precs=("f64",), note="(extreme magnitudes on chains)"))
        e, tr, st, en, gold = rnd(T=2, tags=2)
        calls.append(ChainCall(e, tr, st, en, gold, weight=1e308, precs=("f64",),
                               note="(extreme magnitudes on chains)"))
        calls.append(ChainCall(e, tr, st, en, gold, weight=float(np.finfo(np.float32).max),
                               precs=("f32",), note="(extreme magnitudes on chains)"))
    if loss in COST_LOSSES and regime in ("normal", "wide"):
        extra = []
        for c in calls:
            extra.append(ChainCall(c.e, c.tr, c.start, c.end, c.gold,
                                   f32(rng.integers(0, 9, c.e.shape) / 4.0), c.alpha, c.weight,
                                   c.precs, c.note))
        calls += extra
    return calls


def _run_chain(c, loss, prec):
    _, opts = LOSSES[loss]
    dt = DTYPE[prec]
    T, tags = c.e.shape
    w = None if c.weight is None else np.array([c.weight], dt)
    cost = None if c.costs is None else c.costs[None].astype(dt)
    r = losskit.chain(c.e[None].astype(dt), c.tr.astype(dt), np.array([T]), np.array([c.gold]),
                      start=c.start.astype(dt), end=c.end.astype(dt), cost=cost, weight=w,
                      reduction="none", cost_scale=c.alpha, **opts)
    g = np.concatenate([r.d_emissions[0].ravel(), r.d_transitions.ravel(), r.d_start, r.d_end])
    return r.loss[0], g


def _chain_reference(c, loss):
    spec, _ = LOSSES[loss]
    return exact.chain_reference(spec, c.e.ravel(), c.tr.ravel(), c.start, c.end, c.gold,
                                 c.unscaled_costs().ravel(), c.alpha,
                                 1.0 if c.weight is None else c.weight)


# ------------------------------------------------------------------------------------------
# Angular losses and L-Softmax
# ------------------------------------------------------------------------------------------

def angular_calls(loss, regime):
    """(cosine rows, gold, S, M, weights, precs, note) per call."""
    rng = _rng("angular", loss, regime)
    M = 0.35 if loss == "cosface" else 0.5
    n = 2 * DRAWS

    def rows(n, k):
        return [f32(rng.uniform(-1, 1, k)) for _ in range(n)]

    if regime == "normal":
        return [(rows(n, 5), rng.integers(0, 5, n), 64.0, M, None, PRECS, ""),
                (rows(n, 5), rng.integers(0, 5, n), 16.0, 0.2, None, PRECS, "")]
    if regime == "k2":
        return [(rows(n, 2), rng.integers(0, 2, n), 64.0, M, None, PRECS, "")]
    if regime == "wide":  # logits of about +-90
        return [(rows(n, 5), rng.integers(0, 5, n), 90.0, M, None, PRECS, "")]
    if regime == "nearzero":
        r = [f32([0.98, -0.9, -0.85, -0.95]), f32([-0.5, 0.99, -0.99, -0.7])]
        return [(r, [0, 1], 64.0, M, None, PRECS, ""), (r, [0, 1], 400.0, M, None, ("f64",), "")]
    if regime == "ties":
        return [([f32([0.5, 0.5, 0.5]), f32([0.25, 0.75, 0.75])], [1, 0], 64.0, M, None, PRECS, "")]
    if regime == "masked":
        return [([f32([0.5, -INF, 0.25, -0.75]), f32([-INF, 0.125, -INF, -INF])], [0, 1], 64.0, M, None,
                 PRECS, "")]
    if regime == "weights":
        return [(rows(2, 5), [1, 3], 64.0, M, [float(np.float32(1e30)), float(np.float32(1e-30))],
                 PRECS, "")]
    if regime == "threshold":
        if loss != "arcface":
            return []
        t = -np.cos(0.5)  # cos(pi - 0.5) in double
        r64 = [[-0.87758256189037265, 0.1, -0.2]] + [[float(v), 0.1, -0.2] for v in
                                                    (np.nextafter(t, 1), np.nextafter(t, -1),
                                                     t, np.nextafter(np.nextafter(t, 1), 1))]
        t32 = np.float32(t)
        r32 = [[float(v), 0.1, -0.2] for v in (t32, np.nextafter(t32, np.float32(1)),
                                               np.nextafter(t32, np.float32(-1)))]
        return [(r64, [0] * len(r64), 64.0, 0.5, None, ("f64",), "(ArcFace at its fallback threshold)"),
                (r32, [0] * len(r32), 64.0, 0.5, None, PRECS, "")]
    return []


def lsoftmax_calls(m, regime):
    """(x (d,), W (k, d), gold, lam, weight, precs, note) per call (one example each)."""
    rng = _rng("lsoftmax", m, regime)
    d, k = 3, 4
    out = []
    if regime == "normal":
        for _ in range(2 * DRAWS):
            out.append((f32(rng.standard_normal(d)), f32(rng.standard_normal((k, d))),
                        int(rng.integers(0, k)), 0.0, None, PRECS, ""))
    elif regime == "lambda":
        out.append((f32(rng.standard_normal(d)), f32(rng.standard_normal((k, d))), 1, 1.5, None,
                    PRECS, ""))
    elif regime == "k2":
        out.append((f32(rng.standard_normal(d)), f32(rng.standard_normal((2, d))), 0, 0.0, None,
                    PRECS, ""))
    elif regime == "tiny":
        x = rng.standard_normal(d)
        W = rng.standard_normal((k, d))
        out.append((x * 1e-160, W, 2, 0.0, None, ("f64",), "(tiny norms)"))
        W2 = W.copy()
        W2[2] *= 1e-170
        out.append((x, W2, 2, 0.0, None, ("f64",), "(tiny norms)"))
        out.append((f32(x * 1e-40), f32(W), 2, 0.0, None, ("f32",), "(tiny norms)"))
    elif regime == "nearzero":
        W = f32(rng.standard_normal((k, d)))
        x = f32(6.0 * W[1] + 0.1 * rng.standard_normal(d))
        out.append((x, W, 1, 0.0, None, PRECS, "(near-zero loss)"))
        out.append((f32(1.5 * x), W, 1, 0.0, None, PRECS, "(near-zero loss)"))
    elif regime == "weights":
        out.append((f32(rng.standard_normal(d)), f32(rng.standard_normal((k, d))), 3, 0.0,
                    float(np.float32(1e30)), PRECS, ""))
        out.append((f32(rng.standard_normal(d)), f32(rng.standard_normal((k, d))), 0, 0.0,
                    float(np.float32(1e-30)), PRECS, ""))
    return out


# ------------------------------------------------------------------------------------------
# The groups: one test per (loss, structure, regime)
# ------------------------------------------------------------------------------------------

DENSE_REGIMES = ("normal", "wide", "nearzero", "ties", "k2", "masked", "weights", "cost_scale",
                 "issue", "big")
LIST_REGIMES = ("normal", "wide", "nearzero", "ties", "masked", "weights", "cost_scale", "oracle")
CHAIN_REGIMES = ("normal", "wide", "nearzero", "ties", "k2", "masked", "weights", "cost_scale",
                 "extreme")
ANGULAR_REGIMES = ("normal", "wide", "k2", "nearzero", "ties", "masked", "weights", "threshold")
LSOFTMAX_REGIMES = ("normal", "lambda", "k2", "tiny", "nearzero", "weights")


def calls(loss, structure, regime):
    """The calls of one group: what evaluate() runs (cheap to build: seeded random inputs)."""
    if structure == "dense" and loss in ("cosface", "arcface"):
        return angular_calls(loss, regime)
    if structure == "dense":
        return dense_calls(loss, regime)
    if structure == "lists":
        return list_calls(loss, regime)
    if structure == "chain":
        return chain_calls(loss, regime)
    return lsoftmax_calls(int(loss.rsplit("m", 1)[1]), regime)


def _all_groups():
    for loss in LOSSES:
        for regime in DENSE_REGIMES:
            yield loss, "dense", regime
    for loss in ("cosface", "arcface"):
        for regime in ANGULAR_REGIMES:
            yield loss, "dense", regime
    for loss in LIST_LOSSES:
        for regime in LIST_REGIMES:
            yield loss, "lists", regime
    for loss in CHAIN_LOSSES:
        for regime in CHAIN_REGIMES:
            yield loss, "chain", regime
    for m in (1, 2, 3, 4):
        for regime in LSOFTMAX_REGIMES:
            yield f"lsoftmax_m{m}", "features", regime


def groups():
    """(loss, structure, regime) for every regime that applies to the loss: one that builds no
    call (cost_scale for a loss without costs, a finding's regime for the other losses, ...) is not
    a test."""
    return [g for g in _all_groups() if calls(*g)]


class Outcome:
    """The worst ratios of one (loss, structure, regime, precision) cell and its failing cases."""

    def __init__(self):
        self.loss_ratio = 0.0
        self.grad_ratio = 0.0
        self.norm_ratio = 0.0  # row-norm reading of the gradient bound, for information
        self.signs = 0
        self.cases = 0
        self.failures = []  # (ratio, what, description)

    def add(self, rL, rG, signs, describe, worst=None, rN=0.0):
        self.cases += 1
        self.norm_ratio = max(self.norm_ratio, rN)
        self.loss_ratio = max(self.loss_ratio, rL)
        self.grad_ratio = max(self.grad_ratio, rG)
        self.signs += signs
        if rL > 1 or rG > 1 or signs:
            what = f"loss {rL:.3g}, grad {rG:.3g}" + (f" (entry {worst})" if worst is not None else "")
            if signs:
                what += f", {signs} wrong sign(s)"
            self.failures.append((max(rL, rG), what, describe()))

    def error(self, exc, describe):
        self.cases += 1
        self.loss_ratio = math.inf
        self.failures.append((math.inf, f"{type(exc).__name__}: {exc}", describe()))


# Gradients that are a difference of two softmaxes: include/losskit.h (dense rows and lists)
# documents, beyond the conditioning bound, a further 4u per entry in absolute terms (times the
# example's weight) for the rounding of the two probabilities themselves.
TWO_SOFTMAX_ROWS = {"soft_ramp", "hf_lse_lse"}


def _score_into(out, prec, L, g, ref, describe, extra=0.0, normwise=False):
    rL, rG, signs, worst, rN = exact.score(prec, L, g, ref, extra=extra)
    if normwise:
        # L-Softmax's d_x and d_w are matrix products (sum_j G_ij w_j): include/losskit.h bounds
        # their error normwise, against the largest entry and conditioning of the gradient, as
        # a backward-stable product is; an entry that cancels keeps the rounding of its terms.
        rG, worst = rN, None
    out.add(rL, rG, signs, describe, worst, rN)


def evaluate(loss, structure, regime):
    """{precision: Outcome} of one group (a precision absent when no call runs in it)."""
    res = {}

    def cell(prec):
        return res.setdefault(prec, Outcome())

    if structure == "dense" and loss in ("cosface", "arcface"):
        for rows, gold, S, M, weight, precs, note in calls(loss, structure, regime):
            for prec in precs:
                dt = DTYPE[prec]
                desc = lambda i, prec=prec, rows=rows, gold=gold, S=S, M=M, weight=weight, note=note: (  # noqa: E731
                    f"dense {loss} {prec}: cosines={list(map(float, rows[i]))!r} gold={int(gold[i])} "
                    f"angular_scale={S} angular_margin={M} weight={None if weight is None else weight[i]} {note}")
                try:
                    r = losskit.dense(np.array(rows, dtype=dt), np.array(gold), loss=loss,
                                      angular_scale=S, angular_margin=M, reduction="none",
                                      weight=None if weight is None else np.array(weight, dt))
                except losskit.LossKitError as exc:
                    cell(prec).error(exc, lambda: desc(0))
                    continue
                for i in range(len(rows)):
                    ref = exact.angular_reference(loss, tuple(map(float, rows[i])), int(gold[i]), S,
                                                  M, prec, 1.0 if weight is None else weight[i])
                    _score_into(cell(prec), prec, r.loss[i], r.grad[i], ref, lambda i=i: desc(i))
        return res
    if structure in ("dense", "lists"):
        for call in calls(loss, structure, regime):
            for prec in call.precs:
                try:
                    Ls, gs = _run_rows(call, loss, structure, prec)
                except losskit.LossKitError as exc:
                    cell(prec).error(exc, lambda: call.describe(0, loss, structure, prec))
                    continue
                for i in range(len(call.rows)):
                    ref = _row_reference(call, i, loss)
                    w = 1.0 if call.weight is None else abs(call.weight[i])
                    extra = 4 * exact.U[prec] * w if loss in TWO_SOFTMAX_ROWS else 0.0
                    _score_into(cell(prec), prec, Ls[i], gs[i], ref,
                                lambda i=i, call=call, prec=prec: call.describe(i, loss, structure, prec),
                                extra=extra)
        return res
    if structure == "chain":
        for c in calls(loss, structure, regime):
            for prec in c.precs:
                try:
                    L, g = _run_chain(c, loss, prec)
                except losskit.LossKitError as exc:
                    cell(prec).error(exc, lambda: c.describe(loss, prec))
                    continue
                ref = _chain_reference(c, loss)
                _score_into(cell(prec), prec, L, g, ref, lambda c=c, prec=prec: c.describe(loss, prec))
        return res
    m = int(loss.rsplit("m", 1)[1])
    for x, W, gold, lam, weight, precs, note in calls(loss, structure, regime):
        for prec in precs:
            dt = DTYPE[prec]
            desc = lambda prec=prec, x=x, W=W, gold=gold, lam=lam, weight=weight, note=note: (  # noqa: E731
                f"lsoftmax m={m} {prec}: x={np.asarray(x).tolist()!r} w={np.asarray(W).tolist()!r} "
                f"gold={gold} lam={lam} weight={weight} {note}")
            try:
                r = losskit.lsoftmax(np.array([x], dt), np.array(W, dt), np.array([gold]), margin=m,
                                     lam=lam, reduction="none",
                                     weight=None if weight is None else np.array([weight], dt))
            except losskit.LossKitError as exc:
                cell(prec).error(exc, desc)
                continue
            ref = exact.lsoftmax_reference(m, tuple(map(float, x)), tuple(map(float, np.ravel(W))),
                                           gold, lam, 1.0 if weight is None else weight)
            g = np.concatenate([r.d_x[0], r.d_w.ravel()])
            _score_into(cell(prec), prec, r.loss[0], g, ref, desc, normwise=True)
    return res


RESULTS: dict = {}  # (loss, structure, precision, regime) -> Outcome, for the table


@pytest.fixture(scope="module", autouse=True)
def reference_store(request):
    """Keeps the mpmath references in pytest's cache folder between runs (exact.load_store)."""
    with exact.kept_between_runs(request.config, "large" if LARGE else "default"):
        yield


GROUPS = groups()


@pytest.mark.parametrize("loss,structure,regime", GROUPS,
                         ids=[f"{loss}-{structure}-{regime}" for loss, structure, regime in GROUPS])
def test_accuracy(loss, structure, regime):
    res = evaluate(loss, structure, regime)
    assert res, "the group built calls but none ran in any precision"
    failures = []
    for prec, out in res.items():
        RESULTS[(loss, structure, prec, regime)] = out
        failures += [f"  [{what}] {desc}" for _, what, desc in sorted(out.failures, reverse=True)]
    assert not failures, "error above 4u x conditioning (ratio > 1) or wrong sign:\n" + "\n".join(failures)


# ------------------------------------------------------------------------------------------
# The instrument checks itself: its references against closed forms and against the independent
# float64 references of the other suites, its conditioning against the closed form, and its
# metric against values known to be inside and outside the bound.
# ------------------------------------------------------------------------------------------

def _floats(v):
    return np.array([float(x) for x in v])


@exact.mpmath.workdps(exact.DPS)
def test_exact_reference_closed_forms():
    L, g, _, _, _ = exact.dense_reference({"name": "log"}, [0.0, math.log(3.0)], [1, 0], 1, 1.0)
    assert abs(float(L) - math.log(4 / 3)) < 1e-15
    np.testing.assert_allclose(_floats(g), [0.25, -0.25], rtol=1e-15)
    # The log loss with the gold ahead by 709 of 30 zeros: log1p(30 exp(-709)), to 1e-40 relative.
    L, g, _, _, _ = exact.dense_reference({"name": "log"}, [709.0] + [0.0] * 30, [0] + [1] * 30, 0, 1.0)
    ref = exact.mpmath.log1p(30 * exact.mpmath.exp(-709))
    assert abs(L - ref) <= abs(ref) * exact.mpf(10) ** -40
    assert g[0] < 0 and abs(g[0] + 30 * exact.mpmath.exp(-709) / (1 + 30 * exact.mpmath.exp(-709))) <= abs(g[0]) * 1e-40
    # Risk with 0/1 costs and the gold far ahead: R = 1 - p_g without cancellation.
    L, g, _, _, _ = exact.dense_reference({"name": "risk"}, [40.0, 0.0, 0.0], [0, 1, 1], 0, 1.0)
    z = 1 + 2 * exact.mpmath.exp(-40)
    assert abs(L - 2 * exact.mpmath.exp(-40) / z) <= L * 1e-40
    assert g[1] > 0 and g[0] < 0


@pytest.mark.parametrize("loss", sorted(set(LOSSES) - {"log_ls"}))
def test_exact_reference_matches_float64_reference(loss):
    """The mpmath engine and tests/reference.py (written apart, from the header) agree."""
    from reference import reference_dense
    spec, opts = LOSSES[loss]
    rng = _rng("selfcheck", loss)
    for trial in range(3):
        s = f32(rng.standard_normal(5))
        if trial == 2:
            s[1] = s[3] = s.max()  # a tie without the gold
        gold = int(rng.integers(0, 5)) if trial < 2 else 0
        cost = rng.integers(0, 5, 5) / 2.0
        cost[gold] = 0.0
        L, g, _, _, _ = exact.dense_reference(spec, s, cost, gold, 1.5, 1.0,
                                              opts.get("label_smoothing", 0.0),
                                              opts.get("square_k", 1.0), opts.get("square_m", 1.0))
        kw = {k: v for k, v in opts.items()}
        rL, rg = reference_dense(s[None], np.array([gold]), cost=cost[None], cost_scale=1.5,
                                 reduction="sum", **kw)
        assert abs(float(L) - rL) <= 1e-12 * (1 + abs(rL))
        np.testing.assert_allclose(_floats(g), rg[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", CHAIN_LOSSES)
def test_exact_chain_reference_matches_float64_reference(loss):
    from chain_reference import reference_chain
    spec, opts = LOSSES[loss]
    rng = _rng("selfcheck-chain", loss)
    e = f32(rng.standard_normal((3, 3)))
    tr, st, en = f32(rng.standard_normal((3, 3))), f32(rng.standard_normal(3)), f32(rng.standard_normal(3))
    gold = [2, 0, 1]
    cost = rng.integers(0, 4, (3, 3)) / 2.0
    c = ChainCall(e, tr, st, en, gold, cost, alpha=1.25)
    L, g, amb, _, _ = _chain_reference(c, loss)
    assert not amb
    r = reference_chain(e[None], tr, np.array([3]), np.array([gold]), start=st, end=en,
                        cost=cost[None], cost_scale=1.25, reduction="sum", **opts)
    assert abs(float(L) - r[0]) <= 1e-12 * (1 + abs(r[0]))
    want = np.concatenate([r[1][0].ravel(), r[2].ravel(), r[3], r[4]])
    np.testing.assert_allclose(_floats(g), want, rtol=1e-10, atol=1e-12)


def test_exact_conditioning_matches_closed_form():
    """Finite-difference conditioning (exact.conditioned) = the closed form of the long rows."""
    rng = _rng("selfcheck-cond")
    s = f32(3 * rng.standard_normal(6))
    cost = (np.arange(6) != 2).astype(float)
    for alpha, spec in ((0.0, {"name": "log"}), (1.5, {"name": "softmax_margin"})):
        a = exact.dense_reference(spec, s, cost, 2, alpha, 0.75)
        b = exact.big_row_reference(s, cost, 2, alpha, 0.75)
        assert abs(a[0] - b[0]) <= abs(b[0]) * 1e-40
        assert abs(a[3] - b[3]) <= b[3] * 1e-15
        np.testing.assert_allclose(_floats(a[4]), _floats(b[4]), rtol=1e-15)


def test_metric_separates_rounding_from_errors():
    """The exact value rounded to the output type passes; an error of 8u x conditioning fails;
    a tiny entry of the wrong sign is flagged."""
    ref = exact.dense_reference({"name": "soft_ramp"}, [0.5, -1.25, 2.0, 0.0], [0, 1, 1, 1], 0, 1.0)
    L, g, _, condL, condG = ref
    for prec, dt in (("f32", np.float32), ("f64", np.float64)):
        rL, rG, signs, _, _ = exact.score(prec, dt(float(L)), [dt(float(x)) for x in g], ref)
        assert rL <= 0.25 and rG <= 0.25 and signs == 0
        u = exact.U[prec]
        off = float(L + 8 * u * (abs(L) + condL))
        assert exact.score(prec, off, None, ref)[0] > 1
    tiny = exact.dense_reference({"name": "log"}, [60.0, 0.0, 1.0], [0, 1, 1], 0, 1.0)
    flipped = [-float(x) for x in tiny[1]]
    assert exact.score("f64", float(tiny[0]), flipped, tiny)[2] >= 1


def table(results, only_failures=False) -> str:
    rows = ["| loss | structure | precision | regime | cases | loss ratio | grad ratio | wrong signs "
            "| grad ratio, row norm (info) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for (loss, structure, prec, regime), out in sorted(results.items()):
        bad = out.loss_ratio > 1 or out.grad_ratio > 1 or out.signs
        if only_failures and not bad:
            continue
        rows.append(f"| {loss} | {structure} | {prec} | {regime} | {out.cases} | {out.loss_ratio:.3g} "
                    f"| {out.grad_ratio:.3g} | {out.signs} | {out.norm_ratio:.3g} |")
    return "\n".join(rows)


def summary(results) -> str:
    """The maxima per loss (over structures, precisions and regimes): the closing note's figures."""
    worst = {}
    for (loss, structure, prec, regime), out in results.items():
        w = worst.setdefault(loss, [0.0, 0.0, 0, 0, 0])
        w[0] = max(w[0], out.loss_ratio)
        w[1] = max(w[1], out.grad_ratio)
        w[2] += out.signs
        w[3] += 1
        w[4] += bool(out.loss_ratio > 1 or out.grad_ratio > 1 or out.signs)
    rows = ["| loss | max loss ratio | max grad ratio | wrong signs | cells | failing cells |",
            "|---|---|---|---|---|---|"]
    for loss, (rL, rG, signs, cells, bad) in sorted(worst.items()):
        rows.append(f"| {loss} | {rL:.3g} | {rG:.3g} | {signs} | {cells} | {bad} |")
    return "\n".join(rows)


def main(argv):
    global LARGE, DRAWS
    if "--large" in argv:
        os.environ["LOSSKIT_ACCURACY"] = "large"
        LARGE, DRAWS = True, 4
    results = {}
    cases = []
    # The references pytest keeps (reference_store), when this folder has them.
    folder = Path(__file__).resolve().parents[1] / ".pytest_cache" / "d" / "losskit-accuracy"
    if folder.is_dir():
        exact.load_store(folder, "large" if LARGE else "default")
    for loss, structure, regime in groups():
        for prec, out in evaluate(loss, structure, regime).items():
            results[(loss, structure, prec, regime)] = out
            cases += [(r, what, desc) for r, what, desc in out.failures]
    print(f"library: {losskit.library_path()} level: {losskit.cpu_level()}")
    print(table(results, only_failures="--failures" in argv))
    print()
    print(summary(results))
    if "--cases" in argv:
        print("\nFailing cases (reproducers):")
        for r, what, desc in sorted(cases, key=lambda t: -t[0]):
            print(f"- [{what}] {desc}")
    if folder.is_dir():
        exact.save_store(folder, "large" if LARGE else "default")
    bad = sum(1 for o in results.values() if o.loss_ratio > 1 or o.grad_ratio > 1 or o.signs)
    print(f"\n{len(results)} cells, {bad} failing")
    return 1 if bad else 0


if __name__ == "__main__":
    if "--table" not in sys.argv:
        sys.exit(pytest.main([__file__, "-q"] + sys.argv[1:]))
    sys.exit(main(sys.argv[1:]))
