"""LossKit against peers that compute the same functions, when they are installed.

- LOG vs torch.nn.functional.cross_entropy (PyTorch): plain, label_smoothing, class weights
  and ignore_index, each on its own, and after a tanh soft-cap with a z-loss (composed from
  torch ops); the fused linear layer (losskit.linear) against x @ w.T + b; values and autograd
  gradients.
- HINGE (0/1 cost, cost_scale 1) and PERCEPTRON vs optax.losses.multiclass_hinge_loss and
  optax.losses.multiclass_perceptron_loss (Optax, JAX); values per example and jax.grad.

The peers come from bindings/python/requirements-peers.txt (make setup-peers, which make test
runs); outside make test, every test skips cleanly when its peer is absent. All comparisons run in float64, where both sides are a few
ulps from the exact value: tolerances of 1e-12 leave room for a different order of operations.
Inputs are continuous random scores, so no max is tied (a tie is where the peers' subgradient
conventions differ: JAX splits the gradient of a tied max evenly, LossKit picks one class).
"""

from __future__ import annotations

import numpy as np
import pytest

import losskit

TOL = dict(rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------
# PyTorch
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch():
    import torch  # installed by make setup-peers (requirements-peers.txt): a missing peer fails

    return torch


def torch_cross_entropy(torch, scores, gold, reduction, **kwargs):
    """(value, d value / d scores) of F.cross_entropy in float64, by autograd."""
    s = torch.tensor(scores, dtype=torch.float64, requires_grad=True)
    target = torch.tensor(np.asarray(gold), dtype=torch.int64)
    if "weight" in kwargs:
        kwargs["weight"] = torch.tensor(kwargs["weight"], dtype=torch.float64)
    value = torch.nn.functional.cross_entropy(s, target, reduction=reduction, **kwargs)
    # reduction "none": LossKit's gradient is that of each example's own loss, i.e. of the sum
    (value.sum() if reduction == "none" else value).backward()
    return value.detach().numpy(), s.grad.detach().numpy()


def assert_same(got, want):
    np.testing.assert_allclose(got.loss, want[0], **TOL)
    np.testing.assert_allclose(got.grad, want[1], **TOL)


REDUCTIONS = ("none", "sum", "mean")


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_log_vs_torch_cross_entropy(torch, rng, reduction):
    s = rng.normal(0, 3, size=(32, 7))
    g = rng.integers(0, 7, 32)
    assert_same(losskit.dense(s, g, loss="log", reduction=reduction),
                torch_cross_entropy(torch, s, g, reduction))


@pytest.mark.parametrize("softcap, z_loss", [(30.0, 0.0), (None, 1e-4), (4.0, 0.05)])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softcap_and_z_loss_vs_torch(torch, rng, reduction, softcap, z_loss):
    # Gemma 2's soft-capping (c tanh(s / c)) then F.cross_entropy, plus PaLM's z-loss
    # lambda logsumexp(s')^2 per example (reduced as the cross-entropy), all by autograd.
    s = rng.normal(0, 6, size=(32, 7))
    g = rng.integers(0, 7, 32)
    t = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    capped = t if softcap is None else softcap * torch.tanh(t / softcap)
    per = torch.nn.functional.cross_entropy(capped, torch.tensor(g), reduction="none") \
        + z_loss * torch.logsumexp(capped, dim=1) ** 2
    value = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    (value.sum() if reduction == "none" else value).backward()
    assert_same(losskit.dense(s, g, loss="log", softcap=softcap, z_loss=z_loss, reduction=reduction),
                (value.detach().numpy(), t.grad.numpy()))


@pytest.mark.parametrize("eps", [0.0, 0.1])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_linear_vs_torch(torch, rng, reduction, eps):
    # The fused linear layer + loss against x @ w.T + b and F.cross_entropy by autograd (d_x, d_w,
    # d_b); k = 600 spans three of losskit.linear's class tiles, n = 70 two row blocks.
    x = rng.normal(size=(70, 9))
    w = rng.normal(size=(600, 9)) * 0.5
    b = rng.normal(size=600)
    g = rng.integers(0, 600, 70)
    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (x, w, b))
    value = torch.nn.functional.cross_entropy(tx @ tw.T + tb, torch.tensor(g), reduction=reduction,
                                              label_smoothing=eps)
    (value.sum() if reduction == "none" else value).backward()
    got = losskit.linear(x, w, g, bias=b, reduction=reduction, label_smoothing=eps)
    np.testing.assert_allclose(got.loss, value.detach().numpy(), **TOL)
    for mine, theirs in ((got.d_x, tx), (got.d_w, tw), (got.d_b, tb)):
        np.testing.assert_allclose(mine, theirs.grad.numpy(), **TOL)


@pytest.mark.parametrize("eps", [0.1, 0.45])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_label_smoothing_vs_torch(torch, rng, reduction, eps):
    # PyTorch: (1 - eps) * CE(y) + eps/K * sum_c CE(c) = lse - (1-eps) s_y - eps/K sum_c s_c.
    s = rng.normal(0, 3, size=(32, 7))
    g = rng.integers(0, 7, 32)
    assert_same(losskit.dense(s, g, loss="log", label_smoothing=eps, reduction=reduction),
                torch_cross_entropy(torch, s, g, reduction, label_smoothing=eps))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_class_weights_vs_torch(torch, rng, reduction):
    # PyTorch's class weight cw[y_i] is LossKit's example weight; under "mean" PyTorch divides
    # by sum_i cw[y_i], which is LossKit's summed weight. (Not combined with label smoothing:
    # PyTorch then weights the smoothing term per class c, not per example.)
    s = rng.normal(0, 3, size=(32, 7))
    g = rng.integers(0, 7, 32)
    cw = rng.uniform(0.2, 3.0, size=7)
    assert_same(losskit.dense(s, g, loss="log", weight=cw[g], reduction=reduction),
                torch_cross_entropy(torch, s, g, reduction, weight=cw))


@pytest.mark.parametrize("ignore", [-100, 2])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ignore_index_vs_torch(torch, rng, reduction, ignore):
    # ignore_index -100 (both defaults) and one inside [0, k): such rows count for nothing,
    # not even in the mean's denominator.
    s = rng.normal(0, 3, size=(32, 7))
    g = rng.integers(0, 7, 32)
    g[rng.random(32) < 0.3] = ignore
    assert_same(losskit.dense(s, g, loss="log", ignore_label=ignore, reduction=reduction),
                torch_cross_entropy(torch, s, g, reduction, ignore_index=ignore))


def test_float32_vs_torch(torch, rng):
    # the float32 path against PyTorch's float64 on the same (float32-rounded) inputs: a few
    # float32 ulps of the scores' magnitude (~10), see test_reference.py.
    s = rng.normal(0, 3, size=(64, 10)).astype(np.float32)
    g = rng.integers(0, 10, 64)
    want = torch_cross_entropy(torch, s.astype(np.float64), g, "none")
    got = losskit.dense(s, g, loss="log", reduction="none")
    tol = 8 * np.finfo(np.float32).eps * (1 + np.abs(s).max())
    np.testing.assert_allclose(got.loss, want[0], rtol=0, atol=tol)
    np.testing.assert_allclose(got.grad, want[1], rtol=0, atol=tol)


# ------------------------------------------------------------------------------------------
# Optax (JAX)
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jax():
    import jax  # installed by make setup-peers, as optax below: a missing peer fails
    import optax  # noqa: F401
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # float64, as LossKit's _f64 path
    yield jax
    jax.config.update("jax_enable_x64", previous)


def optax_loss(name):
    import optax
    # optax.losses.multiclass_hinge_loss(scores, labels)
    #   = max_j (scores_j + 1 - onehot(labels)_j) - scores_labels   (Crammer-Singer)
    #   = max(s + c) - s_g with the 0/1 cost c_j = [j != g]: LossKit's HINGE.
    # optax.losses.multiclass_perceptron_loss(scores, labels) = max(scores) - scores_labels.
    return {"hinge": optax.losses.multiclass_hinge_loss,
            "perceptron": optax.losses.multiclass_perceptron_loss}[name]


@pytest.mark.parametrize("k", [2, 5, 12])
@pytest.mark.parametrize("name", ["hinge", "perceptron"])
def test_vs_optax(jax, rng, name, k):
    import jax.numpy as jnp
    fn = optax_loss(name)
    s = rng.normal(0, 1.5, size=(40, k))
    g = rng.integers(0, k, 40)
    values = np.asarray(fn(jnp.asarray(s), jnp.asarray(g)))
    assert values.dtype == np.float64
    grad = np.asarray(jax.grad(lambda x: jnp.sum(fn(x, jnp.asarray(g))))(jnp.asarray(s)))
    none = losskit.dense(s, g, loss=name, reduction="none")
    np.testing.assert_allclose(none.loss, values, **TOL)
    np.testing.assert_allclose(none.grad, grad, **TOL)  # each example's own gradient
    total = losskit.dense(s, g, loss=name, reduction="sum")
    np.testing.assert_allclose(total.loss, values.sum(), **TOL)
    np.testing.assert_allclose(total.grad, grad, **TOL)
    mean = losskit.dense(s, g, loss=name, reduction="mean")
    np.testing.assert_allclose(mean.loss, values.mean(), **TOL)
    np.testing.assert_allclose(mean.grad, grad / len(g), **TOL)
