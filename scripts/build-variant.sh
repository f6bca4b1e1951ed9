#!/usr/bin/env bash
# Builds one CPU-level variant of the library: scripts/build-variant.sh NAME [swiftc flags...]
set -euo pipefail
name=$1; shift
root=$(cd "$(dirname "$0")/.." && pwd)
swift build -c release --scratch-path "$root/.build-$name" -Xswiftc -static-stdlib "$@" \
    -Xlinker -soname=liblosskit.so -Xlinker --version-script="$root/scripts/exports.map"
