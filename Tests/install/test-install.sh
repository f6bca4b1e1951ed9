#!/usr/bin/env bash
# make test-install: `make install` proven on clean prefixes, outside the repository.
#   1. make install PREFIX=<empty temporary folder>: exactly the expected files and links; every
#      installed library checked with readelf and nm (scripts/check-library.sh against the
#      installed header, then its soname, NEEDED, RUNPATH and that it is stripped); a plain
#      Makefile project (pkg-config --cflags --libs losskit) and a CMake project
#      (find_package(LossKit CONFIG REQUIRED), C and C++) build in temporary folders against that
#      prefix alone and run Tests/install/consumer.c and consumer.cpp, which check a loss against
#      its closed form, the version, that lk_cpu_level() is this CPU's widest level and that every
#      LossKit file they map comes from the prefix; the README's C example, built with the README's
#      pkg-config command, runs too; make uninstall leaves the prefix empty.
#   2. make install DESTDIR=<staging folder> PREFIX=/opt/...: the staged tree, used where it lies
#      (CMake's paths are relative to its config file; pkg-config --define-prefix), builds and
#      runs the same programs; make uninstall with the same DESTDIR removes exactly what was
#      installed (files put there before stay) and leaves the prefix empty.
# The expected version comes from the header's macros, the expected CPU level from the CPU's
# flags (/proc/cpuinfo), not from the library. Needs `make lib` and `make setup-system`.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/Tests/install
work=$(mktemp -d /tmp/losskit-test-install.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Nothing from the environment may point a build or a run at the repository.
unset LD_LIBRARY_PATH LD_PRELOAD LOSSKIT_ISA LOSSKIT_LIBRARY CPATH C_INCLUDE_PATH CPLUS_INCLUDE_PATH \
      LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH MAKEFLAGS MFLAGS MAKELEVEL

failures=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; failures=$((failures + 1)); }
expect() { # expect DESCRIPTION COMMAND...: runs the command, reports it
    local what=$1
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}
section() { echo; echo "== $*"; }

part() { sed -n "s/^#define LK_VERSION_$1  *\([0-9][0-9]*\) *\$/\1/p" "$root/include/losskit.h"; }
version=$(part MAJOR).$(part MINOR).$(part PATCH)
major=$(part MAJOR)
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "cannot read the version from include/losskit.h" >&2; exit 1; }

# The widest CPU level from the CPU's flags (as bindings/python/tests/test_trust_loading.py).
flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { local f; for f in "$@"; do [[ $flags == *" $f "* ]] || return 1; done; }
level=x86-64
if has avx2 fma bmi1 bmi2 movbe popcnt f16c abm; then
    level=avx2
    if has avx512f avx512dq avx512cd avx512bw avx512vl; then level=avx512; fi
fi
echo "version $version (header), CPU level $level (/proc/cpuinfo), work folder $work"

# The README's C example and its pkg-config build command, verbatim.
"$root/Tests/readme/extract.sh" "$root/README.md" "$work/readme"
readme_c=$(ls "$work/readme"/*.c | head -1)
readme_pkg_config=$(grep -l 'pkg-config --cflags --libs losskit' "$work/readme"/*.sh 2>/dev/null | head -1) || true
[ -n "$readme_pkg_config" ] || fail "README.md has an sh block that builds with pkg-config --cflags --libs losskit"

make_install() { make --no-print-directory -C "$root" "$@"; }

# expected_tree DIR LIBDIR_REL: the installed tree (files and links), as find prints it.
expected_tree() {
    local lib=$2
    printf '%s\n' include include/losskit.h "$lib" "$lib/liblosskit.so" "$lib/liblosskit.so.$major" \
        "$lib/liblosskit.so.$version" "$lib/liblosskit-avx2.so.$version" "$lib/liblosskit-avx512.so.$version" \
        "$lib/pkgconfig" "$lib/pkgconfig/losskit.pc" "$lib/cmake" "$lib/cmake/LossKit" \
        "$lib/cmake/LossKit/LossKitConfig.cmake" "$lib/cmake/LossKit/LossKitConfigVersion.cmake" | sort
}

# check_libraries LIBDIR INCLUDEDIR: readelf and nm on every installed library.
check_libraries() {
    local lib=$1 inc=$2 so soname needed runpath
    expect "liblosskit.so.$major -> liblosskit.so.$version" test "$(readlink "$lib/liblosskit.so.$major")" = "liblosskit.so.$version"
    expect "liblosskit.so -> liblosskit.so.$major" test "$(readlink "$lib/liblosskit.so")" = "liblosskit.so.$major"
    for so in "$lib/liblosskit.so.$version" "$lib/liblosskit-avx2.so.$version" "$lib/liblosskit-avx512.so.$version"; do
        local name=${so##*/}
        [ -f "$so" ] || { fail "$name is installed"; continue; }
        echo "-- $name: $(stat -c %s "$so") bytes"
        # Exports = the installed header's functions (nm -D), standalone, the header compiles alone.
        expect "$name: scripts/check-library.sh against the installed header" \
            "$root/scripts/check-library.sh" "$so" "$inc/losskit.h"
        soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
        if [ "$name" = "liblosskit.so.$version" ]; then
            expect "$name: soname $soname = liblosskit.so.$major" test "$soname" = "liblosskit.so.$major"
        else
            # A CPU-level build is only ever dlopened by path; its soname is its own name, so that
            # ldconfig makes no link for it.
            expect "$name: soname $soname = its file name" test "$soname" = "$name"
        fi
        # libc, libm, libstdc++ and libgcc_s (the Swift runtime's C++ and unwinding needs), and
        # ld-linux-x86-64.so.2 for __tls_get_addr (thread-local storage in a shared library; the
        # dynamic loader is in every process already). Nothing else: no libswift*, no libdispatch.
        needed=$(readelf -d "$so" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')
        local extra
        extra=$(tr ' ' '\n' <<<"$needed" | grep -vxE 'libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1|ld-linux-x86-64\.so\.2' \
            | grep . || true)
        expect "$name: NEEDED $needed- only libc, libm, libstdc++, libgcc_s, ld-linux" test -z "$extra"
        # SwiftPM links with -rpath=$ORIGIN: the library's own folder, nothing outside it.
        runpath=$(readelf -d "$so" | sed -n 's/.*(R\(UN\)\{0,1\}PATH).*\[\(.*\)\]/\2/p' | tr '\n' ' ')
        expect "$name: RUNPATH/RPATH '${runpath% }' is empty or \$ORIGIN" \
            bash -c '[ -z "$1" ] || [ "$1" = "\$ORIGIN " ]' _ "$runpath"
        expect "$name: stripped (no .symtab, no .debug_* section)" \
            bash -c '! readelf -S -W "$1" | grep -qE "\] \.(symtab|debug_)"' _ "$so"
    done
}

# run_projects PREFIX LIBDIR PKG_CONFIG_ARGS...: the pkg-config and CMake projects and the
# README's example, each in its own temporary folder, against PREFIX only.
run_projects() {
    local prefix=$1 lib=$2
    shift 2
    local pc=(pkg-config "$@") tag=${prefix//\//_}
    local pcdir=$work/pkgconfig$tag cmdir=$work/cmake$tag rdir=$work/readme$tag
    mkdir -p "$pcdir" "$cmdir" "$rdir"

    export PKG_CONFIG_PATH=$lib/pkgconfig
    expect "pkg-config --modversion losskit = $version" test "$("${pc[@]}" --modversion losskit)" = "$version"
    echo "   pkg-config --cflags --libs losskit: $("${pc[@]}" --cflags --libs losskit)"
    cp "$here/pkgconfig/Makefile" "$here/consumer.c" "$pcdir/"
    # The --define-prefix spelling, when asked for, goes through a pkg-config wrapper on PATH.
    if [ $# -gt 0 ]; then
        mkdir -p "$pcdir/bin"
        printf '#!/bin/sh\nexec %q %s "$@"\n' "$(command -v pkg-config)" "$*" >"$pcdir/bin/pkg-config"
        chmod +x "$pcdir/bin/pkg-config"
    fi
    expect "pkg-config project builds" env PATH="$pcdir/bin:$PATH" make --no-print-directory -C "$pcdir"
    expect "pkg-config project: the program links liblosskit.so.$major" \
        bash -c 'readelf -d "$1" | grep -q "NEEDED.*\[liblosskit.so.$2\]"' _ "$pcdir/consumer" "$major"
    expect "pkg-config project runs" "$pcdir/consumer" "$level" "$lib"

    cp "$here/cmake/CMakeLists.txt" "$here/consumer.c" "$here/consumer.cpp" "$cmdir/"
    expect "CMake project configures (find_package(LossKit $version EXACT CONFIG REQUIRED))" \
        cmake -S "$cmdir" -B "$cmdir/build" -DCMAKE_PREFIX_PATH="$prefix" -DLOSSKIT_VERSION="$version" \
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_FIND_USE_SYSTEM_PACKAGE_REGISTRY=OFF
    expect "CMake project builds" cmake --build "$cmdir/build"
    expect "CMake project, C: runs" "$cmdir/build/consumer" "$level" "$lib"
    expect "CMake project, C++: runs" "$cmdir/build/consumer_cxx" "$level"
    expect "CMake: LossKit_DIR is the installed package" \
        grep -qx "LossKit_DIR:PATH=$lib/cmake/LossKit" "$cmdir/build/CMakeCache.txt"
    # The version file: a newer minor or another major is refused.
    local refused
    for refused in "$major.$(( $(part MINOR) + 1 ))" "$(( major + 1 )).0"; do
        mkdir -p "$cmdir/refuse-$refused"
        printf 'cmake_minimum_required(VERSION 3.16)\nproject(refuse NONE)\nfind_package(LossKit %s CONFIG REQUIRED)\n' \
            "$refused" >"$cmdir/refuse-$refused/CMakeLists.txt"
        expect "CMake: find_package(LossKit $refused) is refused by $version" \
            bash -c '! cmake -S "$1" -B "$1/build" -DCMAKE_PREFIX_PATH="$2" >"$1/log" 2>&1' _ \
            "$cmdir/refuse-$refused" "$prefix"
    done

    if [ -n "$readme_pkg_config" ]; then
        cp "$readme_c" "$rdir/example.c"
        cp "$readme_pkg_config" "$rdir/build.sh"
        mkdir -p "$rdir/bin"
        [ $# -eq 0 ] || cp "$pcdir/bin/pkg-config" "$rdir/bin/"
        expect "README: the C example, built with the README's pkg-config command, runs" \
            bash -c 'cd "$1" && PATH="$1/bin:$PATH" LD_LIBRARY_PATH="$2" bash -e build.sh' _ "$rdir" "$lib"
    fi
    unset PKG_CONFIG_PATH
}

section "1. make install PREFIX=$work/prefix"
prefix=$work/prefix
mkdir -p "$prefix"
expect "make install after make lib runs no Swift build" \
    bash -c '! make -n -C "$1" install PREFIX="$2" | grep -q build-variant' _ "$root" "$prefix"
expect "make install" make_install install PREFIX="$prefix"
expect "the installed tree is exactly the expected one" \
    diff <(expected_tree "$prefix" lib) <(cd "$prefix" && find . -mindepth 1 | sed 's|^\./||' | sort)
ls -l "$prefix/include" "$prefix/lib" "$prefix/lib/pkgconfig" "$prefix/lib/cmake/LossKit"
cat "$prefix/lib/pkgconfig/losskit.pc"
check_libraries "$prefix/lib" "$prefix/include"
run_projects "$prefix" "$prefix/lib"
expect "make uninstall" make_install uninstall PREFIX="$prefix"
expect "the prefix is empty after make uninstall" test -z "$(find "$prefix" -mindepth 1 -print -quit)"

section "2. make install DESTDIR=$work/stage PREFIX=/opt/losskit-test, used where it lies"
stage=$work/stage
staged=$stage/opt/losskit-test
mkdir -p "$staged/lib" "$staged/include"
echo "not LossKit's" >"$staged/lib/other.txt"
echo "not LossKit's" >"$staged/include/other.h"
expect "make install DESTDIR=..." make_install install DESTDIR="$stage" PREFIX=/opt/losskit-test
expect "nothing was written outside DESTDIR" test ! -e /opt/losskit-test
expect "losskit.pc names the final prefix" grep -qx 'prefix=/opt/losskit-test' "$staged/lib/pkgconfig/losskit.pc"
run_projects "$staged" "$staged/lib" --define-prefix
expect "make uninstall DESTDIR=..." make_install uninstall DESTDIR="$stage" PREFIX=/opt/losskit-test
expect "make uninstall left exactly the files that were there before" \
    diff <(printf '%s\n' include include/other.h lib lib/other.txt) \
    <(cd "$staged" && find . -mindepth 1 | sed 's|^\./||' | sort)
rm "$staged/lib/other.txt" "$staged/include/other.h"
rmdir "$staged/lib" "$staged/include"
expect "with them gone, the prefix is empty" test -z "$(find "$staged" -mindepth 1 -print -quit)"

echo
if [ "$failures" -ne 0 ]; then
    echo "test-install: $failures check(s) FAILED" >&2
    exit 1
fi
echo "test-install: all checks passed"
