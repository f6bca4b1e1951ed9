"""losskit.jax: LossKit's losses as JAX functions with custom VJPs, usable under jit, grad, vmap.

    >>> import jax, jax.numpy as jnp, losskit.jax as lkj
    >>> loss = lambda s, y: lkj.dense(s, y, loss="hinge")
    >>> jax.jit(jax.grad(loss))(jnp.zeros((4, 3)), jnp.array([0, 1, 2, 0]))

Importing this module imports jax; ``import losskit`` never does.

Design: each function is a ``jax.custom_vjp`` whose primal calls the NumPy API on the host
through ``jax.pure_callback`` (the loss alone), and whose forward pass for differentiation
calls it once for the loss and its gradient together; the backward pass multiplies that
gradient by the cotangent in JAX. Keyword options (loss, reduction, cost_scale, ...) are static:
they select the function (cached per distinct options), so they must be hashable Python values.

vmap: the callbacks use ``vmap_method="expand_dims"``: under vmap the host function receives
every argument with the mapped axes in front (size 1 for an argument that is not mapped), and
calls the library once per batch element. That keeps each reduction's exact semantics (the mean
divides by that element's summed weight), costs one host round trip per vmap call rather than
one per element ("sequential"), and copies no unmapped argument (unlike "broadcast_all").

Conventions: float64 (with jax_enable_x64) is computed in double, float32 in float; float16 and
bfloat16 in float32, returned in their own dtype. Only the scores (emissions, transitions, start,
end) are differentiated: gold, cost and weight are data (stop_gradient). For reduction "none",
example i's gradient is scaled by its cotangent g_i; a chain's shared parameters (transitions,
start, end) get sum_i g_i dL_i/dtheta by two more library calls under reduction "sum" (the
examples with g_i > 0 weighted by g_i, those with g_i < 0 by -g_i, the second subtracted),
as in losskit.torch.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from . import _chains, _dense, _lists

__all__ = ["dense", "lists", "chain"]

_LOW_PRECISION = (jnp.float16, jnp.bfloat16)


def _compute_dtype(x):
    return jnp.float64 if x.dtype == jnp.float64 else jnp.float32


def _batched(one, cores, *arrays):
    """Calls one(*arrays) per element of the leading (vmapped) axes: arrays[i] has cores[i] axes
    of its own after them (None stays None). Returns one's tuple of outputs, stacked."""
    leads = [a.shape[:a.ndim - c] for a, c in zip(arrays, cores) if a is not None]
    lead = np.broadcast_shapes(*leads) if leads else ()
    if lead == ():
        return one(*arrays)
    full = [None if a is None else np.broadcast_to(a, lead + a.shape[a.ndim - c:])
            for a, c in zip(arrays, cores)]
    results = [one(*[None if a is None else a[index] for a in full]) for index in np.ndindex(*lead)]
    return tuple(np.stack(parts).reshape(lead + parts[0].shape) for parts in zip(*results))


def _callback(host, shapes, *args):
    return jax.pure_callback(host, shapes, *args, vmap_method="expand_dims")


def _freeze(options: dict) -> tuple:
    try:
        frozen = tuple(sorted(options.items()))
        hash(frozen)
    except TypeError:
        raise ValueError(f"options must be hashable Python values (static under jit), got {options}") from None
    return frozen


def _data(x):
    return None if x is None else jax.lax.stop_gradient(jnp.asarray(x))


# ------------------------------------------------------------------------------------------------
# Dense rows
# ------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _dense_function(reduction: str, frozen: tuple):
    options = dict(frozen)

    def call(with_grad, scores, gold, cost, weight):
        n, k = scores.shape
        dtype = scores.dtype
        shapes = [jax.ShapeDtypeStruct((n,) if reduction == "none" else (), dtype)]
        if with_grad:
            shapes.append(jax.ShapeDtypeStruct((n, k), dtype))

        def one(s, g, c, w):
            r = _dense.dense(s, g, cost=c, weight=w, reduction=reduction, with_grad=with_grad, **options)
            return (np.asarray(r.loss, dtype),) + ((r.grad,) if with_grad else ())

        def host(s, g, c, w):
            return _batched(one, (2, 1, 2, 1), s, g, c, w)
        return _callback(host, tuple(shapes), scores, gold, cost, weight)

    @jax.custom_vjp
    def f(scores, gold, cost, weight):
        return call(False, scores, gold, cost, weight)[0]

    def fwd(scores, gold, cost, weight):
        loss, grad = call(True, scores, gold, cost, weight)
        return loss, grad

    def bwd(grad, g):
        return (grad * (g[:, None] if reduction == "none" else g), None, None, None)

    f.defvjp(fwd, bwd)
    return f


def dense(scores, gold, *, loss="log", reduction="mean", cost=None, weight=None, **options):
    """losskit.dense as a JAX function of ``scores`` (n, k); differentiable w.r.t. the scores.
    Keyword options as losskit.dense (static)."""
    scores = jnp.asarray(scores)
    f = _dense_function(reduction, _freeze(dict(options, loss=loss)))
    dtype = _compute_dtype(scores)
    out = f(scores.astype(dtype), jnp.asarray(gold), None if cost is None else _data(cost).astype(dtype),
            None if weight is None else _data(weight).astype(dtype))
    return out.astype(scores.dtype) if scores.dtype in _LOW_PRECISION else out


# ------------------------------------------------------------------------------------------------
# Candidate lists
# ------------------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _lists_function(reduction: str, frozen: tuple):
    options = dict(frozen)

    def call(with_grad, scores, offsets, gold, cost, weight):
        (total,), n = scores.shape, gold.shape[0]
        dtype = scores.dtype
        shapes = [jax.ShapeDtypeStruct((n,) if reduction == "none" else (), dtype)]
        if with_grad:
            shapes.append(jax.ShapeDtypeStruct((total,), dtype))

        def one(s, o, g, c, w):
            r = _lists.lists(s, o, g, cost=c, weight=w, reduction=reduction, with_grad=with_grad, **options)
            return (np.asarray(r.loss, dtype),) + ((r.grad,) if with_grad else ())

        def host(s, o, g, c, w):
            return _batched(one, (1, 1, 1, 1, 1), s, o, g, c, w)
        return _callback(host, tuple(shapes), scores, offsets, gold, cost, weight)

    @jax.custom_vjp
    def f(scores, offsets, gold, cost, weight):
        return call(False, scores, offsets, gold, cost, weight)[0]

    def fwd(scores, offsets, gold, cost, weight):
        loss, grad = call(True, scores, offsets, gold, cost, weight)
        return loss, (grad, offsets)

    def bwd(res, g):
        grad, offsets = res
        if reduction == "none":  # candidate j of list i gets g_i
            owner = jnp.searchsorted(offsets[1:], jnp.arange(grad.shape[0]), side="right")
            g = g[owner]
        return (grad * g, None, None, None, None)

    f.defvjp(fwd, bwd)
    return f


def lists(scores, offsets, gold, *, loss="log", reduction="mean", cost=None, weight=None, **options):
    """losskit.lists as a JAX function of the flat candidate ``scores`` (total,)."""
    scores = jnp.asarray(scores)
    dtype = _compute_dtype(scores)
    f = _lists_function(reduction, _freeze(dict(options, loss=loss)))
    out = f(scores.astype(dtype), jnp.asarray(offsets), jnp.asarray(gold),
            None if cost is None else _data(cost).astype(dtype),
            None if weight is None else _data(weight).astype(dtype))
    return out.astype(scores.dtype) if scores.dtype in _LOW_PRECISION else out


# ------------------------------------------------------------------------------------------------
# Linear chains
# ------------------------------------------------------------------------------------------------

def _signed_shared(args, options, g):
    """sum_i g_i dL_i/d(transitions, start, end) for signed g, by two reduction-"sum" calls."""
    em, tr, st, en, ln, gold, cost, weight = args
    w = np.ones(g.shape[0]) if weight is None else np.asarray(weight, np.float64)
    total = [np.zeros(tr.shape), np.zeros(tr.shape[0]), np.zeros(tr.shape[0])]
    for sign, index in ((1.0, np.flatnonzero(g > 0)), (-1.0, np.flatnonzero(g < 0))):
        if index.size:
            r = _chains.chain(em[index], tr, ln[index], gold[index], start=st, end=en,
                              cost=None if cost is None else cost[index], weight=w[index] * np.abs(g[index]),
                              reduction="sum", **options)
            for t, d in zip(total, (r.d_transitions, r.d_start, r.d_end)):
                t += sign * d
    return total


@functools.lru_cache(maxsize=None)
def _chain_function(reduction: str, frozen: tuple):
    options = dict(frozen)
    cores = (3, 2, 1, 1, 1, 2, 3, 1)

    def call(with_grad, em, tr, st, en, ln, gold, cost, weight):
        n, t, tags = em.shape
        dtype = em.dtype
        shapes = [jax.ShapeDtypeStruct((n,) if reduction == "none" else (), dtype)]
        if with_grad:
            shapes += [jax.ShapeDtypeStruct(s, dtype) for s in ((n, t, tags), (tags, tags), (tags,), (tags,))]

        def one(*a):
            r = _chains.chain(a[0], a[1], a[4], a[5], start=a[2], end=a[3], cost=a[6], weight=a[7],
                              reduction=reduction, with_grad=with_grad, **options)
            out = (np.asarray(r.loss, dtype),)
            if with_grad:
                out += (r.d_emissions, r.d_transitions,
                        np.zeros(tags, dtype) if r.d_start is None else r.d_start,
                        np.zeros(tags, dtype) if r.d_end is None else r.d_end)
            return out

        def host(*a):
            return _batched(one, cores, *a)
        return _callback(host, tuple(shapes), em, tr, st, en, ln, gold, cost, weight)

    def shared(g, args):
        tr = args[1]
        tags = tr.shape[0]
        shapes = (jax.ShapeDtypeStruct((tags, tags), tr.dtype), jax.ShapeDtypeStruct((tags,), tr.dtype),
                  jax.ShapeDtypeStruct((tags,), tr.dtype))

        def one(g, *a):
            return tuple(x.astype(tr.dtype) for x in _signed_shared(a, options, np.asarray(g, np.float64)))

        def host(g, *a):
            return _batched(one, (1,) + cores, g, *a)
        return _callback(host, shapes, g, *args)

    @jax.custom_vjp
    def f(em, tr, st, en, ln, gold, cost, weight):
        return call(False, em, tr, st, en, ln, gold, cost, weight)[0]

    def fwd(*args):
        loss, d_em, d_tr, d_st, d_en = call(True, *args)
        return loss, (d_em, d_tr, d_st, d_en, args if reduction == "none" else None)

    def bwd(res, g):
        d_em, d_tr, d_st, d_en, args = res
        if reduction == "none":
            d_em = d_em * g[:, None, None]
            d_tr, d_st, d_en = shared(g, args)
        else:
            d_tr, d_st, d_en = d_tr * g, d_st * g, d_en * g
        return (d_em, d_tr, d_st, d_en, None, None, None, None)

    f.defvjp(fwd, bwd)
    return f


def chain(emissions, transitions, lengths, gold, *, start=None, end=None, loss="log", reduction="mean",
          cost=None, weight=None, **options):
    """losskit.chain as a JAX function of emissions (n, t_max, tags), transitions (tags, tags),
    start and end (tags,; zeros when None); loss="log" is the CRF negative log-likelihood."""
    emissions = jnp.asarray(emissions)
    dtype = _compute_dtype(emissions)
    tags = emissions.shape[-1]
    start = jnp.zeros(tags, dtype) if start is None else jnp.asarray(start)
    end = jnp.zeros(tags, dtype) if end is None else jnp.asarray(end)
    f = _chain_function(reduction, _freeze(dict(options, loss=loss)))
    out = f(emissions.astype(dtype), jnp.asarray(transitions).astype(dtype), start.astype(dtype),
            end.astype(dtype), jnp.asarray(lengths), jnp.asarray(gold),
            None if cost is None else _data(cost).astype(dtype),
            None if weight is None else _data(weight).astype(dtype))
    return out.astype(emissions.dtype) if emissions.dtype in _LOW_PRECISION else out
