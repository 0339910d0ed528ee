//! G-Counter and PN-Counter: one non-decreasing entry per replica, joined by
//! pointwise maximum.

use super::Lattice;
use crate::causal::{ReplicaId, VersionVector};
use bincode::{Decode, Encode};

/// A grow-only counter: one non-decreasing entry per replica. Its state is
/// exactly a version vector (replica → count, sorted, no zero entries), so
/// it is one, and encodes like one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct GCounter {
    counts: VersionVector,
}

/// An increment would overflow a replica's 64-bit entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterOverflow;

impl GCounter {
    /// The counter's value: the sum of all entries.
    pub fn value(&self) -> u128 {
        self.counts.iter().map(|(_, c)| c as u128).sum()
    }

    /// This replica's entry.
    pub fn entry(&self, replica: ReplicaId) -> u64 {
        self.counts.get(replica)
    }

    /// Add `n` on behalf of `replica`; returns the delta (the new entry).
    pub fn increment(&mut self, replica: ReplicaId, n: u64) -> Result<GCounter, CounterOverflow> {
        let mut delta = GCounter::default();
        if n == 0 {
            return Ok(delta);
        }
        let next = self.entry(replica).checked_add(n).ok_or(CounterOverflow)?;
        self.counts.observe(replica, next);
        delta.counts.observe(replica, next);
        Ok(delta)
    }

    /// The (replica, entry) pairs in replica order.
    pub fn entries(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.counts.iter()
    }

    pub(crate) fn is_canonical(&self) -> bool {
        self.counts.is_canonical()
    }
}

impl Lattice for GCounter {
    fn join(&mut self, other: &Self) {
        self.counts.merge(&other.counts);
    }
}

/// A counter that goes up and down: a G-Counter of increments and one of
/// decrements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct PNCounter {
    inc: GCounter,
    dec: GCounter,
}

impl PNCounter {
    /// Increments minus decrements.
    pub fn value(&self) -> i128 {
        self.inc.value() as i128 - self.dec.value() as i128
    }

    /// Add `n` (negative to subtract) on behalf of `replica`; returns the delta.
    pub fn add(&mut self, replica: ReplicaId, n: i64) -> Result<PNCounter, CounterOverflow> {
        let mut delta = PNCounter::default();
        if n >= 0 {
            delta.inc = self.inc.increment(replica, n as u64)?;
        } else {
            delta.dec = self.dec.increment(replica, n.unsigned_abs())?;
        }
        Ok(delta)
    }

    pub(crate) fn is_canonical(&self) -> bool {
        self.inc.is_canonical() && self.dec.is_canonical()
    }
}

impl Lattice for PNCounter {
    fn join(&mut self, other: &Self) {
        self.inc.join(&other.inc);
        self.dec.join(&other.dec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrent_increments_both_count() {
        let (a_id, b_id) = (ReplicaId(1), ReplicaId(2));
        let mut a = GCounter::default();
        let mut b = GCounter::default();
        let da = a.increment(a_id, 3).unwrap();
        let db = b.increment(b_id, 4).unwrap();
        a.join(&db);
        b.join(&da);
        assert_eq!(a.value(), 7);
        assert_eq!(a, b);
        a.join(&db);
        assert_eq!(a.value(), 7, "a duplicated delta changes nothing");
    }

    #[test]
    fn overflow_is_an_error_and_changes_nothing() {
        let mut a = GCounter::default();
        a.increment(ReplicaId(1), u64::MAX).unwrap();
        assert_eq!(a.increment(ReplicaId(1), 1), Err(CounterOverflow));
        assert_eq!(a.value(), u64::MAX as u128);
    }

    #[test]
    fn pn_counter_goes_down() {
        let mut a = PNCounter::default();
        let mut b = PNCounter::default();
        let d1 = a.add(ReplicaId(1), 10).unwrap();
        let d2 = b.add(ReplicaId(2), -15).unwrap();
        a.join(&d2);
        b.join(&d1);
        assert_eq!(a.value(), -5);
        assert_eq!(a, b);
        assert_eq!(a.add(ReplicaId(1), 0).unwrap(), PNCounter::default());
    }
}
