"""LossKit losses as XGBoost custom objectives (multiclass: one tree per class and round).

    import xgboost as xgb, losskit.xgboost
    obj = losskit.xgboost.objective(loss="softmax_margin", cost=class_cost)   # cost: (k, k)
    booster = xgb.train({"num_class": k, "disable_default_eval_metric": 1}, dtrain, 50, obj=obj)
    margins = booster.predict(dtest, output_margin=True)                      # (n, k) scores

The objective gives XGBoost, per row and class, the gradient of the row's loss and the diagonal
of its Hessian w.r.t. the margins (lk_dense_hessian_f64: the formulas of each loss are in the
docstring of losskit.dense and in include/losskit.h), each times the row's weight
(DMatrix weight).

Conventions handled:
  - labels: XGBoost stores them as float32; integral values are taken as class indices, anything
    else is a ValueError naming the row;
  - the prediction layout: (n, k) in XGBoost >= 2.0, a flat (n * k,) row-major vector before;
    grad and hess are returned in the layout received;
  - the Hessian's convention (hessian=): XGBoost's own multi:softprob uses 2 p (1 - p), twice the
    exact diagonal p (1 - p) of the log loss. "xgboost" (the default) multiplies every loss's exact
    diagonal by 2, so that loss="log" grows the same trees as multi:softprob and the learning
    rate, min_child_weight and lambda tuned for the built-in objective keep their meaning (each
    is measured against the Hessian). "exact" gives the diagonal itself (Newton steps twice as
    long). Either way the diagonal ignores the off-diagonal terms -p_i p_j of the true Hessian;
    the factor 2 is XGBoost's guard against the overshoot that causes;
  - a positive floor (hessian_floor=): XGBoost needs h > 0. The Hessian is max(h, floor) with, by
    default, 1e-16 (multi:softprob's own floor) for the losses whose diagonal is never negative
    ("log", "softmax_margin", "squared", "squentropy", "cosface", "hope_fear" with an LSE fear and
    no LSE hope), and 1.0 for the others, whose diagonal is 0 almost everywhere (the max-based
    losses) or can be negative (risk, soft_ramp, arcface, an LSE hope): there, a step of
    learning_rate times the gradient, first-order boosting.
  - the starting margins: XGBoost >= 3.1 estimates per-class intercepts (base_score) for its
    built-in multiclass objectives; with a custom objective it starts from base_score (0.5 for
    every class, which cancels in a softmax). Give base_score or a base_margin to start elsewhere.

The library is not imported by this module: the objective only reads dtrain.get_label() and
dtrain.get_weight().
"""

from __future__ import annotations

import numpy as np

from . import _boosting

__all__ = ["objective"]

# multi:softprob's Hessian: 2 p (1 - p), twice the exact diagonal.
XGBOOST_SCALE = 2.0


def objective(loss="softmax_margin", *, cost=None, hessian="xgboost", hessian_floor=None, **options):
    """An XGBoost custom objective ``obj(predt, dtrain) -> (grad, hess)`` for ``xgb.train(...,
    obj=...)`` (with ``num_class`` set), computing ``loss`` with LossKit.

    Args:
      loss: any loss of losskit.dense ("log", "softmax_margin", "risk", "hinge", ...).
      cost: None (0/1), a (k, k) class matrix (row = gold class) or an (n, k) per-row cost of the
        training rows (as for losskit.dense; with n == k, pass cost_layout=).
      hessian: "xgboost" (default: 2 x the exact diagonal, multi:softprob's convention) or
        "exact" (the diagonal of the Hessian).
      hessian_floor: the positive floor of the Hessian, or None for the loss's default (1e-16
        where the diagonal is never negative, else 1.0; see the module docstring).
      **options: the options of losskit.dense (cost_scale, label_smoothing, hope, fear, ...),
        except weight and reduction (the DMatrix's weights, per-row sums).

    Returns:
      A callable for ``obj=``. Each call computes in float64 and returns float64 arrays in the
      layout XGBoost passed the predictions.
    """
    for name in ("weight", "reduction", "with_hessian", "with_grad", "grad_out"):
        if name in options:
            raise ValueError(f"{name}= is set by the objective (the DMatrix's weights, per-row sums)")
    factor = _boosting.scale_of(hessian, "xgboost", XGBOOST_SCALE)
    floor = _boosting.default_floor(loss, options) if hessian_floor is None else float(hessian_floor)
    if not floor > 0:
        raise ValueError(f"hessian_floor={hessian_floor!r} must be > 0 (XGBoost needs positive Hessians)")

    def obj(predt, dtrain):
        label = dtrain.get_label()
        n = len(label)
        p = np.asarray(predt, dtype=np.float64)
        flat = p.ndim == 1
        if flat:
            if n == 0 or p.size % n:
                raise ValueError(f"losskit.xgboost: {p.size} predictions for {n} labels")
            p = p.reshape(n, p.size // n)  # row-major: row i holds its k classes
        y = _boosting.labels(label, n, "losskit.xgboost")
        w = _boosting.weights_or_none(dtrain.get_weight(), n)
        grad, hess = _boosting.gradient_hessian(p, y, w, loss=loss, cost=cost, options=options,
                                                factor=factor, floor=floor)
        return (grad.ravel(), hess.ravel()) if flat else (grad, hess)

    obj.__name__ = f"losskit_{loss}"
    return obj
