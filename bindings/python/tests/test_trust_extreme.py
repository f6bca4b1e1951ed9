"""Extreme but finite values: regression tests for results that came back LK_OK with NaN or
infinity where the true value is finite (the header: only a true value beyond the type's
largest finite value is stored as +-INFINITY).

Expected values come from closed forms, evaluated with mpmath on exactly the float values the
library receives; never from the library's own output.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import losskit

mpmath.mp.dps = 60
DBL_MAX = float(np.finfo(np.float64).max)


def close(got, want, rel=1e-15):
    """got (a float) is finite and within rel of the exact want (an mpmath number)."""
    assert np.isfinite(got), got
    want = mpmath.mpf(want)
    assert abs(mpmath.mpf(float(got)) - want) <= rel * abs(want), (got, want)


# ------------------------------------------------------------------------------------------
# The batch mean: sum w_i loss_i overflows while the mean is finite.
def test_mean_of_losses_whose_weighted_sum_overflows_dense():
    s = np.array([[1e308, 0.0], [1e308, 0.0]])
    r = losskit.dense(s, np.array([1, 1]), loss="perceptron", reduction="mean")
    # Each perceptron loss is max(s) - s[gold] = 1e308; their mean is 1e308.
    close(r.loss, mpmath.mpf(1e308))
    np.testing.assert_array_equal(r.grad, [[0.5, -0.5], [0.5, -0.5]])


def test_mean_with_a_weight_whose_product_overflows_dense():
    # w * loss = 1e308 * 10 overflows; the mean (one example) is the loss, 10.
    s = np.array([[10.0, 0.0]])
    r = losskit.dense(s, np.array([1]), loss="perceptron", weight=np.array([1e308]), reduction="mean")
    close(r.loss, 10)


def test_mean_of_losses_whose_weighted_sum_overflows_chains():
    # One position, two tags, no transition read: the perceptron loss is max - gold = 2e307
    # (path scores stay below the chains' DBL_MAX / 8 bound); w * loss overflows for the first.
    e = np.array([[[2e307, 0.0]], [[2e307, 0.0]]])
    w = np.array([1e308, 1.0])
    r = losskit.chain(e, np.zeros((2, 2)), np.array([1, 1]), np.array([[1], [1]]), loss="perceptron",
                      weight=w, reduction="mean")
    loss = mpmath.mpf(2e307)
    want = (mpmath.mpf(w[0]) * loss + mpmath.mpf(w[1]) * loss) / (mpmath.mpf(w[0]) + mpmath.mpf(w[1]))
    close(r.loss, want)
