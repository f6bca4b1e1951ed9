"""losskit.vocab_parallel: a dense loss whose classes are split across processes
(lk_vocab_dense_f32 / _f64), with the caller's all-reduces between the library's three phases."""

from __future__ import annotations

import ctypes
from typing import Callable, NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["vocab_parallel", "VocabParallelResult", "VOCAB_MAXIMA", "VOCAB_SUMS"]

# Per row: the values phase 1 writes (reduced with MAX) and phase 2 writes (reduced with SUM);
# LK_VOCAB_MAXIMA and LK_VOCAB_SUMS of include/losskit.h.
VOCAB_MAXIMA = 3
VOCAB_SUMS = 7
# A max fear also exchanges an argmax key per row (MAX).
_MAX_FEARS = ("hinge", "perceptron")


class VocabParallelResult(NamedTuple):
    """loss: the loss of the whole rows (the same on every process), a scalar ("sum"/"mean") or
    (n,) ("none"); grad: (n, k_local), its gradient w.r.t. this process's scores, or None."""

    loss: object
    grad: Optional[np.ndarray]


def _reduced(reduce, array: np.ndarray) -> np.ndarray:
    out = reduce(array)
    if out is None:
        return array
    out = np.ascontiguousarray(np.asarray(out, dtype=np.float64))
    if out.shape != array.shape:
        raise ValueError(f"an all-reduce returned shape {out.shape} for a buffer of shape {array.shape}")
    return out


def vocab_parallel(scores, gold, *, k: int, k_offset: int,
                   all_reduce_max: Callable[[np.ndarray], Optional[np.ndarray]],
                   all_reduce_sum: Callable[[np.ndarray], Optional[np.ndarray]],
                   loss="log", cost=None, cost_layout=None, weight=None, reduction="mean",
                   cost_scale=1.0, ignore_label=-100, label_smoothing=0.0, hope=None, fear=None,
                   hope_scale=None, fear_scale=None, z_loss=0.0, softcap=None, threads=0,
                   with_grad=True) -> VocabParallelResult:
    """``losskit.dense`` over rows whose k classes are split across processes: this process holds
    the columns ``[k_offset, k_offset + k_local)`` of the (n, k) scores, and gets the loss of the
    whole rows and the gradient of its own columns. Between the library's three phases, the
    caller's engine reduces a few float64 values per row over the processes (Megatron-LM's
    pattern: one MAX, one SUM, and for "hinge" / "perceptron" one more MAX of an argmax key; no
    communication for the gradient):

        from mpi4py import MPI
        r = losskit.vocab_parallel(
            shard, gold, k=k, k_offset=rank * k_local,
            all_reduce_max=lambda a: comm.Allreduce(MPI.IN_PLACE, a, op=MPI.MAX),
            all_reduce_sum=lambda a: comm.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM))

    Every process must call it with the same gold, weight, options and k (the reductions pair
    the processes' calls); a bad value in one process's columns is reported by every process
    (LossKitError, LK_ERR_DOMAIN) after the reductions, so none is left waiting in one.

    Args:
      scores: (n, k_local) this process's columns; float64 is computed in double, else float32.
      gold: (n,) global labels in [0, k), or ignore_label.
      k: the classes of a whole row.   k_offset: this process's first class.
      all_reduce_max, all_reduce_sum: reduce a float64 NumPy array over the processes, in place
        (returning None) or returning the reduced array of the same shape.
      loss: "log" (with label_smoothing), "softmax_margin", "hinge", "perceptron", or
        "hope_fear" with hope="gold".
      cost: this process's columns of the costs: (n, k_local) per example, (k, k_local) a class
        matrix (cost_layout as for losskit.dense).
      weight, reduction, cost_scale, ignore_label, label_smoothing, hope, fear, hope_scale,
      fear_scale, z_loss, softcap, threads: as for ``losskit.dense`` (weight the same on every
        process).
      with_grad: False skips the gradient.

    Returns:
      VocabParallelResult(loss, grad).
    """
    s = c.as_array(scores)
    dtype = c.float_dtype(s)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (n, k_local), got shape {s.shape}")
    n, k_local = s.shape
    s = c.as_float(s, dtype, "scores", (n, k_local))
    g = c.as_labels(gold, "gold", (n,))
    layout, cost_array = c.dense_costs(cost, cost_layout, n, k, dtype, columns=k_local)
    w = None if weight is None else c.as_float(weight, dtype, "weight", (n,))
    opt = c.gold_hope_options(loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads,
                              ignore_label=ignore_label, layout=layout, label_smoothing=label_smoothing, hope=hope,
                              fear=fear, hope_scale=hope_scale, fear_scale=fear_scale, z_loss=z_loss, softcap=softcap)
    max_fear = loss in _MAX_FEARS or (loss == "hope_fear" and fear == "max")
    maxima = np.empty((n, VOCAB_MAXIMA))
    sums = np.empty((n, VOCAB_SUMS))
    argmax = np.empty(n) if max_fear else None
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    grad = np.empty((n, k_local), dtype=dtype) if with_grad else None
    fn = lib.lk_vocab_dense_f64 if dtype == np.float64 else lib.lk_vocab_dense_f32
    a = c.address

    def phase(number, maxima, sums, argmax, out=None, grad=None):
        fn(ctypes.byref(opt), number, n, k, k_offset, k_local, a(s), a(g), a(cost_array), a(w),
           a(maxima), a(sums), a(argmax), a(out), a(grad))

    phase(1, maxima, None, None)
    maxima = _reduced(all_reduce_max, maxima)
    phase(2, maxima, sums, argmax)
    sums = _reduced(all_reduce_sum, sums)
    if argmax is not None:
        argmax = _reduced(all_reduce_max, argmax)
    phase(3, maxima, sums, argmax, out, grad)
    return VocabParallelResult(out if reduction == "none" else out[0], grad)
