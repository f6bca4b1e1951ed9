"""losskit.chain, losskit.viterbi, losskit.marginals: linear chains (lk_chain_*)."""

from __future__ import annotations

import ctypes
from typing import NamedTuple, Optional

import numpy as np

from . import _common as c
from ._native import lib

__all__ = ["chain", "viterbi", "marginals", "ChainResult", "ViterbiResult", "MarginalsResult"]


class ChainResult(NamedTuple):
    """loss: a scalar ("sum"/"mean") or (n,) ("none"); the gradients of exactly that loss:
    d_emissions (n, t_max, tags), d_transitions (tags, tags), d_start, d_end (tags,) — each
    None when with_grad=False."""

    loss: object
    d_emissions: Optional[np.ndarray]
    d_transitions: Optional[np.ndarray]
    d_start: Optional[np.ndarray]
    d_end: Optional[np.ndarray]


class ViterbiResult(NamedTuple):
    """path: (n, t_max) int32 best tags, -1 past each length; score: (n,) best-path scores."""

    path: np.ndarray
    score: np.ndarray


class MarginalsResult(NamedTuple):
    """marginals: (n, t_max, tags) p(y_t = y), 0 past each length; log_z: (n,)."""

    marginals: np.ndarray
    log_z: np.ndarray


def _model(emissions, transitions, lengths, start, end):
    """The shared arguments, checked: dtype, shapes, int32 lengths."""
    dtype = c.float_dtype(emissions)
    e = np.asarray(emissions)
    if e.ndim != 3:
        raise ValueError(f"emissions must be 3-D (n, t_max, tags), got shape {e.shape}")
    n, t_max, tags = e.shape
    e = c.as_float(e, dtype, "emissions", (n, t_max, tags))
    tr = c.as_float(transitions, dtype, "transitions", (tags, tags))
    ln = c.as_labels(lengths, "lengths", (n,))
    if n and (ln.min() < 0 or ln.max() > t_max):
        raise ValueError(f"lengths must lie in [0, t_max = {t_max}], got [{ln.min()}, {ln.max()}]")
    st = None if start is None else c.as_float(start, dtype, "start", (tags,))
    en = None if end is None else c.as_float(end, dtype, "end", (tags,))
    return dtype, e, tr, ln, st, en, (n, t_max, tags)


def chain(emissions, transitions, lengths, gold, *, loss="log", start=None, end=None, cost=None,
          weight=None, reduction="mean", cost_scale=1.0, hope=None, fear=None, hope_scale=None,
          fear_scale=None, threads=0, with_grad=True) -> ChainResult:
    """Loss and gradients of a batch of sequences under a linear-chain model (CRF and friends).

    Args:
      emissions: (n, t_max, tags) per-position tag scores; -inf forbids a tag at a position.
      transitions: (tags, tags) scores, [from, to]; -inf forbids a transition.
      lengths: (n,) sequence lengths in [0, t_max]; positions past them are not read.
      gold: (n, t_max) gold tags (positions past each length are ignored).
      loss: "log" (the CRF negative log-likelihood), "perceptron", "hinge" (structured SVM),
        "softmax_margin", "risk", "ramp", "soft_ramp", "infinite_ramp" or "hope_fear"
        (formulas in include/losskit.h); the square losses are not defined on chains.
      start, end: (tags,) scores of the first and last tag, or None (zeros).
      cost: (n, t_max, tags) per-position costs, or None (Hamming: 1 per wrong tag).
      weight, reduction, cost_scale, hope, fear, hope_scale, fear_scale, threads, with_grad: as
        in losskit.dense.

    Returns:
      ChainResult(loss, d_emissions, d_transitions, d_start, d_end).
    """
    dtype, e, tr, ln, st, en, (n, t_max, tags) = _model(emissions, transitions, lengths, start, end)
    g = c.as_labels(gold, "gold", (n, t_max))
    cost_array = None if cost is None else c.as_float(cost, dtype, "cost", (n, t_max, tags))
    w = None if weight is None else c.as_float(weight, dtype, "weight", (n,))
    opt = c.make_options(loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads,
                         hope=hope, fear=fear, hope_scale=hope_scale, fear_scale=fear_scale)
    out = np.empty(n if reduction == "none" else 1, dtype=dtype)
    grads = [np.empty(shape, dtype=dtype) if with_grad else None
             for shape in ((n, t_max, tags), (tags, tags), (tags,), (tags,))]
    fn = lib.lk_chain_f64 if dtype == np.float64 else lib.lk_chain_f32
    fn(ctypes.byref(opt), n, t_max, tags, c.address(e), c.address(tr), c.address(st), c.address(en),
       c.address(ln), c.address(g), c.address(cost_array), c.address(w), c.address(out),
       *[c.address(x) for x in grads])
    return ChainResult(out if reduction == "none" else out[0], *grads)


def viterbi(emissions, transitions, lengths, *, start=None, end=None, threads=0) -> ViterbiResult:
    """The best tag path of each sequence and its score (ties to the lowest tags)."""
    dtype, e, tr, ln, st, en, (n, t_max, tags) = _model(emissions, transitions, lengths, start, end)
    opt = c.make_options(loss="log", reduction="mean", cost_scale=1.0, threads=threads)
    path = np.empty((n, t_max), np.int32)
    score = np.empty(n, dtype)
    fn = lib.lk_chain_viterbi_f64 if dtype == np.float64 else lib.lk_chain_viterbi_f32
    fn(ctypes.byref(opt), n, t_max, tags, c.address(e), c.address(tr), c.address(st), c.address(en),
       c.address(ln), c.address(path), c.address(score))
    return ViterbiResult(path, score)


def marginals(emissions, transitions, lengths, *, start=None, end=None, threads=0) -> MarginalsResult:
    """Per-position tag posteriors p(y_t = y) and log Z of each sequence."""
    dtype, e, tr, ln, st, en, (n, t_max, tags) = _model(emissions, transitions, lengths, start, end)
    opt = c.make_options(loss="log", reduction="mean", cost_scale=1.0, threads=threads)
    mu = np.empty((n, t_max, tags), dtype)
    log_z = np.empty(n, dtype)
    fn = lib.lk_chain_marginals_f64 if dtype == np.float64 else lib.lk_chain_marginals_f32
    fn(ctypes.byref(opt), n, t_max, tags, c.address(e), c.address(tr), c.address(st), c.address(en),
       c.address(ln), c.address(mu), c.address(log_z))
    return MarginalsResult(mu, log_z)
