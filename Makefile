# LossKit — the two commands a newcomer runs (see README.md):
#   make demo   set up (Python packages, release library) and run the main job
#   make test   set up and run every test: Swift, the shipped library's checks, C, the README's C,
#               make install (with CMake and pkg-config), Python, the Python wheel installed in a
#               fresh virtual environment (make test-wheel), a short bounded fuzzing pass over
#               the C ABI (make test-fuzz), and the vocabulary-parallel loss over Open MPI on 2
#               and 4 processes (make test-mpi)
#
# Other targets: make lib (the standalone release library and its CPU-level builds), make install
# and make uninstall (PREFIX=/usr/local, DESTDIR=), make wheel (the Python wheel that carries the
# libraries, in dist/), make setup-system, make bench,
# make fuzz and make test-fuzz (Tests/fuzz), make test-sanitize (Tests/sanitize),
# make setup, make setup-peers, make example, make clean.

PYTHON ?= python3
SWIFT  ?= swift
CC     ?= cc

# The version, read from the header's LK_VERSION_* macros (the one place it is written): the
# sonames, the installed file names, losskit.pc and the CMake package take it from here.
version_part = $(shell sed -n 's/^[#]define LK_VERSION_$(1)  *\([0-9][0-9]*\) *$$/\1/p' include/losskit.h)
VERSION   := $(call version_part,MAJOR).$(call version_part,MINOR).$(call version_part,PATCH)
SOVERSION := $(call version_part,MAJOR)
ifeq ($(shell echo '$(VERSION)' | grep -xE '[0-9]+[.][0-9]+[.][0-9]+'),)
$(error cannot read the version from include/losskit.h: got "$(VERSION)")
endif

# The library users get (DESIGN.md §7): liblosskit.so, built for baseline x86-64, and
# beside it the same source built for AVX2 and for AVX-512 (liblosskit-avx2.so,
# liblosskit-avx512.so), which liblosskit.so loads on a CPU that has them. Each has the Swift
# runtime linked in statically (-static-stdlib) so that it loads without a toolchain, a soname
# (liblosskit.so.MAJOR; a CPU-level build's is its installed name, liblosskit-avx2.so.VERSION),
# and only the lk_* symbols exported. The link liblosskit.so.MAJOR -> liblosskit.so beside it is
# what programs linked with -llosskit load.
LIBDIR = $(CURDIR)/.build/release
LIB    = $(LIBDIR)/liblosskit.so

# The CPU levels, the one table of them: each level's Swift flags on top of the baseline's (the
# builds of make lib, the test runs of make test-swift and the fuzzer's FUZZ_LEVEL take them from
# here), and the number of the marker a shipped build of a wider level carries.
LEVELS             = x86-64 avx2 avx512
LEVEL_FLAGS_x86-64 =
LEVEL_FLAGS_avx2   = -Xswiftc -target-cpu -Xswiftc haswell -Xswiftc -DLK_FMA
LEVEL_FLAGS_avx512 = -Xswiftc -target-cpu -Xswiftc skylake-avx512 -Xswiftc -DLK_FMA -Xswiftc -DLK_WIDE
LEVEL_MARKER_avx2   = 1
LEVEL_MARKER_avx512 = 2
WIDE_LEVELS = $(filter-out x86-64,$(LEVELS))
VARIANTS    = $(WIDE_LEVELS:%=$(LIBDIR)/liblosskit-%.so)

.PHONY: all lib setup setup-python setup-test demo test test-swift test-library test-c test-python example bench clean \
        FORCE fuzz fuzz-mutate test-fuzz test-sanitize install uninstall setup-system test-install test-readme-c \
        wheel setup-wheel test-wheel setup-peers test-mpi

all: lib

lib: $(LIB) $(VARIANTS)

# swift build decides what to rebuild; a .so's mtime changes only when it is relinked, so the
# C programs below relink only then.
$(LIB): FORCE
	scripts/build-variant.sh "" liblosskit.so liblosskit.so.$(SOVERSION)
	ln -sfn liblosskit.so $(LIBDIR)/liblosskit.so.$(SOVERSION)

# A wider level's build: its level's flags, and -D LK_VARIANT, which leaves the dispatcher out.
# LK_VARIANT_LEVEL (C) puts the level's marker in the file and makes lk_cpu_level baseline C code,
# so that liblosskit.so can check a build before it loads it (Sources/CLossKit/internal.c).
$(LIBDIR)/liblosskit-%.so: $(LIB) FORCE
	scripts/build-variant.sh $* liblosskit-$*.so liblosskit-$*.so.$(VERSION) $(LEVEL_FLAGS_$*) \
	    -Xswiftc -DLK_VARIANT -Xcc -DLK_VARIANT_LEVEL=$(LEVEL_MARKER_$*)

# make install [PREFIX=/usr/local] [DESTDIR=] and make uninstall (scripts/install.sh): the header,
# the stripped library liblosskit.so.VERSION with its links liblosskit.so.MAJOR and liblosskit.so,
# its CPU-level builds beside it, losskit.pc and the CMake package LossKit (LossKit::losskit).
# install builds the libraries first only when one is missing or a file it is built from is newer
# than its last build (.build/release/.built-FILE, scripts/build-variant.sh), so that `make lib`
# then `sudo make install` runs no Swift as root (root's PATH may lack swift, and a build as root
# would leave root-owned files in .build).
PREFIX     ?= /usr/local
DESTDIR    ?=
libdir     ?= $(PREFIX)/lib
includedir ?= $(PREFIX)/include
LIB_INPUTS  = Package.swift include/losskit.h scripts/build-variant.sh scripts/exports.map Sources
LIB_CURRENT = $(shell for so in $(LIB) $(VARIANTS); do built="$$(dirname $$so)/.built-$$(basename $$so)"; \
                  [ -f "$$so" ] && [ -f "$$built" ] && [ -z "$$(find $(LIB_INPUTS) -newer "$$built" -print -quit)" ] || exit 0; \
              done; echo yes)
INSTALL_ENV = VERSION='$(VERSION)' PREFIX='$(PREFIX)' libdir='$(libdir)' includedir='$(includedir)' \
              DESTDIR='$(DESTDIR)'

install: $(if $(LIB_CURRENT),,lib)
	$(INSTALL_ENV) scripts/install.sh install

uninstall:
	$(INSTALL_ENV) scripts/install.sh uninstall

# What a target installs from PyPI is installed once per list: build/stamps/ keeps a copy of each
# list as it was installed, and pip runs again only when the list changes (or after make clean),
# so that a warm make test does not spend its time in pip's resolver.
STAMPS = build/stamps
PIP    = $(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore

$(STAMPS)/%.txt: bindings/python/%.txt
	$(PIP) -r $<
	@mkdir -p $(STAMPS) && cp $< $@

# Python packages from PyPI (NumPy, scikit-learn for the demo's dataset) and the losskit package
# itself, editable, so `import losskit` works from any directory: installed again whenever the
# package Python finds is not this checkout's.
setup-python: $(STAMPS)/requirements.txt
	@$(PYTHON) -c 'import importlib.util as u, sys; s = u.find_spec("losskit"); \
	    sys.exit(not (s and s.origin == "$(CURDIR)/bindings/python/losskit/__init__.py"))' \
	    || $(PIP) -e bindings/python

setup: setup-python lib

# What the tests run with besides the package (bindings/python/requirements-test.txt): pytest,
# mpmath (the exact references of the accuracy suite).
setup-test: setup-python $(STAMPS)/requirements-test.txt

# The peers the Python tests run against or adapt to (torch, pytorch-crf, jax, optax, ...), from
# PyPI (bindings/python/requirements-peers.txt): make test installs them, make demo does not (the
# torch wheel brings several GB of CUDA packages). A test whose peer is missing fails.
setup-peers: $(STAMPS)/requirements-peers.txt

demo: setup
	$(PYTHON) demo/digits.py

# The checks run side by side, TEST_JOBS at a time (one per core by default), the longest first;
# -O prints each one's output whole when it ends. test-python's parts fill the cores for most of
# the run, and the others, mostly one process each, fill what they leave.
TEST_JOBS ?= $(shell nproc)
CHECKS     = test-python test-fuzz test-wheel test-swift test-install test-c test-library test-readme-c test-mpi
test: setup setup-test setup-system setup-peers setup-wheel
	$(MAKE) --no-print-directory -j$(TEST_JOBS) -O $(CHECKS)

# System tools the tests use beyond Swift (cmake, pkg-config, a C++ compiler, binutils, Open
# MPI), from apt-get, only those missing (scripts/setup-system.sh); not needed by make demo.
setup-system:
	scripts/setup-system.sh

# The Swift suite, compiled once (baseline x86-64, release, in .build-test) and run once per CPU
# level this machine has. LOSSKIT_ISA caps the level, and the library's dispatcher then loads make
# lib's build of that level from beside the real file its code was loaded from, here the test
# bundle: the builds are linked into the test build's folder. CPULevelTests proves that each run
# reaches its level (lk_cpu_level against LOSSKIT_TEST_LEVEL and the CPU's flags). The tests that
# go through the C entry points thus run each level's build; the @testable ones that call internal
# Swift functions directly run the baseline code at every level. The tests that count the threads a
# call was split across (SPLIT_COUNTING_TESTS) read the baseline's counter, which a call forwarded
# to another level's build never moves, so they run at the baseline only; the other levels' splits
# are checked by the Python suite (per level) and test-c's thread-load (the top level).
TEST_DIR = $(CURDIR)/.build-test/release
SPLIT_COUNTING_TESTS = ThreadTests|threadsDoNotChangeBits|sameBitsAtAnyThreadCount
test-swift: lib
	$(SWIFT) build -c release --build-tests --scratch-path .build-test -Xswiftc -enable-testing
	ln -sfn $(VARIANTS) $(TEST_DIR)/
	for level in $$(scripts/cpu-levels.sh $(LIB) $(LEVELS)); do \
	    echo "== Swift tests, $$level"; \
	    if [ $$level = x86-64 ]; then skip=; else skip='$(SPLIT_COUNTING_TESTS)'; fi; \
	    LOSSKIT_ISA=$$level LOSSKIT_TEST_LEVEL=$$level \
	        $(SWIFT) test -c release --scratch-path .build-test --skip-build $${skip:+--skip "$$skip"} || exit 1; \
	done

# The shipped library stands alone, exports exactly the header's functions, and the header
# compiles as C11 and C++ with every warning an error.
test-library: lib
	for so in $(LIB) $(VARIANTS); do scripts/check-library.sh $$so include/losskit.h || exit 1; done

# make install into temporary prefixes, then CMake and pkg-config projects built against them
# outside the repository, readelf and nm on every installed library, make uninstall
# (Tests/install/test-install.sh).
test-install: setup-system lib
	Tests/install/test-install.sh

# The README's C blocks and its build command, compiled and run verbatim (Tests/readme/test-c.sh).
test-readme-c: lib
	Tests/readme/test-c.sh

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

# The vocabulary-parallel example over MPI (bindings/c/vocab_parallel_mpi.c): Open MPI from
# Debian's packages (make setup-system), real processes on this machine, 2 and 4 ranks (4 on two
# cores: --oversubscribe); each rank checks its loss and gradient columns against lk_dense on the
# whole rows. Open MPI refuses to run as root unless told it may (a container's CI runs as root).
MPIRUN = OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 mpirun
build/vocab-parallel-mpi: bindings/c/vocab_parallel_mpi.c include/losskit.h $(LIB)
	@mkdir -p build
	mpicc -std=c11 -Wall -Wextra -Werror -Iinclude bindings/c/vocab_parallel_mpi.c \
	    -L$(LIBDIR) -llosskit -Wl,-rpath,$(LIBDIR) -lm -o $@

test-mpi: setup-system build/vocab-parallel-mpi
	$(MPIRUN) -np 2 build/vocab-parallel-mpi
	$(MPIRUN) -np 4 build/vocab-parallel-mpi

# The Python suite (bindings/python/tests) against the library just built (LOSSKIT_LIBRARY: not one
# the system loader would find first), at every CPU level this machine has (scripts/test-python.sh:
# one serial pytest process per part, the parts side by side). LOSSKIT_STRICT=1: a skipped test
# fails (tests/conftest.py), so a missing peer or build cannot pass as a check made. At the widest
# level (the build users get here), every file; at each narrower level (LOSSKIT_ISA caps the level
# liblosskit.so loads), the files whose results come from that level's kernels (PY_KERNEL_TESTS:
# every structure's numerics against exact arithmetic, references, finite differences and peers'
# closed forms, and the trust suites). The other files check Python code — the adapters, the
# peers' conventions, the README's examples, the demo, the binding's plumbing and how it finds
# the library (test_finding) — or the loader (test_trust_loading caps the level itself), none of
# which depends on the level the kernels run at; the Swift suite runs at every level too.
PY_KERNEL_TESTS = test_accuracy.py test_angular.py test_chains.py test_hessian.py \
                  test_lists.py test_lsoftmax.py test_reference.py test_trust_angular.py \
                  test_shaping.py test_trust_chains.py test_trust_extreme.py test_trust_flat.py \
                  test_trust_lsoftmax_weights.py test_linear.py test_vocab_parallel.py
test-python: lib setup-test
	levels=$$(scripts/cpu-levels.sh $(LIB) $(LEVELS)) && \
	    PYTHON=$(PYTHON) scripts/test-python.sh $(LIB) "$(PY_KERNEL_TESTS)" $$levels

# The Python wheel: dist/losskit-VERSION-py3-none-manylinux_2_Y_x86_64.whl, one wheel for every
# Python >= 3.9, carrying the three libraries stripped (scripts/stage-libs.sh) in the package
# folder; VERSION and 2.Y (the oldest glibc the libraries load on) are read by
# bindings/python/setup.py. Built from a fresh copy of the package in build/wheel, so that no
# earlier build's files slip into it.
WHEEL_SRC = build/wheel/src
wheel: lib setup-wheel
	rm -rf build/wheel dist/losskit-*.whl
	mkdir -p $(WHEEL_SRC)/losskit dist
	cp bindings/python/pyproject.toml bindings/python/setup.py $(WHEEL_SRC)/
	cp bindings/python/losskit/*.py $(WHEEL_SRC)/losskit/
	rm -f $(WHEEL_SRC)/losskit/_version.py
	scripts/stage-libs.sh $(WHEEL_SRC)/losskit
	LOSSKIT_HEADER=$(CURDIR)/include/losskit.h $(PYTHON) -m build --wheel --quiet --outdir dist $(WHEEL_SRC)
	@ls -l dist/losskit-*.whl

# What building and checking the wheel takes: build and auditwheel from PyPI
# (bindings/python/requirements-wheel.txt), and a working `python3 -m venv` for test-wheel's
# fresh virtual environment (Debian's system Python needs the python3-venv package for it).
setup-wheel: $(STAMPS)/requirements-wheel.txt $(STAMPS)/venv

$(STAMPS)/venv:
	tmp=$$(mktemp -d) && $(PYTHON) -m venv "$$tmp/venv" >/dev/null 2>&1; ok=$$?; rm -rf "$$tmp"; \
	    [ $$ok -eq 0 ] || { apt-get update -qq && apt-get install -y -qq python3-venv; }
	@mkdir -p $(STAMPS) && touch $@

# The wheel as a user gets it (scripts/test-wheel.sh): its tag against auditwheel, its size, the
# bundled libraries (readelf, nm), then installed into a fresh virtual environment and used from
# a temporary folder with no swift on PATH and the repository out of reach, README examples too.
test-wheel: wheel
	PYTHON=$(PYTHON) scripts/test-wheel.sh dist/losskit-*.whl

# The benchmark (bench/bench.py): every contender installed, at 1 and 2 threads, then what
# each CPU level gains. The peers are those of make setup-peers (bench/install-peers.sh: a subset).
bench: lib
	$(PYTHON) bench/bench.py --threads 1
	$(PYTHON) bench/bench.py --threads 2
	$(PYTHON) bench/bench.py --threads 1 --levels

# The C-ABI fuzzer (Tests/fuzz/README.md): libFuzzer and AddressSanitizer from the clang beside
# Swift's toolchain, against an ASan build of the library with coverage feedback for libFuzzer
# (.build-asan-cov; a release build, so Swift's overflow and bounds traps stay on). `make fuzz` runs it for
# FUZZ_SECONDS on a working copy of the seed corpus (build/fuzz-corpus); crash inputs go to
# build/fuzz-crashes. `make test-fuzz` is the short bounded pass in `make test`: every seed of the
# committed corpus once, then `make fuzz-mutate`: a fixed number of mutations with a fixed seed.
SWIFT_BIN    := $(dir $(shell readlink -f "$$(command -v $(SWIFT))"))
FUZZ_CC      ?= $(SWIFT_BIN)clang
FUZZ_SECONDS ?= 600
FUZZ_RUNS    ?= 100000
# The CPU level whose kernels are fuzzed (one of LEVELS above, with its LEVEL_FLAGS_*), each in
# its own build folder.
FUZZ_LEVEL   ?= x86-64
FUZZ_SUFFIX   = $(if $(filter-out x86-64,$(FUZZ_LEVEL)),-$(FUZZ_LEVEL))
ASAN_DIR      = $(CURDIR)/.build-asan-cov$(FUZZ_SUFFIX)/release
FUZZER        = build/fuzz-losskit$(FUZZ_SUFFIX)
# Swift's own crash handler would race ASan's report; a Swift trap (ud2) is reported by ASan too.
FUZZ_ENV      = SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=handle_sigill=1:detect_leaks=1

$(ASAN_DIR)/liblosskit.so: FORCE
	$(SWIFT) build -c release --scratch-path .build-asan-cov$(FUZZ_SUFFIX) --sanitize=address \
	    -Xswiftc -sanitize-coverage=edge,trace-cmp,inline-8bit-counters,pc-table $(LEVEL_FLAGS_$(FUZZ_LEVEL))

$(FUZZER): Tests/fuzz/fuzz_losskit.c include/losskit.h $(ASAN_DIR)/liblosskit.so
	@mkdir -p build
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address -fuse-ld=lld -Wall -Wextra -Werror -Iinclude \
	    Tests/fuzz/fuzz_losskit.c -L$(ASAN_DIR) -llosskit -Wl,-rpath,$(ASAN_DIR) -lm -o $@

fuzz: $(FUZZER)
	@mkdir -p build/fuzz-corpus build/fuzz-crashes
	$(FUZZ_ENV) $(FUZZER) -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	    -artifact_prefix=build/fuzz-crashes/ build/fuzz-corpus Tests/fuzz/corpus

# The harness's own checks, made to fire on known answers (Tests/fuzz/harness_checks.c).
build/fuzz-harness-checks: Tests/fuzz/harness_checks.c Tests/fuzz/fuzz_losskit.c include/losskit.h $(LIB)
	@mkdir -p build
	$(FUZZ_CC) -g -O1 -fsanitize=address -fuse-ld=lld -Wall -Wextra -Werror -Wno-unused-function -Iinclude \
	    Tests/fuzz/harness_checks.c -L$(LIBDIR) -llosskit -Wl,-rpath,$(LIBDIR) -lm -o $@

test-fuzz: $(FUZZER) build/fuzz-harness-checks
	build/fuzz-harness-checks
	$(FUZZ_ENV) $(FUZZER) -timeout=10 Tests/fuzz/corpus/*
	$(MAKE) fuzz-mutate

# Mutations from the seeds with a fixed seed (FUZZ_RUNS of them): bounded and repeatable, about
# 20 s here on an idle machine (Tests/fuzz/README.md).
fuzz-mutate: $(FUZZER)
	@rm -rf build/fuzz-test-corpus && mkdir -p build/fuzz-test-corpus build/fuzz-crashes
	$(FUZZ_ENV) $(FUZZER) -seed=1 -runs=$(FUZZ_RUNS) -timeout=10 \
	    -artifact_prefix=build/fuzz-crashes/ build/fuzz-test-corpus Tests/fuzz/corpus

# Sanitizer runs (Tests/sanitize/README.md), outside `make test`: the Python suite against the
# ASan library (leak checking on, CPython's own exit-time leaks suppressed) and against a TSan
# build; resident memory over 10^5 calls of each entry point; the Swift suite under ASan.
# The sanitizer runtimes are preloaded into the real interpreter (not a pyenv shim script or a
# shell, which would be checked too); Swift's TSan runtime intercepts libdispatch, which is then
# preloaded too. Each run is the suite, then calls large enough to really split across threads.
TSAN_DIR  = $(CURDIR)/.build-tsan/release
RT_DIR    = $(shell $(FUZZ_CC) -print-resource-dir)/lib/linux
PYEXE     = $(shell $(PYTHON) -c 'import sys; print(sys.executable)')
ASAN_PY   = env SWIFT_BACKTRACE=enable=no PYTHONMALLOC=malloc PYTHONPATH=$(CURDIR)/bindings/python \
            LD_PRELOAD=$(RT_DIR)/libclang_rt.asan-x86_64.so \
            LOSSKIT_LIBRARY=$(ASAN_DIR)/liblosskit.so ASAN_OPTIONS=detect_leaks=1 \
            LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/sanitize/lsan-python.supp:print_suppressions=0 $(PYEXE)
TSAN_PY   = env SWIFT_BACKTRACE=enable=no PYTHONMALLOC=malloc PYTHONPATH=$(CURDIR)/bindings/python \
            TSAN_OPTIONS=halt_on_error=1 \
            LD_PRELOAD="$(RT_DIR)/libclang_rt.tsan-x86_64.so $(SWIFT_BIN)../lib/swift/linux/libdispatch.so" \
            LOSSKIT_LIBRARY=$(TSAN_DIR)/liblosskit.so $(PYEXE)

$(TSAN_DIR)/liblosskit.so: FORCE
	$(SWIFT) build -c release --scratch-path .build-tsan --sanitize=thread

build/rss-flat: Tests/sanitize/rss_flat.c include/losskit.h $(LIB)
	@mkdir -p build
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -Iinclude Tests/sanitize/rss_flat.c \
	    -L$(LIBDIR) -llosskit -Wl,-rpath,$(LIBDIR) -lpthread -o $@

test-sanitize: lib setup-test $(ASAN_DIR)/liblosskit.so $(TSAN_DIR)/liblosskit.so build/rss-flat
	@echo "== Python tests, ASan + LeakSanitizer"
	cd bindings/python && $(ASAN_PY) -m pytest -q -p no:cacheprovider tests
	cd bindings/python && $(ASAN_PY) $(CURDIR)/Tests/sanitize/split_calls.py
	@echo "== Python tests, TSan"
	cd bindings/python && $(TSAN_PY) -m pytest -q -p no:cacheprovider tests
	cd bindings/python && $(TSAN_PY) $(CURDIR)/Tests/sanitize/split_calls.py
	@echo "== Resident memory over 10^5 calls per entry point"
	build/rss-flat 100000
	@echo "== Swift tests, ASan"
	SWIFT_BACKTRACE=enable=no $(SWIFT) test -c release --scratch-path .build-test-asan --sanitize=address \
	    --disable-xctest \
	    -Xswiftc -enable-testing

clean:
	rm -rf .build $(WIDE_LEVELS:%=.build-%) .build-asan-cov* .build-tsan .build-test .build-test-* build dist
