#!/usr/bin/env bash
# Prints the CPU levels this machine can run, one per line, lowest first, as the built library
# itself decides (lk_cpu_level with no LOSSKIT_ISA cap):
#   scripts/cpu-levels.sh LIB [LEVEL...]
# LEVEL... are the levels in order, lowest first (the Makefile's LEVELS; x86-64 avx2 avx512 if none
# are given): each is printed up to the one the library runs at.
set -euo pipefail
lib=${1:?path to liblosskit.so}
shift
[ $# -gt 0 ] || set -- x86-64 avx2 avx512
top=$(env -u LOSSKIT_ISA python3 -c "import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); lib.lk_cpu_level.restype = ctypes.c_char_p
print(lib.lk_cpu_level().decode())" "$lib")
for level in "$@"; do
    echo "$level"
    [ "$level" != "$top" ] || exit 0
done
echo "cpu-levels.sh: the library runs at $top, which is not among: $*" >&2
exit 1
