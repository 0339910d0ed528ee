//! G-Set and 2P-Set over byte-string elements.
//!
//! Elements of these sets carry no identity beyond their bytes, so a delete
//! removes the elements it observed for the key's lifetime: re-adding one
//! of them has no effect (as a 2P-Set remove), while elements the delete
//! did not observe survive and new elements can be added.

use super::Lattice;
use bincode::{Decode, Encode};
use std::collections::BTreeSet;

/// A grow-only set (canonical form: an element a delete removed is not
/// also kept in `elems`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GSet {
    elems: BTreeSet<Vec<u8>>,
    tomb: super::Boxed<SetTomb>,
}

/// What deletes of a G-Set or 2P-Set removed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub(crate) struct SetTomb {
    /// Whether a delete was applied.
    pub(crate) deleted: bool,
    /// The elements deletes observed.
    pub(crate) removed: BTreeSet<Vec<u8>>,
    /// The deletes applied (see [`crate::State::mark_delete`]).
    pub(crate) dels: crate::causal::VersionVector,
}

static NO_SET_TOMB: SetTomb = SetTomb {
    deleted: false,
    removed: BTreeSet::new(),
    dels: crate::causal::VersionVector::new(),
};

impl super::Empty for SetTomb {
    fn empty() -> &'static Self {
        &NO_SET_TOMB
    }
}

impl SetTomb {
    fn join(&mut self, other: &SetTomb) {
        self.deleted |= other.deleted;
        self.removed.extend(other.removed.iter().cloned());
        self.dels.merge(&other.dels);
    }
}

impl GSet {
    /// Add an element (no effect if a delete removed it); returns the
    /// delta.
    pub fn add(&mut self, elem: &[u8]) -> GSet {
        let delta = GSet {
            elems: BTreeSet::from([elem.to_vec()]),
            tomb: super::Boxed::default(),
        };
        self.join(&delta);
        delta
    }

    /// Delete the key: remove the elements `observed` holds; returns the
    /// delta.
    pub fn delete(&mut self, observed: &GSet) -> GSet {
        let mut removed = observed.elems.clone();
        removed.extend(observed.tomb.get().removed.iter().cloned());
        let delta = GSet {
            elems: BTreeSet::new(),
            tomb: super::Boxed::from(SetTomb {
                deleted: true,
                removed,
                dels: Default::default(),
            }),
        };
        self.join(&delta);
        delta
    }

    pub(crate) fn tomb_mut(&mut self) -> &mut SetTomb {
        self.tomb.get_mut()
    }

    pub(crate) fn tomb(&self) -> &SetTomb {
        self.tomb.get()
    }

    /// Forget the deletes (collected).
    pub(crate) fn collect(&mut self) {
        self.tomb.clear();
    }

    /// Whether the set was deleted and no element was added since.
    pub fn is_absent(&self) -> bool {
        self.tomb.get().deleted && self.elems.is_empty()
    }

    pub(crate) fn has_tomb(&self) -> bool {
        self.tomb.is_some()
    }

    pub(crate) fn parts(&self) -> (&BTreeSet<Vec<u8>>, &SetTomb) {
        (&self.elems, self.tomb.get())
    }

    pub(crate) fn from_parts(elems: BTreeSet<Vec<u8>>, tomb: SetTomb) -> GSet {
        GSet {
            elems,
            tomb: super::Boxed::from(tomb),
        }
    }

    pub(crate) fn is_canonical(&self) -> bool {
        let t = self.tomb.get();
        (t.deleted || t.removed.is_empty())
            && t.dels.is_canonical()
            && self.elems.is_disjoint(&t.removed)
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
        if other.has_tomb() {
            self.tomb.get_mut().join(other.tomb.get());
        }
        let removed = &self.tomb.get().removed;
        for e in &other.elems {
            if !removed.contains(e) {
                self.elems.insert(e.clone());
            }
        }
        if !other.tomb.get().removed.is_empty() {
            self.elems.retain(|e| !removed.contains(e));
        }
    }
}

/// A two-phase set: a removed element stays removed forever (its tombstone
/// is kept). Removing an element that was never added is allowed and
/// forbids it from then on; this keeps removes blind (no read needed).
/// Canonical form: an element in `removed` is not also kept in `added`.
/// A delete of the key removes (forever, as a remove) the elements it
/// observed; the key reads as absent while every removed element was
/// removed by a delete and nothing was added since.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TwoPSet {
    added: BTreeSet<Vec<u8>>,
    removed: BTreeSet<Vec<u8>>,
    tomb: super::Boxed<SetTomb>,
}

impl TwoPSet {
    /// Add an element (no effect if it was ever removed); returns the delta.
    pub fn add(&mut self, elem: &[u8]) -> TwoPSet {
        let delta = TwoPSet {
            added: BTreeSet::from([elem.to_vec()]),
            ..TwoPSet::default()
        };
        self.join(&delta);
        delta
    }

    /// Remove an element forever; returns the delta.
    pub fn remove(&mut self, elem: &[u8]) -> TwoPSet {
        let delta = TwoPSet {
            removed: BTreeSet::from([elem.to_vec()]),
            ..TwoPSet::default()
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

    /// Delete the key: remove forever the elements `observed` holds, and
    /// take the removes it observed into the tombstone too (they are part
    /// of what the delete covers: the key reads as absent, and collection
    /// forgets them); returns the delta.
    pub fn delete(&mut self, observed: &TwoPSet) -> TwoPSet {
        let mut removed = observed.added.clone();
        removed.extend(observed.removed.iter().cloned());
        let delta = TwoPSet {
            added: BTreeSet::new(),
            removed: removed.clone(),
            tomb: super::Boxed::from(SetTomb {
                deleted: true,
                removed,
                dels: Default::default(),
            }),
        };
        self.join(&delta);
        delta
    }

    pub(crate) fn tomb_mut(&mut self) -> &mut SetTomb {
        self.tomb.get_mut()
    }

    pub(crate) fn tomb(&self) -> &SetTomb {
        self.tomb.get()
    }

    /// Forget the deletes (collected): the elements they removed may be
    /// added again.
    pub(crate) fn collect(&mut self) {
        let tomb = self.tomb.take();
        self.removed.retain(|e| !tomb.removed.contains(e));
    }

    /// Whether the set was deleted and nothing was added or removed since.
    pub fn is_absent(&self) -> bool {
        let t = self.tomb.get();
        t.deleted && self.added.is_empty() && self.removed.is_subset(&t.removed)
    }

    pub(crate) fn has_tomb(&self) -> bool {
        self.tomb.is_some()
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn parts(&self) -> (&BTreeSet<Vec<u8>>, &BTreeSet<Vec<u8>>, &SetTomb) {
        (&self.added, &self.removed, self.tomb.get())
    }

    pub(crate) fn from_parts(
        added: BTreeSet<Vec<u8>>,
        removed: BTreeSet<Vec<u8>>,
        tomb: SetTomb,
    ) -> TwoPSet {
        TwoPSet {
            added,
            removed,
            tomb: super::Boxed::from(tomb),
        }
    }

    pub(crate) fn is_canonical(&self) -> bool {
        self.added.is_disjoint(&self.removed)
            && (self.tomb.get().deleted || self.tomb.get().removed.is_empty())
            && self.tomb.get().dels.is_canonical()
            && self.tomb.get().removed.is_subset(&self.removed)
    }
}

impl Lattice for TwoPSet {
    fn join(&mut self, other: &Self) {
        if other.has_tomb() {
            self.tomb.get_mut().join(other.tomb.get());
        }
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
    fn delete_removes_observed_elements_only() {
        let mut a = GSet::default();
        a.add(b"x");
        let mut b = a.clone();
        let seen = a.clone();
        let del = a.delete(&seen);
        assert!(a.is_absent());
        let y = b.add(b"y");
        b.join(&del);
        a.join(&y);
        assert_eq!(a, b);
        assert_eq!(a.members().collect::<Vec<_>>(), vec![&b"y"[..]]);
        a.add(b"x");
        assert!(!a.contains(b"x"), "a deleted element stays removed");
        assert!(a.is_canonical() && !a.is_absent());

        let mut p = TwoPSet::default();
        p.add(b"x");
        let seen = p.clone();
        let mut q = p.clone();
        let del = p.delete(&seen);
        assert!(p.is_absent());
        let z = q.add(b"z");
        q.join(&del);
        p.join(&z);
        assert_eq!(p, q);
        assert_eq!(p.members().collect::<Vec<_>>(), vec![&b"z"[..]]);
        assert!(p.is_canonical() && !p.is_absent());
    }

    #[test]
    fn a_two_p_remove_the_delete_observed_leaves_the_key_absent() {
        let mut p = TwoPSet::default();
        p.add(b"x");
        p.add(b"y");
        p.remove(b"y");
        let seen = p.clone();
        p.delete(&seen);
        assert!(p.is_absent() && p.is_canonical());
        // A remove the delete did not observe: present (and empty).
        let mut q = TwoPSet::default();
        q.join(&p);
        q.remove(b"z");
        assert!(!q.is_absent());
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
