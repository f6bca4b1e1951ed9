"""losskit.lsoftmax: Large-Margin Softmax over features and class weights (lk_lsoftmax_f32/_f64)."""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["lsoftmax", "LSoftmaxResult"]


class LSoftmaxResult(NamedTuple):
    """loss: a scalar ("sum"/"mean") or (n,) ("none"); d_x (n, d) and d_w (k, d): the gradients
    of exactly that loss, or None when with_grad=False."""

    loss: object
    d_x: Optional[np.ndarray]
    d_w: Optional[np.ndarray]


def lsoftmax(x, w, gold, *, margin=2, lam=0.0, weight=None, reduction="mean", ignore_label=-100,
             threads=0, with_grad=True) -> LSoftmaxResult:
    """L-Softmax (Liu et al. 2016): the log loss over the logits x @ w.T with the gold's logit
    |w_y| |x| psi(theta_y), blended with the plain logit by lam (formula in include/losskit.h).

    Args:
      x: (n, d) features. float64 is computed in double, anything else in float32.
      w: (k, d) class weight rows (the linear layer's weight, PyTorch's nn.Linear(d, k).weight).
      gold: (n,) labels in [0, k), or ignore_label.
      margin: the integer m >= 1 (m = 1 is the log loss on x @ w.T).
      lam: lambda >= 0: (lam f_y + |w_y||x| psi) / (1 + lam); anneal it from large to 0.
      weight: (n,) non-negative example weights, or None.
      reduction: "mean", "sum" or "none".
      threads: 0 = library default.
      with_grad: False skips the gradients.

    Returns:
      LSoftmaxResult(loss, d_x, d_w).
    """
    dtype = c.float_dtype(x)
    xa = np.asarray(x)
    if xa.ndim != 2:
        raise ValueError(f"x must be 2-D (n, d), got shape {xa.shape}")
    n, d = xa.shape
    wa = np.asarray(w)
    if wa.ndim != 2 or wa.shape[1] != d:
        raise ValueError(f"w must be 2-D (k, d = {d}), got shape {wa.shape}")
    k = wa.shape[0]
    xa = c.as_float(xa, dtype, "x", (n, d))
    wa = c.as_float(wa, dtype, "w", (k, d))
    g = c.as_labels(gold, "gold", (n,))
    wt = None if weight is None else c.as_float(weight, dtype, "weight", (n,))
    opt = c.make_options(loss="log", reduction=reduction, cost_scale=1.0, threads=threads,
                         ignore_label=ignore_label)
    opt.margin = c._int32(margin, "margin")
    opt.lambda_ = float(lam)
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    d_x = np.empty((n, d), dtype) if with_grad else None
    d_w = np.empty((k, d), dtype) if with_grad else None
    fn = lib.lk_lsoftmax_f64 if dtype == np.float64 else lib.lk_lsoftmax_f32
    fn(ctypes.byref(opt), n, d, k, c.address(xa), c.address(wa), c.address(g), c.address(wt),
       c.address(out), c.address(d_x), c.address(d_w))
    return LSoftmaxResult(out if reduction == "none" else out[0], d_x, d_w)
