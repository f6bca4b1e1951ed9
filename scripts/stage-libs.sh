#!/usr/bin/env bash
# Copies the shipped libraries (after `make lib`) to a folder, stripped of debug information:
#   scripts/stage-libs.sh DEST [--debug]
# DEST receives liblosskit.so and its CPU-level builds liblosskit-avx2.so and
# liblosskit-avx512.so (the names liblosskit.so looks for beside its real path). With --debug,
# each one's debug information is kept in DEST/NAME.debug, linked from the stripped file by
# .gnu_debuglink (gdb and perf find it there).
set -euo pipefail
dest=$1
debug=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$dest"
for file in liblosskit.so liblosskit-avx2.so liblosskit-avx512.so; do
    from="$root/.build/release/$file"
    [ -f "$from" ] || { echo "stage-libs: $from is missing; run make lib" >&2; exit 1; }
    if [ "$debug" = "--debug" ]; then
        objcopy --only-keep-debug "$from" "$dest/$file.debug"
        strip --strip-unneeded -o "$dest/$file" "$from"
        (cd "$dest" && objcopy --add-gnu-debuglink="$file.debug" "$file")
    else
        strip --strip-unneeded -o "$dest/$file" "$from"
    fi
done
