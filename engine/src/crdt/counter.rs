//! G-Counter and PN-Counter: one non-decreasing entry per replica, joined by
//! pointwise maximum. A delete is a reset-remove: it records the entries it
//! observed, and the value counts only what each entry holds beyond them,
//! so increments the deleter did not observe survive and count from zero.

use super::Lattice;
use crate::causal::{ReplicaId, VersionVector};
use bincode::{Decode, Encode};

/// A grow-only counter: one non-decreasing entry per replica (a version
/// vector: replica → count, sorted, no zero entries), and, once deleted,
/// the entries the deletes observed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GCounter {
    counts: VersionVector,
    tomb: super::Boxed<CounterTomb>,
}

/// What deletes of a counter observed (nothing for a counter never
/// deleted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub(crate) struct CounterTomb {
    /// Whether a delete was applied.
    pub(crate) deleted: bool,
    /// Per replica, the largest entry a delete observed.
    pub(crate) removed: VersionVector,
    /// The deletes applied: per origin, the largest sequence number (see
    /// [`crate::State::mark_delete`]).
    pub(crate) dels: VersionVector,
}

/// An increment would overflow a replica's 64-bit entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CounterOverflow;

static NO_COUNTER_TOMB: CounterTomb = CounterTomb {
    deleted: false,
    removed: VersionVector::new(),
    dels: VersionVector::new(),
};

impl super::Empty for CounterTomb {
    fn empty() -> &'static Self {
        &NO_COUNTER_TOMB
    }
}

impl GCounter {
    /// The counter's value: the sum of all entries, less what deletes
    /// observed of each.
    pub fn value(&self) -> u128 {
        self.counts
            .iter()
            .map(|(r, c)| c.saturating_sub(self.tomb.get().removed.get(r)) as u128)
            .sum()
    }

    /// Delete (reset-remove) the increments `observed` holds; returns the
    /// delta. Increments it did not observe survive.
    pub fn delete(&mut self, observed: &GCounter) -> GCounter {
        let mut removed = observed.counts.clone();
        removed.merge(&observed.tomb.get().removed);
        let delta = GCounter {
            counts: VersionVector::new(),
            tomb: super::Boxed::from(CounterTomb {
                deleted: true,
                removed,
                dels: VersionVector::new(),
            }),
        };
        self.join(&delta);
        delta
    }

    /// Whether the counter was deleted and nothing was counted since.
    pub fn is_absent(&self) -> bool {
        let t = self.tomb.get();
        t.deleted && self.counts.iter().all(|(r, c)| c <= t.removed.get(r))
    }

    pub(crate) fn has_tomb(&self) -> bool {
        self.tomb.is_some()
    }

    pub(crate) fn parts(&self) -> (&VersionVector, &CounterTomb) {
        (&self.counts, self.tomb.get())
    }

    pub(crate) fn from_parts(counts: VersionVector, tomb: CounterTomb) -> GCounter {
        GCounter {
            counts,
            tomb: super::Boxed::from(tomb),
        }
    }

    pub(crate) fn dels_mut(&mut self) -> &mut VersionVector {
        &mut self.tomb.get_mut().dels
    }

    pub(crate) fn dels(&self) -> &VersionVector {
        &self.tomb.get().dels
    }

    pub(crate) fn is_delete(&self) -> bool {
        self.tomb.get().deleted
    }

    /// Forget the deletes (collected): entries they removed entirely go,
    /// entries counted beyond them keep what was removed.
    pub(crate) fn collect(&mut self) {
        let removed = self.tomb.take().removed;
        let mut counts = VersionVector::new();
        let mut kept = VersionVector::new();
        for (r, c) in self.counts.iter() {
            let gone = removed.get(r);
            if c > gone {
                counts.observe(r, c);
                if gone > 0 {
                    kept.observe(r, gone);
                }
            }
        }
        self.counts = counts;
        self.tomb = super::Boxed::from(CounterTomb {
            removed: kept,
            ..CounterTomb::default()
        });
    }

    /// A counter holding only `replica`'s entry `count` (what the write
    /// path knows of a counter it does not read; see `store/types.rs`).
    pub(crate) fn with_entry(replica: ReplicaId, count: u64) -> GCounter {
        GCounter {
            counts: VersionVector::single(replica, count),
            tomb: Default::default(),
        }
    }

    /// This replica's entry.
    pub fn entry(&self, replica: ReplicaId) -> u64 {
        self.counts.get(replica)
    }

    /// Add `n` on behalf of `replica`; returns the delta (the new entry).
    pub fn increment(&mut self, replica: ReplicaId, n: u64) -> Result<GCounter, CounterOverflow> {
        if n == 0 {
            return Ok(GCounter::default());
        }
        let next = self.entry(replica).checked_add(n).ok_or(CounterOverflow)?;
        self.counts.observe(replica, next);
        let mut delta = GCounter::with_entry(replica, next);
        // After a delete the entry is absolute but only its part beyond
        // what the delete removed counts: the delta says so, so that a
        // replica that collected the delete (and forgot it) counts the
        // same.
        let removed = self.tomb.get().removed.get(replica);
        if removed > 0 {
            delta.tomb.get_mut().removed.observe(replica, removed);
        }
        Ok(delta)
    }

    /// The (replica, entry) pairs in replica order.
    pub fn entries(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.counts.iter()
    }

    pub(crate) fn is_canonical(&self) -> bool {
        self.counts.is_canonical()
            && self.tomb.get().removed.is_canonical()
            && self.tomb.get().dels.is_canonical()
    }
}

impl Lattice for GCounter {
    fn join(&mut self, other: &Self) {
        self.counts.merge(&other.counts);
        if other.has_tomb() {
            let (t, o) = (self.tomb.get_mut(), other.tomb.get());
            t.deleted |= o.deleted;
            t.removed.merge(&o.removed);
            t.dels.merge(&o.dels);
        }
    }
}

/// A counter that goes up and down: a G-Counter of increments and one of
/// decrements (a delete resets both).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

    /// Delete (reset-remove) the increments and decrements `observed`
    /// holds; returns the delta.
    pub fn delete(&mut self, observed: &PNCounter) -> PNCounter {
        PNCounter {
            inc: self.inc.delete(&observed.inc),
            dec: self.dec.delete(&observed.dec),
        }
    }

    /// Whether the counter was deleted and nothing was counted since.
    pub fn is_absent(&self) -> bool {
        self.inc.is_absent() && self.dec.is_absent()
    }

    pub(crate) fn has_tomb(&self) -> bool {
        self.inc.has_tomb() || self.dec.has_tomb()
    }

    pub(crate) fn parts(&self) -> (&GCounter, &GCounter) {
        (&self.inc, &self.dec)
    }

    pub(crate) fn from_parts(inc: GCounter, dec: GCounter) -> PNCounter {
        PNCounter { inc, dec }
    }

    pub(crate) fn is_canonical(&self) -> bool {
        // A delete marks both halves.
        self.inc.is_canonical()
            && self.dec.is_canonical()
            && self.inc.tomb.get().deleted == self.dec.tomb.get().deleted
            && self.inc.tomb.get().dels == self.dec.tomb.get().dels
    }

    /// The increments, as a G-Counter.
    pub fn increments(&self) -> &GCounter {
        &self.inc
    }

    /// The decrements (as positive amounts), as a G-Counter.
    pub fn decrements(&self) -> &GCounter {
        &self.dec
    }

    pub(crate) fn halves_mut(&mut self) -> (&mut GCounter, &mut GCounter) {
        (&mut self.inc, &mut self.dec)
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
    fn delete_removes_what_it_observed_only() {
        let (a_id, b_id) = (ReplicaId(1), ReplicaId(2));
        let mut a = GCounter::default();
        a.increment(a_id, 5).unwrap();
        let mut b = a.clone();
        let seen = a.clone();
        let del = a.delete(&seen);
        assert!(a.is_absent());
        assert_eq!(a.value(), 0);
        // Concurrent with the delete: counts from zero after it.
        let inc = b.increment(b_id, 2).unwrap();
        b.join(&del);
        a.join(&inc);
        assert_eq!(a, b);
        assert_eq!(a.value(), 2);
        assert!(!a.is_absent());
        // An increment after the delete re-creates it.
        let mut c = GCounter::default();
        c.join(&del);
        assert!(c.is_absent(), "a delete alone reads as absent");
        c.join(&seen);
        assert!(c.is_absent(), "late pre-delete increments stay removed");
        c.increment(a_id, 1).unwrap();
        assert_eq!(c.value(), 1);
        assert!(c.is_canonical());
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
