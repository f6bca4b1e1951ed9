"""losskit.linear: a linear layer and a dense loss fused, without the n x k logits (lk_linear_f32/_f64)."""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["linear", "LinearResult"]

LINEAR_LOSSES = ("log", "softmax_margin", "hinge", "perceptron", "hope_fear")


class LinearResult(NamedTuple):
    """loss: a scalar ("sum"/"mean") or (n,) ("none"); d_x (n, d), d_w (k, d) and d_b (k,): the
    gradients of exactly that loss (d_b None without a bias), or None when with_grad=False."""

    loss: object
    d_x: Optional[np.ndarray]
    d_w: Optional[np.ndarray]
    d_b: Optional[np.ndarray]


def linear(x, w, gold, *, bias=None, loss="log", cost=None, cost_layout=None, weight=None,
           reduction="mean", cost_scale=1.0, ignore_label=-100, label_smoothing=0.0,
           hope=None, fear=None, hope_scale=None, fear_scale=None, z_loss=0.0, softcap=None,
           threads=0, with_grad=True, dtype=None, grad_dtype=None) -> LinearResult:
    """The dense loss of the logits x @ w.T + bias, and its gradients w.r.t. x, w and bias,
    computed tile by tile without the (n, k) logits (the fused "linear + cross-entropy" of large
    vocabularies): ``losskit.dense(x @ w.T + bias, gold, ...)`` for these losses:

      log             lse(z) - z[g] (cross-entropy), with label_smoothing
      softmax_margin  lse(z + c) - z[g]
      hinge           max(z + c) - z[g]
      perceptron      max(z) - z[g]
      hope_fear       with hope="gold" (the default): F(z + f c) - z[g]

    with softcap (c tanh(z / c) first) and z_loss (+ lambda lse(z)^2), costs, weights,
    ignore_label and reductions as in ``losskit.dense``.

    Args:
      x: (n, d) features; float64 is computed in double, anything else in float32.
      w: (k, d) class weights (PyTorch's nn.Linear(d, k).weight).
      gold: (n,) labels in [0, k), or ignore_label.
      bias: (k,) or None.
      loss, cost, cost_layout, weight, reduction, cost_scale, ignore_label, label_smoothing,
      hope, fear, hope_scale, fear_scale, z_loss, softcap, threads: as for ``losskit.dense``.
      with_grad: False skips the gradients.
      dtype: "bfloat16" reads x and w given as raw uint16 bits as bfloat16 (lk_linear_bf16);
        ml_dtypes.bfloat16 arrays are read so without it (both must be bfloat16 then). The
        computation is lk_linear_f32's on the widened values: bias, cost, weight, the loss and
        d_b are float32.
      grad_dtype: with bfloat16 x and w, the type of d_x and d_w: None (bfloat16, the inputs'
        own dtype, each rounded once from float32) or "float32".

    Returns:
      LinearResult(loss, d_x, d_w, d_b).

    Raises:
      ValueError / LossKitError as ``losskit.dense`` (a loss outside the list above is
      LK_ERR_UNSUPPORTED; a non-finite x, w or bias, or a logit that overflows, LK_ERR_DOMAIN).
    """
    xa0, wa0 = c.as_array(x), c.as_array(w)
    bfloat16 = c.is_bfloat16(xa0, dtype, "x")
    if bfloat16 != c.is_bfloat16(wa0, dtype if bfloat16 else None, "w"):
        raise ValueError(f"x and w must both be bfloat16 or neither, got dtypes {xa0.dtype} and {wa0.dtype}")
    if grad_dtype is not None and (not bfloat16 or grad_dtype != "float32"):
        raise ValueError(f'grad_dtype must be None, or "float32" with bfloat16 x and w, got {grad_dtype!r}')
    if bfloat16:
        if xa0.ndim != 2 or wa0.ndim != 2 or wa0.shape[1] != xa0.shape[1]:
            raise ValueError(f"x must be (n, d) and w (k, d), got shapes {xa0.shape} and {wa0.shape}")
        (n, d), k = xa0.shape, wa0.shape[0]
        xa, wa, dtype = c.bfloat16_bits(xa0, "x", (n, d)), c.bfloat16_bits(wa0, "w", (k, d)), c.F32
    else:
        xa, wa, dtype, n, d, k = c.features_and_weights(xa0, wa0)
    ba = None if bias is None else c.as_float(bias, dtype, "bias", (k,))
    g = c.as_labels(gold, "gold", (n,))
    layout, cost_array = c.dense_costs(cost, cost_layout, n, k, dtype)
    wt = None if weight is None else c.as_float(weight, dtype, "weight", (n,))
    opt = c.gold_hope_options(loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads,
                              ignore_label=ignore_label, layout=layout, label_smoothing=label_smoothing, hope=hope,
                              fear=fear, hope_scale=hope_scale, fear_scale=fear_scale, z_loss=z_loss, softcap=softcap)
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    if bfloat16:
        grads = np.dtype(np.float32) if grad_dtype == "float32" else np.dtype(np.uint16)
        d_x = np.empty((n, d), dtype=grads) if with_grad else None
        d_w = np.empty((k, d), dtype=grads) if with_grad else None
        d_b = np.empty(k, dtype=dtype) if with_grad and ba is not None else None
        wide = grads == np.float32
        address = c.address
        lib.lk_linear_bf16(ctypes.byref(opt), n, d, k, address(xa), address(wa), address(ba), address(g),
                           address(cost_array), address(wt), address(out),
                           None if wide else address(d_x), None if wide else address(d_w), address(d_b),
                           address(d_x) if wide else None, address(d_w) if wide else None)
        if with_grad and not wide:
            d_x, d_w = d_x.view(xa0.dtype), d_w.view(wa0.dtype)  # each as its input
        return LinearResult(out if reduction == "none" else out[0], d_x, d_w, d_b)
    d_x = np.empty((n, d), dtype=dtype) if with_grad else None
    d_w = np.empty((k, d), dtype=dtype) if with_grad else None
    d_b = np.empty(k, dtype=dtype) if with_grad and ba is not None else None
    fn = lib.lk_linear_f64 if dtype == np.float64 else lib.lk_linear_f32
    address = c.address
    fn(ctypes.byref(opt), n, d, k, address(xa), address(wa), address(ba), address(g),
       address(cost_array), address(wt), address(out), address(d_x), address(d_w), address(d_b))
    return LinearResult(out if reduction == "none" else out[0], d_x, d_w, d_b)
