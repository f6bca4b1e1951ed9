#!/usr/bin/env bash
# Tests the wheel `make wheel` built, the way a user gets it (make test-wheel):
#   1. its name is losskit-V-py3-none-manylinux_2_Y_x86_64.whl, where V is the header's
#      LK_VERSION_* and 2.Y the newest GLIBC_ version the bundled libraries reference (read here
#      with readelf --version-info; setup.py reads it with objdump -T); `auditwheel show` finds
#      the wheel consistent with exactly that tag; the whole wheel is at most 9 MB (9,000,000
#      bytes: three libraries of about 7 MB, deflated to about 2.7 MB each; the budget was 8 MB
#      until lk_dense_bf16 took the wheel to about 8,003,000 bytes);
#   2. it carries liblosskit.so, liblosskit-avx2.so and liblosskit-avx512.so in the package folder,
#      stripped (no .symtab, no .debug_*), NEEDED only libc, libm, libstdc++, libgcc_s (and
#      ld-linux, libpthread, libdl), no RUNPATH but $ORIGIN (the package folder itself), and each
#      passes scripts/check-library.sh (stands alone, exports exactly the header's functions);
#   3. installed with pip into a fresh virtual environment and used from an empty temporary
#      folder, with no swift on PATH and PYTHONPATH, LOSSKIT_LIBRARY, LOSSKIT_ISA unset: the
#      package and its library come from the environment, __version__ = the wheel's version =
#      lk_version(), the CPU level is the one this CPU's flags allow (the CPU-level builds are
#      found beside the library) and LOSSKIT_ISA caps it, and every Python example of README.md
#      runs as pasted, each block on its own.
# Usage: PYTHON=python3 scripts/test-wheel.sh dist/losskit-*.whl
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
[ $# -eq 1 ] || { echo "test-wheel: expected one wheel, got: $*" >&2; exit 1; }
wheel=$(realpath "$1")
fail=0
bad() { echo "test-wheel: FAIL: $*" >&2; fail=1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. Name, tag, auditwheel, size.
version=$(sed -nE 's/^#define LK_VERSION_(MAJOR|MINOR|PATCH)[[:space:]]+([0-9]+)[[:space:]]*$/\2/p' \
          "$root/include/losskit.h" | paste -sd.)
name=$(basename "$wheel")
[[ $name =~ ^losskit-([^-]+)-py3-none-(manylinux_([0-9]+)_([0-9]+)_x86_64)\.whl$ ]] \
    || { echo "test-wheel: FAIL: $name is not losskit-V-py3-none-manylinux_X_Y_x86_64.whl" >&2; exit 1; }
wheel_version=${BASH_REMATCH[1]} tag=${BASH_REMATCH[2]}
[ "$wheel_version" = "$version" ] || bad "wheel version $wheel_version, header says $version"

mkdir "$tmp/unpacked"
"$python" -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$wheel" "$tmp/unpacked"
libs=()
for file in liblosskit.so liblosskit-avx2.so liblosskit-avx512.so; do
    if [ -f "$tmp/unpacked/losskit/$file" ]; then libs+=("$tmp/unpacked/losskit/$file")
    else bad "losskit/$file is not in the wheel"; fi
done
extra=$(cd "$tmp/unpacked" && find . -name '*.so*' ! -path './losskit/liblosskit.so' \
        ! -path './losskit/liblosskit-avx2.so' ! -path './losskit/liblosskit-avx512.so')
[ -z "$extra" ] || bad "unexpected libraries in the wheel: $extra"
[ ${#libs[@]} -eq 3 ] || exit 1

newest=$(for lib in "${libs[@]}"; do readelf --version-info --wide "$lib"; done \
         | grep -oE 'GLIBC_2\.[0-9]+' | sort -t. -k2,2n -u | tail -1)
[ "$tag" = "manylinux_2_${newest#GLIBC_2.}_x86_64" ] \
    || bad "tag $tag, but the newest glibc version the libraries reference is $newest"
audit=$(auditwheel show "$wheel")
echo "$audit"
consistent=$(tr '\n' ' ' <<<"$audit" | grep -oE 'consistent with +the following platform tag: +"[^"]+"' \
             | grep -oE '"[^"]+"' | tr -d '"' || true)
[ "$consistent" = "$tag" ] || bad "auditwheel show says the wheel is consistent with '$consistent', its tag is $tag"

size=$(stat -c %s "$wheel")
echo "wheel: $name, $size bytes"
[ "$size" -le 9000000 ] || bad "the wheel is $size bytes, over 9,000,000"

# 2. The bundled libraries.
allowed='^(libc\.so\.6|libm\.so\.6|libstdc\+\+\.so\.6|libgcc_s\.so\.1'
allowed+='|ld-linux-x86-64\.so\.2|libpthread\.so\.0|libdl\.so\.2)$'
for lib in "${libs[@]}"; do
    file=$(basename "$lib")
    dyn=$(readelf -d "$lib")
    needed=$(grep NEEDED <<<"$dyn" | sed -E 's/.*\[(.*)\]/\1/')
    other=$(grep -vE "$allowed" <<<"$needed" || true)
    [ -z "$other" ] || bad "$file NEEDs $(echo $other)"
    runpath=$(grep -E 'R(UN)?PATH' <<<"$dyn" | sed -E 's/.*\[(.*)\]/\1/' || true)
    [ -z "$runpath" ] || [ "$runpath" = '$ORIGIN' ] || bad "$file has RUNPATH/RPATH $runpath"
    sections=$(readelf -S --wide "$lib")
    if grep -qE '\.symtab|\.debug_' <<<"$sections"; then bad "$file is not stripped"; fi
    echo "$file: $(stat -c %s "$lib") bytes, NEEDED $(echo $needed), RUNPATH ${runpath:-none}"
    "$root/scripts/check-library.sh" "$lib" "$root/include/losskit.h" || bad "$file fails check-library.sh"
done

# 3. A fresh virtual environment, the wheel installed, used from a temporary folder without the
# repository, swift or the variables that point elsewhere.
"$python" -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$wheel"
path=
IFS=: read -ra dirs <<<"$PATH"
for dir in "${dirs[@]}"; do
    [ -n "$dir" ] && [ ! -x "$dir/swift" ] && path=${path:+$path:}$dir
done
mkdir "$tmp/work"
cd "$tmp/work"
run() { env -i HOME="$tmp/work" PATH="$path" "$@"; }
run sh -c '! command -v swift' >/dev/null || bad "swift is still on PATH"

# The level this CPU runs, from its flags (as tests/test_trust_loading.py reads them).
flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
has() { for flag in "$@"; do grep -qw "$flag" <<<"$flags" || return 1; done; }
level=x86-64
if has avx2 fma bmi1 bmi2 movbe popcnt f16c abm; then
    level=avx2
    if has avx512f avx512dq avx512cd avx512bw avx512vl; then level=avx512; fi
fi

cat >"$tmp/check.py" <<'EOF'
import os, sys
from pathlib import Path
import losskit
venv, version, level = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3]
package = Path(losskit.__file__).resolve().parent
library = Path(losskit.library_path()).resolve()
print(f"losskit {losskit.__version__} from {package}; library {library}, {losskit.cpu_level()}")
assert venv in package.parents, f"losskit imported from {package}, not from {venv}"
assert library == package / "liblosskit.so", f"the library loaded is {library}"
assert losskit.__version__ == version == losskit.version(), (losskit.__version__, version, losskit.version())
assert losskit.cpu_level() == os.environ.get("EXPECT", level), losskit.cpu_level()
EOF
run "$tmp/venv/bin/python" "$tmp/check.py" "$tmp/venv" "$version" "$level" || bad "the installed wheel"
run LOSSKIT_ISA=x86-64 EXPECT=x86-64 "$tmp/venv/bin/python" "$tmp/check.py" "$tmp/venv" "$version" "$level" \
    || bad "LOSSKIT_ISA=x86-64 with the installed wheel"

"$python" - "$root/README.md" "$tmp/work" <<'EOF'
import re, sys
from pathlib import Path
# The NumPy-only examples: the "## Use with ..." section's need torch or jax, which this fresh
# environment does not have (bindings/python/tests/test_readme_adapters.py runs them).
sections = re.split(r"^(?=## )", Path(sys.argv[1]).read_text(), flags=re.M)
blocks = [b for s in sections if not s.startswith("## Use with") for b in re.findall(r"```python\n(.*?)```", s, re.S)]
assert len(blocks) >= 2, "the README lost its Python examples"
for i, block in enumerate(blocks, 1):
    Path(sys.argv[2], f"readme_{i}.py").write_text(block)
EOF
for example in readme_*.py; do
    echo "== README.md Python example $example"
    run "$tmp/venv/bin/python" "$example" || bad "README.md's $example fails as pasted"
done

[ $fail -eq 0 ] && echo "test-wheel: $name passes"
exit $fail
