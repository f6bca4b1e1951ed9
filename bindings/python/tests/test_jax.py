"""losskit.jax: Optax parity under jit and vmap, jax.grad against central differences, dtypes.

jax and optax come from make setup-peers (make test runs it): a missing one fails here.
Everything runs in float64 (jax_enable_x64 for this module), where the finite differences below
(central, step 1e-6 on inputs of order 1: truncation ~1e-12, rounding ~1e-10) are good to ~1e-8.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import losskit
import losskit.jax as lkj

REDUCTIONS = ("mean", "sum", "none")


@pytest.fixture(autouse=True, scope="module")
def x64():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def numeric_grad(f, x, h=1e-6):
    f = jax.jit(f)  # compiled once: the probes below cost a host callback each, not a trace
    x = np.asarray(x, np.float64)
    out = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = h
        out[i] = (float(f(jnp.asarray(x + e))) - float(f(jnp.asarray(x - e)))) / (2 * h)
    return out


OPTAX = {
    "log": lambda: optax.losses.softmax_cross_entropy_with_integer_labels,
    "hinge": lambda: optax.losses.multiclass_hinge_loss,  # max_j (s_j + [j != y]) - s_y
    "perceptron": lambda: optax.losses.multiclass_perceptron_loss,  # max_j s_j - s_y
}


@pytest.mark.parametrize("loss", sorted(OPTAX))
def test_optax_parity_under_jit_and_vmap(loss):
    rng = np.random.default_rng(0)
    s = jnp.asarray(rng.normal(0, 2, size=(3, 16, 6)))  # 3 batches of 16 examples
    y = jnp.asarray(rng.integers(0, 6, size=(3, 16)))
    theirs = OPTAX[loss]()
    ours = jax.jit(jax.vmap(lambda s, y: lkj.dense(s, y, loss=loss, reduction="none")))
    np.testing.assert_allclose(ours(s, y), jax.vmap(theirs)(s, y), rtol=1e-12, atol=1e-12)
    # Gradients of the mean, batched: jit(vmap(grad)).
    g_ours = jax.jit(jax.vmap(jax.grad(lambda s, y: lkj.dense(s, y, loss=loss))))(s, y)
    g_theirs = jax.vmap(jax.grad(lambda s, y: theirs(s, y).mean()))(s, y)
    np.testing.assert_allclose(g_ours, g_theirs, rtol=1e-12, atol=1e-12)
    # vmap over the scores only (the labels shared): the unmapped argument reaches the host once.
    g1 = jax.vmap(jax.grad(lambda s: lkj.dense(s, y[0], loss=loss, reduction="sum")))(s)
    g2 = jax.vmap(jax.grad(lambda s: theirs(s, y[0]).sum()))(s)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["log", "softmax_margin", "risk", "soft_ramp", "squentropy", "hinge"])
def test_dense_grad_vs_finite_differences(loss, reduction):
    rng = np.random.default_rng(1)
    s = rng.normal(0, 2, size=(5, 4))
    y = jnp.asarray(rng.integers(0, 4, 5))
    w = jnp.asarray(rng.uniform(0.5, 2, 5))
    up = jnp.asarray(rng.normal(size=5))  # signed cotangents for "none"

    def f(s):
        value = lkj.dense(s, y, loss=loss, reduction=reduction, weight=w)
        return jnp.sum(value * up) if reduction == "none" else value
    np.testing.assert_allclose(jax.jit(jax.grad(f))(jnp.asarray(s)), numeric_grad(f, s), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_lists_grad_vs_finite_differences(reduction):
    rng = np.random.default_rng(2)
    offsets = jnp.array([0, 3, 7, 8, 12])
    s = rng.normal(0, 2, size=12)
    gold = jnp.array([1, 0, 0, 3])
    cost = jnp.asarray(rng.uniform(0, 1, 12)).at[offsets[:-1] + gold].set(0)
    up = jnp.array([0.5, -1.5, 2.0, -0.25])

    def f(s):
        value = lkj.lists(s, offsets, gold, loss="softmax_margin", reduction=reduction, cost=cost)
        return jnp.sum(value * up) if reduction == "none" else value
    np.testing.assert_allclose(jax.jit(jax.grad(f))(jnp.asarray(s)), numeric_grad(f, s), rtol=1e-6, atol=1e-8)
    want = losskit.lists(np.asarray(s), np.asarray(offsets), np.asarray(gold), loss="softmax_margin",
                         reduction=reduction, cost=np.asarray(cost)).loss
    np.testing.assert_allclose(lkj.lists(s, offsets, gold, loss="softmax_margin", reduction=reduction, cost=cost),
                               want, rtol=1e-15)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("loss", ["log", "hinge", "risk"])
def test_chain_grad_vs_finite_differences(loss, reduction):
    rng = np.random.default_rng(3)
    n, t, tags = 4, 5, 3
    params = [rng.normal(size=(n, t, tags)), rng.normal(size=(tags, tags)), rng.normal(size=tags),
              rng.normal(size=tags)]
    lengths = jnp.array([5, 3, 1, 4])
    gold = jnp.asarray(rng.integers(0, tags, (n, t)))
    up = jnp.array([1.5, -2.0, 0.0, -0.5])  # signed, one zero

    def f(em, tr, st, en):
        value = lkj.chain(em, tr, lengths, gold, start=st, end=en, loss=loss, reduction=reduction)
        return jnp.sum(value * up) if reduction == "none" else value
    grads = jax.jit(jax.grad(f, argnums=(0, 1, 2, 3)))(*map(jnp.asarray, params))
    for j, got in enumerate(grads):
        def fj(x, j=j):
            args = [jnp.asarray(p) for p in params]
            args[j] = x
            return f(*args)
        np.testing.assert_allclose(got, numeric_grad(fj, params[j]), rtol=1e-6, atol=1e-8)


def test_chain_under_vmap():
    rng = np.random.default_rng(4)
    em = jnp.asarray(rng.normal(size=(2, 3, 4, 3)))  # 2 batches of 3 sequences
    tr = jnp.asarray(rng.normal(size=(3, 3)))
    lengths = jnp.array([4, 2, 3])
    gold = jnp.asarray(rng.integers(0, 3, (2, 3, 4)))
    f = jax.jit(jax.vmap(jax.grad(lambda e, g: lkj.chain(e, tr, lengths, g), argnums=0)))
    got = f(em, gold)
    for b in range(2):
        want = losskit.chain(np.asarray(em[b]), np.asarray(tr), np.asarray(lengths), np.asarray(gold[b]))
        np.testing.assert_allclose(got[b], want.d_emissions, rtol=1e-15)


def test_low_precision_and_options():
    s = jnp.asarray(np.random.default_rng(5).normal(size=(8, 5))).astype(jnp.bfloat16)
    y = jnp.arange(8) % 5
    value, grad = jax.value_and_grad(lambda s: lkj.dense(s, y, loss="hope_fear", hope="lse", fear="lse"))(s)
    assert value.dtype == jnp.bfloat16 and grad.dtype == jnp.bfloat16
    want = losskit.dense(np.asarray(s.astype(jnp.float32)), np.asarray(y), loss="hope_fear", hope="lse", fear="lse")
    np.testing.assert_allclose(np.asarray(grad, np.float32), want.grad, atol=1e-2)
    with pytest.raises(ValueError, match="hashable"):
        lkj.dense(s, y, loss="log", label_smoothing=[0.1])
