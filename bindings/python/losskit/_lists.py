"""losskit.lists: every loss over candidate lists of varying length (lk_lists_f32 / _f64)."""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["lists", "ListsResult"]


class ListsResult(NamedTuple):
    """loss: a scalar (reduction "sum"/"mean") or an (n,) array ("none"); grad: the gradient of
    exactly that loss w.r.t. the flat scores (offsets[n],), or None (from_arrays: a list of
    per-example arrays); hessian: the diagonal of its Hessian w.r.t. the scores, shaped as grad
    (with_hessian=True), or None."""

    loss: object
    grad: Optional[object]
    hessian: Optional[object] = None


def lists(scores, offsets, gold, *, loss="log", cost=None, weight=None, reduction="mean",
          cost_scale=1.0, square_k=1.0, square_m=1.0, hope=None, fear=None, hope_scale=None,
          fear_scale=None, threads=0, with_grad=True, grad_out=None,
          with_hessian=False) -> ListsResult:
    """Loss and gradient of every example of a batch of candidate lists (n-best, k-best).

    Example i owns the candidates offsets[i]:offsets[i+1] of the flat arrays (CSR layout).

    Args:
      scores: (total,) scores of every candidate, lists one after another. float64 (and Python
        floats) are computed in double, float32, float16 and integers in float32. -inf masks a
        candidate.
      offsets: (n + 1,) integers: offsets[0] = 0, non-decreasing, offsets[n] = total.
      gold: (n,) the gold's index inside its list, or -1 when the reference is not among the
        candidates: then the oracle (lowest cost, then highest score) stands in for it.
      loss: any loss of losskit.dense (formulas in include/losskit.h); label smoothing is a
        dense-row notion and not offered here.
      cost: (total,) per-candidate costs, or None (0/1 against the gold; then no gold may be -1).
      weight: (n,) non-negative example weights, or None.
      reduction, cost_scale, square_k, square_m, hope, fear, hope_scale, fear_scale, threads,
        with_grad, grad_out, with_hessian: as in losskit.dense (grad_out has shape (total,)).

    Returns:
      ListsResult(loss, grad, hessian).

    Raises:
      ValueError: an argument has the wrong shape, dtype or name (checked before the call).
      LossKitError: the library rejected the input (the message names the example and index).
    """
    dtype = c.float_dtype(scores)
    s = np.asarray(scores)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D (all candidates, list after list), got shape {s.shape}")
    total = s.shape[0]
    s = c.as_float(s, dtype, "scores", (total,))
    o = np.asarray(offsets)
    if o.ndim != 1 or o.shape[0] < 1:
        raise ValueError(f"offsets must be 1-D with n + 1 >= 1 entries, got shape {o.shape}")
    if o.dtype.kind not in "iu":
        raise ValueError(f"offsets must hold integers, got dtype {o.dtype}")
    n = o.shape[0] - 1
    if o[-1] != total:
        # The library reads offsets[n] candidates: they must all be in the buffers.
        raise ValueError(f"offsets[-1] = {o[-1]} must equal the number of scores, {total}")
    o = np.ascontiguousarray(o, dtype=np.int64)
    g = c.as_labels(gold, "gold", (n,))
    cost_array = None if cost is None else c.as_float(cost, dtype, "cost", (total,))
    w = None if weight is None else c.as_float(weight, dtype, "weight", (n,))
    opt = c.make_options(loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads,
                         square_k=square_k, square_m=square_m, hope=hope, fear=fear,
                         hope_scale=hope_scale, fear_scale=fear_scale)
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    grad = c.gradient_buffer(grad_out, with_grad, (total,), dtype, s)
    if with_hessian:
        hess = np.empty((total,), dtype=dtype)
        fn = lib.lk_lists_hessian_f64 if dtype == np.float64 else lib.lk_lists_hessian_f32
        fn(ctypes.byref(opt), n, c.address(o), c.address(s), c.address(g), c.address(cost_array),
           c.address(w), c.address(out), c.address(grad), c.address(hess))
        return ListsResult(out if reduction == "none" else out[0], grad, hess)
    fn = lib.lk_lists_f64 if dtype == np.float64 else lib.lk_lists_f32
    fn(ctypes.byref(opt), n, c.address(o), c.address(s), c.address(g), c.address(cost_array),
       c.address(w), c.address(out), c.address(grad))
    return ListsResult(out if reduction == "none" else out[0], grad)


def from_arrays(scores, gold, *, cost=None, **options) -> ListsResult:
    """losskit.lists over a Python list of per-example arrays: scores[i] holds example i's
    candidates (and cost[i] their costs). Returns the gradient as a list of per-example arrays
    (views into one flat buffer)."""
    parts = [np.asarray(x) for x in scores]
    for i, part in enumerate(parts):
        if part.ndim != 1:
            raise ValueError(f"scores[{i}] must be 1-D, got shape {part.shape}")
    lengths = np.array([p.shape[0] for p in parts], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    dtype = (np.float64 if parts and all(c.float_dtype(p) == np.float64 for p in parts)
             else np.float32)
    flat = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
    flat_cost = None
    if cost is not None:
        if len(cost) != len(parts):
            raise ValueError(f"cost has {len(cost)} arrays for {len(parts)} examples")
        for i, (ci, si) in enumerate(zip(cost, parts)):
            if np.shape(ci) != si.shape:
                raise ValueError(f"cost[{i}] must have shape {si.shape}, got {np.shape(ci)}")
        flat_cost = np.concatenate([np.asarray(x, dtype=dtype) for x in cost]) if parts else None
    result = lists(flat, offsets, gold, cost=flat_cost, **options)
    grads = None if result.grad is None else np.split(result.grad, offsets[1:-1])
    hessians = None if result.hessian is None else np.split(result.hessian, offsets[1:-1])
    return ListsResult(result.loss, grads, hessians)


lists.from_arrays = from_arrays
