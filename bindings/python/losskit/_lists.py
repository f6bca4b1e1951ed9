"""losskit.lists: every loss over candidate lists of varying length (lk_lists_f32 / _f64)."""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["lists", "ListsResult"]


class _ListsResultFields(NamedTuple):
    loss: object
    grad: Optional[object]


class ListsResult(_ListsResultFields):
    """loss: a scalar (reduction "sum"/"mean") or an (n,) array ("none"); grad: the gradient of
    exactly that loss w.r.t. the flat scores (offsets[n],), or None (from_arrays: a list of
    per-example arrays); hessian: the diagonal of its Hessian w.r.t. the scores, shaped as grad
    (with_hessian=True), or None."""

    hessian: Optional[object]

    def __new__(cls, loss, grad, hessian=None):
        # The Hessian is an attribute, not a third field: `loss, grad = ...` keeps unpacking.
        self = super().__new__(cls, loss, grad)
        self.hessian = hessian
        return self


def lists(scores, offsets, gold, *, loss="log", cost=None, weight=None, reduction="mean",
          cost_scale=1.0, square_k=1.0, square_m=1.0, hope=None, fear=None, hope_scale=None,
          fear_scale=None, threads=0, with_grad=True, grad_out=None,
          with_hessian=False) -> ListsResult:
    """Loss and gradient of every example of a batch of candidate lists (n-best, k-best).

    Example i owns the candidates offsets[i]:offsets[i+1] of the flat arrays (CSR layout).

    Losses (``loss=``), per list, with scores s of its candidates, gold g (its index in the
    list), costs c[j] = cost_scale * cost[j] (0/1 against the gold by default), p = softmax(s),
    K the candidates that are not masked, lse the log-sum-exp and o the oracle (lowest cost,
    then highest score), which stands in for the gold when gold is -1:

      log             lse(s) - s[g]  (cross-entropy)
      perceptron      max(s) - s[g]
      hinge           max(s + c) - s[g]                                    [CS01, TJHA05]
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
                      h = hope_scale                                   [GS12, DLSVL08]

    Label smoothing and the angular losses (cosface, arcface) are dense-row notions and are not
    offered. The gradient of a max term is the one-hot of its argmax, of an lse term the softmax
    of its argument. Full references: ``help(losskit)``.

    Args:
      scores: (total,) scores of every candidate, lists one after another. float64 (and Python
        floats) are computed in double, float32, float16 and integers in float32. -inf masks a
        candidate.
      offsets: (n + 1,) integers: offsets[0] = 0, non-decreasing, offsets[n] = total; that is
        [0, end_0, end_1, ...], the leading 0 included.
      gold: (n,) the gold's index inside its list, or -1 when the reference is not among the
        candidates: then the oracle stands in for it. Integers, or floats that are whole numbers.
      loss: one of the losses above, by name.
      cost: (total,) per-candidate costs, or None (0/1 against the gold; then no gold may be -1).
      weight: (n,) non-negative example weights, or None.
      reduction, cost_scale, square_k, square_m, hope, fear, hope_scale, fear_scale, threads,
        with_grad, grad_out, with_hessian: as in losskit.dense (grad_out has shape (total,)).

    Returns:
      ListsResult(loss, grad), with the attribute hessian (not a tuple field).

    Raises:
      ValueError: an argument has the wrong shape, dtype or name (checked before the call).
      LossKitError (a ValueError): a value outside its domain (offsets[0] != 0, a decreasing
        offset, a gold outside its list, +inf in scores, a bad option value); the message names
        the argument, the example and the index, and status / name give the lk_status.
    """
    s = c.as_array(scores)
    dtype = c.float_dtype(s)
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D (all candidates, list after list), got shape {s.shape}")
    total = s.shape[0]
    s = c.as_float(s, dtype, "scores", (total,))
    o = c.as_array(offsets)
    if o.ndim != 1 or o.shape[0] < 1:
        raise ValueError(f"offsets must be 1-D with n + 1 >= 1 entries, got shape {o.shape}")
    if o.dtype.kind not in "iu":
        raise ValueError(f"offsets must hold integers, got dtype {o.dtype}")
    key = ("candidate lists", loss, reduction, cost_scale, threads, type(threads), square_k,
           square_m, hope, fear, hope_scale, fear_scale)
    opt = c.options(key, lambda: c.lists_options(
        loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads, square_k=square_k,
        square_m=square_m, hope=hope, fear=fear, hope_scale=hope_scale, fear_scale=fear_scale))
    if o[0] != 0:
        # Checked before the shapes that depend on n: offsets given without their leading 0 (the
        # ends of the lists only) would otherwise be reported as a gold of the wrong length. The
        # library checks the options before the sizes: a call over no list does just that.
        check = lib.lk_lists_f64 if dtype == np.float64 else lib.lk_lists_f32
        check(ctypes.byref(opt), 0, *[None] * 7)
        raise c.error(c.LK_ERR_SIZE, f"offsets must start at 0 (got offsets[0] = {o[0]}); pass "
                                     "n + 1 offsets: [0, end_0, end_1, ...]")
    n = o.shape[0] - 1
    if o[-1] != total:
        # The library reads offsets[n] candidates: they must all be in the buffers.
        raise ValueError(f"offsets[-1] = {o[-1]} must equal the number of scores, {total}")
    if o.dtype is not c.I64 or not o.flags.c_contiguous:
        o = np.ascontiguousarray(o, dtype=np.int64)
    g = c.as_labels(gold, "gold", (n,))
    cost_array = None if cost is None else c.as_float(cost, dtype, "cost", (total,))
    w = None if weight is None else c.as_float(weight, dtype, "weight", (n,))
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    grad = c.gradient_buffer(grad_out, with_grad, (total,), dtype, s)
    if with_hessian:
        hess = np.empty((total,), dtype=dtype)
        fn = lib.lk_lists_hessian_f64 if dtype == np.float64 else lib.lk_lists_hessian_f32
        fn(ctypes.byref(opt), n, c.address(o), c.address(s), c.address(g), c.address(cost_array),
           c.address(w), c.address(out), c.address(grad), c.address(hess))
        return ListsResult(out if reduction == "none" else out[0], grad, hess)
    fn = lib.lk_lists_f64 if dtype == np.float64 else lib.lk_lists_f32
    address = c.address
    fn(ctypes.byref(opt), n, address(o), address(s), address(g), address(cost_array), address(w),
       address(out), address(grad))
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
