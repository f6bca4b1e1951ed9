"""Train a linear classifier on scikit-learn's handwritten digits with every LossKit loss.

The digits dataset (1797 8x8 images, 10 classes) ships inside the scikit-learn wheel, so no
download is needed. Each loss trains the same linear model (64 features -> 10 scores) from the
same small random start with full-batch Adam; LossKit gives the loss and its gradient w.r.t. the
scores, and the chain rule through the linear layer is two matrix products here.

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
]


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
    rng = np.random.default_rng(seed)
    d, k = x.shape[1], 10
    params = [rng.normal(0, 0.01, (d, k)).astype(np.float32), np.zeros(k, np.float32)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    for t in range(1, epochs + 1):
        w, b = params
        r = losskit.dense(x @ w + b, y, **kwargs)  # mean loss, gradient w.r.t. the scores
        grads = [x.T @ r.grad, r.grad.sum(0)]
        for p, g, m in zip(params, grads, moments):
            m[0] = b1 * m[0] + (1 - b1) * g
            m[1] = b2 * m[1] + (1 - b2) * g * g
            p -= lr * (m[0] / (1 - b1**t)) / (np.sqrt(m[1] / (1 - b2**t)) + eps)
    w, b = params
    final = float(losskit.dense(x @ w + b, y, with_grad=False, **kwargs).loss)
    return w, b, final


def accuracy(x, y, w, b) -> float:
    return float(np.mean(np.argmax(x @ w + b, axis=1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=300)
    args = parser.parse_args()

    xtr, ytr, xte, yte = load()
    print(f"LossKit {losskit.version()} — linear classifier on scikit-learn's digits "
          f"({len(ytr)} train / {len(yte)} test, 64 features, 10 classes), "
          f"{args.epochs} epochs of full-batch Adam\n")
    header = f"{'loss':32} {'final train loss':>16} {'train acc':>10} {'test acc':>9} {'time':>7}"
    print(header)
    print("-" * len(header))
    for label, kwargs in LOSSES:
        start = time.perf_counter()
        w, b, final = train(xtr, ytr, kwargs, args.epochs)
        elapsed = time.perf_counter() - start
        print(f"{label:32} {final:16.5f} {accuracy(xtr, ytr, w, b):10.3f} "
              f"{accuracy(xte, yte, w, b):9.3f} {elapsed:6.2f}s")


if __name__ == "__main__":
    main()
