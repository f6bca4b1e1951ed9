"""Shared helpers of the public functions (private): names of the enums, option building,
array checks. Every check happens before the library is called and raises a ValueError that
names the argument and what was received.

Speed. On small inputs (64 x 10 scores) the library computes in a few microseconds, so what the
binding does around the call is most of the time; bench/overhead.py measures it. The common case
takes a short path: an array that is already C-contiguous in the computing dtype is used as it
is (checked with `type(a) is ndarray`, `a.dtype is F32`, its flags: tens of nanoseconds each,
where np.asarray + np.ascontiguousarray + a dtype comparison cost about a microsecond), the
lk_options of a set of keyword options is built and validated once and then reused (`options`),
int64 labels are narrowed and range-checked by one NumPy cast (`as_labels`), and addresses are
taken through the buffer protocol (`address`), not through `ndarray.ctypes` or
`__array_interface__`, which build an object or a dict per call (about 1 us each).
"""

from __future__ import annotations

import ctypes
import operator

import numpy as np

from ._native import (ANGULAR_LOSSES, COST_LAYOUTS, FEAR_TERMS, HOPE_TERMS, LOSSES, REDUCTIONS,
                      Options, error, init_options, lib)

LK_ERR_SIZE, LK_ERR_OPTION, LK_ERR_UNSUPPORTED = 2, 4, 6
ANGULAR = ANGULAR_LOSSES

F32, F64, I32, I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64)
_ndarray = np.ndarray

# Where each loss is defined (the library answers LK_ERR_UNSUPPORTED elsewhere); checked here
# first so that the error names the loss and the structures that do take it.
STRUCTURES = ("dense rows", "candidate lists", "chains")
_NOT_ON = {
    "candidate lists": {"cosface": "its scores are the cosines of dense rows",
                        "arcface": "its scores are the cosines of dense rows"},
    "chains": {"squared": "it needs candidates that can be enumerated one by one",
               "squentropy": "it needs candidates that can be enumerated one by one",
               "cosface": "its scores are the cosines of dense rows",
               "arcface": "its scores are the cosines of dense rows"},
}


def _pick(table: dict, value, what: str) -> int:
    if value not in table:
        raise ValueError(f"{what}={value!r} is not one of {sorted(table)}")
    return table[value]


def check_structure(loss, structure: str) -> None:
    """LossKitError (LK_ERR_UNSUPPORTED) when `loss` is not defined on `structure`."""
    why = _NOT_ON.get(structure, {}).get(loss)
    if why is not None:
        where = [s for s in STRUCTURES if loss not in _NOT_ON.get(s, {})]
        raise error(LK_ERR_UNSUPPORTED, f"loss={loss!r} is not defined on {structure} (defined on "
                                        f"{' and '.join(where)}: {why})")


def make_options(*, loss, reduction, cost_scale, threads, ignore_label=-100, cost_layout=None,
                 label_smoothing=0.0, square_k=1.0, square_m=1.0, hope=None, fear=None,
                 hope_scale=None, fear_scale=None, angular_scale=None,
                 angular_margin=None, z_loss=0.0, softcap=None) -> Options:
    """An lk_options from keyword options: the library's defaults for loss, then the given fields."""
    code = _pick(LOSSES, loss, "loss")
    opt = init_options(code)
    opt.reduction = _pick(REDUCTIONS, reduction, "reduction")
    opt.cost_scale = _float(cost_scale, "cost_scale")
    opt.threads = _int32(threads, "threads")
    opt.ignore_label = _int32(ignore_label, "ignore_label")
    if cost_layout is not None:
        opt.cost_layout = _pick(COST_LAYOUTS, cost_layout, "cost_layout")
    # The library ignores the options of other losses (so one C struct serves every call); a
    # keyword argument is explicit, so giving one to a loss that does not use it is an error.
    used_by = {"label_smoothing": ("log", label_smoothing, 0.0),
               "square_k": ("squared", square_k, 1.0), "square_m": ("squared", square_m, 1.0)}
    for name, (owner, value, default) in used_by.items():
        if loss != owner and value != default:
            raise ValueError(f"{name} applies only to loss={owner!r} (got loss={loss!r})")
    opt.label_smoothing = _float(label_smoothing, "label_smoothing")
    opt.square_k = _float(square_k, "square_k")
    opt.square_m = _float(square_m, "square_m")
    hope_fear = {"hope": hope, "fear": fear, "hope_scale": hope_scale, "fear_scale": fear_scale}
    if loss != "hope_fear":
        given = [name for name, value in hope_fear.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply only to loss='hope_fear' (got loss={loss!r})")
    else:
        if hope is not None:
            opt.hope = _pick(HOPE_TERMS, hope, "hope")
        if fear is not None:
            opt.fear = _pick(FEAR_TERMS, fear, "fear")
        if hope_scale is not None:
            opt.hope_scale = _float(hope_scale, "hope_scale")
        if fear_scale is not None:
            opt.fear_scale = _float(fear_scale, "fear_scale")
    angular = {"angular_scale": angular_scale, "angular_margin": angular_margin}
    if loss not in ANGULAR:
        given = [name for name, value in angular.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply only to loss='cosface' or 'arcface' "
                             f"(got loss={loss!r})")
    else:
        if angular_scale is not None:
            opt.angular_scale = _float(angular_scale, "angular_scale")
        if angular_margin is not None:
            opt.angular_margin = _float(angular_margin, "angular_margin")
    opt.z_loss = _float(z_loss, "z_loss")
    if softcap is not None:
        opt.softcap = _float(softcap, "softcap")
        if opt.softcap == 0:
            raise ValueError("softcap=0 caps every score at 0; pass softcap=None for no cap")
    return opt


def dense_costs(cost, cost_layout, n: int, k: int, dtype, columns: int | None = None):
    """(layout, cost array) of a dense-row call (losskit.dense, losskit.linear,
    losskit.vocab_parallel): the layout as given, or inferred from cost's shape ((n, columns) per
    example, (k, columns) a class matrix; ambiguous when n == k); the array converted to the
    computing dtype, or None. columns is k but for a process's shard of the classes."""
    columns = k if columns is None else columns
    layout = cost_layout
    if layout is not None:
        _pick(COST_LAYOUTS, layout, "cost_layout")
    if cost is None:
        if layout not in (None, "zero_one"):
            raise ValueError(f"cost_layout={layout!r} needs a cost array")
        return layout, None
    shape = np.shape(cost)
    per_example, class_matrix = (n, columns), (k, columns)
    if layout is None:
        if shape == per_example and shape == class_matrix:
            raise ValueError(f"cost of shape {shape} is ambiguous when n == k: "
                             "pass cost_layout='per_example' or 'class_matrix'")
        if shape not in (per_example, class_matrix):
            name = "k" if columns == k else "k_local"
            raise ValueError(f"cost must have shape (n, {name}) = {per_example} (per example) or "
                             f"(k, {name}) = {class_matrix} (class matrix), got {shape}")
        layout = "per_example" if shape == per_example else "class_matrix"
    if layout == "zero_one":
        raise ValueError("cost is given, but cost_layout='zero_one' ignores it")
    return layout, as_float(cost, dtype, "cost", per_example if layout == "per_example" else class_matrix)


def features_and_weights(x, w):
    """(x, w, dtype, n, d, k) of a call over features x (n, d) and class rows w (k, d)
    (losskit.lsoftmax, losskit.linear): shapes checked, both converted to the computing dtype."""
    xa = as_array(x)
    dtype = float_dtype(xa)
    if xa.ndim != 2:
        raise ValueError(f"x must be 2-D (n, d), got shape {xa.shape}")
    n, d = xa.shape
    wa = as_array(w)
    if wa.ndim != 2 or wa.shape[1] != d:
        raise ValueError(f"w must be 2-D (k, d = {d}), got shape {wa.shape}")
    k = wa.shape[0]
    return as_float(xa, dtype, "x", (n, d)), as_float(wa, dtype, "w", (k, d)), dtype, n, d, k


def gold_hope_options(*, loss, reduction, cost_scale, threads, ignore_label, layout, label_smoothing, hope, fear,
                      hope_scale, fear_scale, z_loss, softcap) -> Options:
    """The (cached) lk_options of the calls whose losses have the gold as their hope
    (losskit.linear, losskit.vocab_parallel): the same keyword options, the same struct."""
    key = ("gold hope", loss, reduction, cost_scale, threads, type(threads), ignore_label, type(ignore_label),
           layout, label_smoothing, hope, fear, hope_scale, fear_scale, z_loss, softcap)
    return options(key, lambda: make_options(
        loss=loss, reduction=reduction, cost_scale=cost_scale, threads=threads,
        ignore_label=ignore_label, cost_layout=layout, label_smoothing=label_smoothing,
        hope=hope, fear=fear, hope_scale=hope_scale, fear_scale=fear_scale, z_loss=z_loss,
        softcap=softcap))


def lists_options(loss, **options) -> Options:
    """make_options for candidate lists: the loss must be defined on them."""
    check_structure(loss, "candidate lists")
    return make_options(loss=loss, **options)


def chain_options(loss, **options) -> Options:
    """make_options for chains: the loss must be defined on them."""
    check_structure(loss, "chains")
    return make_options(loss=loss, **options)


# Validated lk_options by the keyword options they came from. A struct in the cache is only ever
# read (the library takes a const lk_options *), so calls, threads included, share it. Bounded:
# an option annealed every step (lsoftmax's lam) makes a new key per call.
_OPTIONS: dict = {}
_OPTIONS_MAX = 256


def options(key: tuple, build):
    """The lk_options of `key` (a tuple of every keyword option of a call, their types where a
    float equal to an integer must still be refused, and the structure): from the cache, or made
    by `build()` (which raises on a bad option) and cached. The library still validates the
    domains (cost_scale >= 0, margin in [1, 1000], ...) on every call. An unhashable option (a
    list passed as loss) is not cached; build() then raises its own error."""
    try:
        opt = _OPTIONS.get(key)
    except TypeError:
        return build()
    if opt is None:
        opt = build()
        if len(_OPTIONS) >= _OPTIONS_MAX:
            _OPTIONS.clear()
        _OPTIONS[key] = opt
    return opt


def _int32(value, what: str) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"{what}={value} does not fit in int32")
    return value


def _float(value, what: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a real number, got {value!r}") from None


def float_dtype(scores) -> np.dtype:
    """float64 input takes the _f64 path (as do Python lists of floats, which NumPy makes
    float64); everything else (float32, float16, integers) is computed in float32."""
    dtype = (scores if type(scores) is _ndarray else np.asarray(scores)).dtype
    if dtype is F32:
        return F32
    double = dtype.kind == "f" and dtype.itemsize == 8  # any byte order
    return F64 if double else F32


def is_bfloat16(array, dtype, name: str = "scores") -> bool:
    """Whether an input is bfloat16: an ml_dtypes.bfloat16 array (or any 2-byte dtype of that name,
    without importing ml_dtypes), or raw uint16 bits with dtype="bfloat16". NumPy has no bfloat16."""
    if dtype is not None:
        if dtype != "bfloat16":
            raise ValueError(f'dtype must be None or "bfloat16", got {dtype!r}')
        if array.dtype != np.uint16 and not is_bfloat16(array, None):
            raise ValueError(f'dtype="bfloat16" takes uint16 bits or ml_dtypes.bfloat16 arrays; {name} has '
                             f'dtype {array.dtype}')
        return True
    return array.dtype.name == "bfloat16" and array.dtype.itemsize == 2


def bfloat16_bits(array, name: str, shape: tuple) -> np.ndarray:
    """The uint16 bits of bfloat16 `array` (a view when it is C-contiguous), of exactly `shape`."""
    if array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    return np.ascontiguousarray(array).view(np.uint16)


def as_array(array) -> np.ndarray:
    """`array` as an ndarray (itself when it is one: the common case costs one type test)."""
    return array if type(array) is _ndarray else np.asarray(array)


def as_float(array, dtype, name: str, shape: tuple) -> np.ndarray:
    """`array` as a C-contiguous array of `dtype` and exactly `shape`, or a ValueError."""
    a = array if type(array) is _ndarray else np.asarray(array)
    if a.dtype is dtype and a.flags.c_contiguous:  # the common case: used as it is
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        return a
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def _same_value_cast() -> bool:
    """Whether this NumPy has astype(casting="same_value") (2.4+): a cast that raises where a
    value changes (out of range, a fraction, NaN), in the same pass as the copy."""
    try:
        np.array([1.0]).astype(np.int32, casting="same_value")
        np.array([2**40]).astype(np.int32, casting="same_value")
    except ValueError:
        return True   # the check is there, and the second cast failed it
    except TypeError:
        return False  # an unknown casting rule
    return False      # accepted 2**40 into int32: no check


_SAME_VALUE = _same_value_cast()


def as_labels(array, name: str, shape: tuple) -> np.ndarray:
    """Integer labels as a C-contiguous int32 array of `shape`, or a ValueError.

    Labels may come as any integer dtype whose values fit in int32, or as floating point values
    that are whole numbers (gradient-boosting libraries pass labels as float32); a fraction, a
    NaN, an infinity or a value outside int32 is a ValueError naming the first such entry."""
    a = array if type(array) is _ndarray else np.asarray(array)
    if a.dtype is I32 and a.flags.c_contiguous:  # the common case: used as it is
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
        return a
    kind = a.dtype.kind
    if a.size == 0:
        a = a.astype(np.int32)  # [] is float64 to NumPy
    elif kind not in "iuf":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if kind in "iu" and (a.dtype.itemsize < 4 or (a.dtype.itemsize == 4 and kind == "i")):
        return np.ascontiguousarray(a, dtype=np.int32)  # every value fits
    if _SAME_VALUE:
        try:
            return a.astype(np.int32, order="C", casting="same_value")
        except ValueError:
            pass  # the slow path below names the first bad entry
    _check_labels(a, name)
    return np.ascontiguousarray(a, dtype=np.int32)


def _check_labels(a: np.ndarray, name: str) -> None:
    """A ValueError naming the first entry of `a` that is not a whole number in int32."""
    if a.dtype.kind == "f":
        d = a.astype(np.float64)  # float16 cannot hold the bounds
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(d) | (d != np.floor(d)) | (d < -(2**31)) | (d >= 2**31)
    else:
        bad = (a < -(2**31)) | (a > 2**31 - 1)
    if not bad.any():
        return
    index = np.unravel_index(int(np.argmax(bad)), a.shape)
    where = f"{name}[{', '.join(str(int(i)) for i in index)}]"
    value = a[index]
    if a.dtype.kind == "f":
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"{name} must hold whole numbers, got {where} = {value}")
        if value != np.floor(value):
            raise ValueError(f"{name} must hold whole numbers (integers, or floats without a "
                             f"fraction), got {where} = {value!r}")
    raise ValueError(f"{name} must hold values that fit in int32, got {where} = {value}")


def output_buffer(buffer, what: str, shape: tuple, dtype, inputs) -> np.ndarray:
    """A caller's output array checked: an ndarray of exactly `shape` and `dtype`, C-contiguous,
    writeable, overlapping none of `inputs` (the library reads them while it writes the output);
    else a ValueError naming `what` and what was received."""
    if type(buffer) is not _ndarray and not isinstance(buffer, _ndarray):
        raise ValueError(f"{what} must be a NumPy array (of shape {shape}, dtype {np.dtype(dtype)}), "
                         f"got {type(buffer).__name__}")
    if buffer.shape != shape:
        raise ValueError(f"{what} must have shape {shape}, got {buffer.shape}")
    if buffer.dtype != dtype:
        raise ValueError(f"{what} must have dtype {np.dtype(dtype)} (the dtype the call computes in), "
                         f"got {buffer.dtype}")
    flags = buffer.flags
    if not flags.c_contiguous:
        raise ValueError(f"{what} must be C-contiguous (got a strided view; pass a new array)")
    if not flags.writeable:
        raise ValueError(f"{what} must be writeable")
    for name, array in inputs:
        if array is not None and np.shares_memory(buffer, array):
            raise ValueError(f"{what} must not overlap {name}")
    return buffer


def gradient_buffer(grad_out, with_grad: bool, shape: tuple, dtype, scores):
    """The gradient output: a new array, grad_out (checked), or None."""
    if grad_out is None:
        return np.empty(shape, dtype=dtype) if with_grad else None
    if not with_grad:
        raise ValueError("grad_out is given, but with_grad=False")
    return output_buffer(grad_out, "grad_out", shape, dtype, (("scores", scores),))


def gradient_buffers(grad_out, with_grad: bool, names: tuple, shapes: tuple, dtype, inputs):
    """The gradient outputs of a function with several (chain, lsoftmax): new arrays, or those of
    grad_out, a sequence with one entry per gradient in the result's order (as a ufunc's out=
    tuple), each an array to write into or None (a new one); or Nones when with_grad=False."""
    if grad_out is None:
        return [np.empty(shape, dtype=dtype) for shape in shapes] if with_grad else [None] * len(shapes)
    if not with_grad:
        raise ValueError("grad_out is given, but with_grad=False")
    if isinstance(grad_out, _ndarray) or not isinstance(grad_out, (tuple, list)) \
            or len(grad_out) != len(names):
        raise ValueError(f"grad_out must be a tuple of {len(names)} arrays or None, "
                         f"({', '.join(names)}), got {type(grad_out).__name__}"
                         + (f" of {len(grad_out)}" if isinstance(grad_out, (tuple, list)) else ""))
    buffers = []
    for i, (buffer, name, shape) in enumerate(zip(grad_out, names, shapes)):
        if buffer is None:
            buffers.append(np.empty(shape, dtype=dtype))
            continue
        given = [(f"grad_out[{j}] ({names[j]})", b) for j, b in enumerate(grad_out[:i])
                 if b is not None]
        buffers.append(output_buffer(buffer, f"grad_out[{i}] ({name})", shape, dtype,
                                     tuple(inputs) + tuple(given)))
    return buffers


def address(a, _from_buffer=ctypes.c_char.from_buffer, _addressof=ctypes.addressof) -> int | None:
    """The data pointer of an array, or None (NULL). Through the buffer protocol (about 0.3 us)
    where the array is writeable and not empty; a read-only or empty one, which the protocol
    refuses, through __array_interface__ (about 1 us)."""
    if a is None:
        return None
    try:
        return _addressof(_from_buffer(a))
    except (TypeError, ValueError, BufferError):
        return a.__array_interface__["data"][0]
