# Converge — top-level build. `make test` and `make demo` do their own set-up
# on a fresh Debian machine with the Rust toolchain.
#
# RocksDB's C++ takes 12-13 minutes to compile cold on 2 cores. It is
# compiled once per profile and machine, never more:
# - every cargo invocation sees the same compiler environment. CC and CXX
#   are fixed below (they do not depend on whether ccache happens to be
#   installed when make parses this file), and every target that runs cargo
#   depends on `setup`, which installs ccache before the first compile.
#   librocksdb-sys's build script reruns when CC or CXX change;
# - every dev-profile cargo invocation selects the same packages and targets
#   ($(CARGO_SEL)), so cargo resolves the same features for every dependency
#   and librocksdb-sys keeps one fingerprint. `cargo build -p converge-ffi`
#   alone would resolve fewer features (no dev-dependencies, no other
#   members) for librocksdb-sys's build dependencies and rebuild it;
# - librocksdb-sys is compiled with the same flags in every profile
#   ([profile.*.package.librocksdb-sys] in Cargo.toml), so the release build
#   (`make bench`) is served from ccache;
# - CI (.ci/run) keeps its cargo target directory outside the clone
#   ($HOME/.cache/converge/target), so a new clone reuses the build.
# `make check-build-once` (part of `make test`) fails if any of these
# invocations would rebuild librocksdb-sys.
# Per-part targets live in the fragments included below; each adds its test
# target to TEST_TARGETS.

SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
export CARGO_TARGET_DIR ?= $(CURDIR)/target
TARGET_DIR := $(CARGO_TARGET_DIR)
ROOT := $(CURDIR)

# Fixed, whatever is installed now: `setup` installs ccache before any
# compile. Changing these rebuilds RocksDB.
export CC := ccache gcc
export CXX := ccache g++
export CCACHE_MAXSIZE ?= 8G
# RocksDB checksums every WAL record, block and file with CRC32C, and picks
# the hardware instructions (SSE4.2's crc32, PCLMULQDQ) at compile time
# only: librocksdb-sys passes -msse4.2 only when rustc targets SSE4.2,
# which the default x86-64 target does not, so RocksDB computed CRC32C in
# software (3-5 % of a counter increment's time, 16-25 % of a merge of
# 1,160-byte states; BENCHMARKS.md, "RocksDB's CRC32C in hardware"). Every
# x86-64 CPU since 2010 has both. Fixed like CC and CXX: changing it
# rebuilds RocksDB.
ifeq ($(shell uname -m),x86_64)
export CXXFLAGS := -msse4.2 -mpclmul
else
export CXXFLAGS :=
endif

# The one package/target selection of every dev-profile cargo build (the
# same features as `cargo test --workspace` and clippy --all-targets).
CARGO_SEL := --workspace --all-targets

TEST_TARGETS :=

.PHONY: help setup lint test test-rust demo fmt clippy clean check-build-once lib

help:
	@echo "make test    - set up, lint, and run every test (Rust, C/C++, Python, bench smoke)"
	@echo "make demo    - a three-node cluster on loopback: partition, conflicts, healing"
	@echo "make cluster-test - five nodes through rounds of partitions, loss and kill -9"
	@echo "make quorum-test - quorums: N=5 W=3 R=3 with every pair of nodes down; a node joining and hand-off"
	@echo "make bench   - quick benchmark report (bench-results/quick.json)"
	@echo "make bench-causal - token/dependency sizes, changes feed, group commit"
	@echo "make bench-gc [KEYS=N] - deletes and tombstone collection: space, throughput, metadata"
	@echo "make header  - regenerate include/converge.h"
	@echo "make lib     - build libconverge (.so/.a), the CLI and everything else (dev profile)"
	@echo "make sim SEEDS=N  - deterministic simulation of N seeds (engine/tests/sim.rs)"
	@echo "make soak KILLS=N - kill -9 soak: N SIGKILLs of a writer and of a syncing process"
	@echo "make fuzz    - every fuzz target for FUZZ_SECONDS (default 60) with AddressSanitizer"

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
	$(CARGO) clippy $(CARGO_SEL) -- -D warnings

test-rust: setup
	$(CARGO) test --workspace

-include ffi/ffi.mk
-include bindings/python/python.mk
-include benches/benches.mk
-include engine/sim.mk
-include fuzz/fuzz.mk
-include cli/cli.mk

# After the suites above have built everything: every cargo invocation that
# make test, make demo and the C/Python targets run must find librocksdb-sys
# fresh, and all of them must use the same build of it.
check-build-once: setup
	python3 $(ROOT)/tools/check-build-once.py $(CARGO) \
	  "clippy $(CARGO_SEL)" "test --workspace --no-run" "build $(CARGO_SEL)"

test: setup lint test-rust $(TEST_TARGETS) check-build-once
	@echo "make test: all suites passed"

lib: ffi-lib

# Built with the same selection as `make test`, then run: nothing is
# recompiled after `make test`. Starts three `converge serve` processes on
# loopback (free ports, its own temporary stores) and stops them.
demo: setup
	$(CARGO) build -q $(CARGO_SEL)
	$(TARGET_DIR)/debug/converge demo

clean:
	$(CARGO) clean
	rm -rf bench-results .venv
