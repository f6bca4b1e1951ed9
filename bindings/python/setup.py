"""Build hooks of the losskit package (the metadata is in pyproject.toml).

- The version is read from the LK_VERSION_* macros of include/losskit.h, the one place it is
  written ($LOSSKIT_HEADER, or the repository's include/losskit.h next to this folder); every
  built package carries it in losskit/_version.py, which losskit.__version__ reads.
- Shipped libraries found in the package folder (liblosskit.so and its CPU-level builds
  liblosskit-avx2.so, liblosskit-avx512.so, put there by `make wheel` through
  scripts/stage-libs.sh) go into the wheel, which is then a platform wheel for every Python 3:
  py3-none-manylinux_2_Y_<machine>, where 2.Y is the newest GLIBC_2.Y symbol version the
  libraries reference (objdump -T), i.e. the oldest glibc they load on. Without them the wheel
  is pure (py3-none-any) and the package finds the library elsewhere (losskit/_native.py).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGE = HERE / "losskit"
LIBRARIES = ("liblosskit.so", "liblosskit-avx2.so", "liblosskit-avx512.so")
# ELF e_machine -> the machine part of a platform tag.
MACHINES = {62: "x86_64", 183: "aarch64"}


def header_version() -> str:
    """MAJOR.MINOR.PATCH from the LK_VERSION_* macros of include/losskit.h (losskit/_header.py,
    loaded on its own: importing the package would load the library)."""
    header = Path(os.environ.get("LOSSKIT_HEADER") or HERE.parents[1] / "include" / "losskit.h")
    if not header.is_file():
        raise SystemExit(f"setup.py: {header} not found; set LOSSKIT_HEADER to include/losskit.h")
    spec = importlib.util.spec_from_file_location("losskit_header", PACKAGE / "_header.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.header_version(header)
    except ValueError as error:
        raise SystemExit(f"setup.py: {error}") from None


def bundled() -> list[Path]:
    """The shipped libraries in the package folder: none, or all three."""
    present = [PACKAGE / name for name in LIBRARIES if (PACKAGE / name).is_file()]
    if present and len(present) != len(LIBRARIES):
        raise SystemExit(f"setup.py: {PACKAGE} holds {[p.name for p in present]}, not all of "
                         f"{list(LIBRARIES)}; stage them with scripts/stage-libs.sh")
    return present


def platform_tag(libraries: list[Path]) -> str:
    """manylinux_2_Y_<machine>: Y from the newest GLIBC_2.Y version any library references."""
    newest = (2, 17)  # the oldest glibc any manylinux tag names
    machines = set()
    for lib in libraries:
        with open(lib, "rb") as f:
            machines.add(MACHINES.get(int.from_bytes(f.read(20)[18:20], "little"), "unknown"))
        symbols = subprocess.run(["objdump", "-T", str(lib)], check=True, capture_output=True,
                                 text=True).stdout
        for major, minor in re.findall(r"\bGLIBC_(\d+)\.(\d+)\b", symbols):
            newest = max(newest, (int(major), int(minor)))
    if len(machines) != 1 or "unknown" in machines:
        raise SystemExit(f"setup.py: libraries for machines {sorted(machines)}")
    return f"manylinux_{newest[0]}_{newest[1]}_{machines.pop()}"


VERSION = header_version()


class BuildPy(build_py):
    """Writes losskit/_version.py into every built package (not into an editable install, which
    reads the header of its repository instead)."""

    def run(self):
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "losskit" / "_version.py"
            target.write_text(f'# Written by setup.py from include/losskit.h.\nversion = "{VERSION}"\n')


class PackageWithLibraries(Distribution):
    """Carrying the libraries makes the package platform-specific: it is then built and
    installed as platlib (the wheel's root), like a package with a compiled extension."""

    def has_ext_modules(self):
        return bool(bundled())


class BdistWheel(bdist_wheel):
    """A platform wheel for every Python 3 when the package carries the libraries (no Python
    extension: any interpreter and ABI)."""

    def get_tag(self):
        libraries = bundled()
        if not libraries:
            return super().get_tag()
        return "py3", "none", platform_tag(libraries)


setup(version=VERSION, distclass=PackageWithLibraries,
      cmdclass={"build_py": BuildPy, "bdist_wheel": BdistWheel})
