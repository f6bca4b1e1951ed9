#!/usr/bin/env bash
# Checks the shipped library against the public header (DESIGN.md §7):
#   1. it stands alone: no libswift* in NEEDED, no toolchain path in RUNPATH, every dependency
#      resolves outside the Swift toolchain, and it has a soname;
#   2. it exports exactly the functions the header declares (both directions, nm -D);
#   3. the header compiles on its own as C11 and as C++ with -Wall -Wextra -Werror -pedantic;
#   4. one version: the header's LK_VERSION_* macros = lk_version() = lk_version_number() of the
#      baseline (a CPU-level build is not loaded here, the CPU may lack its level: its
#      .losskit_level marker, which the baseline checks before loading it, must name the version)
#      = the soname (liblosskit.so.MAJOR; a CPU-level build's is liblosskit-LEVEL.so.VERSION).
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

# 4. One version.
fail_before=$fail
part() { sed -n "s/^#define LK_VERSION_$1  *\([0-9][0-9]*\) *\$/\1/p" "$header"; }
version=$(part MAJOR).$(part MINOR).$(part PATCH)
number=$(( $(part MAJOR) * 10000 + $(part MINOR) * 100 + $(part PATCH) ))
soname=$(grep SONAME <<<"$dyn" | sed -E 's/.*\[(.*)\]/\1/')
if grep -qF '] .losskit_level ' <<<"$(readelf -S -W "$lib")"; then
    objcopy --dump-section .losskit_level="$tmp/marker" "$lib" "$tmp/copy"
    level=$(tr '\0' '\n' <"$tmp/marker" | head -1)
    printf '%s\0%s\0' "$level" "$version" >"$tmp/expected"
    cmp -s "$tmp/marker" "$tmp/expected" ||
        bad "the .losskit_level marker is '$(tr '\0' ' ' <"$tmp/marker")', not '$level $version'"
    [ "$soname" = "liblosskit-$level.so.$version" ] || bad "soname $soname, not liblosskit-$level.so.$version"
    [ $fail -ne $fail_before ] || echo "version: header $version = the $level build's marker = its soname $soname"
else
    got=$(env -u LOSSKIT_ISA python3 -c "import ctypes, sys
lib = ctypes.CDLL(sys.argv[1]); lib.lk_version.restype = ctypes.c_char_p
print(lib.lk_version().decode(), lib.lk_version_number())" "$lib")
    [ "$got" = "$version $number" ] || bad "lk_version(), lk_version_number() = $got; the header says $version $number"
    [ "$soname" = "liblosskit.so.$(part MAJOR)" ] || bad "soname $soname, not liblosskit.so.$(part MAJOR)"
    [ $fail -ne $fail_before ] ||
        echo "version: header $version ($number) = lk_version(), lk_version_number() = soname $soname"
fi

exit $fail
