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
             threads=0, with_grad=True, grad_out=None) -> LSoftmaxResult:
    """L-Softmax [LWYY16]: the log loss over the logits f = x @ w.T, the gold's logit replaced by
    a margin in angle:

      loss_i = lse(f~) - f~[y],   f~[j] = f[j] = w_j . x_i for j != y,
      f~[y] = (lam f[y] + |w_y| |x_i| psi(theta_y)) / (1 + lam),   cos theta_y = f[y] / (|w_y| |x_i|)
      psi(theta) = (-1)^j cos(m theta) - 2j  for theta in [j pi/m, (j+1) pi/m], j = 0 .. m-1

    psi is continuous and decreasing, psi(0) = 1; m = 1 is the log loss on x @ w.T for any lam.
    Large lam is close to the log loss, lam = 0 the full margin. Where |x_i| or |w_y| is 0 the gold's
    logit is the plain f[y]. Full references: ``help(losskit)``.

    Args:
      x: (n, d) features. float64 is computed in double, anything else in float32.
      w: (k, d) class weight rows (the linear layer's weight, PyTorch's nn.Linear(d, k).weight).
      gold: (n,) labels in [0, k), or ignore_label; integers, or floats that are whole numbers.
      margin: the integer m in [1, 1000] (m = 1 is the log loss on x @ w.T).
      lam: lambda >= 0: (lam f_y + |w_y||x| psi) / (1 + lam); anneal it from large to 0.
      weight: (n,) non-negative example weights, or None.
      reduction: "mean", "sum" or "none".
      ignore_label: a gold equal to it is ignored (loss 0, zero gradient).
      threads: 0 = library default.
      with_grad: False skips the gradients.
      grad_out: None, or a tuple (d_x, d_w) of arrays to write the gradients into (returned in
        the result), as a NumPy ufunc's out= tuple: each a C-contiguous array of the computing
        dtype and the shape of x or w, or None for a new one. Left untouched when the call fails.

    Returns:
      LSoftmaxResult(loss, d_x, d_w).

    Raises:
      ValueError: an argument has the wrong shape, dtype or name (checked before the call).
      LossKitError (a ValueError): a value outside its domain (margin=0, lam=-1.0, a label
        outside [0, k), +-inf in x or w, a logit that overflows); the message names the argument
        and the index, and status / name give the lk_status.
    """
    xa, wa, dtype, n, d, k = c.features_and_weights(x, w)
    g = c.as_labels(gold, "gold", (n,))
    wt = None if weight is None else c.as_float(weight, dtype, "weight", (n,))
    key = ("lsoftmax", margin, type(margin), lam, reduction, ignore_label, type(ignore_label),
           threads, type(threads))
    opt = c.options(key, lambda: _options(margin, lam, reduction, ignore_label, threads))
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    d_x, d_w = c.gradient_buffers(grad_out, with_grad, ("d_x", "d_w"), ((n, d), (k, d)), dtype,
                                  (("x", xa), ("w", wa), ("weight", wt)))
    fn = lib.lk_lsoftmax_f64 if dtype == np.float64 else lib.lk_lsoftmax_f32
    address = c.address
    fn(ctypes.byref(opt), n, d, k, address(xa), address(wa), address(g), address(wt),
       address(out), address(d_x), address(d_w))
    return LSoftmaxResult(out if reduction == "none" else out[0], d_x, d_w)


def _options(margin, lam, reduction, ignore_label, threads):
    opt = c.make_options(loss="log", reduction=reduction, cost_scale=1.0, threads=threads,
                         ignore_label=ignore_label)
    opt.margin = c._int32(margin, "margin")
    opt.lambda_ = c._float(lam, "lam")
    return opt
