# Benchmarks (crate converge-benches). Included by the top-level Makefile,
# which defines CARGO, ROOT and TARGET_DIR.
#   make bench        quick suite (< 5 min on 2 shared cores) -> bench-results/quick.{json,svg}
#   make bench-full   full suite (1M and 10M keys)            -> bench-results/full.{json,svg}
#   make bench-smoke  every workload once on tiny sizes (part of make test)
# RocksDB is built with the same flags in every profile, so the release
# build of the runner reuses the cached C++ objects.

BENCH_OUT := $(ROOT)/bench-results

.PHONY: bench bench-full bench-smoke

bench:
	$(CARGO) run --release -q -p converge-benches --bin report -- --suite quick --out $(BENCH_OUT)

bench-full:
	$(CARGO) run --release -q -p converge-benches --bin report -- --suite full --out $(BENCH_OUT)

# Dev profile: shares the build of `cargo test --workspace` in make test.
bench-smoke:
	$(CARGO) run -q -p converge-benches --bin report -- --suite smoke --out $(TARGET_DIR)/bench-smoke

TEST_TARGETS += bench-smoke
