# Benchmarks (crate converge-benches). Included by the top-level Makefile,
# which defines CARGO, ROOT and TARGET_DIR.
#   make bench        quick suite (< 5 min on 2 shared cores) -> bench-results/quick.{json,svg}
#   make bench-full   full suite (1M and 10M keys)            -> bench-results/full.{json,svg}
#   make bench-smoke  every workload once on tiny sizes (part of make test)
# RocksDB is built with the same flags in every profile, so the release
# build of the runner reuses the cached C++ objects.

BENCH_OUT := $(ROOT)/bench-results

.PHONY: bench bench-build bench-full bench-smoke bench-causal bench-gc

# Release builds use one selection too, so bench, bench-full and
# bench-python-rust share one release build.
bench-build: setup
	$(CARGO) build --release -q $(CARGO_SEL)

bench: bench-build
	$(TARGET_DIR)/release/report --suite quick --out $(BENCH_OUT)

bench-full: bench-build
	$(TARGET_DIR)/release/report --suite full --out $(BENCH_OUT)

# Dev profile: shares the build of `make test` (same selection).
bench-smoke: setup
	$(CARGO) build -q $(CARGO_SEL)
	$(TARGET_DIR)/debug/report --suite smoke --out $(TARGET_DIR)/bench-smoke
	d=$$(mktemp -d) && $(TARGET_DIR)/debug/feed $$d 2000 >/dev/null && $(TARGET_DIR)/debug/token_sizes $$d >/dev/null; s=$$?; rm -rf $$d; exit $$s
	$(TARGET_DIR)/debug/gc --keys 2000 --deletes 2000 >/dev/null 2>&1

# Deletes and collection: space before and after on three replicas, delete
# throughput against raw RocksDB, OR-Set metadata (BENCHMARKS.md).
bench-gc: bench-build
	$(TARGET_DIR)/release/gc --keys $(or $(KEYS),1000000)

# Sizes of tokens and dependencies, and the changes feed (BENCHMARKS.md).
bench-causal: bench-build
	d=$$(mktemp -d) && $(TARGET_DIR)/release/token_sizes $$d && $(TARGET_DIR)/release/feed $$d && $(TARGET_DIR)/release/group_commit $$d; s=$$?; rm -rf $$d; exit $$s

TEST_TARGETS += bench-smoke
