//! Striped per-key locks: read-modify-write operations on one key are
//! serialized by the stripe the key hashes to; different keys rarely share a
//! stripe, and there is no global lock. Stripes are taken in ascending order,
//! so batches that lock several never deadlock.

use parking_lot::{Mutex, MutexGuard};

/// A fixed set of mutexes indexed by key hash.
pub(crate) struct StripedLocks {
    stripes: Vec<Mutex<()>>,
    mask: u64,
}

impl StripedLocks {
    /// `n` stripes, rounded up to a power of two (at least 1).
    pub(crate) fn new(n: usize) -> StripedLocks {
        let n = n.max(1).next_power_of_two();
        StripedLocks {
            stripes: (0..n).map(|_| Mutex::new(())).collect(),
            mask: (n - 1) as u64,
        }
    }

    /// The stripe of a key.
    pub(crate) fn stripe(&self, key: &[u8]) -> usize {
        (xxhash_rust::xxh3::xxh3_64(key) & self.mask) as usize
    }

    /// Lock the given stripes (any order, duplicates allowed).
    pub(crate) fn lock_all(&self, mut stripes: Vec<usize>) -> Vec<MutexGuard<'_, ()>> {
        stripes.sort_unstable();
        stripes.dedup();
        stripes
            .into_iter()
            .map(|s| self.stripes[s].lock())
            .collect()
    }
}
