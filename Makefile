# LossKit — the two commands a newcomer runs (see README.md):
#   make demo   set up (Python packages, release library) and run the main job
#   make test   set up and run every test: Swift, the shipped library's checks, C, Python
#
# Other targets: make lib (the standalone release library), make setup, make example, make clean.

PYTHON ?= python3
SWIFT  ?= swift
CC     ?= cc

# The library users get: the Swift runtime linked in statically (-static-stdlib) so that it
# loads without a toolchain, a soname, and only the lk_* symbols exported (DESIGN.md §7).
RELEASE_FLAGS = -c release -Xswiftc -static-stdlib \
                -Xlinker -soname=liblosskit.so \
                -Xlinker --version-script=$(CURDIR)/scripts/exports.map
LIBDIR = $(CURDIR)/.build/release
LIB    = $(LIBDIR)/liblosskit.so

.PHONY: all lib setup setup-python demo test test-swift test-library test-c test-python example clean FORCE

all: lib

lib: $(LIB)

# swift build decides what to rebuild; the .so's mtime changes only when it is relinked, so the
# C programs below relink only then.
$(LIB): FORCE
	$(SWIFT) build $(RELEASE_FLAGS)

# Python packages from PyPI (NumPy, pytest, scikit-learn for the demo's dataset) and the
# losskit package itself, editable, so `import losskit` works from any directory.
setup-python:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -r bindings/python/requirements.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e bindings/python

setup: setup-python lib

demo: setup
	$(PYTHON) demo/digits.py

test: setup test-swift test-library test-c test-python

test-swift:
	$(SWIFT) test

# The shipped library stands alone, exports exactly the header's functions, and the header
# compiles as C11 and C++ with every warning an error.
test-library: lib
	scripts/check-library.sh $(LIB) include/losskit.h

build/example: bindings/c/example.c include/losskit.h $(LIB)
	@mkdir -p build
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude bindings/c/example.c \
	    -L$(LIBDIR) -llosskit -Wl,-rpath,$(LIBDIR) -lm -o $@

build/c-tests: Tests/c/c_tests.c include/losskit.h $(LIB)
	@mkdir -p build
	$(CC) -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude Tests/c/c_tests.c \
	    -L$(LIBDIR) -llosskit -Wl,-rpath,$(LIBDIR) -lm -lpthread -o $@

example: build/example
	build/example

test-c: build/example build/c-tests
	build/example
	build/c-tests

test-python: lib
	cd bindings/python && $(PYTHON) -m pytest -q tests

clean:
	rm -rf .build build
