//! G-Set and 2P-Set over byte-string elements.

use super::Lattice;
use bincode::{Decode, Encode};
use std::collections::BTreeSet;

/// A grow-only set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct GSet {
    elems: BTreeSet<Vec<u8>>,
}

impl GSet {
    /// Add an element; returns the delta.
    pub fn add(&mut self, elem: &[u8]) -> GSet {
        self.elems.insert(elem.to_vec());
        GSet {
            elems: BTreeSet::from([elem.to_vec()]),
        }
    }

    /// Whether `elem` is in the set.
    pub fn contains(&self, elem: &[u8]) -> bool {
        self.elems.contains(elem)
    }

    /// The members in byte order.
    pub fn members(&self) -> impl Iterator<Item = &[u8]> {
        self.elems.iter().map(|e| e.as_slice())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.elems.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.elems.is_empty()
    }
}

impl Lattice for GSet {
    fn join(&mut self, other: &Self) {
        self.elems.extend(other.elems.iter().cloned());
    }
}

/// A two-phase set: a removed element stays removed forever (its tombstone
/// is kept). Removing an element that was never added is allowed and
/// forbids it from then on; this keeps removes blind (no read needed).
/// Canonical form: an element in `removed` is not also kept in `added`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct TwoPSet {
    added: BTreeSet<Vec<u8>>,
    removed: BTreeSet<Vec<u8>>,
}

impl TwoPSet {
    /// Add an element (no effect if it was ever removed); returns the delta.
    pub fn add(&mut self, elem: &[u8]) -> TwoPSet {
        let delta = TwoPSet {
            added: BTreeSet::from([elem.to_vec()]),
            removed: BTreeSet::new(),
        };
        self.join(&delta);
        delta
    }

    /// Remove an element forever; returns the delta.
    pub fn remove(&mut self, elem: &[u8]) -> TwoPSet {
        let delta = TwoPSet {
            added: BTreeSet::new(),
            removed: BTreeSet::from([elem.to_vec()]),
        };
        self.join(&delta);
        delta
    }

    /// Whether `elem` is a member.
    pub fn contains(&self, elem: &[u8]) -> bool {
        self.added.contains(elem)
    }

    /// The members in byte order.
    pub fn members(&self) -> impl Iterator<Item = &[u8]> {
        self.added.iter().map(|e| e.as_slice())
    }

    /// The removed elements (tombstones) in byte order.
    pub fn tombstones(&self) -> impl Iterator<Item = &[u8]> {
        self.removed.iter().map(|e| e.as_slice())
    }

    pub(crate) fn is_canonical(&self) -> bool {
        self.added.is_disjoint(&self.removed)
    }
}

impl Lattice for TwoPSet {
    fn join(&mut self, other: &Self) {
        self.removed.extend(other.removed.iter().cloned());
        for e in &other.added {
            if !self.removed.contains(e) {
                self.added.insert(e.clone());
            }
        }
        if !other.removed.is_empty() {
            let removed = &self.removed;
            self.added.retain(|e| !removed.contains(e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_element_never_comes_back() {
        let mut a = TwoPSet::default();
        let mut b = TwoPSet::default();
        let add = a.add(b"x");
        b.join(&add);
        let rm = b.remove(b"x");
        a.join(&rm);
        assert!(!a.contains(b"x"));
        a.add(b"x");
        assert!(!a.contains(b"x"), "re-add after remove has no effect");
        b.join(&add);
        assert!(
            !b.contains(b"x"),
            "a late duplicate of the add has no effect"
        );
        assert_eq!(a, b);
        assert!(a.is_canonical());
    }

    #[test]
    fn gset_union() {
        let mut a = GSet::default();
        let mut b = GSet::default();
        let d = a.add(b"x");
        b.add(b"y");
        b.join(&d);
        assert_eq!(b.members().collect::<Vec<_>>(), vec![&b"x"[..], &b"y"[..]]);
        assert!(b.contains(b"x") && !a.contains(b"y"));
    }
}
