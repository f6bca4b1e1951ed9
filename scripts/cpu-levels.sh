#!/usr/bin/env bash
# Prints the CPU levels this machine can run, one per line (x86-64, then avx2, then avx512), as
# the built library itself decides (lk_cpu_level with no LOSSKIT_ISA cap).
set -euo pipefail
lib=${1:?path to liblosskit.so}
top=$(env -u LOSSKIT_ISA python3 -c "import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); lib.lk_cpu_level.restype = ctypes.c_char_p
print(lib.lk_cpu_level().decode())" "$lib")
echo x86-64
case "$top" in
    avx2) echo avx2 ;;
    avx512) echo avx2; echo avx512 ;;
esac
