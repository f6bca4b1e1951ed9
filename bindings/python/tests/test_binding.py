"""The Python binding: dtype routing, argument checks before the call, library errors, output
shapes, memory layouts, and how the package finds its library."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import losskit
from reference import CASES, reference_dense

REPO = Path(__file__).resolve().parents[3]
HEADER = REPO / "include" / "losskit.h"


# ------------------------------------------------------------------------------------------
# float64 -> lk_dense_f64, everything else -> lk_dense_f32
# ------------------------------------------------------------------------------------------

def test_float64_takes_the_f64_path():
    # log loss of [0, 1e-9] with gold 0 = log(1 + e^1e-9) = log 2 + 5e-10 + O(1e-19). float32
    # cannot hold the 5e-10 next to log 2 (its ulp there is 6e-8), float64 can.
    s = np.array([[0.0, 1e-9]])
    r = losskit.dense(s, np.array([0]), reduction="sum")
    assert isinstance(r.loss, np.float64) and r.grad.dtype == np.float64
    assert abs(r.loss - (math.log(2) + 5e-10)) < 1e-15


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.int32, np.uint8])
def test_other_dtypes_take_the_f32_path(dtype):
    s = np.array([[0, 1, 2], [3, 1, 0]], dtype=dtype)
    g = np.array([2, 1])
    r = losskit.dense(s, g, reduction="sum")
    assert isinstance(r.loss, np.float32) and r.grad.dtype == np.float32
    none = losskit.dense(s, g, reduction="none")
    assert none.loss.dtype == np.float32 and none.loss.shape == (2,)
    want_loss, want_grad = reference_dense(s.astype(np.float64), g, reduction="sum")
    # float32 result of small exact inputs: a few float32 ulps of the inputs (<= 3)
    np.testing.assert_allclose(r.loss, want_loss, rtol=0, atol=8 * 1.2e-7 * 3)
    np.testing.assert_allclose(r.grad, want_grad, rtol=0, atol=8 * 1.2e-7 * 3)


def test_cost_and_weight_follow_the_scores_dtype():
    # float64 scores with float32 cost and int weight: everything is converted to float64.
    s = np.array([[0.0, 0.5, 0.25]])
    cost = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    r = losskit.dense(s, [0], loss="hinge", cost=cost, weight=np.array([2]), reduction="sum")
    # s + c = [0, 1.5, 2.25]: 2 * (2.25 - 0)
    assert r.loss == 4.5 and r.grad.dtype == np.float64
    np.testing.assert_array_equal(r.grad, [[-2.0, 0.0, 2.0]])


# ------------------------------------------------------------------------------------------
# Argument checks: a ValueError naming the argument, before the library is called.
# ------------------------------------------------------------------------------------------

S = np.zeros((3, 4))
G = np.array([0, 1, 2])

BAD_ARGUMENTS = [
    ("1-D scores", dict(scores=np.zeros(4), gold=np.array([0])), r"\bscores\b"),
    ("3-D scores", dict(scores=np.zeros((2, 3, 4)), gold=np.array([0, 1])), r"\bscores\b"),
    ("complex scores", dict(scores=np.zeros((3, 4), complex), gold=G), r"\bscores\b"),
    ("gold too short", dict(scores=S, gold=np.array([0, 1])), r"\bgold\b"),
    ("gold too long", dict(scores=S, gold=np.array([0, 1, 2, 3])), r"\bgold\b"),
    ("gold 2-D", dict(scores=S, gold=G[:, None]), r"\bgold\b"),
    ("gold with a fraction", dict(scores=S, gold=np.array([0.0, 1.5, 2.0])), r"gold\[1\] = 1\.5"),
    ("gold beyond int32", dict(scores=S, gold=np.array([0, 1, 2**40])), r"\bgold\b"),
    ("per-example cost of the wrong shape",
     dict(scores=S, gold=G, loss="hinge", cost=np.zeros((3, 5))), r"\bcost\b"),
    ("class matrix of the wrong shape",
     dict(scores=S, gold=G, loss="hinge", cost=np.zeros((4, 4)), cost_layout="per_example"),
     r"\bcost\b"),
    ("cost layout without cost",
     dict(scores=S, gold=G, loss="hinge", cost_layout="per_example"), r"\bcost"),
    ("n == k cost without cost_layout",
     dict(scores=np.zeros((4, 4)), gold=np.array([0, 1, 2, 3]), loss="hinge",
          cost=np.zeros((4, 4))), r"\bcost_layout\b"),
    ("unknown cost_layout",
     dict(scores=S, gold=G, loss="hinge", cost=np.zeros((3, 4)), cost_layout="diagonal"),
     r"\bcost_layout\b"),
    ("weight of the wrong length", dict(scores=S, gold=G, weight=np.ones(4)), r"\bweight\b"),
    ("unknown loss", dict(scores=S, gold=G, loss="cross_entropy"), r"\bloss\b"),
    ("loss in upper case", dict(scores=S, gold=G, loss="LOG"), r"\bloss\b"),
    ("unknown reduction", dict(scores=S, gold=G, reduction="average"), r"\breduction\b"),
    ("unknown hope", dict(scores=S, gold=G, loss="hope_fear", hope="best"), r"\bhope\b"),
    ("unknown fear", dict(scores=S, gold=G, loss="hope_fear", fear="maximum"), r"\bfear\b"),
    ("hope for a non-hope_fear loss", dict(scores=S, gold=G, loss="hinge", hope="max"),
     r"\bhope\b"),
    ("cost with cost_layout zero_one",
     dict(scores=S, gold=G, loss="hinge", cost=np.zeros((3, 4)), cost_layout="zero_one"),
     r"\bcost"),
    ("ignore_label beyond int32", dict(scores=S, gold=G, ignore_label=2**31), r"\bignore_label\b"),
    ("string scores", dict(scores=np.array([["a", "b"]]), gold=np.array([0])), r"\bscores\b"),
    ("fear_scale for a non-hope_fear loss",
     dict(scores=S, gold=G, loss="log", fear_scale=1.0), r"\bfear_scale\b"),
    ("non-integer ignore_label", dict(scores=S, gold=G, ignore_label=2.7), r"\bignore_label\b"),
    ("non-integer threads", dict(scores=S, gold=G, threads=1.5), r"\bthreads\b"),
    ("unknown cost_layout without cost", dict(scores=S, gold=G, cost_layout="per-example"),
     r"\bcost_layout\b.*per-example"),
    ("cost of neither accepted shape",
     dict(scores=S, gold=G, loss="hinge", cost=np.zeros((3, 5))), r"\(n, k\).*\(k, k\)"),
    ("label_smoothing for a loss other than log",
     dict(scores=S, gold=G, loss="hinge", label_smoothing=0.1), r"\blabel_smoothing\b"),
    ("square_k for a loss other than squared",
     dict(scores=S, gold=G, loss="squentropy", square_k=2.0), r"\bsquare_k\b"),
    ("square_m for a loss other than squared",
     dict(scores=S, gold=G, loss="log", square_m=0.5), r"\bsquare_m\b"),
]


@pytest.mark.parametrize("kwargs, pattern", [pytest.param(*row[1:], id=row[0])
                                              for row in BAD_ARGUMENTS])
def test_bad_arguments_raise_value_error_naming_them(kwargs, pattern):
    kwargs = dict(kwargs)
    scores, gold = kwargs.pop("scores"), kwargs.pop("gold")
    with pytest.raises(ValueError, match=pattern):
        losskit.dense(scores, gold, **kwargs)


@pytest.mark.parametrize("fear", ["gold", "oracle"])
def test_fear_must_be_max_or_lse(fear):
    # "gold" and "oracle" are hope terms only (include/losskit.h: fear is LK_TERM_MAX |
    # LK_TERM_LSE); like any other name outside the fear vocabulary they are a ValueError that
    # names `fear` and what was received, before the call.
    with pytest.raises(ValueError, match=rf"\bfear\b.*{fear}"):
        losskit.dense(S, G, loss="hope_fear", fear=fear)


def test_n_equals_k_cost_with_cost_layout_works():
    # n == k == 2: per_example reads row i, class_matrix reads row gold[i].
    s = np.zeros((2, 2))
    g = np.array([1, 1])
    cost = np.array([[5.0, 0.0], [7.0, 0.0]])
    per = losskit.dense(s, g, loss="hinge", cost=cost, cost_layout="per_example",
                        reduction="none")
    mat = losskit.dense(s, g, loss="hinge", cost=cost, cost_layout="class_matrix",
                        reduction="none")
    np.testing.assert_array_equal(per.loss, [5.0, 7.0])   # max(s + cost[i]) - 0
    np.testing.assert_array_equal(mat.loss, [7.0, 7.0])   # max(s + cost[gold = 1]) - 0


# ------------------------------------------------------------------------------------------
# Library errors: LossKitError with the status, its name and the library's message.
# ------------------------------------------------------------------------------------------

LIBRARY_ERRORS = [
    # (id, scores, gold, kwargs, status, name, message pattern)
    ("gold out of range", np.zeros((5, 4)), [0, 1, 2, 10, 0], {}, 3, "LK_ERR_LABEL",
     r"gold\[3\] = 10"),
    ("negative gold", np.zeros((3, 4)), [0, -1, 0], {}, 3, "LK_ERR_LABEL", r"gold\[1\] = -1"),
    ("+inf score", np.array([[0.0, 1.0], [np.inf, 0.0]]), [0, 1], {}, 5, "LK_ERR_DOMAIN",
     r"scores\[1, 0\]"),
    ("every class masked", np.array([[0.0, 1.0], [-np.inf, -np.inf]]), [0, 1],
     dict(loss="risk"), 5, "LK_ERR_DOMAIN", r"example 1"),
    ("masked gold under log", np.array([[0.0, -np.inf]]), [1], {}, 5, "LK_ERR_DOMAIN",
     r"scores\[0, 1\]"),
    ("negative weight", np.zeros((2, 3)), [0, 1], dict(weight=[1.0, -1.0]), 5, "LK_ERR_DOMAIN",
     r"weight\[1\]"),
    ("NaN weight", np.zeros((2, 3)), [0, 1], dict(weight=[np.nan, 1.0]), 5, "LK_ERR_DOMAIN",
     r"weight\[0\]"),
    ("infinite cost read", np.zeros((2, 3)), [0, 1],
     dict(loss="hinge", cost=[[0, 1, np.inf], [1, 0, 1]]), 5, "LK_ERR_DOMAIN", r"cost"),
    ("NaN cost read", np.zeros((2, 3)), [0, 1],
     dict(loss="risk", cost=[[0, 1, 1], [np.nan, 0, 1]]), 5, "LK_ERR_DOMAIN", r"cost"),
    ("infinite weight", np.zeros((2, 3)), [0, 1], dict(weight=[1.0, np.inf]), 5,
     "LK_ERR_DOMAIN", r"weight\[1\]"),
    ("label smoothing 1", np.zeros((2, 3)), [0, 1], dict(label_smoothing=1.0), 4,
     "LK_ERR_OPTION", r"label_smoothing"),
    ("negative cost_scale", np.zeros((2, 3)), [0, 1], dict(cost_scale=-1.0), 4,
     "LK_ERR_OPTION", r"cost_scale"),
    ("NaN cost_scale", np.zeros((2, 3)), [0, 1], dict(cost_scale=np.nan), 4,
     "LK_ERR_OPTION", r"cost_scale"),
    ("square_k 0", np.zeros((2, 3)), [0, 1], dict(loss="squared", square_k=0.0), 4,
     "LK_ERR_OPTION", r"square_k"),
    ("negative hope_scale", np.zeros((2, 3)), [0, 1],
     dict(loss="hope_fear", hope="max", hope_scale=-0.5), 4, "LK_ERR_OPTION", r"hope_scale"),
    ("negative threads", np.zeros((2, 3)), [0, 1], dict(threads=-1), 4, "LK_ERR_OPTION",
     r"threads"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("scores, gold, kwargs, status, name, pattern",
                         [pytest.param(*row[1:], id=row[0]) for row in LIBRARY_ERRORS])
def test_library_errors_raise_losskit_error(scores, gold, kwargs, status, name, pattern, dtype):
    with pytest.raises(losskit.LossKitError) as info:
        losskit.dense(np.asarray(scores, dtype=dtype), np.asarray(gold), **kwargs)
    err = info.value
    assert err.status == status and err.name == name
    assert err.message and re.search(pattern, err.message), err.message
    assert name in str(err) and err.message in str(err)


def test_a_successful_call_clears_the_last_error():
    with pytest.raises(losskit.LossKitError):
        losskit.dense(np.zeros((1, 2)), [5])
    losskit.dense(np.zeros((1, 2)), [1])
    from losskit import _native
    assert _native.lib.lk_last_error() == b""


# ------------------------------------------------------------------------------------------
# Outputs.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_output_shapes(dtype, rng):
    s = rng.normal(size=(6, 3)).astype(dtype)
    g = rng.integers(0, 3, 6)
    none = losskit.dense(s, g, reduction="none")
    assert isinstance(none.loss, np.ndarray) and none.loss.shape == (6,)
    assert none.loss.dtype == dtype and none.grad.shape == (6, 3)
    for reduction in ("sum", "mean"):
        r = losskit.dense(s, g, reduction=reduction)
        assert np.ndim(r.loss) == 0 and r.loss.dtype == dtype
        assert r.grad.shape == (6, 3) and r.grad.dtype == dtype
    assert isinstance(none, losskit.DenseResult) and none._fields == ("loss", "grad") and none.hessian is None


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in CASES])
def test_without_grad(case, make_batch):
    batch = make_batch(8, 4, layout="per_example", gold_unmasked=case.uses_gold, mask=0.2)
    kw = dict(case.options, **batch.kwargs())
    for reduction in ("none", "sum", "mean"):
        with_grad = losskit.dense(batch.scores, batch.gold, reduction=reduction, **kw)
        without = losskit.dense(batch.scores, batch.gold, reduction=reduction,
                                with_grad=False, **kw)
        assert without.grad is None
        np.testing.assert_array_equal(without.loss, with_grad.loss)


def test_default_reduction_is_mean_and_default_loss_is_log(rng):
    s = rng.normal(size=(5, 3))
    g = rng.integers(0, 3, 5)
    want, _ = reference_dense(s, g, loss="log", reduction="mean")
    np.testing.assert_allclose(losskit.dense(s, g).loss, want, rtol=1e-14)


def test_empty_batch():
    for dtype in (np.float64, np.float32):
        s = np.zeros((0, 3), dtype=dtype)
        g = np.zeros(0, dtype=np.int32)
        for reduction in ("sum", "mean"):
            r = losskit.dense(s, g, reduction=reduction)
            assert r.loss == 0.0 and r.grad.shape == (0, 3)
        assert losskit.dense(s, g, reduction="none").loss.shape == (0,)
        # an empty gold list of NumPy's default float dtype is accepted too
        assert losskit.dense(s, np.array([]), reduction="sum").loss == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_contiguous_and_fortran_inputs(dtype, rng):
    base = rng.normal(0, 2, size=(10, 12))
    cost_base = rng.uniform(0, 2, size=(10, 12))
    gold_base = rng.integers(0, 6, size=20).astype(np.int64)
    weight_base = rng.uniform(0.5, 2, size=20)
    views = dict(
        scores=base.astype(dtype)[:, ::2],              # every other column: strided rows
        gold=gold_base[::2],                            # stride 2
        cost=np.asfortranarray(cost_base.astype(dtype)[:, ::2]),  # column-major
        weight=weight_base.astype(dtype)[::2],
    )
    for name in ("scores", "gold", "weight"):
        assert not views[name].flags.c_contiguous, name
    assert views["cost"].flags.f_contiguous and not views["cost"].flags.c_contiguous
    copies = {k: np.ascontiguousarray(v) for k, v in views.items()}
    for reduction in ("none", "mean"):
        a = losskit.dense(views["scores"], views["gold"], loss="softmax_margin",
                          cost=views["cost"], weight=views["weight"], reduction=reduction)
        b = losskit.dense(copies["scores"], copies["gold"], loss="softmax_margin",
                          cost=copies["cost"], weight=copies["weight"], reduction=reduction)
        np.testing.assert_array_equal(a.loss, b.loss)
        np.testing.assert_array_equal(a.grad, b.grad)
        want = reference_dense(copies["scores"].astype(np.float64), copies["gold"],
                               loss="softmax_margin",
                               cost=copies["cost"].astype(np.float64),
                               weight=copies["weight"].astype(np.float64), reduction=reduction)
        tol = 1e-12 if dtype == np.float64 else 1e-5
        np.testing.assert_allclose(a.loss, want[0], rtol=tol, atol=tol)
        np.testing.assert_allclose(a.grad, want[1], rtol=tol, atol=tol)
    fortran = np.asfortranarray(copies["scores"])
    assert not fortran.flags.c_contiguous
    c = losskit.dense(fortran, copies["gold"], loss="risk", reduction="none")
    d = losskit.dense(copies["scores"], copies["gold"], loss="risk", reduction="none")
    np.testing.assert_array_equal(c.loss, d.loss)
    np.testing.assert_array_equal(c.grad, d.grad)
    assert c.grad.flags.c_contiguous


def test_inputs_are_not_modified(rng):
    s = rng.normal(size=(4, 3))
    g = np.array([0, 1, 2, 1])
    cost = rng.uniform(size=(4, 3))
    w = rng.uniform(size=4)
    saved = [a.copy() for a in (s, g, cost, w)]
    losskit.dense(s, g, loss="risk", cost=cost, weight=w)
    for a, b in zip((s, g, cost, w), saved):
        np.testing.assert_array_equal(a, b)


def test_python_lists_are_accepted():
    r = losskit.dense([[0.0, math.log(3.0)]], [1], reduction="sum")
    # log(4/3) within float32 ulps (which path a list takes is the binding's choice)
    assert abs(float(r.loss) - math.log(4 / 3)) < 1e-6
    np.testing.assert_allclose(r.grad, [[0.25, -0.25]], atol=1e-6)


# ------------------------------------------------------------------------------------------
# Loading.
# ------------------------------------------------------------------------------------------

def _run(code: str, env=None, cwd="/tmp"):
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_import_from_another_directory():
    env = {k: v for k, v in os.environ.items() if k != "LOSSKIT_LIBRARY"}
    p = _run("import losskit, numpy as np\n"
             "print(losskit.version(), losskit.version_number())\n"
             "print(losskit.dense(np.zeros((1, 2)), [0], reduction='sum').loss)", env=env)
    assert p.returncode == 0, p.stderr
    version, number = p.stdout.split("\n")[0].split()
    loss = float(p.stdout.split("\n")[1])
    # the version the header declares
    macros = {m: int(re.search(rf"#define {m}\s+(\d+)", HEADER.read_text()).group(1))
              for m in ("LK_VERSION_MAJOR", "LK_VERSION_MINOR", "LK_VERSION_PATCH")}
    major, minor, patch = (macros[m] for m in ("LK_VERSION_MAJOR", "LK_VERSION_MINOR",
                                                "LK_VERSION_PATCH"))
    assert version == f"{major}.{minor}.{patch}"
    assert int(number) == major * 10000 + minor * 100 + patch
    assert abs(loss - math.log(2)) < 1e-15  # log(e^0 + e^0) - 0


def test_library_path_points_to_an_existing_file():
    assert Path(losskit.library_path()).is_file()


def test_losskit_library_pointing_to_a_missing_file_is_a_clear_import_error(tmp_path):
    missing = tmp_path / "no-such-dir" / "liblosskit.so"
    env = dict(os.environ, LOSSKIT_LIBRARY=str(missing))
    p = _run("import losskit", env=env)
    assert p.returncode != 0
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError"), p.stderr
    assert str(missing) in last and "LOSSKIT_LIBRARY" in last
    assert "Segmentation" not in p.stderr


def test_losskit_library_is_honoured():
    env = dict(os.environ, LOSSKIT_LIBRARY=str(losskit.library_path()))
    p = _run("import losskit; print(losskit.library_path())", env=env)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(losskit.library_path())


def test_big_endian_float64_takes_the_float64_path():
    # dtype('>f8') != np.float64, but it is a float64 all the same.
    s = np.array([[0.0, np.log(3.0)]], dtype=">f8")
    r = losskit.dense(s, np.array([1]))
    assert r.grad.dtype == np.float64
    assert abs(r.loss - np.log(4 / 3)) < 1e-15


def test_cpu_level_is_one_of_the_builds():
    assert losskit.cpu_level() in ("x86-64", "avx2", "avx512")


def test_losskit_isa_caps_the_level():
    # A subprocess, since the level is chosen once per process, on the library's first call.
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "import losskit; print(losskit.cpu_level())"],
                         env={**__import__("os").environ, "LOSSKIT_ISA": "x86-64"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "x86-64"


def test_grad_out_is_written_and_returned():
    rng = np.random.default_rng(3)
    s = rng.normal(size=(5, 7)).astype(np.float32)
    g = rng.integers(0, 7, 5)
    out = np.full((5, 7), 123.0, np.float32)
    r = losskit.dense(s, g, grad_out=out)
    assert r.grad is out
    np.testing.assert_array_equal(out, losskit.dense(s, g).grad)


@pytest.mark.parametrize("bad", [np.zeros((5, 7), np.float64), np.zeros((7, 5), np.float32),
                                 np.zeros((5, 14), np.float32)[:, ::2], "buffer"])
def test_grad_out_must_match(bad):
    s = np.zeros((5, 7), np.float32)
    with pytest.raises(ValueError, match="grad_out"):
        losskit.dense(s, np.zeros(5, int), grad_out=bad)


def test_grad_out_untouched_on_error():
    out = np.full((2, 3), 7.0, np.float32)
    with pytest.raises(losskit.LossKitError):
        losskit.dense(np.zeros((2, 3), np.float32), np.array([0, 9]), grad_out=out)
    assert np.all(out == 7.0)


def test_grad_out_may_not_alias_scores():
    s = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="overlap"):
        losskit.dense(s, np.array([0, 1]), grad_out=s)
