# LossKit — the two commands a newcomer runs (see README.md):
#   make demo   set up (Python packages, release library) and run the main job
#   make test   set up and run every test: Swift, the shipped library's checks, C, Python
#
# Other targets: make lib (the standalone release library and its CPU-level builds), make bench,
# make setup, make example, make clean.

PYTHON ?= python3
SWIFT  ?= swift
CC     ?= cc

# The library users get (DESIGN.md §7; issue 3): liblosskit.so, built for baseline x86-64, and
# beside it the same source built for AVX2 and for AVX-512 (liblosskit-avx2.so,
# liblosskit-avx512.so), which liblosskit.so loads on a CPU that has them. Each has the Swift
# runtime linked in statically (-static-stdlib) so that it loads without a toolchain, a soname,
# and only the lk_* symbols exported.
LIBDIR = $(CURDIR)/.build/release
LIB    = $(LIBDIR)/liblosskit.so
VARIANTS = $(LIBDIR)/liblosskit-avx2.so $(LIBDIR)/liblosskit-avx512.so
# LK_VARIANT_LEVEL (C) puts the level's marker in the file and makes lk_cpu_level baseline C code,
# so that liblosskit.so can check a build before it loads it (Sources/CLossKit/internal.c).
AVX2_FLAGS   = -Xswiftc -target-cpu -Xswiftc haswell -Xswiftc -DLK_FMA -Xswiftc -DLK_VARIANT \
               -Xcc -DLK_VARIANT_LEVEL=1
AVX512_FLAGS = -Xswiftc -target-cpu -Xswiftc skylake-avx512 -Xswiftc -DLK_FMA -Xswiftc -DLK_WIDE \
               -Xswiftc -DLK_VARIANT -Xcc -DLK_VARIANT_LEVEL=2

.PHONY: all lib setup setup-python demo test test-swift test-library test-c test-python example bench clean FORCE

all: lib

lib: $(LIB) $(VARIANTS)

# swift build decides what to rebuild; a .so's mtime changes only when it is relinked, so the
# C programs below relink only then.
$(LIB): FORCE
	scripts/build-variant.sh "" liblosskit.so

$(LIBDIR)/liblosskit-avx2.so: $(LIB) FORCE
	scripts/build-variant.sh avx2 liblosskit-avx2.so $(AVX2_FLAGS)

$(LIBDIR)/liblosskit-avx512.so: $(LIB) FORCE
	scripts/build-variant.sh avx512 liblosskit-avx512.so $(AVX512_FLAGS)

# Python packages from PyPI (NumPy, pytest, scikit-learn for the demo's dataset) and the
# losskit package itself, editable, so `import losskit` works from any directory.
setup-python:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r bindings/python/requirements.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e bindings/python

setup: setup-python lib

demo: setup
	$(PYTHON) demo/digits.py

test: setup test-swift test-library test-c test-python

# The Swift suite, once per CPU level this machine runs (release builds, each in its own folder:
# SwiftPM compiles a module for one CPU level).
LEVEL_FLAGS_x86-64 =
LEVEL_FLAGS_avx2   = -Xswiftc -target-cpu -Xswiftc haswell -Xswiftc -DLK_FMA
LEVEL_FLAGS_avx512 = -Xswiftc -target-cpu -Xswiftc skylake-avx512 -Xswiftc -DLK_FMA -Xswiftc -DLK_WIDE
test-swift: lib
	for level in $$(scripts/cpu-levels.sh $(LIB)); do \
	    echo "== Swift tests, $$level"; \
	    $(MAKE) --no-print-directory test-swift-$$level || exit 1; \
	done

test-swift-%:
	$(SWIFT) test -c release --scratch-path .build-test-$* -Xswiftc -enable-testing $(LEVEL_FLAGS_$*)

# The shipped library stands alone, exports exactly the header's functions, and the header
# compiles as C11 and C++ with every warning an error.
test-library: lib
	for so in $(LIB) $(VARIANTS); do scripts/check-library.sh $$so include/losskit.h || exit 1; done

build/example: bindings/c/example.c include/losskit.h $(LIB)
	@mkdir -p build
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude bindings/c/example.c \
	    -L$(LIBDIR) -llosskit -Wl,-rpath,$(LIBDIR) -lm -o $@

build/c-tests: Tests/c/c_tests.c include/losskit.h $(LIB)
	@mkdir -p build
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude Tests/c/c_tests.c \
	    -L$(LIBDIR) -llosskit -Wl,-rpath,$(LIBDIR) -lm -lpthread -o $@

# Threads under load (Tests/c/thread_load.c): 16 threads x 120,000 mixed calls against serial
# results, and every structure at threads = 1, 2, 16 on inputs that split.
build/thread-load: Tests/c/thread_load.c include/losskit.h $(LIB)
	@mkdir -p build
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -pedantic -Iinclude Tests/c/thread_load.c \
	    -L$(LIBDIR) -llosskit -Wl,-rpath,$(LIBDIR) -lm -lpthread -o $@

example: build/example
	build/example

test-c: build/example build/c-tests build/thread-load
	build/example
	build/c-tests
	build/thread-load

# pytest, once per CPU level (LOSSKIT_ISA caps the level liblosskit.so loads).
test-python: lib
	for level in $$(scripts/cpu-levels.sh $(LIB)); do \
	    echo "== Python tests, $$level"; \
	    (cd bindings/python && LOSSKIT_ISA=$$level $(PYTHON) -m pytest -q tests) || exit 1; \
	done

# The benchmark (bench/bench.py): every contender installed, at 1 and 2 threads, then what
# each CPU level gains. Peers are optional: bench/install-peers.sh installs them on request.
bench: lib
	$(PYTHON) bench/bench.py --threads 1
	$(PYTHON) bench/bench.py --threads 2
	$(PYTHON) bench/bench.py --threads 1 --levels

clean:
	rm -rf .build .build-avx2 .build-avx512 .build-test-* build
