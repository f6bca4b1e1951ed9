import math

import numpy as np

import losskit


def test_log_loss_two_classes_closed_form():
    r = losskit.dense(np.array([[0.0, math.log(3.0)]]), np.array([1]))
    assert abs(r.loss - math.log(4 / 3)) < 1e-15
    np.testing.assert_allclose(r.grad, [[0.25, -0.25]], rtol=0, atol=1e-15)
