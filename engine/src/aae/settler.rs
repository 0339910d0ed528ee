//! The background settler: folds dirty keys into the tree off the writers.
//!
//! One thread per engine (with anti-entropy on) looks every [`INTERVAL`]
//! and settles when writing has paused (no key marked dirty during the
//! last interval) or when [`WAKE_AT`] keys are dirty (a writer also wakes
//! it then). Settling while writes continue below that would fold hot keys
//! again and again for nothing (measured: folding every 20 ms during
//! continuous writes cost 20–30 % of write throughput on 2 cores); waiting
//! for a pause folds each key once per burst. Writers only mark keys
//! dirty; reading the root (or running a sync session) settles what is
//! left. If the settler falls behind (more than the tree's in-memory bound
//! of dirty keys), writers settle themselves: that is the back-pressure.

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
                    let dirty = tree.dirty_keys();
                    if dirty > 0 && (paused || dirty >= WAKE_AT) {
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
