"""Loading the CPU-level builds: a bad file costs the speed-up, never the process.

liblosskit.so loads the widest build of itself that the CPU runs (liblosskit-avx512.so, then
liblosskit-avx2.so) from the folder of its real file. Each scenario below builds a folder with
liblosskit.so and a missing, truncated, foreign, wrong-level, other-version or self-copied variant
(or reaches the library through a symlink from another folder or under its installed, versioned
name, or sets LOSSKIT_ISA to garbage), then loads
it in a child process with a timeout, so that a crash (SIGBUS, SIGILL, a stack overflow) or a
hang fails the test instead of killing pytest. The child reports lk_cpu_level() and a dense log
loss whose value is known in closed form: scores [0, log 3], gold 1 -> log(1 + 3) - log 3 =
log(4/3), gradient softmax - onehot = [1/4, -1/4].

The expected level comes from the CPU's flags (/proc/cpuinfo), not from the library. The test
needs the release builds of all three levels (`make lib`) beside the library the package loads
(or $LOSSKIT_LIBRARY); it skips, saying which file is absent, when one is missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from losskit import _native

LEVELS = ("x86-64", "avx2", "avx512")
VARIANTS = {"avx2": "liblosskit-avx2.so", "avx512": "liblosskit-avx512.so"}
TIMEOUT = 60  # seconds; loading takes well under one

# The child: loads the library by path, asks its level, then computes one dense log loss. Only
# functions of the first published ABI are used, so the same child runs against older builds.
CHILD = r"""
import ctypes, json, math, sys
lib = ctypes.CDLL(sys.argv[1])
lib.lk_cpu_level.restype = ctypes.c_char_p
lib.lk_last_error.restype = ctypes.c_char_p
level = lib.lk_cpu_level().decode()
opt = (ctypes.c_uint8 * 256)()
assert lib.lk_options_init(opt, 1) == 0, lib.lk_last_error()
scores = (ctypes.c_double * 2)(0.0, math.log(3.0))
gold = (ctypes.c_int32 * 1)(1)
loss = ctypes.c_double(-7.0)
grad = (ctypes.c_double * 2)(-7.0, -7.0)
status = lib.lk_dense_f64(opt, ctypes.c_int64(1), ctypes.c_int64(2), scores, gold, None, None,
                          ctypes.byref(loss), grad)
print(json.dumps({"level": level, "status": status, "loss": loss.value, "grad": list(grad),
                  "after": lib.lk_cpu_level().decode()}))
"""


def _cpu_level() -> str:
    """The widest level this CPU runs, from its flags (the library's own test of CPUID is what is
    under test, so it is not asked)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "x86-64"
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    avx2 = {"avx2", "fma", "bmi1", "bmi2", "movbe", "popcnt", "f16c", "abm"}
    avx512 = {"avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"}
    if not avx2 <= flags:
        return "x86-64"
    return "avx512" if avx512 <= flags else "avx2"


CPU = _cpu_level()


def _capped(cap: str) -> str:
    return LEVELS[min(LEVELS.index(cap), LEVELS.index(CPU))]


@pytest.fixture(scope="module")
def builds() -> dict[str, Path]:
    """The three release builds, by level."""
    folder = _native.library_path().resolve().parent
    found = {"x86-64": folder / "liblosskit.so"}
    found.update({level: folder / name for level, name in VARIANTS.items()})
    for level, path in found.items():
        if not path.is_file():
            pytest.skip(f"the {level} build {path} is absent: run `make lib` (the loading tests need all "
                        f"three release builds side by side)")
    return found


def _load(library: Path, isa: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("LOSSKIT_ISA", "LOSSKIT_LIBRARY")}
    if isa is not None:
        env["LOSSKIT_ISA"] = isa
    try:
        run = subprocess.run([sys.executable, "-c", CHILD, str(library)], env=env, capture_output=True,
                             text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"loading {library} (LOSSKIT_ISA={isa!r}) hung for {TIMEOUT} s")
    assert run.returncode == 0, (f"loading {library} (LOSSKIT_ISA={isa!r}) died with status "
                                 f"{run.returncode}: {run.stderr[-2000:]}")
    return json.loads(run.stdout)


def _assert_runs(result: dict, level: str) -> None:
    assert result["level"] == level, f"lk_cpu_level() = {result['level']!r}, expected {level!r}"
    assert result["after"] == level
    assert result["status"] == 0
    # log(4/3) to a few ulps at every level (the levels differ by FMA only).
    assert math.isclose(result["loss"], math.log(4 / 3), rel_tol=8 * 2**-52), result["loss"]
    assert all(math.isclose(g, e, rel_tol=8 * 2**-52) for g, e in zip(result["grad"], (0.25, -0.25))), result


def _folder(tmp_path: Path, builds: dict[str, Path], name: str = "lib", suffix: str = "", **variants) -> Path:
    """A folder with liblosskit.so and, per level, the file given (a Path to copy, bytes to
    write, or None for none). With a suffix (".0.3.0"), every name carries it, as installed."""
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(builds["x86-64"], folder / ("liblosskit.so" + suffix))
    for level, content in variants.items():
        target = folder / (VARIANTS[level] + suffix)
        if isinstance(content, Path):
            shutil.copy(content, target)
        elif isinstance(content, bytes):
            target.write_bytes(content)
    return folder / ("liblosskit.so" + suffix)


def _marker(data: bytes) -> tuple[int, int]:
    """Offset and size of the .losskit_level section ("LEVEL\\0VERSION\\0") of an ELF64 file."""
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    def section(i):  # name, offset, size
        name, _, _, _, offset, size = struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)
        return name, offset, size
    _, names, _ = section(shstrndx)
    for i in range(shnum):
        name, offset, size = section(i)
        if data[names + name:names + name + len(b".losskit_level\0")] == b".losskit_level\0":
            return offset, size
    raise AssertionError("no .losskit_level section")


def _with_marker(data: bytes, marker: bytes) -> bytes:
    """The build with its marker replaced by one of the same size."""
    offset, size = _marker(data)
    assert len(marker) == size, (marker, size)
    return data[:offset] + marker + data[offset + size:]


def _version() -> str:
    """This library's version, from the header's macros."""
    header = (Path(__file__).resolve().parents[3] / "include" / "losskit.h").read_text()
    part = {}
    for line in header.splitlines():
        words = line.split()
        if len(words) == 3 and words[0] == "#define" and words[1].startswith("LK_VERSION_"):
            part[words[1]] = words[2]
    return ".".join(part[f"LK_VERSION_{p}"] for p in ("MAJOR", "MINOR", "PATCH"))


def test_complete_folder_runs_the_widest_level(tmp_path, builds):
    _assert_runs(_load(_folder(tmp_path, builds, avx2=builds["avx2"], avx512=builds["avx512"])), CPU)


@pytest.mark.parametrize("present", [(), ("avx2",), ("avx512",)], ids=["none", "avx2-only", "avx512-only"])
def test_missing_variant_falls_back(tmp_path, builds, present):
    library = _folder(tmp_path, builds, **{level: builds[level] for level in present})
    usable = [level for level in present if LEVELS.index(level) <= LEVELS.index(CPU)]
    _assert_runs(_load(library), max(usable, key=LEVELS.index, default="x86-64"))


@pytest.mark.parametrize("keep", ["64 bytes", "half", "all but 4096 bytes", "all but 1 byte"])
@pytest.mark.parametrize("level", ["avx2", "avx512"])
def test_truncated_variant_is_passed_over(tmp_path, builds, level, keep):
    """A truncated build (an interrupted copy): dlopen maps segments past the end of the file
    and faults with SIGBUS unless the file is checked first."""
    data = builds[level].read_bytes()
    size = {"64 bytes": 64, "half": len(data) // 2, "all but 4096 bytes": len(data) - 4096,
            "all but 1 byte": len(data) - 1}[keep]
    library = _folder(tmp_path, builds, **{level: data[:size]})
    # Capped at the truncated file's level, so that it is the one tried.
    _assert_runs(_load(library, isa=level), "x86-64")


@pytest.mark.parametrize("level", ["avx2", "avx512"])
def test_foreign_library_is_passed_over(tmp_path, builds, level):
    foreign = next((p for p in (Path("/lib/x86_64-linux-gnu/libm.so.6"), Path("/usr/lib64/libm.so.6"))
                    if p.is_file()), None)
    if foreign is None:
        pytest.skip("no libm.so.6 to use as a foreign shared object")
    _assert_runs(_load(_folder(tmp_path, builds, **{level: foreign.resolve()}), isa=level), "x86-64")


@pytest.mark.parametrize("level", ["avx2", "avx512"])
def test_empty_and_garbage_files_are_passed_over(tmp_path, builds, level):
    for name, content in [("empty", b""), ("text", b"not a library\n" * 100)]:
        library = _folder(tmp_path, builds, name=name, **{level: content})
        _assert_runs(_load(library, isa=level), "x86-64")


def test_wider_build_under_a_narrower_name_is_not_entered(tmp_path, builds):
    """The AVX-512 build named liblosskit-avx2.so, on a CPU capped at AVX2 (LOSSKIT_ISA=avx2
    stands in for an AVX2-only CPU, which would die of SIGILL in it): the baseline runs."""
    _assert_runs(_load(_folder(tmp_path, builds, avx2=builds["avx512"]), isa="avx2"), "x86-64")


def test_narrower_build_under_a_wider_name_is_passed_over(tmp_path, builds):
    """The AVX2 build named liblosskit-avx512.so is not what its name says: it is skipped, and
    the real AVX2 build beside it is used where the CPU runs it."""
    library = _folder(tmp_path, builds, avx512=builds["avx2"], avx2=builds["avx2"])
    _assert_runs(_load(library), _capped("avx2"))
    library = _folder(tmp_path, builds, name="alone", avx512=builds["avx2"])
    _assert_runs(_load(library), "x86-64")


@pytest.mark.parametrize("names", [("avx512",), ("avx2",), ("avx2", "avx512")], ids=lambda n: "+".join(n))
def test_copy_of_the_baseline_under_a_variant_name(tmp_path, builds, names):
    """A copy of liblosskit.so named as a variant would forward every call to itself (or wait on
    its own initialisation) forever: it is passed over and the baseline runs."""
    library = _folder(tmp_path, builds, **{level: builds["x86-64"] for level in names})
    _assert_runs(_load(library), "x86-64")


def test_copy_of_the_baseline_beside_a_real_build(tmp_path, builds):
    library = _folder(tmp_path, builds, avx512=builds["x86-64"], avx2=builds["avx2"])
    _assert_runs(_load(library), _capped("avx2"))


def test_symlinked_library_finds_the_builds_beside_its_real_file(tmp_path, builds):
    real = _folder(tmp_path, builds, avx2=builds["avx2"], avx512=builds["avx512"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "liblosskit.so").symlink_to(real)
    _assert_runs(_load(elsewhere / "liblosskit.so"), CPU)
    # A chain of symlinks, the last one relative.
    chained = tmp_path / "chained"
    chained.mkdir()
    (chained / "liblosskit.so").symlink_to(Path("..") / "elsewhere" / "liblosskit.so")
    _assert_runs(_load(chained / "liblosskit.so"), CPU)


@pytest.mark.parametrize("isa", ["avx1024", "", "AVX2", "x86_64", "avx2 ", "avx512\n", "\u00e9"])
def test_unknown_losskit_isa_is_ignored(tmp_path, builds, isa):
    library = _folder(tmp_path, builds, avx2=builds["avx2"], avx512=builds["avx512"])
    _assert_runs(_load(library, isa=isa), CPU)


@pytest.mark.parametrize("isa", ["x86-64", "baseline", "avx2", "avx512"])
def test_losskit_isa_caps_the_level(tmp_path, builds, isa):
    """A cap never raises the level: a level the CPU lacks runs the widest one it has."""
    library = _folder(tmp_path, builds, avx2=builds["avx2"], avx512=builds["avx512"])
    _assert_runs(_load(library, isa=isa), _capped("x86-64" if isa == "baseline" else isa))


@pytest.mark.parametrize("level", ["avx2", "avx512"])
def test_build_of_another_version_is_passed_over(tmp_path, builds, level):
    """A CPU-level build left by an older (or newer) install beside this library: its entry
    points may differ, so it is never loaded, and the next level down (or the baseline) runs.
    The stale build is this build with the version in its marker changed (same length), and the
    control, its marker rewritten unchanged, loads: the file is refused for its version alone."""
    data = builds[level].read_bytes()
    offset, size = _marker(data)
    marker = data[offset:offset + size]
    version = _version().encode()
    assert marker == level.encode() + b"\0" + version + b"\0", marker
    other = version[:-1] + str((int(version[-1:]) + 1) % 10).encode()
    stale = {
        "other version": _with_marker(data, level.encode() + b"\0" + other + b"\0"),
        # The marker of 0.1.0 builds named the level alone; here padded to the same size.
        "no version": _with_marker(data, level.encode() + b"\0" * (size - len(level))),
        "same version": _with_marker(data, marker),
    }
    # The folder holds the baseline and this level's file only: the control runs at this level
    # where the CPU has it, and at the baseline where it does not (an AVX2-only machine with the
    # AVX-512 file: there is no AVX2 file to fall to).
    runnable = level if LEVELS.index(level) <= LEVELS.index(CPU) else "x86-64"
    for case, content in stale.items():
        library = _folder(tmp_path, builds, name=case.replace(" ", "-"), **{level: content})
        _assert_runs(_load(library, isa=level), runnable if case == "same version" else "x86-64")
    if level == "avx512":
        library = _folder(tmp_path, builds, name="beside-avx2", avx512=stale["other version"], avx2=builds["avx2"])
        _assert_runs(_load(library), _capped("avx2"))


def test_installed_names_find_the_builds_named_after_them(tmp_path, builds):
    """As installed (make install): liblosskit.so.VERSION with liblosskit-avx2.so.VERSION and
    liblosskit-avx512.so.VERSION beside it, reached through the links liblosskit.so.MAJOR and
    liblosskit.so; builds under the plain names beside a versioned library are not its own."""
    version = _version()
    real = _folder(tmp_path, builds, suffix="." + version, avx2=builds["avx2"], avx512=builds["avx512"])
    major = real.parent / ("liblosskit.so." + version.split(".")[0])
    major.symlink_to(real.name)
    (real.parent / "liblosskit.so").symlink_to(major.name)
    for path in (real, major, real.parent / "liblosskit.so"):
        _assert_runs(_load(path), CPU)
    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(builds["x86-64"], plain / ("liblosskit.so." + version))
    for level, name in VARIANTS.items():
        shutil.copy(builds[level], plain / name)
    _assert_runs(_load(plain / ("liblosskit.so." + version)), "x86-64")
