# Reliability runs of the engine: the deterministic simulation and the
# kill -9 soak. `make test` already runs a short slice of each through
# `cargo test --workspace` (test-rust): 200 simulation seeds
# (engine/tests/sim.rs) and a dozen SIGKILLs (engine/tests/crash.rs), so
# nothing here is added to TEST_TARGETS.

SEEDS ?= 2000
KILLS ?= 200
SOAK_KEYS ?= 0

.PHONY: sim soak

# `make sim SEEDS=N [SIM_FIRST=F]`: N seeds from F (default: a new first
# seed each run, printed, so repeated runs explore new schedules). A failing
# seed prints the command that reproduces it.
sim: setup
	@first=$${SIM_FIRST:-$$(( $$(date +%s) % 1000000 * 1000 ))}; \
	echo "make sim: seeds $$first..$$(( first + $(SEEDS) ))"; \
	SIM_FIRST=$$first SIM_SEEDS=$(SEEDS) $(CARGO) test --workspace --test sim -- --nocapture

# `make soak KILLS=N [SOAK_KEYS=K]`: N SIGKILLs of a writer with Sync
# durability and N of a process in the middle of sync sessions; prints
# acknowledged writes lost, reopen and verify failures and reopen times
# (with K keys loaded first into the writer's store, every reopen rebuilds
# the anti-entropy tree over them).
soak: setup
	CONVERGE_KILLS=$(KILLS) CONVERGE_CRASH_KEYS=$(SOAK_KEYS) \
	  $(CARGO) test --workspace --test crash -- --nocapture
