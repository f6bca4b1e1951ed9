#!/usr/bin/env bash
# Builds one CPU-level build of the library and puts it in .build/release:
#   scripts/build-variant.sh NAME FILE SONAME [swiftc flags...]
# NAME "" is the baseline (SwiftPM's own .build); any other NAME builds in .build-NAME (a build
# folder per level, since SwiftPM compiles a module for one CPU) and copies the result to
# .build/release/FILE. Every build links the Swift runtime statically (-static-stdlib), sets the
# soname SONAME (the Makefile's, from the header's version) and exports only lk_*
# (scripts/exports.map). After each successful build it touches .build/release/.built-FILE, the time
# of the last build that found FILE current (make install compares the sources against it: a
# change that leaves the library's bytes alone, a comment, does not relink it).
set -euo pipefail
name=$1 file=$2 soname=$3
shift 3
root=$(cd "$(dirname "$0")/.." && pwd)
scratch="$root/.build${name:+-$name}"
swift build -c release --scratch-path "$scratch" -Xswiftc -static-stdlib "$@" \
    -Xlinker -soname="$soname" -Xlinker --version-script="$root/scripts/exports.map"
if [ -n "$name" ]; then
    mkdir -p "$root/.build/release/"
    # cp -p keeps the mtime, so make relinks what depends on it only when it changed.
    cp -p "$scratch/release/liblosskit.so" "$root/.build/release/$file"
fi
touch "$root/.build/release/.built-$file"
