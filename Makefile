# Converge — top-level build. `make test` and `make demo` do their own set-up
# on a fresh Debian machine with the Rust toolchain.
#
# RocksDB's C++ takes ~24 minutes to compile cold on 2 cores. Two things make
# that a once-per-machine cost:
# - ccache wraps the C/C++ compilers (installed here if missing), and
#   librocksdb-sys is built with the same flags in every profile
#   (see [profile.*.package.librocksdb-sys] in Cargo.toml);
# - CI (.ci/run) keeps its cargo target directory outside the clone
#   ($HOME/.cache/converge/target), so a new clone reuses the build.
# Per-part targets live in the fragments included below; each adds its test
# target to TEST_TARGETS.

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target
TARGET_DIR := $(CARGO_TARGET_DIR)
ROOT := $(CURDIR)

ifneq ($(shell command -v ccache 2>/dev/null),)
export CC := ccache gcc
export CXX := ccache g++
export CCACHE_MAXSIZE ?= 8G
endif

TEST_TARGETS :=

.PHONY: help setup lint test test-rust demo fmt clippy clean

help:
	@echo "make test    - set up, lint, and run every test (Rust, C/C++, Python, bench smoke)"
	@echo "make demo    - two replicas diverge and converge"
	@echo "make bench   - quick benchmark report (bench-results/quick.json)"
	@echo "make header  - regenerate include/converge.h"

# System packages RocksDB's build needs: libclang (bindgen), a C++ compiler,
# ccache; valgrind and python3-venv for the C and Python tests.
setup:
	@missing=""; \
	for p in libclang-dev ccache g++ valgrind python3-venv; do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

fmt:
	$(CARGO) fmt --all

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust: setup
	$(CARGO) test --workspace

-include ffi/ffi.mk
-include bindings/python/python.mk
-include benches/benches.mk

test: setup lint test-rust $(TEST_TARGETS)
	@echo "make test: all suites passed"

demo: setup
	$(CARGO) run -q -p converge-cli -- demo

clean:
	$(CARGO) clean
	rm -rf bench-results .venv
