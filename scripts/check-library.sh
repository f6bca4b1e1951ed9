#!/usr/bin/env bash
# Checks the shipped library against the public header (DESIGN.md §7):
#   1. it stands alone: no libswift* in NEEDED, no toolchain path in RUNPATH, every dependency
#      resolves outside the Swift toolchain, and it has a soname;
#   2. it exports exactly the functions the header declares (both directions, nm -D);
#   3. the header compiles on its own as C11 and as C++ with -Wall -Wextra -Werror -pedantic.
# Usage: scripts/check-library.sh path/to/liblosskit.so include/losskit.h
set -euo pipefail
lib=${1:?library}
header=${2:?header}
fail=0
bad() { echo "check-library: FAIL: $*" >&2; fail=1; }

[ -f "$lib" ] || { echo "check-library: $lib not found (run make lib)" >&2; exit 1; }

# 1. Standalone.
dyn=$(readelf -d "$lib")
if grep -q 'NEEDED.*libswift' <<<"$dyn"; then bad "NEEDED names a Swift runtime library"; fi
if grep -E 'R(UN)?PATH' <<<"$dyn" | grep -qE 'swift|/opt/|/usr/lib/swift'; then
    bad "RUNPATH names the toolchain: $(grep -E 'R(UN)?PATH' <<<"$dyn")"
fi
grep -q 'SONAME' <<<"$dyn" || bad "no SONAME"
if ldd "$lib" | grep -qiE 'swift|not found'; then bad "ldd resolves into the toolchain or fails: $(ldd "$lib")"; fi
echo "NEEDED: $(grep NEEDED <<<"$dyn" | sed -E 's/.*\[(.*)\]/\1/' | tr '\n' ' ')"
echo "SONAME: $(grep SONAME <<<"$dyn" | sed -E 's/.*\[(.*)\]/\1/')   size: $(stat -c %s "$lib") bytes"

# 2. Exports = header functions.
exported=$(nm -D --defined-only "$lib" | awk '{print $NF}' | sort -u)
# Declarations only: comments are stripped first (a comment may mention a function). A name
# directly followed by "(" or by ")(" (a declaration kept from its macro, `(lk_options_init)(`);
# a type before a parenthesised name (`lk_status (lk_options_init)`) has a space and is not one.
declared=$(gcc -fpreprocessed -dD -E -P "$header" | grep -Eo '\blk_[a-z0-9_]+\)?\(' | tr -d '()' | sort -u)
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
[ -z "$extra" ] || bad "exported but not declared in $header: $(echo $extra)"
[ -z "$missing" ] || bad "declared in $header but not exported: $(echo $missing)"
echo "exports: $(echo "$exported" | wc -l) functions, all declared; header declares $(echo "$declared" | wc -l)"

# 3. The header alone, as C11 and C++, every warning an error.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#include "%s"\nint main(void) { lk_options o; return lk_options_init(&o, LK_LOSS_LOG) + (int)sizeof o * 0; }\n' \
    "$(realpath "$header")" >"$tmp/h.c"
cp "$tmp/h.c" "$tmp/h.cpp"
for cc in gcc clang; do
    command -v $cc >/dev/null || continue
    $cc -std=c11 -Wall -Wextra -Werror -pedantic -c "$tmp/h.c" -o "$tmp/h.o" || bad "$cc -std=c11 rejects the header"
done
for cxx in g++ clang++; do
    command -v $cxx >/dev/null || continue
    $cxx -std=c++11 -Wall -Wextra -Werror -pedantic -c "$tmp/h.cpp" -o "$tmp/h.o" || bad "$cxx -std=c++11 rejects the header"
done
echo "header compiles as C11 and C++11 with -Wall -Wextra -Werror -pedantic"

exit $fail
