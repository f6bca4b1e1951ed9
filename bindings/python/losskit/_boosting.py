"""What the gradient-boosting objectives share (private): labels, layouts, the Hessian's
convention and floor. losskit.xgboost and losskit.lightgbm are thin wrappers around it; neither
imports its library (the objective only sees NumPy arrays and the library's dataset object)."""

from __future__ import annotations

import numpy as np

from ._dense import dense

# Losses whose Hessian diagonal is >= 0 everywhere it is defined (every LSE term is a fear, the
# hope a gold, oracle or max term), so that a tiny floor only guards against underflow.
NON_NEGATIVE = ("log", "softmax_margin", "squared", "squentropy", "cosface")
# The floor of the others: their diagonal is 0 almost everywhere (the max-based losses) or can
# be negative (risk, soft_ramp, arcface's gold entry, hope_fear with an LSE hope): 1, a
# first-order step of learning_rate times the gradient where the curvature is not positive.
FLOOR_NON_CONVEX = 1.0
# XGBoost's own floor in multi:softprob (and a floor LightGBM's multiclass never reaches).
FLOOR_CONVEX = 1e-16


def default_floor(loss: str, options: dict) -> float:
    if loss == "hope_fear":
        fear, hope = options.get("fear", "lse"), options.get("hope", "gold")
        return FLOOR_CONVEX if fear == "lse" and hope != "lse" else FLOOR_NON_CONVEX
    return FLOOR_CONVEX if loss in NON_NEGATIVE else FLOOR_NON_CONVEX


def labels(label, n: int, what: str) -> np.ndarray:
    """GBDT labels arrive as float32: integral values become int32 class indices; anything
    else is a ValueError naming the first offending row."""
    y = np.asarray(label)
    if y.shape != (n,):
        raise ValueError(f"{what}: the labels have shape {y.shape}, but the predictions have {n} rows")
    if y.dtype.kind in "iu":
        return y.astype(np.int32)
    bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{what}: label[{i}] = {float(y[i])!r} is not a class index (an integral value)")
    return y.astype(np.int32)


def scale_of(hessian: str, own: str, own_scale: float) -> float:
    """The factor the exact diagonal is multiplied by: 1 for "exact", the library's own
    multiclass convention for its name."""
    conventions = {"exact": 1.0, own: own_scale}
    if hessian not in conventions:
        raise ValueError(f"hessian={hessian!r} is not one of {sorted(conventions)}")
    return conventions[hessian]


def gradient_hessian(margins: np.ndarray, y: np.ndarray, weight, *, loss: str, cost, options: dict,
                     factor: float, floor: float):
    """(grad, hess) of the per-row losses (reduction "sum": each row's weighted gradient, as the
    libraries' own objectives give), the Hessian times `factor` and floored at `floor`."""
    r = dense(margins, y, loss=loss, cost=cost, weight=weight, reduction="sum", with_hessian=True,
              **options)
    hess = r.hessian * factor if factor != 1.0 else r.hessian
    return r.grad, np.maximum(hess, floor)


def weights_or_none(w, n: int):
    if w is None:
        return None
    w = np.asarray(w, dtype=np.float64)
    return None if w.size == 0 else w.reshape(n)
