# Fuzzing with cargo-fuzz (libFuzzer). Included by the top-level Makefile,
# which defines CARGO, TARGET_DIR and ROOT and exports CC/CXX (ccache).
# docs/RELIABILITY.md ("Fuzzing") has the targets, the findings and the
# figures.
#
#   make fuzz          build with AddressSanitizer and run every target for
#                      FUZZ_SECONDS (default 60) each; prints execs/target
#   make fuzz-smoke    (part of make test) build without a sanitizer, run
#                      every target over its seed corpus plus
#                      FUZZ_SMOKE_SECONDS (default 5) of mutation
#   make fuzz-corpus   regenerate the checked-in seed corpora (fuzz/corpus)
#   make fuzz-setup    install cargo-fuzz (pinned) if missing
#
# The toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its
# unstable flags (-Zsanitizer) to rustc. The fuzz crate is its own
# workspace (fuzz/Cargo.toml), built in its own target directories under
# $(TARGET_DIR), one per sanitizer, so neither build evicts the other and
# the main workspace's build is untouched. Its RocksDB C++ is compiled with
# the main build's compiler and flags, so ccache serves it. The
# AddressSanitizer build instruments RocksDB's C++ too, so it compiles
# RocksDB once more per machine (cached by ccache from then on).
#
# Inputs that crash a target are written to fuzz/artifacts/<target>-*;
# reproduce with `$(FUZZ_ASAN_BIN)/<target> fuzz/artifacts/<file>`.

CARGO_FUZZ_VERSION := 0.13.2
CARGO_FUZZ_ROOT := $(TARGET_DIR)/tools/cargo-fuzz-$(CARGO_FUZZ_VERSION)
CARGO_FUZZ := $(CARGO_FUZZ_ROOT)/bin/cargo-fuzz
FUZZ_TARGETS := codec merge sync_message sync_session changes ffi
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 5
FUZZ_TRIPLE := $(shell rustc -vV 2>/dev/null | sed -n 's/^host: //p')
FUZZ_PLAIN_DIR := $(TARGET_DIR)/fuzz-plain
FUZZ_ASAN_DIR := $(TARGET_DIR)/fuzz-asan
FUZZ_PLAIN_BIN := $(FUZZ_PLAIN_DIR)/$(FUZZ_TRIPLE)/release
FUZZ_ASAN_BIN := $(FUZZ_ASAN_DIR)/$(FUZZ_TRIPLE)/release
# cargo fuzz build: release with debug assertions and overflow checks.
FUZZ_BUILD := cd $(ROOT) && RUSTC_BOOTSTRAP=1 $(CARGO_FUZZ) fuzz build --fuzz-dir fuzz -O -a

.PHONY: fuzz fuzz-smoke fuzz-corpus fuzz-setup fuzz-build-plain fuzz-build-asan

$(CARGO_FUZZ):
	CARGO_TARGET_DIR=$(TARGET_DIR)/tools/cargo-fuzz-build \
	  $(CARGO) install cargo-fuzz --version =$(CARGO_FUZZ_VERSION) --locked --root $(CARGO_FUZZ_ROOT)

fuzz-setup: setup $(CARGO_FUZZ)

fuzz-build-plain: fuzz-setup
	$(FUZZ_BUILD) -s none --target-dir $(FUZZ_PLAIN_DIR)

# AddressSanitizer (-Zsanitizer=address). The cc crate (1.11) compiles every
# C and C++ file of the build with -fsanitize=address when the Rust code is
# (it reads CARGO_CFG_SANITIZE), so RocksDB's C++ is instrumented too;
# CXXFLAGS adds frame pointers for readable C++ stacks (on top of the main
# build's CXXFLAGS, which this target-specific variable replaces for the cc
# crate). libFuzzer itself must not be instrumented: it comes prebuilt
# from the plain build (CUSTOM_LIBFUZZER_PATH). These flags are part of
# ccache's key: change them and RocksDB compiles again (about 12 minutes
# on 2 idle cores).
fuzz-build-asan: fuzz-build-plain
	lib=$$(ls -t $(FUZZ_PLAIN_DIR)/$(FUZZ_TRIPLE)/release/build/libfuzzer-sys-*/out/libfuzzer.a | head -1) && \
	  test -n "$$lib" && \
	  export CUSTOM_LIBFUZZER_PATH=$$lib \
	    CXXFLAGS_$(subst -,_,$(FUZZ_TRIPLE))="$(CXXFLAGS) -fsanitize=address -fno-omit-frame-pointer" && \
	  $(FUZZ_BUILD) -s address --target-dir $(FUZZ_ASAN_DIR)

fuzz-smoke: fuzz-build-plain
	bash $(ROOT)/fuzz/run.sh $(FUZZ_PLAIN_BIN) $(FUZZ_SMOKE_SECONDS) $(FUZZ_TARGETS)

fuzz: fuzz-build-asan
	@echo "fuzz: $(FUZZ_SECONDS) s per target, AddressSanitizer (Rust and RocksDB's C++), $$(date -u +%FT%TZ)"
	bash $(ROOT)/fuzz/run.sh $(FUZZ_ASAN_BIN) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# A plain release build (no libFuzzer, no instrumentation) of the
# generator, in its own target directory.
fuzz-corpus: setup
	cd $(ROOT)/fuzz && CARGO_TARGET_DIR=$(TARGET_DIR)/fuzz-tools \
	  $(CARGO) run --release --example gen_corpus -- $(ROOT)/fuzz/corpus

TEST_TARGETS += fuzz-smoke
