# Python bindings: virtualenv, wheel, tests and benchmark.
# Included by the top-level Makefile, which defines CARGO, ROOT and
# TARGET_DIR (= $CARGO_TARGET_DIR).
#
#   make venv          create $(ROOT)/.venv with pytest, hypothesis, mypy, setuptools, wheel
#   make wheel         build bindings/python/dist/converge-*.whl carrying libconverge
#   make test-python   build libconverge, pip-install the package into the venv,
#                      type-check it (mypy --strict), run pytest
#   make bench-python  per-call and batch timings, Python vs C over the same library
#
# The package bundles the library cargo already built (the dev profile build
# `make test` does); nothing here compiles RocksDB.

PY_DIR := $(ROOT)/bindings/python
VENV := $(ROOT)/.venv
VENV_PY := $(VENV)/bin/python
PY_LIB := $(TARGET_DIR)/debug/libconverge.so
PY_OUT := $(TARGET_DIR)/python
# Install from the source tree with the venv's setuptools (no download per
# build); the built library is named explicitly.
PY_INSTALL := CONVERGE_LIB=$(PY_LIB) $(VENV_PY) -m pip install -q --no-build-isolation --no-deps

.PHONY: venv python-lib wheel test-python bench-python bench-python-rust

venv: $(VENV)/.converge-deps

$(VENV)/.converge-deps: $(PY_DIR)/requirements-dev.txt
	test -x $(VENV_PY) || python3 -m venv $(VENV)
	$(VENV_PY) -m pip install -q -r $(PY_DIR)/requirements-dev.txt
	touch $@

python-lib: ffi-lib

wheel: venv python-lib
	rm -rf $(PY_DIR)/build
	CONVERGE_LIB=$(PY_LIB) $(VENV_PY) -m pip wheel -q --no-build-isolation --no-deps \
	  -w $(PY_DIR)/dist $(PY_DIR)
	@ls -1 $(PY_DIR)/dist/*.whl

# pytest runs from its own directory with the installed package (the source
# tree is not on sys.path; test_install.py checks that). Exit code 5 (no
# tests collected) is a failure like any other non-zero code.
test-python: venv python-lib
	rm -rf $(PY_DIR)/build
	$(PY_INSTALL) --force-reinstall $(PY_DIR)
	cd $(PY_DIR) && $(VENV)/bin/mypy --strict --no-incremental converge
	cd $(PY_DIR)/tests && CONVERGE_HEADER=$(ROOT)/include/converge.h \
	  $(VENV)/bin/pytest -q -p no:cacheprovider .

bench-python: venv python-lib
	rm -rf $(PY_DIR)/build
	$(PY_INSTALL) --force-reinstall $(PY_DIR)
	@mkdir -p $(PY_OUT)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -I$(ROOT)/include $(PY_DIR)/bench/bench_c.c \
	  -L$(TARGET_DIR)/debug -lconverge -Wl,-rpath,$(TARGET_DIR)/debug -o $(PY_OUT)/bench_c
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -shared -fPIC -I$(ROOT)/include \
	  $(PY_DIR)/bench/stub.c -o $(PY_OUT)/libcvgstub.so
	cd $(PY_DIR)/bench && $(VENV_PY) bench.py --c-bench $(PY_OUT)/bench_c \
	  --stub $(PY_OUT)/libcvgstub.so --json $(PY_OUT)/bench.json

TEST_TARGETS += test-python

# Python vs the Rust API on one batch, both over release builds.
bench-python-rust: venv bench-build
	rm -rf $(PY_DIR)/build $(PY_OUT)/release-pkg
	CONVERGE_LIB=$(TARGET_DIR)/release/libconverge.so $(VENV_PY) -m pip install -q \
	  --no-build-isolation --no-deps --target $(PY_OUT)/release-pkg $(PY_DIR)
	cd $(PY_DIR)/bench && PYTHONPATH=$(PY_OUT)/release-pkg $(VENV_PY) batch_vs_rust.py \
	  --rust $(TARGET_DIR)/release/batch_rust
