"""losskit.dense: every loss over dense class rows (lk_dense_f32 / lk_dense_f64)."""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["dense", "DenseResult"]


class DenseResult(NamedTuple):
    """loss: a scalar (reduction "sum"/"mean") or an (n,) array ("none");
    grad: the (n, k) gradient of exactly that loss w.r.t. the scores, or None;
    hessian: the (n, k) diagonal of its Hessian w.r.t. the scores (with_hessian=True), or None."""

    loss: object
    grad: Optional[np.ndarray]
    hessian: Optional[np.ndarray] = None


def dense(scores, gold, *, loss="log", cost=None, cost_layout=None, weight=None,
          reduction="mean", cost_scale=1.0, ignore_label=-100, label_smoothing=0.0,
          square_k=1.0, square_m=1.0, hope=None, fear=None, hope_scale=None, fear_scale=None,
          angular_scale=None, angular_margin=None, threads=0, with_grad=True,
          grad_out=None, with_hessian=False) -> DenseResult:
    """Loss and gradient of every example of a batch of class scores.

    Args:
      scores: (n, k) scores (logits). float64 (and Python floats) are computed in double,
        float32, float16 and integers in float32.
        -inf masks a class.
      gold: (n,) integer labels in [0, k), or ``ignore_label``.
      loss: "log", "perceptron", "hinge", "softmax_margin", "risk", "ramp", "soft_ramp",
        "infinite_ramp", "squared", "squentropy", "hope_fear", or the angular-margin losses
        "cosface" and "arcface", whose scores are cosines in [-1, 1] that the caller normalised
        and whose gradient is w.r.t. those cosines (formulas in include/losskit.h).
      cost: None (0/1 cost), an (n, k) per-example cost or a (k, k) class matrix (row = gold).
        When n == k the layout is ambiguous and ``cost_layout`` must be given. Losses that
        read no costs ("log", "perceptron", "squared", "squentropy") ignore it, so one call
        can switch losses.
      cost_layout: "zero_one", "per_example" or "class_matrix"; inferred from cost's shape.
      weight: (n,) non-negative example weights, or None.
      reduction: "mean" (over the weight of non-ignored examples), "sum" or "none".
      cost_scale, label_smoothing, square_k, square_m, hope, fear, hope_scale, fear_scale:
        as the lk_options fields of the same names. Each applies only to the loss that uses
        it (label_smoothing: "log"; square_k, square_m: "squared"; hope ("gold", "oracle",
        "max", "lse"), fear ("max", "lse") and their scales: "hope_fear"); a non-default value
        given to another loss is a ValueError.
      angular_scale, angular_margin: s (default 64) and m (default 0.35 for "cosface", 0.5 for
        "arcface") of the angular-margin losses, which take no other of these options.
      threads: 0 = library default.
      with_grad: False skips the gradient (grad is None).
      grad_out: an (n, k) C-contiguous array of the computing dtype to write the gradient into
        (returned as grad), so that a training loop can reuse one buffer instead of allocating
        one per call. Left untouched when the call fails.
      with_hessian: True also returns the diagonal of the Hessian of the loss w.r.t. the scores
        (lk_dense_hessian_*): p(1 - p) for "log", q(1 - q) of the cost-augmented softmax for
        "softmax_margin", p(c - R)(1 - 2p) for "risk", the difference of two such terms for
        "soft_ramp" (it can be negative), 2/K (2 kappa/K at the gold) for "squared", 0 for the
        max-based losses ("perceptron", "hinge", "ramp", "infinite_ramp"), weighted and reduced
        as the gradient.

    Returns:
      DenseResult(loss, grad, hessian).

    Raises:
      ValueError: an argument has the wrong shape, dtype or name (checked before the call).
      LossKitError: the library rejected the input (message names the argument and index).
    """
    dtype = c.float_dtype(scores)
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (n, k), got shape {s.shape}")
    n, k = s.shape
    s = c.as_float(s, dtype, "scores", (n, k))
    g = c.as_labels(gold, "gold", (n,))

    layout = cost_layout
    if layout is not None:
        c._pick(c.COST_LAYOUTS, layout, "cost_layout")
    cost_array = None
    if cost is not None:
        shape = np.shape(cost)
        if layout is None:
            if shape == (n, k) and shape == (k, k):
                raise ValueError(f"cost of shape {shape} is ambiguous when n == k: "
                                 "pass cost_layout='per_example' or 'class_matrix'")
            if shape not in ((n, k), (k, k)):
                raise ValueError(f"cost must have shape (n, k) = {(n, k)} (per example) or "
                                 f"(k, k) = {(k, k)} (class matrix), got {shape}")
            layout = "per_example" if shape == (n, k) else "class_matrix"
        if layout == "zero_one":
            raise ValueError("cost is given, but cost_layout='zero_one' ignores it")
        expected = (n, k) if layout == "per_example" else (k, k)
        cost_array = c.as_float(cost, dtype, "cost", expected)
    elif layout not in (None, "zero_one"):
        raise ValueError(f"cost_layout={layout!r} needs a cost array")
    w = None if weight is None else c.as_float(weight, dtype, "weight", (n,))

    opt = c.make_options(loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads,
                         ignore_label=ignore_label, cost_layout=layout,
                         label_smoothing=label_smoothing, square_k=square_k, square_m=square_m,
                         hope=hope, fear=fear, hope_scale=hope_scale, fear_scale=fear_scale,
                         angular_scale=angular_scale, angular_margin=angular_margin)
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    grad = c.gradient_buffer(grad_out, with_grad, (n, k), dtype, s)
    if with_hessian:
        hess = np.empty((n, k), dtype=dtype)
        fn = lib.lk_dense_hessian_f64 if dtype == np.float64 else lib.lk_dense_hessian_f32
        fn(ctypes.byref(opt), n, k, c.address(s), c.address(g), c.address(cost_array), c.address(w),
           c.address(out), c.address(grad), c.address(hess))
        return DenseResult(out if reduction == "none" else out[0], grad, hess)
    fn = lib.lk_dense_f64 if dtype == np.float64 else lib.lk_dense_f32
    fn(ctypes.byref(opt), n, k, c.address(s), c.address(g), c.address(cost_array), c.address(w),
       c.address(out), c.address(grad))
    return DenseResult(out if reduction == "none" else out[0], grad)
