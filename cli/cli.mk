# The node and CLI (cli/): the longer cluster run. The short cluster,
# membership and edge tests are part of `cargo test --workspace` (make test).
.PHONY: cluster-test quorum-test

# Five `converge serve` processes through rounds of delay, loss, a 2|3
# partition, kill -9 and SIGTERM restarts (cli/tests/cluster_long.rs).
# CONVERGE_CLUSTER_ROUNDS=N (default 3) more rounds; CONVERGE_TEST_SEED=S
# replays a failed run's schedule.
cluster-test: setup
	$(CARGO) test --workspace --test cluster_long -- --ignored --nocapture

# The longer quorum runs (cli/tests/quorum_long.rs): N=5 W=3 R=3 with every
# pair of nodes down in turn; a node joining a four-node cluster takes its
# partitions and the others hand theirs off. The short quorum tests
# (quorum.rs, quorum_faults.rs, quorum_input.rs) are in `make test`.
.PHONY: quorum-test
quorum-test: setup
	$(CARGO) test --workspace --test quorum_long -- --ignored --nocapture
