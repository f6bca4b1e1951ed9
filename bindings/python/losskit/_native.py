"""Loading liblosskit and its prototype table (private).

One row per function of include/losskit.h, registered in a loop; every function that returns an
lk_status gets an errcheck that turns a failure into LossKitError carrying lk_last_error() in the
Python API's words (python_words: keyword arguments, not the C struct's fields).

Where the library is found, the first of:
  1. $LOSSKIT_LIBRARY, when set: the library file, or a folder holding liblosskit.so (or
     liblosskit.so.0). Set, it is the only place looked at: if it holds no library, the import
     fails naming it, rather than quietly loading another build.
  2. The library bundled in this package's folder (the wheel `make wheel` builds carries
     liblosskit.so and its CPU-level builds there).
  3. The system loader: dlopen of liblosskit.so.0 (the soname `make install` installs), then of
     liblosskit.so (LD_LIBRARY_PATH, the ld.so cache, the system's library folders), then
     ctypes.util.find_library("losskit").
  4. The release build folder (.build/release, `make lib`) of the LossKit repository this package
     sits in (bindings/python/losskit), for a source checkout or its editable install.
$LOSSKIT_LIBRARY comes before the bundled library on purpose: setting it is how a particular
build is put under test (the Makefile points the test suite at the build it just made and the
sanitizer runs at their ASan and TSan builds; a developer points it at the build being
debugged), and an installed wheel must not silently shadow that build. An explicit variable wins,
as llama-cpp-python's LLAMA_CPP_LIB_PATH does; unset, an installed wheel always uses the library
it carries, whatever else is on the machine.

At import, the loaded library's version (lk_version_number) must have this package's MAJOR.MINOR.
The package's version is written into every built package as losskit/_version.py (setup.py, from
the LK_VERSION_* macros of include/losskit.h); a source checkout reads those macros itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
from pathlib import Path
from typing import Callable, Mapping, Optional

from . import _header

__all__ = ["LossKitError", "lib", "library_path", "Options", "init_options", "VERSION", "error",
           "python_words", "LOSSES", "REDUCTIONS", "COST_LAYOUTS", "HOPE_TERMS", "FEAR_TERMS",
           "ANGULAR_LOSSES"]

LK_OK = 0
# What the system loader is asked for: the versioned soname `make install` installs, then the
# development link (an unversioned build on LD_LIBRARY_PATH).
SYSTEM_NAMES = ("liblosskit.so.0", "liblosskit.so")
# What a folder given as $LOSSKIT_LIBRARY may hold, in this order.
FOLDER_NAMES = ("liblosskit.so", "liblosskit.so.0")
FIXES = ("Fix it in one of three ways:\n"
         "  - pip install the wheel, which carries the library: `make wheel` in the LossKit repository,\n"
         "    then `pip install dist/losskit-*.whl`;\n"
         "  - set LOSSKIT_LIBRARY to liblosskit.so or to the folder holding it;\n"
         "  - build it: `make lib` in the LossKit repository (found there by a source checkout or\n"
         "    `pip install -e bindings/python`), or `make install` (found by the system loader).")

_HERE = Path(__file__).resolve().parent


def repository(package_dir: Path) -> Optional[Path]:
    """The LossKit repository whose bindings/python/losskit is package_dir, if it is one."""
    if len(package_dir.parents) < 3:
        return None
    repo = package_dir.parents[2]
    if (repo / "Package.swift").is_file() and (repo / "include" / "losskit.h").is_file():
        return repo
    return None


def header_version(header: Path) -> str:
    """MAJOR.MINOR.PATCH from the LK_VERSION_* macros of a losskit.h (losskit/_header.py)."""
    try:
        return _header.header_version(header)
    except ValueError as error:
        raise ImportError(str(error)) from None


def package_version(package_dir: Path = _HERE) -> str:
    """This package's version: losskit/_version.py of a built package, or else the header of the
    repository it sits in."""
    built = package_dir / "_version.py"
    if built.is_file():
        found = re.search(r'^version = "([^"]+)"$', built.read_text(), re.M)
        if found:
            return found.group(1)
    repo = repository(package_dir)
    if repo is None:
        raise ImportError(f"{package_dir} has no _version.py (written when the package is built) "
                          "and is not inside a LossKit repository; install the package with pip")
    return header_version(repo / "include" / "losskit.h")


def _loaded_from(handle: ctypes.CDLL, default: str) -> Path:
    """The file a library loaded by name came from (dladdr of one of its functions)."""

    class DlInfo(ctypes.Structure):
        _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                    ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]

    try:
        dladdr = ctypes.CDLL(None).dladdr  # in libc since glibc 2.34, else reached through libdl
    except AttributeError:
        try:
            dladdr = ctypes.CDLL("libdl.so.2").dladdr
        except (OSError, AttributeError):
            return Path(default)
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(DlInfo)]
    info = DlInfo()
    if dladdr(ctypes.cast(handle.lk_version, ctypes.c_void_p), ctypes.byref(info)) and info.dli_fname:
        return Path(os.fsdecode(info.dli_fname))
    return Path(default)


def locate(environ: Mapping[str, str], package_dir: Path = _HERE,
           load: Callable[[str], ctypes.CDLL] = ctypes.CDLL,
           find: Callable[[str], Optional[str]] = ctypes.util.find_library,
           where: Callable[[ctypes.CDLL, str], Path] = _loaded_from):
    """Loads the library from the first place that has it (the module docstring gives the order)
    and returns (handle, path). Raises ImportError naming what was tried and how to fix it."""

    def open_file(path: Path, how: str):
        try:
            return load(str(path)), path
        except OSError as error:  # there, but not loadable: say so rather than load another
            raise ImportError(f"{how}: {path} exists but could not be loaded: {error}") from error

    setting = environ.get("LOSSKIT_LIBRARY")
    if setting:
        given = Path(setting)
        for path in ([given / name for name in FOLDER_NAMES] if given.is_dir() else [given]):
            if path.is_file():
                return open_file(path, "LOSSKIT_LIBRARY")
        raise ImportError(f"LOSSKIT_LIBRARY={setting} is neither liblosskit.so nor a folder holding "
                          "it; point it at the library or its folder, or unset it")

    tried = ["LOSSKIT_LIBRARY: not set"]
    bundled = package_dir / "liblosskit.so"
    if bundled.is_file():
        return open_file(bundled, "the library bundled with the package")
    tried.append(f"bundled with the package: {bundled} (absent)")

    for name in SYSTEM_NAMES:
        try:
            handle = load(name)
        except OSError as error:
            tried.append(f"system loader: {name} ({error})")
            continue
        return handle, where(handle, name)
    found = find("losskit")
    if found and found not in SYSTEM_NAMES:
        try:
            handle = load(found)
        except OSError as error:
            tried.append(f"ctypes.util.find_library('losskit'): {found} ({error})")
        else:
            return handle, where(handle, found)
    else:
        tried.append(f"ctypes.util.find_library('losskit'): {found}")

    repo = repository(package_dir)
    if repo is None:
        tried.append("the repository's build folder: this package is not inside a LossKit repository")
    else:
        built = repo / ".build" / "release" / "liblosskit.so"
        if built.is_file():
            return open_file(built, "the repository's build")
        tried.append(f"the repository's build folder: {built} (absent)")
    raise ImportError("liblosskit.so not found. Tried, in order:\n  - " + "\n  - ".join(tried)
                      + "\n" + FIXES)


lib, _path = locate(os.environ)
VERSION = package_version()


def library_path() -> Path:
    """The file the library was loaded from."""
    return _path


class LossKitError(ValueError, RuntimeError):
    """LossKit rejected a call's arguments; ``status`` is the lk_status, ``name`` its LK_ERR_*
    name and ``message`` says what was wrong in the Python API's words (the argument, its value or
    the index of the bad entry: ``margin=0 is outside [1, 1000]``, ``gold[3] = 10 is outside
    [0, 10) ...``). The library's checks raise it, and so do the few the binding makes itself
    before the call with the same status.

    It is a ValueError, so ``except ValueError`` catches every rejected argument, whether the
    binding found it (a wrong shape, dtype or name: a plain ValueError) or the library did (a
    value out of its domain: LossKitError). Only LK_ERR_ALLOC (scratch memory not allocated) is
    not about a value; it is rare. It is also a RuntimeError, as it was before it became a
    ValueError, so that code written for that keeps working."""

    def __init__(self, status: int, name: str, message: str):
        super().__init__(f"{name}: {message}")
        self.status = status
        self.name = name
        self.message = message

    def __reduce__(self):  # pickles (multiprocessing) with its three arguments
        return type(self), (self.status, self.name, self.message)


# The enumerations of include/losskit.h by their Python names (the keyword values of the API).
LOSSES = {
    "log": 1, "perceptron": 2, "hinge": 3, "softmax_margin": 4, "risk": 5, "ramp": 6,
    "soft_ramp": 7, "infinite_ramp": 8, "squared": 9, "squentropy": 10, "hope_fear": 11,
    "cosface": 12, "arcface": 13,
}
REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}
COST_LAYOUTS = {"zero_one": 0, "per_example": 1, "class_matrix": 2}
HOPE_TERMS = {"gold": 0, "oracle": 1, "max": 2, "lse": 3}
FEAR_TERMS = {"max": 2, "lse": 3}
ANGULAR_LOSSES = ("cosface", "arcface")

# The library's messages name the fields of its C struct (opt->margin = 0), its macros
# (LK_COST_PER_EXAMPLE) and Swift's type names; the Python API names keyword arguments and
# their values. These turn the first into the second; everything else in a message (buffer
# names and indices such as gold[3], scores[1, 0]) is already the Python argument's name.
_FIELD_TO_KEYWORD = {"lambda": "lam"}
_CONSTANTS = {
    "LK_COST_ZERO_ONE": "'zero_one'", "LK_COST_PER_EXAMPLE": "'per_example'",
    "LK_COST_CLASS_MATRIX": "'class_matrix'", "LK_TERM_GOLD": "'gold'",
    "LK_TERM_ORACLE": "'oracle'", "LK_TERM_MAX": "'max'", "LK_TERM_LSE": "'lse'",
    "an LK_LOSS_* value": f"one of {sorted(LOSSES)}",
    "an LK_REDUCE_* value": f"one of {sorted(REDUCTIONS)}",
    "an LK_COST_* value": f"one of {sorted(COST_LAYOUTS)}",
    "an LK_TERM_* value": f"one of {sorted(HOPE_TERMS)}",
}
_LOSS_NAMES = {code: name for name, code in LOSSES.items()}
_LOSS_FIELD = re.compile(r"opt->loss = (-?\d+)(?: \((?:COSFACE|ARCFACE)\))?")
_FIELD = re.compile(r"opt->(\w+)( = )?")
_CONSTANT = re.compile("|".join(re.escape(name) for name in _CONSTANTS))
_TYPE = re.compile(r"\b(overflows?|overflowing) (float|Float|double|Double)\b")


def python_words(message: str) -> str:
    """A library message in the Python API's words: ``opt->margin = 0 is outside [1, 1000]``
    becomes ``margin=0 is outside [1, 1000]``, ``opt->loss = 9`` becomes ``loss='squared'``,
    LK_* constants their Python values, C's float and double NumPy's float32 and float64."""
    if "opt->" in message:
        message = _LOSS_FIELD.sub(
            lambda m: f"loss={_LOSS_NAMES[int(m[1])]!r}" if int(m[1]) in _LOSS_NAMES else m[0],
            message)
        message = _FIELD.sub(lambda m: _FIELD_TO_KEYWORD.get(m[1], m[1]) + ("=" if m[2] else ""),
                             message)
    if "LK_" in message:
        message = _CONSTANT.sub(lambda m: _CONSTANTS[m[0]], message)
    return _TYPE.sub(lambda m: f"{m[1]} {'float32' if m[2] in ('float', 'Float') else 'float64'}",
                     message)


def error(status: int, message: str) -> LossKitError:
    """The LossKitError of a status, for a check the binding makes itself before the call."""
    return LossKitError(status, lib.lk_status_name(status).decode("ascii"), message)


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
        ("z_loss", ctypes.c_double),   # since 0.3.0
        ("softcap", ctypes.c_double),  # since 0.3.0
    ]


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
    ("lk_dense_bf16", [_opt, _i64, _i64, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_lists_f32", [_opt, _i64, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_lists_f64", [_opt, _i64, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_dense_hessian_f32", [_opt, _i64, _i64, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_dense_hessian_f64", [_opt, _i64, _i64, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_lists_hessian_f32", [_opt, _i64, _p, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_lists_hessian_f64", [_opt, _i64, _p, _p, _p, _p, _p, _p, _p, _p], _i32),
    ("lk_chain_f32", [_opt, _i64, _i64, _i64] + [_p] * 13, _i32),
    ("lk_chain_f64", [_opt, _i64, _i64, _i64] + [_p] * 13, _i32),
    ("lk_chain_viterbi_f32", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_chain_viterbi_f64", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_chain_marginals_f32", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_chain_marginals_f64", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_lsoftmax_f32", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_lsoftmax_f64", [_opt, _i64, _i64, _i64] + [_p] * 7, _i32),
    ("lk_linear_f32", [_opt, _i64, _i64, _i64] + [_p] * 10, _i32),
    ("lk_linear_f64", [_opt, _i64, _i64, _i64] + [_p] * 10, _i32),
    ("lk_linear_bf16", [_opt, _i64, _i64, _i64] + [_p] * 12, _i32),
    ("lk_vocab_dense_f32", [_opt, _i32, _i64, _i64, _i64, _i64] + [_p] * 9, _i32),
    ("lk_vocab_dense_f64", [_opt, _i32, _i64, _i64, _i64, _i64] + [_p] * 9, _i32),
]


def _errcheck(status, func, args):
    if status:  # != LK_OK; the message is read only on failure (a success costs one test)
        raise error(status, python_words(lib.lk_last_error().decode("utf-8", "replace")))
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
_major, _minor = (int(part) for part in VERSION.split(".")[:2])
if (_loaded // 10000, _loaded // 100 % 100) != (_major, _minor):
    raise ImportError(
        f"{_path} is LossKit {lib.lk_version().decode()}, but this package ({VERSION}) needs "
        f"{_major}.{_minor}.x; rebuild it (`make lib`) or point LOSSKIT_LIBRARY at a matching build")
