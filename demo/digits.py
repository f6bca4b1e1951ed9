"""Train a linear classifier on scikit-learn's handwritten digits with every LossKit loss.

The digits dataset (1797 8x8 images, 10 classes) ships inside the scikit-learn wheel, so no
download is needed. Each loss trains the same linear model (64 features -> 10 scores) from the
same small random start with full-batch Adam; LossKit gives the loss and its gradient w.r.t. the
scores, and the chain rule through the linear layer is two matrix products here. Three rows use
other models of the same layer: CosFace and ArcFace score classes by the cosine between the
feature vector and each (normalised) class column, and L-Softmax takes the features and the
weights themselves and returns the gradient w.r.t. the weights.

Run: make demo   (or, after `make setup`: python3 demo/digits.py [--epochs N])
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import losskit

# (label, losskit.dense keyword arguments)
LOSSES = [
    ("log (cross-entropy)", dict(loss="log")),
    ("log, label smoothing 0.1", dict(loss="log", label_smoothing=0.1)),
    ("perceptron", dict(loss="perceptron")),
    ("hinge (Crammer-Singer)", dict(loss="hinge")),
    ("softmax-margin", dict(loss="softmax_margin")),
    ("risk (expected 0/1 cost)", dict(loss="risk")),
    ("ramp", dict(loss="ramp")),
    ("soft ramp", dict(loss="soft_ramp")),
    ("infinite ramp", dict(loss="infinite_ramp")),
    ("square loss (Hui-Belkin)", dict(loss="squared")),
    ("squentropy", dict(loss="squentropy")),
    ("hope-fear: lse hope, max fear", dict(loss="hope_fear", hope="lse", fear="max",
                                           hope_scale=1.0, fear_scale=1.0)),
    ("CosFace (s 16, m 0.2), cosines", dict(model="cosine", loss="cosface", angular_scale=16.0,
                                            angular_margin=0.2)),
    ("ArcFace (s 16, m 0.3), cosines", dict(model="cosine", loss="arcface", angular_scale=16.0,
                                            angular_margin=0.3)),
    # lambda blends the plain logit back in (Liu et al. anneal it towards 0 as a deep network's
    # features adapt; a linear model on fixed pixels cannot reach the full angular margin).
    ("L-Softmax (m 2, lambda 5), features", dict(model="lsoftmax", margin=2, lam=5.0)),
]


def unit_rows(x):
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def scores(model: str, params, x):
    """The class scores each model ranks by."""
    w, b = params
    if model == "cosine":
        return unit_rows(x) @ (w / np.linalg.norm(w, axis=0))
    if model == "lsoftmax":
        return x @ w
    return x @ w + b


def loss_and_grads(model: str, params, x, y, kwargs, with_grad=True):
    """The mean loss and its gradients w.r.t. (w, b)."""
    w, b = params
    if model == "cosine":
        # cos = x^ . w^_j: chain the gradient w.r.t. the cosines through the column norms.
        xn, norms = unit_rows(x), np.linalg.norm(w, axis=0)
        wn = w / norms
        r = losskit.dense(xn @ wn, y, with_grad=with_grad, **kwargs)
        if not with_grad:
            return r.loss, None
        g = xn.T @ r.grad
        return r.loss, [(g - wn * (wn * g).sum(0)) / norms, np.zeros_like(b)]
    if model == "lsoftmax":
        r = losskit.lsoftmax(x, w.T, y, with_grad=with_grad, **kwargs)  # w.T: class rows
        return r.loss, None if not with_grad else [r.d_w.T, np.zeros_like(b)]
    r = losskit.dense(x @ w + b, y, with_grad=with_grad, **kwargs)  # gradient w.r.t. the scores
    return r.loss, None if not with_grad else [x.T @ r.grad, r.grad.sum(0)]


def load(seed: int = 0):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = digits.data.astype(np.float32)
    y = digits.target.astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.75 * len(y))
    train, test = order[:cut], order[cut:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-3  # standardise on the training set
    x = (x - mean) / std
    return x[train], y[train], x[test], y[test]


def train(x, y, kwargs, epochs: int, lr: float = 0.02, seed: int = 1):
    """Full-batch Adam on a linear model; returns (weights, bias, final training loss)."""
    kwargs = dict(kwargs)
    model = kwargs.pop("model", "linear")
    rng = np.random.default_rng(seed)
    d, k = x.shape[1], 10
    params = [rng.normal(0, 0.01, (d, k)).astype(np.float32), np.zeros(k, np.float32)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        _, grads = loss_and_grads(model, params, x, y, kwargs)
        for p, g, m in zip(params, grads, moments):
            m[0] = b1 * m[0] + (1 - b1) * g
            m[1] = b2 * m[1] + (1 - b2) * g * g
            p -= lr * (m[0] / (1 - b1**t)) / (np.sqrt(m[1] / (1 - b2**t)) + eps)
    final = float(loss_and_grads(model, params, x, y, kwargs, with_grad=False)[0])
    return model, params, final


def accuracy(model, params, x, y) -> float:
    return float(np.mean(np.argmax(scores(model, params, x), axis=1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()

    xtr, ytr, xte, yte = load()
    print(f"LossKit {losskit.version()} — linear classifier on scikit-learn's digits "
          f"({len(ytr)} train / {len(yte)} test, 64 features, 10 classes), "
          f"{args.epochs} epochs of full-batch Adam\n")
    header = f"{'loss':36} {'final train loss':>16} {'train acc':>10} {'test acc':>9} {'time':>7}"
    print(header)
    print("-" * len(header))
    for label, kwargs in LOSSES:
        start = time.perf_counter()
        model, params, final = train(xtr, ytr, kwargs, args.epochs)
        elapsed = time.perf_counter() - start
        print(f"{label:36} {final:16.5f} {accuracy(model, params, xtr, ytr):10.3f} "
              f"{accuracy(model, params, xte, yte):9.3f} {elapsed:6.2f}s")


if __name__ == "__main__":
    main()
