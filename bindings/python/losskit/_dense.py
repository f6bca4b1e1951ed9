"""losskit.dense: every loss over dense class rows (lk_dense_f32 / lk_dense_f64)."""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["dense", "DenseResult"]


class _DenseResultFields(NamedTuple):
    loss: object
    grad: Optional[np.ndarray]


class DenseResult(_DenseResultFields):
    """loss: a scalar (reduction "sum"/"mean") or an (n,) array ("none");
    grad: the (n, k) gradient of exactly that loss w.r.t. the scores, or None;
    hessian: the (n, k) diagonal of its Hessian w.r.t. the scores (with_hessian=True), or None."""

    hessian: Optional[np.ndarray]

    def __new__(cls, loss, grad, hessian=None):
        # The Hessian is an attribute, not a third field: `loss, grad = ...` keeps unpacking.
        self = super().__new__(cls, loss, grad)
        self.hessian = hessian
        return self


def dense(scores, gold, *, loss="log", cost=None, cost_layout=None, weight=None,
          reduction="mean", cost_scale=1.0, ignore_label=-100, label_smoothing=0.0,
          square_k=1.0, square_m=1.0, hope=None, fear=None, hope_scale=None, fear_scale=None,
          angular_scale=None, angular_margin=None, z_loss=0.0, softcap=None, threads=0,
          with_grad=True, grad_out=None, with_hessian=False, dtype=None,
          grad_dtype=None) -> DenseResult:
    """Loss and gradient of every example of a batch of class scores.

    Losses (``loss=``), per example, with scores s (k,), gold g, costs c[j] = cost_scale *
    cost(g, j) (0/1 by default: c[j] = [j != g]), p = softmax(s), K the classes that are not
    masked, lse the log-sum-exp and o the oracle (lowest cost, then highest score):

      log             lse(s) - s[g]  (cross-entropy); with label_smoothing eps:
                      lse(s) - (1-eps) s[g] - (eps/K) sum_j s[j]               [SZVWW16]
      perceptron      max(s) - s[g]
      hinge           max(s + c) - s[g]  (0/1 cost: Crammer-Singer)        [CS01, TJHA05]
      softmax_margin  lse(s + c) - s[g]                                         [GS10]
      risk            sum_j p_j c_j  (expected cost)                            [SMTH06]
      ramp            max(s + c) - max(s - c)                          [DLSVL08, GS12]
      soft_ramp       lse(s + c) - lse(s - c)                                   [GS12]
      infinite_ramp   max(s + c) - s[o]                                         [GS12]
      squared         (1/K) [kappa (s[g] - M)^2 + sum_{j != g} s[j]^2],
                      kappa = square_k, M = square_m                            [HB20]
      squentropy      lse(s) - s[g] + (1/(K-1)) sum_{j != g} s[j]^2             [HBW23]
      hope_fear       F(s + f c) - H(s - h c): F = fear ("max" or "lse") with f = fear_scale,
                      H = hope ("gold": s[g], "oracle": s[o], "max" or "lse") with
                      h = hope_scale; log, hinge, ramp, ... are special cases  [GS12, DLSVL08]
      cosface         lse(z) - z[g], z[j] = S cos_j, z[g] = S (cos_g - M)   [WWZJ18, WCLL18]
      arcface         lse(z) - z[g], z[j] = S cos_j, z[g] = S cos(theta_g + M), or
                      S (cos_g - M sin M) where theta_g + M >= pi               [DGXZ19]

    Around any of them: ``softcap=c`` replaces each score s by c tanh(s / c) first (Gemma 2's
    logit soft-capping; -inf stays -inf), and ``z_loss=lambda`` adds lambda lse(s)^2 to each
    example's loss (PaLM's z-loss), both with their gradients [CND+22, GRP+24].

    The angular losses (S = angular_scale, M = angular_margin) take cosines in [-1, 1] as scores,
    normalised by the caller, and give the gradient w.r.t. those cosines. The gradient of a max
    term is the one-hot of its argmax, of an lse term the softmax of its argument (log: p - e_g).
    Full references: ``help(losskit)``.

    Args:
      scores: (n, k) scores (logits). float64 (and Python floats) are computed in double,
        float32, float16 and integers in float32.
        -inf masks a class.
      gold: (n,) integer labels in [0, k), or ``ignore_label``; an integer dtype, or floats
        that are whole numbers (as gradient-boosting libraries pass labels).
      loss: one of the losses above, by name.
      cost: None (0/1 cost), an (n, k) per-example cost or a (k, k) class matrix (row = gold).
        When n == k the layout is ambiguous and ``cost_layout`` must be given. Losses that
        read no costs ("log", "perceptron", "squared", "squentropy") ignore it, so one call
        can switch losses.
      cost_layout: "zero_one", "per_example" or "class_matrix"; inferred from cost's shape.
      weight: (n,) non-negative example weights, or None.
      reduction: "mean" (over the weight of non-ignored examples), "sum" or "none".
      cost_scale: alpha >= 0, multiplies every cost.
      label_smoothing: eps in [0, 1), "log" only.
      square_k, square_m: kappa > 0 and M of "squared" (defaults 1 and 1).
      hope, fear, hope_scale, fear_scale: the terms of "hope_fear": hope "gold" (default),
        "oracle", "max" or "lse"; fear "max" or "lse" (default); h, f >= 0 (defaults 0, 1).
        Each of these options applies only to the loss that uses it; a non-default value given
        to another loss is a ValueError.
      angular_scale, angular_margin: s (default 64) and m (default 0.35 for "cosface", 0.5 for
        "arcface") of the angular-margin losses, which take no other of these options.
      z_loss: lambda >= 0 (default 0: none).
      softcap: c > 0, or None (default: no cap).
      threads: 0 = library default.
      with_grad: False skips the gradient (grad is None).
      grad_out: an (n, k) C-contiguous array of the computing dtype to write the gradient into
        (returned as grad), so that a training loop can reuse one buffer instead of allocating
        one per call. Left untouched when the call fails.
      dtype: "bfloat16" reads scores given as raw uint16 bits as bfloat16 (lk_dense_bf16);
        ml_dtypes.bfloat16 scores are read so without it. The computation is lk_dense_f32's on
        the scores widened (exactly) to float32: cost, weight and the loss are float32.
      grad_dtype: with bfloat16 scores, the gradient's type: None (bfloat16, the scores' own
        dtype: ml_dtypes.bfloat16 or uint16 bits, each rounded once from the float32 gradient)
        or "float32" (that float32 gradient itself).
      with_hessian: True also returns the diagonal of the Hessian of the loss w.r.t. the scores
        (lk_dense_hessian_*): p(1 - p) for "log", q(1 - q) of the cost-augmented softmax for
        "softmax_margin", p(c - R)(1 - 2p) for "risk", the difference of two such terms for
        "soft_ramp" (it can be negative), 2/K (2 kappa/K at the gold) for "squared", 0 for the
        max-based losses ("perceptron", "hinge", "ramp", "infinite_ramp"), weighted and reduced
        as the gradient.

    Returns:
      DenseResult(loss, grad), with the attribute hessian (not a tuple field).

    Raises:
      ValueError: an argument has the wrong shape, dtype or name (checked before the call).
      LossKitError (a ValueError): a value outside its domain (an option such as
        cost_scale=-1, a label outside [0, k), +inf in scores, a negative weight); the message
        names the argument and the index, and status / name give the lk_status.
    """
    s = c.as_array(scores)
    bfloat16 = c.is_bfloat16(s, dtype)
    if grad_dtype is not None and (not bfloat16 or grad_dtype != "float32"):
        raise ValueError(f'grad_dtype must be None, or "float32" with bfloat16 scores, got {grad_dtype!r}')
    dtype = c.F32 if bfloat16 else c.float_dtype(s)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (n, k), got shape {s.shape}")
    n, k = s.shape
    if bfloat16:
        if with_hessian:
            raise ValueError("with_hessian=True is not available for bfloat16 scores")
        scores_dtype = s.dtype
        s = c.bfloat16_bits(s, "scores", (n, k))
    else:
        s = c.as_float(s, dtype, "scores", (n, k))
    g = c.as_labels(gold, "gold", (n,))

    layout, cost_array = c.dense_costs(cost, cost_layout, n, k, dtype)
    w = None if weight is None else c.as_float(weight, dtype, "weight", (n,))

    key = (loss, reduction, cost_scale, threads, type(threads), ignore_label, type(ignore_label),
           layout, label_smoothing, square_k, square_m, hope, fear, hope_scale, fear_scale,
           angular_scale, angular_margin, z_loss, softcap)
    opt = c.options(key, lambda: c.make_options(
        loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads,
        ignore_label=ignore_label, cost_layout=layout, label_smoothing=label_smoothing,
        square_k=square_k, square_m=square_m, hope=hope, fear=fear, hope_scale=hope_scale,
        fear_scale=fear_scale, angular_scale=angular_scale, angular_margin=angular_margin,
        z_loss=z_loss, softcap=softcap))
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    if bfloat16:
        wide = grad_dtype == "float32"
        if grad_out is not None and not wide:
            grad_out = c.as_array(grad_out)
            if grad_out.dtype != np.uint16 and not c.is_bfloat16(grad_out, None):
                raise ValueError("grad_out must be a bfloat16 (or uint16) array for bfloat16 scores, "
                                 f"got dtype {grad_out.dtype}")
            grad_out = grad_out.view(np.uint16)
        grad = c.gradient_buffer(grad_out, with_grad, (n, k), c.F32 if wide else np.dtype(np.uint16), s)
        lib.lk_dense_bf16(ctypes.byref(opt), n, k, c.address(s), c.address(g), c.address(cost_array),
                          c.address(w), c.address(out), None if wide else c.address(grad),
                          c.address(grad) if wide else None)
        if grad is not None and not wide:
            grad = grad.view(scores_dtype)
        return DenseResult(out if reduction == "none" else out[0], grad)
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    grad = c.gradient_buffer(grad_out, with_grad, (n, k), dtype, s)
    if with_hessian:
        hess = np.empty((n, k), dtype=dtype)
        fn = lib.lk_dense_hessian_f64 if dtype == np.float64 else lib.lk_dense_hessian_f32
        fn(ctypes.byref(opt), n, k, c.address(s), c.address(g), c.address(cost_array), c.address(w),
           c.address(out), c.address(grad), c.address(hess))
        return DenseResult(out if reduction == "none" else out[0], grad, hess)
    fn = lib.lk_dense_f64 if dtype == np.float64 else lib.lk_dense_f32
    address = c.address
    fn(ctypes.byref(opt), n, k, address(s), address(g), address(cost_array), address(w),
       address(out), address(grad))
    return DenseResult(out if reduction == "none" else out[0], grad)
