"""Loading liblosskit and its prototype table (private).

One row per function of include/losskit.h, registered in a loop; every function that returns an
lk_status gets an errcheck that turns a failure into LossKitError carrying lk_last_error().
The library is found through $LOSSKIT_LIBRARY, then next to this package, then in the
repository's release build folder (`make lib`).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

__all__ = ["LossKitError", "lib", "library_path", "Options", "init_options"]

LK_OK = 0
# The header this package was written against (LK_VERSION_MAJOR, LK_VERSION_MINOR).
_HEADER_VERSION = (0, 2)


class LossKitError(RuntimeError):
    """A LossKit call failed; ``status`` is the lk_status, ``name`` its LK_ERR_* name and the
    message is the library's lk_last_error() text."""

    def __init__(self, status: int, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.status = status
        self.name = name
        self.message = message


class Options(ctypes.Structure):
    """struct lk_options (include/losskit.h), field for field."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("loss", ctypes.c_int32),
        ("reduction", ctypes.c_int32),
        ("ignore_label", ctypes.c_int32),
        ("cost_layout", ctypes.c_int32),
        ("threads", ctypes.c_int32),
        ("cost_scale", ctypes.c_double),
        ("label_smoothing", ctypes.c_double),
        ("square_k", ctypes.c_double),
        ("square_m", ctypes.c_double),
        ("hope", ctypes.c_int32),
        ("fear", ctypes.c_int32),
        ("hope_scale", ctypes.c_double),
        ("fear_scale", ctypes.c_double),
        ("margin", ctypes.c_int32),
        ("lambda_", ctypes.c_double),
        ("angular_scale", ctypes.c_double),
        ("angular_margin", ctypes.c_double),
    ]


def _candidates():
    env = os.environ.get("LOSSKIT_LIBRARY")
    if env:
        yield Path(env)
        return
    here = Path(__file__).resolve().parent
    yield here / "liblosskit.so"
    # The LossKit repository this package sits in (bindings/python/losskit): its release build.
    repo = here.parents[2] if len(here.parents) > 2 else None
    if repo and (repo / "Package.swift").is_file() and (repo / "include" / "losskit.h").is_file():
        yield repo / ".build" / "release" / "liblosskit.so"


def library_path() -> Path:
    tried = []
    for path in _candidates():
        tried.append(str(path))
        if path.is_file():
            return path
    raise ImportError(
        "liblosskit.so not found; build it with `make lib` at the repository root or set "
        "LOSSKIT_LIBRARY. Tried: " + ", ".join(tried))


lib = ctypes.CDLL(str(library_path()))

_c_char_p = ctypes.c_char_p
_i32, _i64 = ctypes.c_int32, ctypes.c_int64
_p = ctypes.c_void_p  # buffers are passed as addresses; shapes are checked in Python first
_opt = ctypes.POINTER(Options)

# name, argtypes, restype — one row per function of include/losskit.h.
_PROTOTYPES = [
    ("lk_version", [], _c_char_p),
    ("lk_version_number", [], _i32),
    ("lk_cpu_level", [], _c_char_p),
    ("lk_status_name", [_i32], _c_char_p),
    ("lk_last_error", [], _c_char_p),
    ("lk_options_init", [_opt, _i32], _i32),
    ("lk_options_init_size", [_opt, _i32, ctypes.c_size_t], _i32),
    ("lk_dense_f32", [_opt, _i64, _i64, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_dense_f64", [_opt, _i64, _i64, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_lists_f32", [_opt, _i64, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_lists_f64", [_opt, _i64, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_chain_f32", [_opt, _i64, _i64, _i64] + [_p] * 13, _i32),
    ("lk_chain_f64", [_opt, _i64, _i64, _i64] + [_p] * 13, _i32),
    ("lk_chain_viterbi_f32", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_chain_viterbi_f64", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_chain_marginals_f32", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_chain_marginals_f64", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_lsoftmax_f32", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_lsoftmax_f64", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
]


def _errcheck(status, func, args):
    if status != LK_OK:
        message = lib.lk_last_error().decode("utf-8", "replace")
        name = lib.lk_status_name(status).decode("ascii")
        raise LossKitError(status, name, message)
    return status


for _name, _argtypes, _restype in _PROTOTYPES:
    _f = getattr(lib, _name)
    _f.argtypes = _argtypes
    _f.restype = _restype
    if _restype is _i32 and _name not in ("lk_version_number",):
        _f.errcheck = _errcheck


def init_options(loss: int) -> Options:
    """lk_options_init for this binding's Options: the sized init with ctypes.sizeof(Options), so
    a library with a larger lk_options never writes past the struct Python allocated."""
    opt = Options()
    lib.lk_options_init_size(ctypes.byref(opt), loss, ctypes.sizeof(Options))
    return opt


_loaded = lib.lk_version_number()
if (_loaded // 10000, _loaded // 100 % 100) != _HEADER_VERSION:
    raise ImportError(
        f"{library_path()} is LossKit {lib.lk_version().decode()}, but this package needs "
        f"{_HEADER_VERSION[0]}.{_HEADER_VERSION[1]}.x; rebuild it with `make lib`")
