#!/usr/bin/env bash
# Installs the C library (after `make lib`) under a prefix, or removes what it installs:
#   scripts/install.sh install|uninstall
# `make install` and `make uninstall` run it with, in the environment: VERSION (MAJOR.MINOR.PATCH,
# from the header), PREFIX, libdir and includedir (absolute; PREFIX/lib and PREFIX/include by
# default) and DESTDIR (a staging folder put before every path written; empty by default).
# Installed:
#   includedir/losskit.h
#   libdir/liblosskit.so.VERSION          the library, soname liblosskit.so.MAJOR
#   libdir/liblosskit.so.MAJOR            -> liblosskit.so.VERSION (what programs load)
#   libdir/liblosskit.so                  -> liblosskit.so.MAJOR (what -llosskit links)
#   libdir/liblosskit-avx2.so.VERSION     the CPU-level builds, where the library looks for them:
#   libdir/liblosskit-avx512.so.VERSION   beside its real file, named after it
#   libdir/pkgconfig/losskit.pc
#   libdir/cmake/LossKit/LossKitConfig.cmake, LossKitConfigVersion.cmake   (target LossKit::losskit)
# The libraries are stripped (scripts/stage-libs.sh). Each file is written under a temporary name
# and renamed into place, so a running program that maps the old library is not disturbed.
# uninstall removes these files, then the folders it leaves empty, up to but never PREFIX itself.
set -euo pipefail
action=${1:?usage: scripts/install.sh install|uninstall}
: "${VERSION:?}" "${PREFIX:?}" "${libdir:?}" "${includedir:?}"
DESTDIR=${DESTDIR:-}
root=$(cd "$(dirname "$0")/.." && pwd)
for path in "$PREFIX" "$libdir" "$includedir"; do
    case $path in
        /*) ;;
        *) echo "install: $path is not an absolute path (PREFIX, libdir and includedir must be)" >&2; exit 1 ;;
    esac
done
# Spelled plainly (no // or trailing /), so that the folders compare as text below.
PREFIX=$(realpath -ms "$PREFIX") libdir=$(realpath -ms "$libdir") includedir=$(realpath -ms "$includedir")
major=${VERSION%%.*}
lib=$DESTDIR$libdir
inc=$DESTDIR$includedir
cmake_dir=$lib/cmake/LossKit
levels="avx2 avx512"

files=("$inc/losskit.h" "$lib/liblosskit.so.$VERSION" "$lib/liblosskit.so.$major" "$lib/liblosskit.so"
       "$lib/pkgconfig/losskit.pc" "$cmake_dir/LossKitConfig.cmake" "$cmake_dir/LossKitConfigVersion.cmake")
for level in $levels; do files+=("$lib/liblosskit-$level.so.$VERSION"); done

# put MODE SOURCE DEST: a copy under a temporary name beside DEST, renamed over it.
put() {
    install -m "$1" "$2" "$3.tmp.$$"
    mv -f "$3.tmp.$$" "$3"
}
# link TARGET DEST: the symlink DEST -> TARGET, replaced in one rename.
link() {
    ln -sfn "$1" "$2.tmp.$$"
    mv -Tf "$2.tmp.$$" "$2"
}
# fill TEMPLATE OUT: the template with each @NAME@ replaced (values quoted: & and \ stay literal).
fill() {
    local text
    text=$(<"$1")
    text=${text//@VERSION@/"$VERSION"}
    text=${text//@VERSION_MAJOR_MINOR@/"${VERSION%.*}"}
    text=${text//@SOVERSION@/"$major"}
    text=${text//@PREFIX@/"$PREFIX"}
    text=${text//@LIBDIR@/"$pc_libdir"}
    text=${text//@INCLUDEDIR@/"$pc_includedir"}
    text=${text//@INCLUDEDIR_FROM_HERE@/"$includedir_from_cmake"}
    printf '%s\n' "$text" >"$2"
}

case $action in
install)
    stage=$(mktemp -d)
    trap 'rm -rf "$stage"' EXIT
    "$root/scripts/stage-libs.sh" "$stage"
    # losskit.pc names its folders from ${prefix} when they are under it (as pkg-config's
    # --define-prefix expects); the CMake package finds the header relative to its own folder.
    pc_libdir=$libdir pc_includedir=$includedir
    case $libdir in "$PREFIX"/*) pc_libdir="\${prefix}/${libdir#"$PREFIX"/}" ;; esac
    case $includedir in "$PREFIX"/*) pc_includedir="\${prefix}/${includedir#"$PREFIX"/}" ;; esac
    includedir_from_cmake=$(realpath -m --relative-to="$libdir/cmake/LossKit" "$includedir")
    fill "$root/scripts/install/losskit.pc.in" "$stage/losskit.pc"
    fill "$root/scripts/install/LossKitConfig.cmake.in" "$stage/LossKitConfig.cmake"
    fill "$root/scripts/install/LossKitConfigVersion.cmake.in" "$stage/LossKitConfigVersion.cmake"

    mkdir -p "$inc" "$lib/pkgconfig" "$cmake_dir"
    put 644 "$root/include/losskit.h" "$inc/losskit.h"
    put 755 "$stage/liblosskit.so" "$lib/liblosskit.so.$VERSION"
    for level in $levels; do put 755 "$stage/liblosskit-$level.so" "$lib/liblosskit-$level.so.$VERSION"; done
    link "liblosskit.so.$VERSION" "$lib/liblosskit.so.$major"
    link "liblosskit.so.$major" "$lib/liblosskit.so"
    put 644 "$stage/losskit.pc" "$lib/pkgconfig/losskit.pc"
    put 644 "$stage/LossKitConfig.cmake" "$cmake_dir/LossKitConfig.cmake"
    put 644 "$stage/LossKitConfigVersion.cmake" "$cmake_dir/LossKitConfigVersion.cmake"
    printf 'installed %s\n' "${files[@]}"
    ;;
uninstall)
    rm -f "${files[@]}"
    printf 'removed %s\n' "${files[@]}"
    # The folders left empty, each up to (not including) the prefix.
    for dir in "$cmake_dir" "$lib/pkgconfig" "$inc"; do
        while [[ $dir == "$DESTDIR$PREFIX"/* || $dir == "$cmake_dir" ]] && rmdir "$dir" 2>/dev/null; do
            dir=$(dirname "$dir")
        done
    done
    ;;
*)
    echo "install: unknown action $action (install or uninstall)" >&2
    exit 1
    ;;
esac
