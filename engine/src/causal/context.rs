//! Causal contexts: a version vector plus a "dot cloud" of events seen out of
//! order. This is the dotted-version-vector context used by OR-Sets and
//! MV-registers; it is kept compact so that equal histories encode equally.

use super::{Dot, ReplicaId, VersionVector};
use bincode::{Decode, Encode};
use std::collections::BTreeSet;

/// The set of dots a state has seen: every dot `(r, c)` with
/// `c <= vv[r]`, plus the isolated dots in `cloud`. Always compact: no cloud
/// dot is covered by `vv` or extends it contiguously.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Encode, Decode)]
pub struct CausalContext {
    vv: VersionVector,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The empty context.
    pub fn new() -> CausalContext {
        CausalContext::default()
    }

    /// A context covering exactly what `vv` covers.
    pub fn from_vv(vv: VersionVector) -> CausalContext {
        CausalContext {
            vv,
            cloud: BTreeSet::new(),
        }
    }

    /// The contiguous part.
    pub fn vv(&self) -> &VersionVector {
        &self.vv
    }

    /// The isolated dots.
    pub fn cloud(&self) -> &BTreeSet<Dot> {
        &self.cloud
    }

    /// Whether the context has seen `dot`.
    pub fn contains(&self, dot: &Dot) -> bool {
        self.vv.contains(dot.replica, dot.counter) || self.cloud.contains(dot)
    }

    /// The next dot `replica` should use: one past everything seen of it.
    pub fn next_dot(&self, replica: ReplicaId) -> Dot {
        let in_cloud = self
            .cloud
            .range(Dot::new(replica, 0)..=Dot::new(replica, u64::MAX))
            .next_back()
            .map(|d| d.counter)
            .unwrap_or(0);
        Dot::new(replica, self.vv.get(replica).max(in_cloud) + 1)
    }

    /// Add one dot.
    pub fn insert(&mut self, dot: Dot) {
        if !self.contains(&dot) {
            self.cloud.insert(dot);
            self.compact();
        }
    }

    /// Add the dots `(replica, lo..=hi)` (nothing if `hi < lo`).
    pub fn insert_range(&mut self, replica: ReplicaId, lo: u64, hi: u64) {
        if hi < lo || lo == 0 {
            return;
        }
        if lo <= self.vv.get(replica) + 1 {
            self.vv.observe(replica, hi);
            self.compact();
        } else {
            self.cloud.extend((lo..=hi).map(|c| Dot::new(replica, c)));
        }
    }

    /// How many dots of `other` this context lacks (0: it includes
    /// `other`), saturating at `u64::MAX`.
    pub fn missing(&self, other: &CausalContext) -> u64 {
        let mut n: u64 = 0;
        for (r, c) in other.vv.iter() {
            let have = self.vv.get(r);
            if c > have {
                let held = self
                    .cloud
                    .range(Dot::new(r, have + 1)..=Dot::new(r, c))
                    .count() as u64;
                n = n.saturating_add(c - have - held);
            }
        }
        let extra = other.cloud.iter().filter(|d| !self.contains(d)).count() as u64;
        n.saturating_add(extra)
    }

    /// Whether this context holds every dot of `other`.
    pub fn includes(&self, other: &CausalContext) -> bool {
        self.missing(other) == 0
    }

    /// Union with another context (the join).
    pub fn merge(&mut self, other: &CausalContext) {
        self.vv.merge(&other.vv);
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }

    /// Fold cloud dots that extend the vector into it and drop covered ones.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for d in cloud {
            let have = self.vv.get(d.replica);
            if d.counter == have + 1 {
                self.vv.observe(d.replica, d.counter);
            } else if d.counter > have {
                self.cloud.insert(d);
            }
        }
        // A fold can make later dots contiguous (cloud is ordered per replica,
        // so one pass suffices: dots of a replica arrive in increasing order).
    }

    /// Whether the encoding is canonical (compact, no zero entries).
    pub(crate) fn is_canonical(&self) -> bool {
        self.vv.is_canonical()
            && self
                .cloud
                .iter()
                .all(|d| d.counter > self.vv.get(d.replica) + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(r: u128, c: u64) -> Dot {
        Dot::new(ReplicaId(r), c)
    }

    #[test]
    fn out_of_order_dots_compact_once_contiguous() {
        let mut c = CausalContext::new();
        c.insert(d(1, 3));
        c.insert(d(1, 2));
        assert_eq!(c.vv().get(ReplicaId(1)), 0);
        assert_eq!(c.cloud().len(), 2);
        c.insert(d(1, 1));
        assert_eq!(c.vv().get(ReplicaId(1)), 3);
        assert!(c.cloud().is_empty());
        assert!(c.is_canonical());
        assert_eq!(c.next_dot(ReplicaId(1)), d(1, 4));
    }

    #[test]
    fn next_dot_sees_the_cloud() {
        let mut c = CausalContext::new();
        c.insert(d(7, 5));
        assert_eq!(c.next_dot(ReplicaId(7)), d(7, 6));
        assert!(c.contains(&d(7, 5)));
        assert!(!c.contains(&d(7, 4)));
    }

    #[test]
    fn merge_is_union() {
        let mut a = CausalContext::new();
        a.insert(d(1, 1));
        a.insert(d(2, 4));
        let mut b = CausalContext::new();
        b.insert(d(1, 2));
        b.insert(d(2, 1));
        a.merge(&b);
        assert_eq!(a.vv().get(ReplicaId(1)), 2);
        assert_eq!(a.vv().get(ReplicaId(2)), 1);
        assert!(a.contains(&d(2, 4)));
        assert!(!a.contains(&d(2, 3)));
    }
}
