"""Shared helpers of the public functions (private): names of the enums, option building,
array checks. Every check happens before the library is called and raises a ValueError that
names the argument and what was received."""

from __future__ import annotations

import operator

import numpy as np

from ._native import Options, init_options, lib

LOSSES = {
    "log": 1, "perceptron": 2, "hinge": 3, "softmax_margin": 4, "risk": 5, "ramp": 6,
    "soft_ramp": 7, "infinite_ramp": 8, "squared": 9, "squentropy": 10, "hope_fear": 11,
    "cosface": 12, "arcface": 13,
}
ANGULAR = ("cosface", "arcface")
REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}
COST_LAYOUTS = {"zero_one": 0, "per_example": 1, "class_matrix": 2}
HOPE_TERMS = {"gold": 0, "oracle": 1, "max": 2, "lse": 3}
FEAR_TERMS = {"max": 2, "lse": 3}


def _pick(table: dict, value, what: str) -> int:
    if value not in table:
        raise ValueError(f"{what}={value!r} is not one of {sorted(table)}")
    return table[value]


def make_options(*, loss, reduction, cost_scale, threads, ignore_label=-100, cost_layout=None,
                 label_smoothing=0.0, square_k=1.0, square_m=1.0, hope=None, fear=None,
                 hope_scale=None, fear_scale=None, angular_scale=None,
                 angular_margin=None) -> Options:
    """An lk_options from keyword options: the library's defaults for loss, then the given fields."""
    code = _pick(LOSSES, loss, "loss")
    opt = init_options(code)
    opt.reduction = _pick(REDUCTIONS, reduction, "reduction")
    opt.cost_scale = float(cost_scale)
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
    opt.label_smoothing = float(label_smoothing)
    opt.square_k = float(square_k)
    opt.square_m = float(square_m)
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
            opt.hope_scale = float(hope_scale)
        if fear_scale is not None:
            opt.fear_scale = float(fear_scale)
    angular = {"angular_scale": angular_scale, "angular_margin": angular_margin}
    if loss not in ANGULAR:
        given = [name for name, value in angular.items() if value is not None]
        if given:
            raise ValueError(f"{', '.join(given)} apply only to loss='cosface' or 'arcface' "
                             f"(got loss={loss!r})")
    else:
        if angular_scale is not None:
            opt.angular_scale = float(angular_scale)
        if angular_margin is not None:
            opt.angular_margin = float(angular_margin)
    return opt


def _int32(value, what: str) -> int:
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(f"{what} must be an integer, got {value!r}") from None
    if not -(2**31) <= value < 2**31:
        raise ValueError(f"{what}={value} does not fit in int32")
    return value


def float_dtype(scores) -> np.dtype:
    """float64 input takes the _f64 path (as do Python lists of floats, which NumPy makes
    float64); everything else (float32, float16, integers) is computed in float32."""
    dtype = np.asarray(scores).dtype
    double = dtype.kind == "f" and dtype.itemsize == 8  # any byte order
    return np.dtype(np.float64) if double else np.dtype(np.float32)


def as_float(array, dtype, name: str, shape: tuple) -> np.ndarray:
    """`array` as a C-contiguous array of `dtype` and exactly `shape`, or a ValueError."""
    a = np.asarray(array)
    if a.dtype.kind not in "fiub":
        raise ValueError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def as_labels(array, name: str, shape: tuple) -> np.ndarray:
    """Integer labels as a C-contiguous int32 array of `shape`, or a ValueError."""
    a = np.asarray(array)
    if a.size == 0:
        a = a.astype(np.int32)  # [] is float64 to NumPy
    elif a.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    if a.size and (a.min() < -(2**31) or a.max() >= 2**31):
        raise ValueError(f"{name} holds values that do not fit in int32")
    return np.ascontiguousarray(a, dtype=np.int32)


def gradient_buffer(grad_out, with_grad: bool, shape: tuple, dtype, scores):
    """The gradient output: a new array, grad_out (checked), or None."""
    if grad_out is None:
        return np.empty(shape, dtype=dtype) if with_grad else None
    if not with_grad:
        raise ValueError("grad_out is given, but with_grad=False")
    if (not isinstance(grad_out, np.ndarray) or grad_out.shape != shape
            or grad_out.dtype != dtype or not grad_out.flags.c_contiguous
            or not grad_out.flags.writeable):
        raise ValueError(f"grad_out must be a writeable C-contiguous {np.dtype(dtype)} array of "
                         f"shape {shape}, got {getattr(grad_out, 'dtype', type(grad_out))} "
                         f"{getattr(grad_out, 'shape', '')}")
    if np.shares_memory(grad_out, scores):
        raise ValueError("grad_out must not overlap scores")
    return grad_out


def address(a) -> int | None:
    """The data pointer of an array, or None (NULL)."""
    return None if a is None else a.ctypes.data
