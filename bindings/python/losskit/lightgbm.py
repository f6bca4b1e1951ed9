"""LossKit losses as LightGBM custom objectives (multiclass: one tree per class and round).

    import lightgbm as lgb, losskit.lightgbm
    params = {"objective": losskit.lightgbm.objective(loss="softmax_margin", cost=class_cost),
              "num_class": k}
    booster = lgb.train(params, lgb.Dataset(X, label=y), 50)
    margins = booster.predict(X_test)       # (n, k) raw scores with a custom objective

The objective gives LightGBM, per row and class, the gradient of the row's loss and the diagonal
of its Hessian w.r.t. the raw scores (lk_dense_hessian_f64: the formulas of each loss are in the
docstring of losskit.dense and in include/losskit.h), each times the row's weight (Dataset
weight).

Conventions handled:
  - labels: LightGBM stores them as float32; integral values are taken as class indices, anything
    else is a ValueError naming the row;
  - the prediction layout: (n, k) in LightGBM >= 4.0, a flat class-major (k * n,) vector before
    (class j's scores at j*n .. (j+1)*n); grad and hess are returned in the layout received;
  - the Hessian's convention (hessian=): LightGBM's own multiclass objective uses
    k/(k-1) p (1 - p), the exact diagonal of the log loss times k/(k-1). "lightgbm" (the default)
    multiplies every loss's exact diagonal by k/(k-1), so that loss="log" grows the same trees as
    objective="multiclass" and the parameters tuned for it (min_sum_hessian_in_leaf, lambda_l2)
    keep their meaning; "exact" gives the diagonal itself;
  - a positive floor (hessian_floor=): the Hessian is max(h, floor), by default 1e-16 for the
    losses whose diagonal is never negative ("log", "softmax_margin", "squared", "squentropy",
    "cosface", "hope_fear" with an LSE fear and no LSE hope) and 1.0 for the others (0 almost
    everywhere, or possibly negative): a first-order step there;
  - the starting scores: LightGBM's multiclass objective starts from the log class priors
    (boost_from_average); a custom objective starts from 0 (or the Dataset's init_score).

The library is not imported by this module: the objective only reads the Dataset's get_label()
and get_weight().
"""

from __future__ import annotations

import numpy as np

from . import _boosting

__all__ = ["objective"]


def objective(loss="softmax_margin", *, cost=None, hessian="lightgbm", hessian_floor=None, **options):
    """A LightGBM custom objective ``fobj(preds, train_data) -> (grad, hess)`` for
    ``params["objective"]`` (with ``num_class`` set), computing ``loss`` with LossKit.

    Args:
      loss: any loss of losskit.dense ("log", "softmax_margin", "risk", "hinge", ...).
      cost: None (0/1), a (k, k) class matrix (row = gold class) or an (n, k) per-row cost of the
        training rows (as for losskit.dense; with n == k, pass cost_layout=).
      hessian: "lightgbm" (default: k/(k-1) x the exact diagonal, LightGBM's multiclass
        convention) or "exact".
      hessian_floor: the positive floor of the Hessian, or None for the loss's default (1e-16
        where the diagonal is never negative, else 1.0; see the module docstring).
      **options: the options of losskit.dense, except weight and reduction (the Dataset's
        weights, per-row sums).

    Returns:
      A callable for ``params["objective"]``, computing in float64 and returning float64 arrays
      in the layout LightGBM passed the predictions.
    """
    for name in ("weight", "reduction", "with_hessian", "with_grad", "grad_out"):
        if name in options:
            raise ValueError(f"{name}= is set by the objective (the Dataset's weights, per-row sums)")
    if hessian not in ("lightgbm", "exact"):
        raise ValueError(f"hessian={hessian!r} is not one of ['exact', 'lightgbm']")
    floor = _boosting.default_floor(loss, options) if hessian_floor is None else float(hessian_floor)
    if not floor > 0:
        raise ValueError(f"hessian_floor={hessian_floor!r} must be > 0 (LightGBM needs positive Hessians)")

    def fobj(preds, train_data):
        label = train_data.get_label()
        n = len(label)
        p = np.asarray(preds, dtype=np.float64)
        flat = p.ndim == 1
        if flat:
            if n == 0 or p.size % n:
                raise ValueError(f"losskit.lightgbm: {p.size} predictions for {n} labels")
            p = p.reshape(p.size // n, n).T  # class-major: class j's scores are one block
        k = p.shape[1]
        factor = k / (k - 1) if hessian == "lightgbm" and k > 1 else 1.0
        y = _boosting.labels(label, n, "losskit.lightgbm")
        w = _boosting.weights_or_none(train_data.get_weight(), n)
        grad, hess = _boosting.gradient_hessian(np.ascontiguousarray(p), y, w, loss=loss, cost=cost,
                                                options=options, factor=factor, floor=floor)
        return (grad.T.ravel(), hess.T.ravel()) if flat else (grad, hess)

    fobj.__name__ = f"losskit_{loss}"
    return fobj
