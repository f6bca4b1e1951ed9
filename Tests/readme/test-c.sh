#!/usr/bin/env bash
# make test-readme-c: the README's C, as a reader pastes it. Every ```c block of README.md is
# compiled on its own, verbatim, as C11 with every warning an error, against include/ and the
# release library in .build/release (make lib), and run (it must exit 0). Then the README's
# command that builds example.c in this repository (the ```sh block with -L.build/release) runs
# verbatim, on the first C block saved as example.c, in a temporary folder that has the
# repository's include/ and .build/release/ (so that nothing is written into the repository).
# The README's pkg-config command is run by make test-install, against an installed LossKit.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d /tmp/losskit-readme-c.XXXXXX)
trap 'rm -rf "$work"' EXIT
unset LD_LIBRARY_PATH LOSSKIT_LIBRARY CPATH C_INCLUDE_PATH LIBRARY_PATH
"$root/Tests/readme/extract.sh" "$root/README.md" "$work/blocks"
blocks=("$work"/blocks/*.c)
[ -e "${blocks[0]}" ] || { echo "test-readme-c: README.md has no \`\`\`c block" >&2; exit 1; }
for block in "${blocks[@]}"; do
    echo "== README.md C block ${block##*/}"
    ${CC:-cc} -std=c11 -Wall -Wextra -Werror -pedantic -I"$root/include" "$block" -L"$root/.build/release" -llosskit \
        -Wl,-rpath,"$root/.build/release" -lm -o "$work/program"
    "$work/program"
done

command=$(grep -l -- '-L.build/release' "$work"/blocks/*.sh | head -1) || true
[ -n "$command" ] || { echo "test-readme-c: no README sh block builds with -L.build/release" >&2; exit 1; }
echo "== README.md build command ${command##*/}: $(cat "$command")"
mkdir -p "$work/repo/.build"
ln -s "$root/include" "$work/repo/include"
ln -s "$root/.build/release" "$work/repo/.build/release"
cp "${blocks[0]}" "$work/repo/example.c"
(cd "$work/repo" && bash -e "$command")
echo "test-readme-c: the README's C example compiles and runs as shown"
