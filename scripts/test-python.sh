#!/usr/bin/env bash
# The Python suite (bindings/python/tests) at every CPU level this machine has, for make test-python:
#   scripts/test-python.sh LIB "KERNEL_FILES" LEVEL...
# LEVEL... are the levels the machine runs, lowest first (scripts/cpu-levels.sh). At the widest
# one, every file; at each narrower one (LOSSKIT_ISA caps the level LIB loads), KERNEL_FILES, the
# files whose results come from that level's kernels.
#
# Each part is one pytest process, and the parts run at once: the kernel files at every level, and
# at the widest level the other files as a part of their own, which takes about as long. Serial
# processes side by side keep every core busy without what pytest-xdist spends passing each of
# the ~5000 short tests' reports from its workers to a controller (on two cores, a level's kernel
# files took 47 s in one process, 36 s of wall and 72 s of CPU under `-n 2`). Each part's output
# is printed once it ends, in the order above; the script fails when any part fails.
set -uo pipefail
lib=${1:?path to liblosskit.so}
kernel_files=${2:?the kernel test files}
shift 2
[ $# -gt 0 ] || { echo "test-python.sh: no CPU level given" >&2; exit 2; }
top=${!#}
cd "$(dirname "$0")/../bindings/python" || exit 2
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

names=() pids=()
start() {  # start NAME LEVEL FILE...
    local name=$1 level=$2
    shift 2
    names+=("$name")
    (LOSSKIT_LIBRARY=$lib LOSSKIT_ISA=$level LOSSKIT_STRICT=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        "${PYTHON:-python3}" -m pytest -q "$@" > "$logs/$name.log" 2>&1) &
    pids+=($!)
}

kernels=() others=(tests)
for f in $kernel_files; do
    kernels+=("tests/$f")
    others+=("--ignore=tests/$f")
done
for level in "$@"; do
    start "$level, kernel files" "$level" "${kernels[@]}"
done
start "$top, other files" "$top" "${others[@]}"

status=0
for i in "${!pids[@]}"; do
    wait "${pids[$i]}"
    rc=$?
    echo "== Python tests, ${names[$i]} (exit $rc)"
    cat "$logs/${names[$i]}.log"
    [ $rc -eq 0 ] || status=1
done
exit $status
