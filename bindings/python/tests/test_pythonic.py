"""The Python API speaks Python: errors name keyword arguments and values (never the C struct's
fields), offsets without their leading 0 get their own error, whole-number float labels are
accepted, every gradient can be written into given buffers (grad_out=), and the docstrings carry
the formulas and references (pip users do not have include/losskit.h)."""

from __future__ import annotations

import ctypes
import inspect
import re
from pathlib import Path

import numpy as np
import pytest

import losskit
from losskit import _common, _native

HEADER = Path(__file__).resolve().parents[3] / "include" / "losskit.h"

ALL_LOSSES = list(_native.LOSSES)
CHAIN_LOSSES = [x for x in ALL_LOSSES if x not in ("squared", "squentropy", "cosface", "arcface")]
LIST_LOSSES = [x for x in ALL_LOSSES if x not in ("cosface", "arcface")]


# ------------------------------------------------------------------------------------------
# Small batches of each structure, called with keyword options.
# ------------------------------------------------------------------------------------------

def call_dense(dtype=np.float64, **kw):
    s = np.array([[0.1, 0.2, -0.3], [0.5, -0.1, 0.0]], dtype)
    return losskit.dense(s, np.array([0, 2]), **kw)


def call_lists(dtype=np.float64, **kw):
    s = np.array([0.1, 0.2, -0.3, 0.5], dtype)
    return losskit.lists(s, np.array([0, 3, 4]), np.array([1, 0]), **kw)


def call_chain(dtype=np.float64, **kw):
    e = np.linspace(-1, 1, 2 * 3 * 2).reshape(2, 3, 2).astype(dtype)
    return losskit.chain(e, np.zeros((2, 2), dtype), np.array([3, 2]),
                         np.array([[0, 1, 1], [1, 0, 0]]), **kw)


def call_lsoftmax(dtype=np.float64, **kw):
    x = np.array([[1.0, 0.5], [0.2, -0.3]], dtype)
    w = np.array([[0.4, 0.1], [-0.2, 0.7], [0.3, 0.3]], dtype)
    return losskit.lsoftmax(x, w, np.array([0, 2]), **kw)


CALLS = {"dense": call_dense, "lists": call_lists, "chain": call_chain}


def raises_lk(name, fn, **kw) -> losskit.LossKitError:
    with pytest.raises(losskit.LossKitError) as info:
        fn(**kw)
    assert info.value.name == name, str(info.value)
    return info.value


def speaks_python(err: Exception) -> None:
    """No C struct field (opt->x), no LK_* constant but the status name, no C type name."""
    text = str(err)
    assert "opt->" not in text, text
    assert not re.search(r"\bLK_(?!ERR_)", text), text
    assert not re.search(r"overflows? (float|double|Float|Double)\b", text), text


# ------------------------------------------------------------------------------------------
# Errors name Python arguments and values.
# ------------------------------------------------------------------------------------------

# (id, function, keyword options, status name, the exact words the message must contain)
OPTION_ERRORS = [
    ("squared on chains", call_chain, dict(loss="squared"), "LK_ERR_UNSUPPORTED",
     "loss='squared' is not defined on chains (defined on dense rows and candidate lists"),
    ("squentropy on chains", call_chain, dict(loss="squentropy"), "LK_ERR_UNSUPPORTED",
     "loss='squentropy' is not defined on chains (defined on dense rows and candidate lists"),
    ("cosface on chains", call_chain, dict(loss="cosface"), "LK_ERR_UNSUPPORTED",
     "loss='cosface' is not defined on chains (defined on dense rows"),
    ("arcface on lists", call_lists, dict(loss="arcface"), "LK_ERR_UNSUPPORTED",
     "loss='arcface' is not defined on candidate lists (defined on dense rows"),
    ("margin 0", call_lsoftmax, dict(margin=0), "LK_ERR_OPTION", "margin=0 is outside [1, 1000]"),
    ("margin 1001", call_lsoftmax, dict(margin=1001), "LK_ERR_OPTION",
     "margin=1001 is outside [1, 1000]"),
    ("negative lam", call_lsoftmax, dict(lam=-1.0), "LK_ERR_OPTION",
     "lam=-1.0 must be finite and >= 0"),
    ("NaN lam", call_lsoftmax, dict(lam=float("nan")), "LK_ERR_OPTION", "lam=nan"),
    ("negative cost_scale", call_dense, dict(cost_scale=-1.0), "LK_ERR_OPTION",
     "cost_scale=-1.0 must be finite and >= 0"),
    ("negative cost_scale, chains", call_chain, dict(cost_scale=-2.0), "LK_ERR_OPTION",
     "cost_scale=-2.0 must be finite and >= 0"),
    ("negative cost_scale, lists", call_lists, dict(cost_scale=-2.0), "LK_ERR_OPTION",
     "cost_scale=-2.0 must be finite and >= 0"),
    ("label_smoothing 1", call_dense, dict(label_smoothing=1.0), "LK_ERR_OPTION",
     "label_smoothing=1.0 is outside [0, 1)"),
    ("square_k 0", call_dense, dict(loss="squared", square_k=0.0), "LK_ERR_OPTION",
     "square_k=0.0 must be finite and > 0"),
    ("square_m inf", call_dense, dict(loss="squared", square_m=float("inf")), "LK_ERR_OPTION",
     "square_m=inf is not finite"),
    ("negative hope_scale", call_dense, dict(loss="hope_fear", hope="max", hope_scale=-0.5),
     "LK_ERR_OPTION", "hope_scale=-0.5 must be finite and >= 0"),
    ("negative fear_scale", call_lists, dict(loss="hope_fear", fear_scale=-0.5),
     "LK_ERR_OPTION", "fear_scale=-0.5 must be finite and >= 0"),
    ("angular_scale 0", call_dense, dict(loss="cosface", angular_scale=0.0), "LK_ERR_OPTION",
     "angular_scale=0.0 must be finite and > 0"),
    ("angular_margin 4", call_dense, dict(loss="arcface", angular_margin=4.0), "LK_ERR_OPTION",
     "angular_margin=4.0 is outside [0, pi]"),
    ("negative threads", call_dense, dict(threads=-1), "LK_ERR_OPTION", "threads=-1 is negative"),
    ("negative threads, lsoftmax", call_lsoftmax, dict(threads=-3), "LK_ERR_OPTION",
     "threads=-3 is negative"),
    ("cost_scale overflowing float32", lambda **kw: call_dense(np.float32, **kw),
     dict(loss="hinge", cost_scale=1e300), "LK_ERR_OPTION", "overflows float32"),
]


@pytest.mark.parametrize("fn, options, name, words",
                         [pytest.param(*row[1:], id=row[0]) for row in OPTION_ERRORS])
def test_option_errors_name_the_keyword_and_its_value(fn, options, name, words):
    err = raises_lk(name, fn, **options)
    assert words in err.message, err.message
    assert words in str(err) and name in str(err)
    speaks_python(err)


@pytest.mark.parametrize("structure", ["dense", "lists", "chain"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_message_names_a_c_field_for_any_loss_and_option(structure, dtype):
    """Every loss of a structure with each option out of its domain: whatever is raised (the
    binding's ValueError or the library's LossKitError), it names the keyword, never opt->."""
    fn = CALLS[structure]
    losses = {"dense": ALL_LOSSES, "lists": LIST_LOSSES, "chain": CHAIN_LOSSES}[structure]
    bad = [("cost_scale", -1.0), ("cost_scale", float("nan")), ("threads", -1),
           ("reduction", "avg")]
    per_loss = {"log": [("label_smoothing", 1.5)] if structure == "dense" else [],
                "squared": [("square_k", -1.0), ("square_m", float("nan"))],
                "hope_fear": [("hope_scale", -1.0), ("fear_scale", float("inf")),
                              ("hope", "best"), ("fear", "gold")],
                "cosface": [("angular_scale", -1.0), ("angular_margin", 9.0)],
                "arcface": [("angular_scale", float("inf")), ("angular_margin", -1.0)]}
    checked = 0
    for loss in losses:
        for keyword, value in bad + per_loss.get(loss, []):
            with pytest.raises(ValueError) as info:
                fn(dtype, loss=loss, **{keyword: value})
            speaks_python(info.value)
            assert keyword in str(info.value), (loss, keyword, str(info.value))
            checked += 1
    assert checked >= 4 * len(losses)


def test_library_messages_are_translated_from_the_c_words():
    """The library itself says opt->margin = 0; the binding says margin=0. Called through a
    prototype without the binding's errcheck, to read the library's own words."""
    raw = ctypes.CDLL(str(losskit.library_path())).lk_lsoftmax_f64
    raw.argtypes = _native.lib.lk_lsoftmax_f64.argtypes
    raw.restype = ctypes.c_int32
    for field, value, keyword in (("margin", 0, "margin=0"), ("lambda_", -1.0, "lam=-1.0")):
        trial = _common.make_options(loss="log", reduction="mean", cost_scale=1.0, threads=0)
        setattr(trial, field, value)
        assert raw(ctypes.byref(trial), 0, 1, 1, None, None, None, None, None, None, None) == 4
        message = _native.lib.lk_last_error().decode()
        assert message.startswith("opt->"), message  # the library's wording
        translated = _native.python_words(message)
        assert translated.startswith(keyword) and "opt->" not in translated, translated
        assert translated[len(keyword):] == message[message.index(" = ") + 3 + len(str(value)):]
    # opt->loss = N: the loss's name, the C macro's parenthesis dropped
    assert (_native.python_words("opt->loss = 12 (COSFACE) takes cosine scores of dense rows")
            == "loss='cosface' takes cosine scores of dense rows")
    assert (_native.python_words("cost is NULL, but opt->cost_layout is LK_COST_CLASS_MATRIX")
            == "cost is NULL, but cost_layout is 'class_matrix'")


def test_losskit_error_is_a_value_error_and_a_runtime_error():
    with pytest.raises(ValueError) as info:
        losskit.dense(np.zeros((2, 3)), np.array([0, 7]))
    err = info.value
    assert isinstance(err, losskit.LossKitError) and isinstance(err, RuntimeError)
    assert (err.status, err.name) == (3, "LK_ERR_LABEL")
    assert "gold[1] = 7" in err.message
    import pickle
    again = pickle.loads(pickle.dumps(err))
    assert (again.status, again.name, again.message) == (err.status, err.name, err.message)


# ------------------------------------------------------------------------------------------
# Offsets without the leading 0.
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_offsets_without_the_leading_zero(dtype):
    scores = np.array([0.1, 0.2, -0.3, 0.5], dtype)
    grad = np.full(4, 7.0, dtype)
    # the ends of the two lists only: [3, 4] where [0, 3, 4] was meant
    with pytest.raises(losskit.LossKitError) as info:
        losskit.lists(scores, np.array([3, 4]), np.array([1, 0]), grad_out=grad)
    err = info.value
    assert err.name == "LK_ERR_SIZE"
    assert err.message == ("offsets must start at 0 (got offsets[0] = 3); pass n + 1 offsets: "
                           "[0, end_0, end_1, ...]")
    assert "gold" not in err.message
    assert np.all(grad == 7.0)  # nothing written
    # the same lists with the leading 0 are fine
    losskit.lists(scores, np.array([0, 3, 4]), np.array([1, 0]), grad_out=grad)
    # the library's order of checks holds: a bad option is reported before the sizes
    err = raises_lk("LK_ERR_OPTION", losskit.lists, scores=scores, offsets=np.array([3, 4]),
                    gold=np.array([1, 0]), cost_scale=-1.0)
    assert "cost_scale=-1.0" in err.message


# ------------------------------------------------------------------------------------------
# Labels given as floats.
# ------------------------------------------------------------------------------------------

@pytest.fixture(params=["explicit check"] + (["same_value cast"] if _common._SAME_VALUE else []))
def label_path(request, monkeypatch):
    """Both ways of checking labels: NumPy's same_value cast (NumPy >= 2.4, where it exists) and
    the explicit check of older NumPy (forced here)."""
    if request.param == "explicit check":
        monkeypatch.setattr(_common, "_SAME_VALUE", False)
    return request.param


@pytest.mark.parametrize("label_dtype", [np.float32, np.float64, np.float16])
def test_whole_number_float_labels_equal_integer_labels(label_dtype, label_path, rng):
    s = rng.normal(size=(6, 4))
    gold = np.array([0, 3, 1, -100, 2, 3])
    for kw in (dict(), dict(reduction="none", loss="hinge")):
        want = losskit.dense(s, gold, **kw)
        got = losskit.dense(s, gold.astype(label_dtype), **kw)
        np.testing.assert_array_equal(got.loss, want.loss)
        np.testing.assert_array_equal(got.grad, want.grad)
    scores = rng.normal(size=5)
    offsets, lgold, cost = np.array([0, 2, 5]), np.array([1, -1]), rng.random(5)
    want = losskit.lists(scores, offsets, lgold, cost=cost, loss="risk")
    got = losskit.lists(scores, offsets, lgold.astype(label_dtype), cost=cost, loss="risk")
    np.testing.assert_array_equal(got.grad, want.grad)
    e = rng.normal(size=(2, 3, 2))
    tags = np.array([[0, 1, 1], [1, 0, 0]])
    want = losskit.chain(e, np.zeros((2, 2)), np.array([3, 2]), tags)
    got = losskit.chain(e, np.zeros((2, 2)), np.array([3.0, 2.0], label_dtype),
                        tags.astype(label_dtype))
    np.testing.assert_array_equal(got.d_emissions, want.d_emissions)
    x, w = rng.normal(size=(3, 2)), rng.normal(size=(4, 2))
    want = losskit.lsoftmax(x, w, np.array([0, 3, 1]))
    got = losskit.lsoftmax(x, w, np.array([0, 3, 1], label_dtype))
    np.testing.assert_array_equal(got.d_w, want.d_w)


BAD_LABELS = [
    # (id, labels, the words of the message)
    ("a fraction", np.array([0.0, 1.0, 2.5, 0.5]), "gold[2] = 2.5"),
    ("a fraction in float32", np.array([0, 1, 1, 1.25], np.float32), "gold[3] = 1.25"),
    ("NaN", np.array([0.0, np.nan, 1.5, 0.0]), "gold[1] = nan"),
    ("infinity", np.array([0.0, 1.0, -np.inf, 0.0]), "gold[2] = -inf"),
    ("beyond int32 as a float", np.array([0.0, 2.0**31, 1.0, 0.0]), "gold[1] = 2147483648"),
    ("beyond int32 as an int64", np.array([0, 1, 2, -(2**31) - 1]), "gold[3] = -2147483649"),
    ("beyond int32 as a uint32", np.array([0, 2**32 - 1, 0, 0], np.uint32), "gold[1] = 4294967295"),
]


@pytest.mark.parametrize("labels, words", [pytest.param(*row[1:], id=row[0])
                                           for row in BAD_LABELS])
def test_bad_labels_name_the_first_bad_entry(labels, words, label_path):
    with pytest.raises(ValueError) as info:
        losskit.dense(np.zeros((4, 3)), labels)
    assert not isinstance(info.value, losskit.LossKitError)  # found before the call
    assert words in str(info.value), str(info.value)
    with pytest.raises(ValueError, match=re.escape(words)):
        losskit.lsoftmax(np.ones((4, 2)), np.ones((3, 2)), labels)


def test_bad_chain_labels_name_the_row_and_position(label_path):
    gold = np.zeros((2, 3))
    gold[1, 2] = 0.5
    with pytest.raises(ValueError, match=re.escape("gold[1, 2] = 0.5")):
        losskit.chain(np.zeros((2, 3, 2)), np.zeros((2, 2)), np.array([3, 3]), gold)
    with pytest.raises(ValueError, match=re.escape("lengths[0] = 2.5")):
        losskit.chain(np.zeros((2, 3, 2)), np.zeros((2, 2)), np.array([2.5, 3]),
                      np.zeros((2, 3)))


def test_boolean_and_string_labels_are_still_refused():
    for labels in (np.array([True, False]), np.array(["0", "1"])):
        with pytest.raises(ValueError, match=r"gold must hold integers"):
            losskit.dense(np.zeros((2, 3)), labels)


# ------------------------------------------------------------------------------------------
# grad_out on every function that returns a gradient.
# ------------------------------------------------------------------------------------------

def gradient_cases(rng, dtype):
    """(name, call(grad_out=...) -> result, the result's gradient fields, their shapes, an
    input array the gradients must not overlap)."""
    s = rng.normal(size=(5, 4)).astype(dtype)
    gold = rng.integers(0, 4, 5)
    yield ("dense", lambda **kw: losskit.dense(s, gold, **kw), ("grad",), ((5, 4),), s)
    flat = rng.normal(size=7).astype(dtype)
    yield ("lists", lambda **kw: losskit.lists(flat, np.array([0, 3, 7]), np.array([2, 0]), **kw),
           ("grad",), ((7,),), flat)
    e = rng.normal(size=(2, 3, 4)).astype(dtype)
    tr = rng.normal(size=(4, 4)).astype(dtype)
    st = rng.normal(size=4).astype(dtype)
    yield ("chain", lambda **kw: losskit.chain(e, tr, np.array([3, 2]), rng_tags, start=st, **kw),
           ("d_emissions", "d_transitions", "d_start", "d_end"), ((2, 3, 4), (4, 4), (4,), (4,)),
           tr)
    x = rng.normal(size=(3, 2)).astype(dtype)
    w = rng.normal(size=(4, 2)).astype(dtype)
    yield ("lsoftmax", lambda **kw: losskit.lsoftmax(x, w, np.array([0, 3, 1]), **kw),
           ("d_x", "d_w"), ((3, 2), (4, 2)), w)


rng_tags = np.array([[0, 1, 3], [2, 2, 0]])


def pack(fields, buffers):
    """grad_out as the function takes it: one array (dense, lists) or a tuple of them."""
    return buffers[0] if fields == ("grad",) else tuple(buffers)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grad_out_is_written_and_returned_by_every_function(dtype, rng):
    for name, call, fields, shapes, _ in gradient_cases(rng, dtype):
        want = call()
        buffers = [np.full(shape, 123.0, dtype) for shape in shapes]
        got = call(grad_out=pack(fields, buffers))
        assert got.loss == want.loss, name
        for field, buffer in zip(fields, buffers):
            assert getattr(got, field) is buffer, (name, field)
            np.testing.assert_array_equal(buffer, getattr(want, field), err_msg=f"{name} {field}")
        if len(fields) > 1:  # None entries get new arrays; the others are written
            partial = [None] * len(fields)
            partial[-1] = np.full(shapes[-1], 5.0, dtype)
            got = call(grad_out=tuple(partial))
            assert getattr(got, fields[-1]) is partial[-1]
            for field in fields:
                np.testing.assert_array_equal(getattr(got, field), getattr(want, field))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grad_out_is_checked_like_dense_s(dtype, rng):
    other = np.float32 if dtype == np.float64 else np.float64
    for name, call, fields, shapes, an_input in gradient_cases(rng, dtype):
        for slot, shape in enumerate(shapes):
            label = "grad_out" if fields == ("grad",) else rf"grad_out\[{slot}\] \({fields[slot]}\)"
            wide = np.zeros(shape[:-1] + (2 * shape[-1],), dtype)
            readonly = np.zeros(shape, dtype)
            readonly.flags.writeable = False
            for bad, words in ((np.zeros(shape, other), "dtype"),
                               (np.zeros(shape[::-1] + (1,), dtype), "shape"),
                               (wide[..., ::2], "C-contiguous"),
                               (readonly, "writeable"),
                               ([0.0] * shape[0], "NumPy array")):
                buffers = [np.zeros(s, dtype) for s in shapes]
                buffers[slot] = bad
                with pytest.raises(ValueError, match=rf"{label} must .*{words}"):
                    call(grad_out=pack(fields, buffers))
        # an output overlapping an input
        if an_input.shape in shapes:
            slot = shapes.index(an_input.shape)
            buffers = [np.zeros(s, dtype) for s in shapes]
            buffers[slot] = an_input
            with pytest.raises(ValueError, match="must not overlap"):
                call(grad_out=pack(fields, buffers))
        with pytest.raises(ValueError, match="with_grad=False"):
            call(grad_out=pack(fields, [np.zeros(s, dtype) for s in shapes]), with_grad=False)
    # two gradients of one call in one buffer
    e = np.zeros((1, 2, 3), dtype)
    same = np.zeros(3, dtype)
    with pytest.raises(ValueError, match=r"grad_out\[3\] \(d_end\) must not overlap "
                                         r"grad_out\[2\] \(d_start\)"):
        losskit.chain(e, np.zeros((3, 3), dtype), [2], [[0, 1]],
                      grad_out=(None, None, same, same))
    # a tuple of the wrong length, or one array where a tuple is expected
    for bad in ((np.zeros((1, 2, 3), dtype),), np.zeros((1, 2, 3), dtype)):
        with pytest.raises(ValueError, match=r"grad_out must be a tuple of 4 arrays"):
            losskit.chain(e, np.zeros((3, 3), dtype), [2], [[0, 1]], grad_out=bad)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_grad_out_is_untouched_when_the_call_fails(dtype):
    buffers = (np.full((1, 2, 3), 7.0, dtype), np.full((3, 3), 7.0, dtype),
               np.full(3, 7.0, dtype), np.full(3, 7.0, dtype))
    with pytest.raises(losskit.LossKitError):
        losskit.chain(np.zeros((1, 2, 3), dtype), np.zeros((3, 3), dtype), [2], [[0, 5]],
                      grad_out=buffers)
    assert all(np.all(b == 7.0) for b in buffers)
    d_x, d_w = np.full((2, 2), 7.0, dtype), np.full((3, 2), 7.0, dtype)
    with pytest.raises(losskit.LossKitError):
        call_lsoftmax(dtype, margin=0, grad_out=(d_x, d_w))
    assert np.all(d_x == 7.0) and np.all(d_w == 7.0)


# ------------------------------------------------------------------------------------------
# Docstrings carry the formulas and the references.
# ------------------------------------------------------------------------------------------

def public_objects():
    yield "losskit", losskit
    for name in losskit.__all__:
        yield name, getattr(losskit, name)
    yield "lists.from_arrays", losskit.lists.from_arrays


def test_no_public_docstring_sends_the_reader_to_the_header():
    for name, obj in public_objects():
        doc = inspect.getdoc(obj) or ""
        assert "losskit.h" not in doc, name
        assert doc, f"{name} has no docstring"


def header_table() -> str:
    """The table of losses of lk_dense_f32 in include/losskit.h."""
    text = HEADER.read_text()
    return text[text.index("Per example with scores s (k), gold g"):text.index("Masked classes")]


def header_formula(loss: str) -> str:
    """The loss's formula as the header's table writes it: its row's first words."""
    line = re.search(rf"LK_LOSS_{loss.upper()}\s+(.+)", header_table())[1]
    return re.split(r"\s{2,}|, F in|grad | over the| with ", line)[0].strip()


# What each loss's row in a docstring must contain: the header's formula (risk's "R = " left
# out), and for the angular losses, which share lse(z) - z[g], their gold logit.
FORMULAS = {loss: [header_formula(loss).removeprefix("R = ")] for loss in ALL_LOSSES}
FORMULAS["cosface"].append("z[g] = S (cos_g - M)")
FORMULAS["arcface"].append("z[g] = S cos(theta_g + M)")
FUNCTIONS = {"dense": (losskit.dense, ALL_LOSSES), "lists": (losskit.lists, LIST_LOSSES),
             "chain": (losskit.chain, CHAIN_LOSSES)}


def test_the_formulas_are_the_header_s():
    assert FORMULAS["softmax_margin"] == ["lse(s + c) - s[g]"]  # the table is parsed as meant
    assert FORMULAS["hope_fear"] == ["F(s + f c) - H(s - h c)"]
    assert FORMULAS["risk"] == ["sum_j p_j c_j"]
    assert FORMULAS["cosface"][0] == FORMULAS["arcface"][0] == "lse(z) - z[g]"
    table = " ".join(header_table().split())
    assert all(part in table for parts in FORMULAS.values() for part in parts)


def loss_rows(doc: str) -> dict:
    """The table of losses of a docstring: {name: its row's text, continuation lines joined}."""
    rows, current = {}, None
    for line in doc.splitlines():
        start = re.match(r"^  ([a-z_]+) {2,}(\S.*)$", line)
        if start:
            current = start[1]
            rows[current] = start[2]
        elif current and re.match(r"^ {8,}\S", line):
            rows[current] += " " + line.strip()
        else:
            current = None
    return {name: " ".join(text.split()) for name, text in rows.items()}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_each_function_gives_the_formula_of_every_loss_it_takes(function):
    fn, losses = FUNCTIONS[function]
    doc = inspect.getdoc(fn)
    rows = loss_rows(doc)
    assert set(rows) == set(losses), set(rows) ^ set(losses)
    for loss in losses:
        parts = FORMULAS[loss]
        if function == "chain" and loss == "risk":
            parts = ["sum_y p(y) c(y)"]  # over the tag paths y
        for part in parts:
            assert part in rows[loss], (function, loss, part, rows[loss])
    for loss in set(ALL_LOSSES) - set(losses):  # named as not defined there
        assert re.search(rf"\b{loss}\b", doc), (function, loss)
    assert "psi(theta) = (-1)^j cos(m theta) - 2j" in inspect.getdoc(losskit.lsoftmax)


def test_every_cited_reference_is_given_in_full():
    module = inspect.getdoc(losskit)
    full = dict(re.findall(r"^\s*\[([A-Z]+\d\d)\]\s+(.+)$", module, re.M))
    # every reference of the header is there
    header_keys = set(re.findall(r"^ \*  \[([A-Z]+\d\d)\]", HEADER.read_text(), re.M))
    assert len(header_keys) >= 10 and header_keys <= set(full), header_keys - set(full)
    cited = set()
    for name, obj in public_objects():
        for group in re.findall(r"\[([A-Z]+\d\d(?:, [A-Z]+\d\d)*)\]", inspect.getdoc(obj) or ""):
            cited.update(group.split(", "))
    assert {"GS10", "SMTH06", "LWYY16", "LE09", "HBW23"} <= cited
    assert cited <= set(full), cited - set(full)
