# The node and CLI (cli/): the longer cluster run. The short cluster,
# membership and edge tests are part of `cargo test --workspace` (make test).
.PHONY: cluster-test

# Five `converge serve` processes through rounds of delay, loss, a 2|3
# partition, kill -9 and SIGTERM restarts (cli/tests/cluster_long.rs).
# CONVERGE_CLUSTER_ROUNDS=N (default 3) more rounds; CONVERGE_TEST_SEED=S
# replays a failed run's schedule.
cluster-test: setup
	$(CARGO) test --workspace --test cluster_long -- --ignored --nocapture
