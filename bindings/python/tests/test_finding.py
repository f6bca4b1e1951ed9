"""Finding the library: $LOSSKIT_LIBRARY, then the package's own copy, then the system loader,
then the repository's build folder (losskit/_native.py says why in this order).

The first half drives _native.locate with a fake environment, temporary folders and a fake
loader that records what it is asked to open, so each rule is checked on its own, including the
machine-dependent ones (what the system loader finds). The second half loads the real library
in child processes from a copy of the package outside the repository: bundled in the package
folder (as the wheel installs it), overridden by LOSSKIT_LIBRARY, found by the system loader
through LD_LIBRARY_PATH under its soname, and not found at all; and the version check against a
package that claims another version.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import losskit
from losskit import _native
from test_trust_loading import CPU, VARIANTS

SYSTEM = ("liblosskit.so.0", "liblosskit.so")


class Loader:
    """A fake ctypes.CDLL: opens only what `loadable` names (paths or bare names), records every
    request in order."""

    def __init__(self, *loadable):
        self.loadable = {str(x) for x in loadable}
        self.asked: list[str] = []

    def __call__(self, name: str):
        self.asked.append(name)
        if name in self.loadable:
            return ("handle", name)
        raise OSError(f"{name}: cannot open shared object file")


def where(handle, name):
    """The fake dladdr: where the loader found `name`."""
    return Path("/resolved", name.lstrip("/"))


def locate(env, package, loader, find=lambda name: None):
    return _native.locate(env, package, load=loader, find=find, where=where)


@pytest.fixture
def package(tmp_path) -> Path:
    """An empty package folder outside any repository."""
    folder = tmp_path / "site" / "losskit"
    folder.mkdir(parents=True)
    return folder


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x7fELF")
    return path


# --- the rules, one at a time -----------------------------------------------------------------

def test_losskit_library_file_is_loaded_and_nothing_else_is_asked(tmp_path, package):
    lib = touch(tmp_path / "mine" / "liblosskit.so")
    touch(package / "liblosskit.so")
    loader = Loader(lib, package / "liblosskit.so", *SYSTEM)
    assert locate({"LOSSKIT_LIBRARY": str(lib)}, package, loader) == (("handle", str(lib)), lib)
    assert loader.asked == [str(lib)]


@pytest.mark.parametrize("names", [("liblosskit.so",), ("liblosskit.so.0",),
                                   ("liblosskit.so", "liblosskit.so.0")])
def test_losskit_library_folder_gives_its_liblosskit_so_then_so_0(tmp_path, package, names):
    folder = tmp_path / "prefix" / "lib"
    for name in names:
        touch(folder / name)
    expected = folder / names[0]
    loader = Loader(*(folder / name for name in names))
    assert locate({"LOSSKIT_LIBRARY": str(folder)}, package, loader)[1] == expected
    assert loader.asked == [str(expected)]


def test_losskit_library_wins_over_the_bundled_library(tmp_path, package):
    touch(package / "liblosskit.so")
    lib = touch(tmp_path / "asan" / "liblosskit.so")
    loader = Loader(package / "liblosskit.so", lib)
    assert locate({"LOSSKIT_LIBRARY": str(lib)}, package, loader)[1] == lib


@pytest.mark.parametrize("kind", ["missing file", "empty folder"])
def test_losskit_library_that_holds_no_library_is_an_error_not_a_fallback(tmp_path, package, kind):
    touch(package / "liblosskit.so")  # a good library elsewhere must not be used instead
    target = tmp_path / "nowhere" / "liblosskit.so"
    if kind == "empty folder":
        target = tmp_path / "empty"
        target.mkdir()
    loader = Loader(package / "liblosskit.so", *SYSTEM)
    with pytest.raises(ImportError) as info:
        locate({"LOSSKIT_LIBRARY": str(target)}, package, loader)
    assert f"LOSSKIT_LIBRARY={target}" in str(info.value)
    assert loader.asked == []


def test_empty_losskit_library_counts_as_unset(package):
    touch(package / "liblosskit.so")
    loader = Loader(package / "liblosskit.so")
    assert locate({"LOSSKIT_LIBRARY": ""}, package, loader)[1] == package / "liblosskit.so"


def test_bundled_library_comes_before_the_system_loader(package):
    touch(package / "liblosskit.so")
    loader = Loader(package / "liblosskit.so", *SYSTEM)
    assert locate({}, package, loader)[1] == package / "liblosskit.so"
    assert loader.asked == [str(package / "liblosskit.so")]


def test_bundled_library_that_does_not_load_is_an_error_not_a_fallback(package):
    touch(package / "liblosskit.so")
    loader = Loader(*SYSTEM)  # the bundled file is there but cannot be opened
    with pytest.raises(ImportError) as info:
        locate({}, package, loader)
    assert str(package / "liblosskit.so") in str(info.value) and "could not be loaded" in str(info.value)
    assert loader.asked == [str(package / "liblosskit.so")]


@pytest.mark.parametrize("found", SYSTEM)
def test_system_loader_is_asked_for_the_soname_then_the_development_link(package, found):
    loader = Loader(found)
    handle, path = locate({}, package, loader)
    assert handle == ("handle", found) and path == Path("/resolved") / found
    assert loader.asked == list(SYSTEM[:SYSTEM.index(found) + 1])


def test_find_library_is_the_system_loaders_last_resort(package):
    loader = Loader("/opt/losskit/lib/liblosskit.so.0")
    asked = []
    find = lambda name: asked.append(name) or "/opt/losskit/lib/liblosskit.so.0"  # noqa: E731
    assert locate({}, package, loader, find)[1] == Path("/resolved/opt/losskit/lib/liblosskit.so.0")
    assert asked == ["losskit"]
    assert loader.asked == [*SYSTEM, "/opt/losskit/lib/liblosskit.so.0"]


def fake_repository(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    touch(repo / "Package.swift")
    (repo / "include").mkdir()
    (repo / "include" / "losskit.h").write_text(
        "#define LK_VERSION_MAJOR 3\n#define LK_VERSION_MINOR 14\n#define LK_VERSION_PATCH 15\n")
    package = repo / "bindings" / "python" / "losskit"
    package.mkdir(parents=True)
    return package


def test_repository_build_comes_after_the_system_loader(tmp_path):
    package = fake_repository(tmp_path)
    built = touch(package.parents[2] / ".build" / "release" / "liblosskit.so")
    loader = Loader(built)
    assert locate({}, package, loader)[1] == built
    assert loader.asked == [*SYSTEM, str(built)]
    # ... and the system library, when there is one, wins over it.
    assert locate({}, package, Loader(built, "liblosskit.so.0"))[1] == Path("/resolved/liblosskit.so.0")


def test_nothing_found_lists_every_place_tried_and_the_three_fixes(tmp_path):
    package = fake_repository(tmp_path)
    with pytest.raises(ImportError) as info:
        locate({}, package, Loader())
    message = str(info.value)
    places = ["LOSSKIT_LIBRARY: not set", str(package / "liblosskit.so"), "system loader: liblosskit.so.0",
              "system loader: liblosskit.so (", "find_library('losskit')",
              str(package.parents[2] / ".build" / "release" / "liblosskit.so")]
    positions = [message.find(place) for place in places]
    assert -1 not in positions and positions == sorted(positions), message
    for fix in ("pip install dist/losskit-*.whl", "make wheel", "set LOSSKIT_LIBRARY", "make lib",
                "make install"):
        assert fix in message, fix


def test_outside_a_repository_there_is_no_build_folder_to_try(package):
    with pytest.raises(ImportError) as info:
        locate({}, package, Loader())
    assert "not inside a LossKit repository" in str(info.value)


def test_package_version_from_version_file_then_the_repository_header(tmp_path, package):
    repo_package = fake_repository(tmp_path)
    assert _native.package_version(repo_package) == "3.14.15"
    (repo_package / "_version.py").write_text('version = "3.14.16"\n')
    assert _native.package_version(repo_package) == "3.14.16"
    with pytest.raises(ImportError, match="install the package"):
        _native.package_version(package)


def test_this_package_has_the_headers_version():
    header = Path(__file__).resolve().parents[3] / "include" / "losskit.h"
    assert losskit.__version__ == _native.header_version(header) == losskit.version()


# --- the real library, from a copy of the package outside the repository ----------------------

LIBRARY = _native.library_path().resolve()
CHILD = ("import losskit, numpy as np\n"
         "print(losskit.library_path()); print(losskit.cpu_level()); print(losskit.__version__)\n"
         "print(float(losskit.dense(np.array([[0.0, np.log(3.0)]]), [1]).loss))\n")


def copy_package(site: Path, libraries: bool, version: str = losskit.__version__) -> Path:
    """losskit's modules in site/losskit, as a built package has them (_version.py), with the
    three libraries beside them when `libraries`."""
    package = site / "losskit"
    package.mkdir(parents=True)
    for module in Path(losskit.__file__).parent.glob("*.py"):
        if module.name != "_version.py":
            shutil.copy(module, package)
    (package / "_version.py").write_text(f'version = "{version}"\n')
    if libraries:
        for name in ("liblosskit.so", *VARIANTS.values()):
            source = LIBRARY.parent / name
            if not source.is_file():
                pytest.skip(f"{source} is absent: run `make lib`")
            shutil.copy(source, package / name)
    return package


def run(site: Path, cwd: Path, **env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("LOSSKIT_LIBRARY", "LOSSKIT_ISA", "LD_LIBRARY_PATH", "PYTHONPATH")}
    clean.update(PYTHONPATH=str(site), **env)
    return subprocess.run([sys.executable, "-c", CHILD], cwd=cwd, env=clean, capture_output=True,
                          text=True, timeout=120)


def loaded(result) -> tuple[Path, str, str, float]:
    assert result.returncode == 0, result.stderr
    path, level, version, loss = result.stdout.split("\n")[:4]
    return Path(path), level, version, float(loss)


def system_has_losskit() -> bool:
    """Whether the system loader finds a liblosskit here. Asked in a fresh process: in this one,
    dlopen of a bare name matches the soname of the library already loaded."""
    code = ("import ctypes, ctypes.util\n"
            "def opens(name):\n"
            "    try:\n"
            "        return bool(ctypes.CDLL(name))\n"
            "    except OSError:\n"
            "        return False\n"
            f"print(any(map(opens, {SYSTEM!r})) or ctypes.util.find_library('losskit') is not None)\n")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.strip() == "True"


def test_real_bundled_library_with_its_cpu_level_builds(tmp_path):
    package = copy_package(tmp_path / "site", libraries=True)
    path, level, version, loss = loaded(run(tmp_path / "site", tmp_path))
    assert path == package / "liblosskit.so"
    assert level == CPU  # the CPU-level builds beside it are found and used
    assert version == losskit.__version__
    assert abs(loss - 0.28768207245178085) < 1e-15  # log(4/3)


def test_real_losskit_library_overrides_the_bundled_library(tmp_path):
    copy_package(tmp_path / "site", libraries=True)
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(LIBRARY.parent / "liblosskit.so", other / "liblosskit.so")
    path, level, _, _ = loaded(run(tmp_path / "site", tmp_path, LOSSKIT_LIBRARY=str(other)))
    assert path == other / "liblosskit.so"
    assert level == "x86-64"  # no CPU-level builds beside this copy


def test_real_system_loader_finds_the_soname_on_ld_library_path(tmp_path):
    copy_package(tmp_path / "site", libraries=False)
    prefix = tmp_path / "prefix" / "lib"
    prefix.mkdir(parents=True)
    shutil.copy(LIBRARY.parent / "liblosskit.so", prefix / "liblosskit.so.0")
    path, _, _, loss = loaded(run(tmp_path / "site", tmp_path, LD_LIBRARY_PATH=str(prefix)))
    assert path == prefix / "liblosskit.so.0"
    assert abs(loss - 0.28768207245178085) < 1e-15


def test_real_nothing_found_is_an_import_error_with_the_fixes(tmp_path):
    if system_has_losskit():
        pytest.skip("the system loader finds a liblosskit on this machine")
    copy_package(tmp_path / "site", libraries=False)
    result = run(tmp_path / "site", tmp_path)
    assert result.returncode != 0
    assert "ImportError: liblosskit.so not found. Tried, in order:" in result.stderr
    assert "set LOSSKIT_LIBRARY" in result.stderr and "Segmentation" not in result.stderr


def test_real_library_of_another_minor_version_is_refused(tmp_path):
    major = int(losskit.__version__.split(".")[0])
    copy_package(tmp_path / "site", libraries=True, version=f"{major}.99.0")
    result = run(tmp_path / "site", tmp_path)
    assert result.returncode != 0
    assert f"is LossKit {losskit.version()}, but this package ({major}.99.0) needs {major}.99.x" in result.stderr
