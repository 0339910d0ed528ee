//! The background settler: folds dirty keys into the tree off the writers.
//!
//! One thread per engine (with anti-entropy on) looks every [`INTERVAL`]
//! and settles when
//! - writing has paused (no key marked dirty during the last interval), or
//! - [`WAKE_AT`] keys are dirty (a writer also wakes it then, counting
//!   the marks not absorbed yet, one per write: the settler then absorbs
//!   them and may find fewer distinct keys), or
//! - at least [`EAGER_AT`] keys are dirty and nearly every mark since the
//!   last settle went to a key the write created (at least
//!   [`EAGER_FRESH`] tenths of them): an ingest, where each key needs its
//!   fold anyway and folding it now, on the other core, leaves less for
//!   the settle a root read waits for.
//!
//! Settling during continuous writes to keys that exist would fold them
//! again and again for nothing (measured: folding every 20 ms cost 20–30 %
//! of write throughput on 2 cores), so they are folded once per burst (or
//! per [`WAKE_AT`] distinct keys). The rule asks for new keys, not merely
//! distinct ones: writes that sweep a keyspace of existing keys (10,000
//! keys, each rewritten every 10,000 operations) mark only distinct keys
//! between folds, and folding them every 4,096 keys rewrote an `aae_keys`
//! entry for almost every write (measured, BENCHMARKS.md: the process used
//! up to 60 % more CPU time, and the writer ran up to a third slower).
//! Writers only queue their marks (a push per batch); the settler absorbs
//! them into the dirty set each time it looks. Reading the
//! root (or running a sync session) settles what is left. If the settler
//! falls behind (more than the tree's in-memory bound of dirty keys),
//! writers settle themselves: that is the back-pressure.

use super::Tree;
use parking_lot::{Condvar, Mutex};
use rocksdb::DB;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the settler looks for dirty keys.
pub const INTERVAL: Duration = Duration::from_millis(20);
/// Dirty keys at which a writer wakes the settler early.
pub const WAKE_AT: usize = 1 << 16;
/// Dirty keys from which the settler folds during continuous writes when
/// they created their keys (an ingest).
pub const EAGER_AT: usize = 1 << 12;
/// The share of the marks since the last settle that must have gone to
/// keys the write created for an eager settle (in tenths).
pub const EAGER_FRESH: usize = 9;

/// Whether the settler folds now, with `dirty` distinct keys dirty,
/// `marked` key marks (counting repeats) since the last settle, `fresh`
/// of them to keys the write created, and `paused` when nothing was
/// marked during the last interval.
fn due(dirty: usize, marked: usize, fresh: usize, paused: bool) -> bool {
    let ingest = dirty >= EAGER_AT && fresh * 10 >= marked * EAGER_FRESH;
    dirty > 0 && (paused || dirty >= WAKE_AT || ingest)
}

struct Signal {
    stop: Mutex<bool>,
    wake: Condvar,
}

/// The running settler; stopping it (or dropping it) joins the thread.
pub(crate) struct Settler {
    signal: Arc<Signal>,
    thread: Option<JoinHandle<()>>,
}

impl Settler {
    /// Start settling `tree` over `db` in the background.
    pub(crate) fn start(db: Arc<DB>, tree: Arc<Tree>) -> std::io::Result<Settler> {
        let signal = Arc::new(Signal {
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        let s = signal.clone();
        let thread = std::thread::Builder::new()
            .name("converge-settle".into())
            .spawn(move || {
                let mut seen = tree.marks();
                loop {
                    {
                        let mut stop = s.stop.lock();
                        if !*stop {
                            s.wake.wait_for(&mut stop, INTERVAL);
                        }
                        if *stop {
                            return;
                        }
                    }
                    let marks = tree.marks();
                    let paused = marks == seen;
                    seen = marks;
                    // The writers' queued marks, hashed here (off their
                    // core): the dirty set then counts distinct keys.
                    tree.absorb();
                    let (dirty, marked) = (tree.dirty_keys(), tree.marked_keys());
                    if due(dirty, marked, tree.fresh_keys(), paused) {
                        // A failed fold keeps its keys dirty for the next
                        // try (or for a root read's settle, which reports
                        // it).
                        let _ = tree.settle(&db);
                    }
                }
            })?;
        Ok(Settler {
            signal,
            thread: Some(thread),
        })
    }

    /// Wake the settler now (many keys are dirty).
    pub(crate) fn nudge(&self) {
        self.signal.wake.notify_one();
    }

    /// Stop the thread and wait for it (a settle in progress finishes).
    pub(crate) fn stop(&mut self) {
        *self.signal.stop.lock() = true;
        self.signal.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Settler {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settles_on_a_pause_at_the_bound_or_for_an_ingest() {
        // Nothing dirty: never.
        assert!(!due(0, 0, 0, true));
        // A pause folds whatever is dirty.
        assert!(due(1, 50, 0, true));
        // Continuous writes to a few hot keys wait for the pause...
        assert!(!due(EAGER_AT - 1, EAGER_AT - 1, EAGER_AT - 1, false));
        assert!(!due(5_000, 100_000, 0, false));
        // ...and so do writes sweeping existing keys, every mark distinct...
        assert!(!due(EAGER_AT, EAGER_AT, 0, false));
        assert!(!due(20_000, 20_000, 0, false));
        // ...or they reach the bound.
        assert!(due(WAKE_AT, 10 * WAKE_AT, 0, false));
        // An ingest (every mark a new key) folds from EAGER_AT keys on.
        assert!(due(EAGER_AT, EAGER_AT, EAGER_AT, false));
        // 90 % new keys is an ingest; 89 % is not.
        assert!(due(10_000, 10_000, 9_000, false));
        assert!(!due(10_000, 10_000, 8_900, false));
    }
}
