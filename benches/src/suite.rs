//! Suites and their sizes: `smoke` runs every workload once on tiny sizes
//! (so the suite does not rot), `quick` is the developer run (under five
//! minutes on two shared cores), `full` adds the 1M-key and 10M-key points.

use std::fmt;
use std::str::FromStr;

/// Which suite to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Suite {
    /// Every workload once, tiny sizes; for tests.
    Smoke,
    /// Small sizes, three runs per measurement.
    Quick,
    /// Every size, including the 1M-key and 10M-key scale points.
    Full,
}

impl Suite {
    /// The name used on the command line and in result file names.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Smoke => "smoke",
            Suite::Quick => "quick",
            Suite::Full => "full",
        }
    }

    /// The sizes this suite measures.
    pub fn sizes(self) -> Sizes {
        match self {
            Suite::Smoke => Sizes {
                runs: 1,
                ops: 400,
                ops_batch1: 100,
                sync_writes: 20,
                keyspaces: vec![100],
                batches: vec![1, 100, 10_000],
                threads: vec![1, 2, 4],
                scale: Some((300, 1_000)),
                merge_ops: 200,
                orset_state_ops: 20,
                read_keys: 500,
                reads: 500,
                aae_keys: 500,
                bigset: (1_000, 400),
                join_reps: 20,
            },
            Suite::Quick => Sizes {
                runs: 3,
                ops: 200_000,
                ops_batch1: 30_000,
                sync_writes: 1_500,
                keyspaces: vec![10_000],
                batches: vec![1, 100, 10_000],
                threads: vec![1, 2, 4],
                scale: None,
                merge_ops: 100_000,
                orset_state_ops: 3_000,
                read_keys: 100_000,
                reads: 50_000,
                aae_keys: 100_000,
                bigset: (100_000, 600_000),
                join_reps: 2_000,
            },
            Suite::Full => Sizes {
                runs: 3,
                ops: 300_000,
                ops_batch1: 50_000,
                sync_writes: 3_000,
                keyspaces: vec![10_000, 1_000_000],
                batches: vec![1, 100, 10_000],
                threads: vec![1, 2, 4],
                scale: Some((1_000_000, 10_000_000)),
                merge_ops: 200_000,
                orset_state_ops: 5_000,
                read_keys: 1_000_000,
                reads: 200_000,
                aae_keys: 1_000_000,
                bigset: (100_000, 1_000_000),
                join_reps: 10_000,
            },
        }
    }
}

impl fmt::Display for Suite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Suite {
    type Err = String;

    fn from_str(s: &str) -> Result<Suite, String> {
        match s {
            "smoke" => Ok(Suite::Smoke),
            "quick" => Ok(Suite::Quick),
            "full" => Ok(Suite::Full),
            other => Err(format!("unknown suite {other:?} (smoke, quick, full)")),
        }
    }
}

/// The sizes of one suite.
#[derive(Clone, Debug)]
pub struct Sizes {
    /// Runs per measurement; the median is reported.
    pub runs: usize,
    /// Operations per run of a buffered local workload (at least the
    /// keyspace size, so a 1M-key keyspace writes every key once).
    pub ops: u64,
    /// Operations per run when every operation is its own write.
    pub ops_batch1: u64,
    /// Writes (batches) per run with fsync on every write (enough that one
    /// slow fsync does not swing the row: with 200, `sync/b1` read
    /// anywhere from 0.75× to 0.93× of the same raw peer).
    pub sync_writes: u64,
    /// Keyspaces of the local-operation sweeps.
    pub keyspaces: Vec<u64>,
    /// Batch sizes of the batch sweep.
    pub batches: Vec<usize>,
    /// Writer thread counts of the thread sweep.
    pub threads: Vec<usize>,
    /// Ingest scale point: (small, large) key counts, each key written once.
    pub scale: Option<(u64, u64)>,
    /// Remote merges per run (counters, OR-Set deltas).
    pub merge_ops: u64,
    /// Remote merges per run of 1,000-element OR-Set full states.
    pub orset_state_ops: u64,
    /// Keys loaded before the point reads.
    pub read_keys: u64,
    /// Point reads timed.
    pub reads: u64,
    /// Keys ingested by the anti-entropy workload.
    pub aae_keys: u64,
    /// The big-set workload: elements of the big OR-Set, and operations
    /// per run (adds and removes in turn).
    pub bigset: (u64, u64),
    /// Joins per run of the in-memory join workloads.
    pub join_reps: usize,
}
