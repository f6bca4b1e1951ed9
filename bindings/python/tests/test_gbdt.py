"""losskit.xgboost and losskit.lightgbm: custom objectives against the libraries' own multiclass
objectives, and their conventions (float labels, prediction layouts, Hessian convention, floor).

xgboost and lightgbm are installed by `make setup-peers` (bindings/python/requirements-peers.txt):
a missing one fails here rather than skipping.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import losskit
import losskit.lightgbm
import losskit.xgboost


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits  # installed by make setup-python

    x, y = load_digits(return_X_y=True)
    return x, y


def softmax(m):
    e = np.exp(m - m.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_import_losskit_does_not_import_the_gbdt_libraries():
    import subprocess
    import sys

    code = ("import sys, losskit, losskit.xgboost, losskit.lightgbm; "
            "print('xgboost' in sys.modules, 'lightgbm' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# XGBoost: with the log loss and XGBoost's Hessian convention (2 p (1 - p), the default), the
# objective grows the model of multi:softprob. Both start from the same margins: base_score is
# given, because XGBoost >= 3.1 would otherwise estimate per-class intercepts for the built-in
# objective only. Both compute in floating point (the built-in in float32, the objective in
# float64), so predictions agree to about 1e-7, far inside the 1e-4.
def test_xgboost_log_loss_grows_the_model_of_multi_softprob(digits):
    import xgboost as xgb

    x, y = digits
    k = 10
    params = dict(max_depth=4, eta=0.3, num_class=k, tree_method="hist", seed=0, nthread=1,
                  base_score=0.5)
    data = xgb.DMatrix(x, label=y)
    builtin = xgb.train(dict(params, objective="multi:softprob"), data, 12)
    custom = xgb.train(dict(params, disable_default_eval_metric=1), data, 12,
                       obj=losskit.xgboost.objective(loss="log"))
    expected = builtin.predict(data)
    got = softmax(custom.predict(data, output_margin=True).astype(np.float64))
    assert np.abs(got - expected).max() <= 1e-4
    # The trees themselves: the same splits (the dumps without their leaf values), every one.
    def splits(booster):
        return [re.sub(r"leaf=[-+0-9.e]+", "leaf", tree) for tree in booster.get_dump()]
    assert len(splits(builtin)) == 12 * k
    assert splits(custom) == splits(builtin)
    # The exact diagonal takes other (longer) steps: a different model, so the test can fail.
    exact = xgb.train(dict(params, disable_default_eval_metric=1), data, 12,
                      obj=losskit.xgboost.objective(loss="log", hessian="exact"))
    assert np.abs(softmax(exact.predict(data, output_margin=True)) - expected).max() > 1e-2


# LightGBM: with the log loss and LightGBM's convention (k/(k-1) p (1 - p), the default) the
# objective grows the model of objective="multiclass". The built-in starts from the log class
# priors (boost_from_average), a custom objective from 0: the built-in is run without it.
def test_lightgbm_log_loss_grows_the_model_of_multiclass(digits):
    import lightgbm as lgb

    x, y = digits
    k = 10
    params = dict(num_class=k, num_leaves=8, learning_rate=0.3, verbose=-1, seed=0, num_threads=1,
                  deterministic=True, force_row_wise=True)
    builtin = lgb.train(dict(params, objective="multiclass", boost_from_average=False),
                        lgb.Dataset(x, label=y, params={"verbose": -1}), 12)
    custom = lgb.train(dict(params, objective=losskit.lightgbm.objective(loss="log")),
                       lgb.Dataset(x, label=y, params={"verbose": -1}), 12)
    expected = builtin.predict(x)
    got = softmax(custom.predict(x))
    assert np.abs(got - expected).max() <= 1e-4

    def splits(booster):
        found = []

        def walk(node):
            if "split_feature" in node:
                found.append((node["split_feature"], node["threshold"]))
                walk(node["left_child"])
                walk(node["right_child"])
        for tree in booster.dump_model()["tree_info"]:
            walk(tree["tree_structure"])
            found.append("end of tree")
        return found
    assert splits(custom) == splits(builtin)
    exact = lgb.train(dict(params, objective=losskit.lightgbm.objective(loss="log", hessian="exact")),
                      lgb.Dataset(x, label=y, params={"verbose": -1}), 12)
    assert np.abs(softmax(exact.predict(x)) - expected).max() > 1e-3


@pytest.mark.parametrize("loss, options", [
    ("softmax_margin", {}), ("hinge", {}), ("risk", {}), ("soft_ramp", {}), ("squentropy", {}),
    ("log", {"label_smoothing": 0.1}),
])
def test_every_loss_trains(loss, options, digits):
    import lightgbm as lgb
    import xgboost as xgb

    x, y = digits[0][:500], digits[1][:500]  # a short run: seconds, not minutes
    k = 10
    cost = np.abs(np.subtract.outer(np.arange(k), np.arange(k))).astype(float) / k + (1 - np.eye(k))
    # Costs only for the losses that read them.
    if loss in ("softmax_margin", "hinge", "risk", "soft_ramp"):
        options = dict(options, cost=cost)
    xb = xgb.train(dict(max_depth=3, eta=0.3, num_class=k, nthread=1, disable_default_eval_metric=1),
                   xgb.DMatrix(x, label=y), 6, obj=losskit.xgboost.objective(loss=loss, **options))
    accuracy = (xb.predict(xgb.DMatrix(x), output_margin=True).argmax(axis=1) == y).mean()
    assert accuracy > 0.8, (loss, accuracy)
    lb = lgb.train(dict(num_class=k, num_leaves=8, learning_rate=0.3, verbose=-1, num_threads=1,
                        objective=losskit.lightgbm.objective(loss=loss, **options)),
                   lgb.Dataset(x, label=y, params={"verbose": -1}), 6)
    accuracy = (lb.predict(x).argmax(axis=1) == y).mean()
    assert accuracy > 0.8, (loss, accuracy)


class FakeData:
    """The part of a DMatrix / lightgbm.Dataset the objectives read."""

    def __init__(self, label, weight=None):
        self.label, self.weight = label, weight

    def get_label(self):
        return self.label

    def get_weight(self):
        return self.weight


def test_layouts_float_labels_weights_and_floor(rng):
    n, k = 7, 4
    m = rng.normal(size=(n, k))
    y = rng.integers(0, k, size=n)
    w = rng.uniform(0.5, 2.0, size=n).astype(np.float32)
    exact = losskit.dense(m, y, loss="log", weight=w.astype(np.float64), reduction="sum",
                          with_hessian=True)
    data = FakeData(y.astype(np.float32), w)

    g, h = losskit.xgboost.objective(loss="log")(m.astype(np.float32), data)
    assert g.shape == h.shape == (n, k)
    np.testing.assert_allclose(h, np.maximum(2 * exact.hessian, 1e-16), rtol=1e-6)
    np.testing.assert_allclose(g, exact.grad, rtol=1e-6, atol=1e-7)
    # XGBoost < 2.0: flat row-major predictions, flat results.
    gf, hf = losskit.xgboost.objective(loss="log")(m.astype(np.float32).ravel(), data)
    np.testing.assert_array_equal(gf, g.ravel())
    np.testing.assert_array_equal(hf, h.ravel())

    g, h = losskit.lightgbm.objective(loss="log")(m, data)
    np.testing.assert_allclose(h, k / (k - 1) * exact.hessian, rtol=1e-13)
    # LightGBM < 4.0: flat class-major predictions, flat class-major results.
    gf, hf = losskit.lightgbm.objective(loss="log")(m.T.ravel(), data)
    np.testing.assert_array_equal(gf, g.T.ravel())
    np.testing.assert_array_equal(hf, h.T.ravel())

    # A zero Hessian (hinge) gets the floor of 1 by default, or the one given.
    _, h = losskit.xgboost.objective(loss="hinge")(m, FakeData(y.astype(np.float32)))
    assert np.all(h == 1.0)
    _, h = losskit.lightgbm.objective(loss="hinge", hessian_floor=0.25)(m, FakeData(y.astype(np.float32)))
    assert np.all(h == 0.25)
    # Soft ramp's negative entries are floored too.
    _, h = losskit.xgboost.objective(loss="soft_ramp", hessian="exact", hessian_floor=1e-3)(
        m, FakeData(y.astype(np.float32)))
    raw = losskit.dense(m, y, loss="soft_ramp", reduction="sum", with_hessian=True).hessian
    assert (raw < 0).any()
    np.testing.assert_array_equal(h, np.maximum(raw, 1e-3))


def test_bad_labels_and_options_are_clear_errors(rng):
    m = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match=r"label\[1\] = 0.5 is not a class index"):
        losskit.xgboost.objective(loss="log")(m, FakeData(np.array([1.0, 0.5, 2.0], np.float32)))
    with pytest.raises(ValueError, match=r"label\[2\] = nan"):
        losskit.lightgbm.objective(loss="log")(m, FakeData(np.array([1.0, 0.0, np.nan], np.float32)))
    with pytest.raises(ValueError, match="hessian="):
        losskit.xgboost.objective(hessian="lightgbm")
    with pytest.raises(ValueError, match="hessian_floor"):
        losskit.lightgbm.objective(hessian_floor=0)
    with pytest.raises(ValueError, match="weight="):
        losskit.xgboost.objective(weight=np.ones(3))
    with pytest.raises(losskit.LossKitError, match="gold"):
        losskit.xgboost.objective(loss="log")(m, FakeData(np.array([1.0, 0.0, 4.0], np.float32)))
