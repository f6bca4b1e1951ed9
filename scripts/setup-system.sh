#!/usr/bin/env bash
# Installs, with apt-get (Debian), the system tools the tests use beyond the Swift toolchain and
# only those missing: cmake and pkg-config (make test-install builds programs against an
# installed LossKit with both), a C and a C++ compiler, and binutils (readelf, nm, strip, objcopy:
# the shipped-library checks and scripts/stage-libs.sh), and Open MPI's compiler wrapper and
# launcher (make test-mpi: the vocabulary-parallel example on real processes). Nothing is
# installed, and apt-get is not run, when every tool is already there. Non-interactive; as root, or through sudo without a
# password. `make setup-system` runs it; `make test` does too.
set -euo pipefail
# command:package
wanted="cmake:cmake pkg-config:pkg-config cc:gcc c++:g++ readelf:binutils nm:binutils strip:binutils objcopy:binutils
        mpicc:libopenmpi-dev mpirun:openmpi-bin"
missing=()
for pair in $wanted; do
    command -v "${pair%%:*}" >/dev/null 2>&1 && continue
    package=${pair##*:}
    [[ " ${missing[*]} " == *" $package "* ]] || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup-system: cmake, pkg-config, cc, c++, binutils and Open MPI are installed"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 || {
    echo "setup-system: missing ${missing[*]}, and no apt-get to install them with; install them by hand" >&2
    exit 1
}
if [ "$(id -u)" -eq 0 ]; then
    as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
else
    echo "setup-system: missing ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "setup-system: installing ${missing[*]}"
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
