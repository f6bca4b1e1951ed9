#!/usr/bin/env bash
# Checks the shipped library against the public header (DESIGN.md §7):
#   1. it stands alone: no libswift* in NEEDED, no toolchain path in RUNPATH, every dependency
#      resolves outside the Swift toolchain, and it has a soname;
#   2. it exports exactly the functions the header declares (both directions, nm -D);
#   3. the header compiles on its own as C11 and as C++ with -Wall -Wextra -Werror -pedantic;
#   4. one version: the header's LK_VERSION_* macros = lk_version() = lk_version_number() of the
#      baseline (a CPU-level build is not loaded here, the CPU may lack its level: its
#      .losskit_level marker, which the baseline checks before loading it, must name the version)
#      = the soname (liblosskit.so.MAJOR; a CPU-level build's is liblosskit-LEVEL.so.VERSION);
#   5. the CPU-level dispatch: every function the header declares is named once in the lists of
#      Sources/CLossKit/include/losskit_internal.h (LOSSKIT_FORWARDED or LOSSKIT_ANSWERED_HERE),
#      and, for the baseline, each forwarded function really reaches the build it loaded: beside a
#      copy of it, a stand-in liblosskit-avx2.so made here from the header's function names (with
#      the marker and lk_version the loader checks) whose functions each return a value of their
#      own; at LOSSKIT_ISA=avx2 every forwarded function must return the stand-in's value and every
#      other its own, and at LOSSKIT_ISA=x86-64 none the stand-in's (the check can fail). It needs a
#      CPU that runs the AVX2 build, and says so where the CPU does not.
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
printf '#include "%s"\nint main(void) { lk_options o; return %s; }\n' "$(realpath "$header")" \
    'lk_options_init(&o, LK_LOSS_LOG) + (int)sizeof o * 0' >"$tmp/h.c"
cp "$tmp/h.c" "$tmp/h.cpp"
for cc in gcc clang; do
    command -v $cc >/dev/null || continue
    $cc -std=c11 -Wall -Wextra -Werror -pedantic -c "$tmp/h.c" -o "$tmp/h.o" || bad "$cc -std=c11 rejects the header"
done
for cxx in g++ clang++; do
    command -v $cxx >/dev/null || continue
    $cxx -std=c++11 -Wall -Wextra -Werror -pedantic -c "$tmp/h.cpp" -o "$tmp/h.o" ||
        bad "$cxx -std=c++11 rejects the header"
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

# 5. The CPU-level dispatch.
fail_before=$fail
internal="$(cd "$(dirname "$0")/.." && pwd)/Sources/CLossKit/include/losskit_internal.h"
named_in() {  # the names an X-macro list of losskit_internal.h expands to, one a line
    printf '#include "%s"\n#define LOSSKIT_NAME(name) @name\n%s(LOSSKIT_NAME)\n' "$internal" "$1" |
        gcc -E -P -x c - | grep -Eo '@lk_[a-z0-9_]+' | tr -d '@'
}
forwarded=$(named_in LOSSKIT_FORWARDED) && here=$(named_in LOSSKIT_ANSWERED_HERE) ||
    bad "cannot read the lists of $internal"
listed=$(printf '%s\n%s\n' "$forwarded" "$here" | sort)
twice=$(uniq -d <<<"$listed")
unlisted=$(comm -13 <(uniq <<<"$listed") <(echo "$declared"))
undeclared=$(comm -23 <(uniq <<<"$listed") <(echo "$declared"))
[ -z "$twice" ] || bad "named more than once in the lists of $internal: $(echo $twice)"
[ -z "$unlisted" ] || bad "declared in $header but in neither LOSSKIT_FORWARDED nor LOSSKIT_ANSWERED_HERE" \
    "($internal): $(echo $unlisted)"
[ -z "$undeclared" ] || bad "listed in $internal but not declared in $header: $(echo $undeclared)"
[ $fail -ne $fail_before ] || echo "dispatch lists: $(echo "$forwarded" | wc -l) forwarded +" \
    "$(echo "$here" | wc -l) answered here = the header's $(echo "$declared" | wc -l)"

if [ -z "${level:-}" ] && [ $fail -eq $fail_before ]; then
    # The baseline: a stand-in for its AVX2 build, every function returning 0x4C4B0000 + its place
    # in the header (a value no real entry point returns), except lk_cpu_level and lk_version,
    # which answer what the loader checks.
    cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
    avx2_cpu=yes
    for flag in avx2 fma bmi1 bmi2 movbe f16c popcnt abm; do grep -qw "$flag" <<<"$cpu_flags" || avx2_cpu=; done
    if [ -z "$avx2_cpu" ]; then
        echo "dispatch: forwarding NOT CHECKED: this CPU cannot run the AVX2 build (liblosskit.so never forwards here)"
    else
        mkdir -p "$tmp/dispatch"
        cp "$lib" "$tmp/dispatch/liblosskit.so"
        {
            echo '#include <stdint.h>'
            printf '__attribute__((used, section(".losskit_level"))) static const char marker[] = "avx2\\0" "%s";\n' \
                "$version"
            echo 'const char *lk_cpu_level(void) { return marker; }'
            printf 'const char *lk_version(void) { return "%s"; }\n' "$version"
            place=0
            for name in $declared; do
                place=$((place + 1))
                case $name in lk_cpu_level | lk_version) continue ;; esac
                printf 'uintptr_t %s(void) { return 0x4C4B0000u + %d; }\n' "$name" "$place"
            done
        } >"$tmp/dispatch/stand-in.c"
        gcc -shared -fPIC -o "$tmp/dispatch/liblosskit-avx2.so" "$tmp/dispatch/stand-in.c" ||
            bad "cannot build the stand-in AVX2 build"
        # Functions returning a pointer compare in full; the others return 32 bits (lk_status, int32_t).
        pointers=$(gcc -fpreprocessed -dD -E -P "$header" | grep -Eo 'char \*lk_[a-z0-9_]+\(' | tr -d '*(' |
            awk '{print $2}')
        for isa in avx2 x86-64; do
            env LOSSKIT_ISA=$isa python3 - "$tmp/dispatch" "$isa" "$(echo $forwarded)" "$(echo $here)" \
                "$(echo $pointers)" <<'PYTHON' || bad "at LOSSKIT_ISA=$isa, see above"
import ctypes, sys
folder, isa, forwarded, here, pointers = sys.argv[1], sys.argv[2], *(a.split() for a in sys.argv[3:])
library = ctypes.CDLL(folder + "/liblosskit.so")
stand_in = ctypes.CDLL(folder + "/liblosskit-avx2.so")
zeros = [ctypes.c_uint64(0)] * 17  # more than any entry point takes: NULL pointers, zero sizes
def result(lib, name):
    function = getattr(lib, name)
    function.restype = ctypes.c_uint64
    value = function(*zeros)
    return value if name in pointers else value & 0xFFFFFFFF
wrong = []
for name in forwarded + here:
    reached = result(library, name) == result(stand_in, name)
    if reached != (isa == "avx2" and name in forwarded):
        wrong.append(name)
if wrong:
    what = "does not reach" if isa == "avx2" else "reaches"
    print(f"check-library: FAIL: at LOSSKIT_ISA={isa}, liblosskit.so {what} the loaded build in:",
          " ".join(wrong), file=sys.stderr)
    sys.exit(1)
PYTHON
        done
        [ $fail -ne $fail_before ] || echo "dispatch: at LOSSKIT_ISA=avx2 each of the $(echo "$forwarded" | wc -l)" \
            "forwarded functions reaches a stand-in AVX2 build and the $(echo "$here" | wc -l) others do not;" \
            "at LOSSKIT_ISA=x86-64 none does"
    fi
fi

exit $fail
