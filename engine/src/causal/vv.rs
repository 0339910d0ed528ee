//! Version vectors and their four-way comparison.

use super::ReplicaId;
use bincode::{Decode, Encode};

/// How two version vectors (or the histories they summarise) relate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causality {
    /// Both have seen exactly the same events.
    Equal,
    /// The left side has seen everything the right side has, and more.
    Dominates,
    /// The right side has seen everything the left side has, and more.
    DominatedBy,
    /// Each side has seen an event the other has not.
    Concurrent,
}

/// A map from replica to the number of that replica's events seen, kept as
/// a vector sorted by replica (it encodes exactly like a sorted map, and
/// merges by a linear walk). Entries equal to zero are never stored, so
/// equal vectors have equal encodings.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Encode, Decode)]
pub struct VersionVector {
    entries: Vec<(ReplicaId, u64)>,
}

impl VersionVector {
    /// The empty vector (nothing seen).
    pub const fn new() -> VersionVector {
        VersionVector {
            entries: Vec::new(),
        }
    }

    fn find(&self, replica: ReplicaId) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&replica, |(r, _)| *r)
    }

    /// Events of `replica` seen.
    pub fn get(&self, replica: ReplicaId) -> u64 {
        match self.find(replica) {
            Ok(i) => self.entries[i].1,
            Err(_) => 0,
        }
    }

    /// Raise the entry of `replica` to at least `counter`.
    pub fn observe(&mut self, replica: ReplicaId, counter: u64) {
        if counter == 0 {
            return;
        }
        match self.find(replica) {
            Ok(i) => {
                if self.entries[i].1 < counter {
                    self.entries[i].1 = counter;
                }
            }
            Err(i) => self.entries.insert(i, (replica, counter)),
        }
    }

    /// The vector holding `counter` for `replica` alone (empty if
    /// `counter` is 0), allocated for that one entry.
    pub(crate) fn single(replica: ReplicaId, counter: u64) -> VersionVector {
        VersionVector {
            entries: if counter == 0 {
                Vec::new()
            } else {
                vec![(replica, counter)]
            },
        }
    }

    /// Pointwise maximum with `other` (the join).
    pub fn merge(&mut self, other: &VersionVector) {
        let mut i = 0;
        for (r, c) in &other.entries {
            while i < self.entries.len() && self.entries[i].0 < *r {
                i += 1;
            }
            if i < self.entries.len() && self.entries[i].0 == *r {
                if self.entries[i].1 < *c {
                    self.entries[i].1 = *c;
                }
            } else {
                self.entries.insert(i, (*r, *c));
            }
            i += 1;
        }
    }

    /// Whether `counter` of `replica` is covered.
    pub fn contains(&self, replica: ReplicaId, counter: u64) -> bool {
        self.get(replica) >= counter
    }

    /// Compare exactly: equal, dominates, dominated by, or concurrent.
    pub fn compare(&self, other: &VersionVector) -> Causality {
        let mut greater = false;
        let mut less = false;
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.entries, &other.entries);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some((ra, ca)), Some((rb, cb))) if ra == rb => {
                    greater |= ca > cb;
                    less |= ca < cb;
                    i += 1;
                    j += 1;
                }
                (Some((ra, _)), Some((rb, _))) if ra < rb => {
                    greater = true;
                    i += 1;
                }
                (Some(_), None) => {
                    greater = true;
                    i += 1;
                }
                _ => {
                    less = true;
                    j += 1;
                }
            }
        }
        match (greater, less) {
            (false, false) => Causality::Equal,
            (true, false) => Causality::Dominates,
            (false, true) => Causality::DominatedBy,
            (true, true) => Causality::Concurrent,
        }
    }

    /// Whether this vector has seen everything `other` has.
    pub fn descends(&self, other: &VersionVector) -> bool {
        matches!(self.compare(other), Causality::Equal | Causality::Dominates)
    }

    /// The (replica, counter) entries in replica order.
    pub fn iter(&self) -> impl Iterator<Item = (ReplicaId, u64)> + '_ {
        self.entries.iter().copied()
    }

    /// Number of replicas with a non-zero entry.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing has been seen.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Reject encodings that hold a zero entry or are out of replica order
    /// (not canonical).
    pub(crate) fn is_canonical(&self) -> bool {
        self.entries.iter().all(|(_, c)| *c > 0) && self.entries.windows(2).all(|w| w[0].0 < w[1].0)
    }
}

impl FromIterator<(ReplicaId, u64)> for VersionVector {
    fn from_iter<I: IntoIterator<Item = (ReplicaId, u64)>>(iter: I) -> Self {
        let mut v = VersionVector::new();
        for (r, c) in iter {
            v.observe(r, c);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vv(e: &[(u128, u64)]) -> VersionVector {
        e.iter().map(|(r, c)| (ReplicaId(*r), *c)).collect()
    }

    #[test]
    fn four_outcomes() {
        assert_eq!(vv(&[(1, 2)]).compare(&vv(&[(1, 2)])), Causality::Equal);
        assert_eq!(vv(&[]).compare(&vv(&[])), Causality::Equal);
        assert_eq!(
            vv(&[(1, 3), (2, 1)]).compare(&vv(&[(1, 2)])),
            Causality::Dominates
        );
        assert_eq!(
            vv(&[(1, 2)]).compare(&vv(&[(1, 2), (2, 1)])),
            Causality::DominatedBy
        );
        assert_eq!(vv(&[(1, 3)]).compare(&vv(&[(2, 1)])), Causality::Concurrent);
        assert_eq!(
            vv(&[(1, 3), (2, 1)]).compare(&vv(&[(1, 2), (2, 2)])),
            Causality::Concurrent
        );
    }

    #[test]
    fn compare_walks_disjoint_and_shared_replicas() {
        assert_eq!(
            vv(&[(1, 1), (3, 1)]).compare(&vv(&[(2, 1)])),
            Causality::Concurrent
        );
        assert_eq!(
            vv(&[(2, 1)]).compare(&vv(&[(1, 1), (2, 1)])),
            Causality::DominatedBy
        );
        assert_eq!(
            vv(&[(1, 1), (2, 1)]).compare(&vv(&[(2, 1)])),
            Causality::Dominates
        );
        assert_eq!(vv(&[(5, 2)]).compare(&vv(&[])), Causality::Dominates);
        assert!(vv(&[(1, 2), (2, 3)]).is_canonical());
    }

    #[test]
    fn merge_is_pointwise_max_and_zero_is_not_stored() {
        let mut a = vv(&[(1, 3), (2, 1)]);
        a.merge(&vv(&[(2, 5), (3, 0)]));
        assert_eq!(a, vv(&[(1, 3), (2, 5)]));
        assert_eq!(a.len(), 2);
        assert!(a.descends(&vv(&[(2, 5)])));
        assert!(!a.descends(&vv(&[(3, 1)])));
    }
}
