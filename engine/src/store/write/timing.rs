//! Where the write path's time goes, step by step: a profiling aid for
//! the benchmarks (`hot`'s `HOT_STEPS=1`, see BENCHMARKS.md).
//!
//! The steps are timed only in builds with the `step-timing` feature of
//! this crate (the `converge-benches` feature of the same name enables
//! it). Without it, [`ENABLED`] is false and every clock below is
//! optimized away: the write path reads no clock, and [`take_write_steps`]
//! reports nothing. The code is compiled either way, so it cannot rot.
//!
//! Times are wall-clock time per writer thread, summed over every write of
//! the process (every engine): with several writers, a follower's
//! [`Step::Commit`] includes waiting for its group's leader.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Whether this build times the write path's steps (the `step-timing`
/// feature).
pub const ENABLED: bool = cfg!(feature = "step-timing");

/// A step of the write path (`store/write/mod.rs` numbers them in its
/// documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Step 1: keys, values and merge payloads checked (`validate`).
    Validate,
    /// Step 1½: the batch's distinct keys (`slots_of`).
    Slots,
    /// Step 2: the keys' stripes locked.
    Lock,
    /// Step 3: each key's type and size bound (type cache, `types`), and
    /// the states read (`know_keys`).
    Know,
    /// Step 4: the operations applied, deltas made (`apply_all`).
    Apply,
    /// Step 5: the RocksDB write batch built (`stage_all`).
    Stage,
    /// Step 6, before the commit: record, clock and pending rows
    /// (`stage_meta`).
    Meta,
    /// Step 6: the group commit (`commit_staged`), including
    /// [`Step::RocksDbWrite`].
    Commit,
    /// The RocksDB write itself (`write_or_poison`, within
    /// [`Step::Commit`]; the leader's, for a group).
    RocksDbWrite,
    /// Step 7: the keys' cache entries put back.
    Cache,
    /// Step 7: the stripes released, the feed's log and the tree's dirty
    /// set looked after (`after_write`).
    Release,
    /// The pending deltas a write made ready, applied (`after_commit`).
    Drain,
}

impl Step {
    /// Every step, in the write path's order.
    pub const ALL: [Step; 12] = [
        Step::Validate,
        Step::Slots,
        Step::Lock,
        Step::Know,
        Step::Apply,
        Step::Stage,
        Step::Meta,
        Step::Commit,
        Step::RocksDbWrite,
        Step::Cache,
        Step::Release,
        Step::Drain,
    ];

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Step::Validate => "validate",
            Step::Slots => "slots",
            Step::Lock => "lock",
            Step::Know => "know",
            Step::Apply => "apply",
            Step::Stage => "stage",
            Step::Meta => "meta",
            Step::Commit => "commit",
            Step::RocksDbWrite => "rocksdb-write",
            Step::Cache => "cache",
            Step::Release => "release",
            Step::Drain => "drain",
        }
    }
}

static NANOS: [AtomicU64; Step::ALL.len()] = [const { AtomicU64::new(0) }; Step::ALL.len()];
static LAPS: [AtomicU64; Step::ALL.len()] = [const { AtomicU64::new(0) }; Step::ALL.len()];
/// What the RocksDB writes ([`Step::RocksDbWrite`]) carried: bytes of
/// write batch, and records (puts, merges, deletes).
static WRITTEN_BYTES: AtomicU64 = AtomicU64::new(0);
static WRITTEN_RECORDS: AtomicU64 = AtomicU64::new(0);

/// What one step took since the last [`take_write_steps`].
#[derive(Clone, Copy, Debug)]
pub struct StepTime {
    /// The step.
    pub step: Step,
    /// Time spent in it, summed over writer threads.
    pub total: Duration,
    /// How many times it ran (one per write or commit that reached it).
    pub laps: u64,
    /// For [`Step::RocksDbWrite`]: the bytes of the write batches written
    /// (RocksDB's representation: a 12-byte header per batch, then each
    /// record's type, column family, key and value with their lengths);
    /// 0 for the other steps.
    pub bytes: u64,
    /// For [`Step::RocksDbWrite`]: the records those batches held; 0 for
    /// the other steps.
    pub records: u64,
}

/// The time each step took since the process started or the last call
/// (which this call resets), in the write path's order; empty unless
/// [`ENABLED`].
pub fn take_write_steps() -> Vec<StepTime> {
    if !ENABLED {
        return Vec::new();
    }
    Step::ALL
        .iter()
        .map(|&step| {
            let (bytes, records) = match step {
                Step::RocksDbWrite => (
                    WRITTEN_BYTES.swap(0, Ordering::Relaxed),
                    WRITTEN_RECORDS.swap(0, Ordering::Relaxed),
                ),
                _ => (0, 0),
            };
            StepTime {
                step,
                total: Duration::from_nanos(NANOS[step as usize].swap(0, Ordering::Relaxed)),
                laps: LAPS[step as usize].swap(0, Ordering::Relaxed),
                bytes,
                records,
            }
        })
        .collect()
}

/// A writer's stopwatch: each [`Clock::lap`] counts the time since the
/// previous one (or the start) to a step.
pub(crate) struct Clock(Option<Instant>);

impl Clock {
    /// Started now, if this build times steps.
    #[inline(always)]
    pub(crate) fn start() -> Clock {
        Clock(ENABLED.then(Instant::now))
    }

    /// Count the time since the last lap to `step`.
    #[inline(always)]
    pub(crate) fn lap(&mut self, step: Step) {
        if let Some(last) = &mut self.0 {
            let now = Instant::now();
            let nanos = u64::try_from((now - *last).as_nanos()).unwrap_or(u64::MAX);
            NANOS[step as usize].fetch_add(nanos, Ordering::Relaxed);
            LAPS[step as usize].fetch_add(1, Ordering::Relaxed);
            *last = now;
        }
    }

    /// Count what a RocksDB write batch carries (before it is written),
    /// if this build times steps.
    #[inline(always)]
    pub(crate) fn count_batch(&self, wb: &rocksdb::WriteBatch) {
        if self.0.is_some() {
            WRITTEN_BYTES.fetch_add(wb.size_in_bytes() as u64, Ordering::Relaxed);
            WRITTEN_RECORDS.fetch_add(wb.len() as u64, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_counts_its_laps_only_when_enabled() {
        let mut c = Clock::start();
        assert_eq!(c.0.is_some(), ENABLED);
        let before = LAPS[Step::Drain as usize].load(Ordering::Relaxed);
        c.lap(Step::Drain);
        let after = LAPS[Step::Drain as usize].load(Ordering::Relaxed);
        // Other tests' writes count too, but never take (only this
        // module's callers do): the count grows by at least this lap.
        assert!(after >= before + u64::from(ENABLED));
        if !ENABLED {
            assert!(take_write_steps().is_empty());
        }
    }
}
