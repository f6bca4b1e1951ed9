"""Where the coefficients of LossKit's float exp come from (Kernels/StorageFloat.swift).

exp(r) on [-ln2/2, ln2/2] is written 1 + r + r^2 q(r) with q of degree 4, fitted for the least
maximum *relative* error by Lawson's iteratively reweighted least squares (it converges to the
minimax fit). Prints the coefficients (rounded to float32, as the kernel uses them) and the
error in float32 ulps; degree 3 is shown for contrast (1.8 ulp: too close to the 2-ulp budget
once the range reduction and the final rounding add theirs).

    python3 bench/fit_exp.py
"""

import numpy as np


def fit(degree: int, nodes: int = 4000, iterations: int = 300):
    half = np.log(2) / 2
    r = half * np.cos(np.pi * (np.arange(nodes) + 0.5) / nodes)  # Chebyshev nodes
    target = (np.exp(r) - 1 - r) / r**2
    weight = np.ones(nodes)
    powers = np.vstack([r**i for i in range(degree + 1)]).T
    for _ in range(iterations):
        scale = np.sqrt(weight) * r**2 / np.exp(r)  # relative error of 1 + r + r^2 q(r)
        q = np.linalg.lstsq(powers * scale[:, None], target * scale, rcond=None)[0]
        error = (1 + r + r**2 * (powers @ q) - np.exp(r)) / np.exp(r)
        weight = weight * np.abs(error)
        weight /= weight.sum()
    q32 = q.astype(np.float32)
    error32 = (1 + r + r**2 * (powers @ q32.astype(np.float64)) - np.exp(r)) / np.exp(r)
    return q32, np.abs(error32).max() / 2.0**-24


if __name__ == "__main__":
    for degree in (3, 4):
        q, ulps = fit(degree)
        print(f"q of degree {degree}: {[float(c) for c in q]}  max error {ulps:.3f} float32 ulp")
