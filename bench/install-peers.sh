#!/usr/bin/env bash
# Install some of LossKit's peers (bindings/python/requirements-peers.txt, the list that
# `make setup-peers` installs in full for the tests) from PyPI, for the benchmarks.
#
#   bench/install-peers.sh jax      jax + optax (small)
#   bench/install-peers.sh torch    torch + pytorch-crf (the Linux wheel pulls CUDA packages:
#                                   several GB)
#   bench/install-peers.sh all      all of them
#   add --dry-run to print the pip command instead of running it
#
# PYTHON selects the interpreter (default python3), as in the Makefile.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
requirements="$here/../bindings/python/requirements-peers.txt"
python="${PYTHON:-python3}"

usage() {
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
}

dry_run=0
what=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) dry_run=1 ;;
        jax|torch|all) what="$arg" ;;
        -h|--help) usage ;;
        *) echo "install-peers.sh: unknown argument '$arg'" >&2; usage ;;
    esac
done
[ -n "$what" ] || usage

# The requirement lines (with their version bounds) of the chosen peers.
case "$what" in
    jax)   pattern='^(jax|optax)[<>=!~ ]' ;;
    torch) pattern='^(torch|pytorch-crf)[<>=!~ ]' ;;
    all)   pattern='^[A-Za-z]' ;;
esac
mapfile -t packages < <(grep -E "$pattern" "$requirements")
[ "${#packages[@]}" -gt 0 ] || { echo "no requirement matched in $requirements" >&2; exit 1; }

cmd=("$python" -m pip install --disable-pip-version-check "${packages[@]}")
if [ "$what" != jax ]; then
    echo "note: torch from PyPI brings its CUDA dependencies (several GB)." >&2
fi
if [ "$dry_run" = 1 ]; then
    printf '%q ' "${cmd[@]}"; echo
else
    "${cmd[@]}"
fi
