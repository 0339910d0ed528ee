//! OR-Set without tombstones (ORSWOT, as a delta-state dot map): each element
//! maps to the dots of the adds that are still live, and a causal context
//! records every add ever seen. A remove drops the dots it observed; an add
//! concurrent with it has a dot the remove never saw, so it survives (add
//! wins), and re-adding after a remove simply makes a new dot. Removed
//! elements leave nothing behind but context, which stays compact.
//!
//! A delete of the key removes every add its context observed (the context
//! of the read it is based on); adds it did not observe survive (update
//! wins). The delete's context is kept as the key's tombstone so that the
//! key reads as absent until something new is added or removed.

use super::dots::Dots;
use super::Lattice;
use crate::causal::{CausalContext, Dot, ReplicaId};
use crate::shortkey::ShortKey;
use bincode::{Decode, Encode};
use std::collections::BTreeMap;

/// An add-wins observed-remove set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ORSet {
    /// The elements, each in place when short (a search of a big set
    /// compares in the map's nodes instead of reaching each element's bytes
    /// on the heap; `crate::shortkey`).
    entries: BTreeMap<ShortKey, Dots>,
    ctx: CausalContext,
    tomb: super::Boxed<CtxTomb>,
}

/// What deletes of a causal type (OR-Set, MV register) observed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub(crate) struct CtxTomb {
    /// Whether a delete was applied.
    pub(crate) deleted: bool,
    /// The join of the deletes' contexts (within the state's context).
    pub(crate) ctx: CausalContext,
    /// The deletes applied (see [`crate::State::mark_delete`]).
    pub(crate) dels: crate::causal::VersionVector,
}

static NO_CTX_TOMB: CtxTomb = CtxTomb {
    deleted: false,
    ctx: CausalContext::new(),
    dels: crate::causal::VersionVector::new(),
};

impl super::Empty for CtxTomb {
    fn empty() -> &'static Self {
        &NO_CTX_TOMB
    }
}

impl CtxTomb {
    pub(crate) fn join(&mut self, other: &CtxTomb) {
        self.deleted |= other.deleted;
        self.ctx.merge(&other.ctx);
        self.dels.merge(&other.dels);
    }

    /// A delete based on `observed`: its delta's tombstone.
    pub(crate) fn of(observed: &CausalContext) -> CtxTomb {
        CtxTomb {
            deleted: true,
            ctx: observed.clone(),
            dels: Default::default(),
        }
    }

    /// Whether a state with context `ctx` and nothing live reads as absent.
    pub(crate) fn covers(&self, ctx: &CausalContext) -> bool {
        self.deleted && self.ctx.includes(ctx)
    }

    pub(crate) fn is_canonical(&self, within: &CausalContext) -> bool {
        self.ctx.is_canonical()
            && self.dels.is_canonical()
            && (self.deleted || self.ctx.is_empty())
            && within.includes(&self.ctx)
    }
}

impl ORSet {
    /// Add `elem` on behalf of `replica`; returns the delta. The delta also
    /// retires the element's older dots, keeping one dot per live add.
    pub fn add(&mut self, replica: ReplicaId, elem: &[u8]) -> ORSet {
        let dot = self.ctx.next_dot(replica);
        let mut delta = ORSet::default();
        // Applied in place, as joining the delta would (a dot belongs to
        // one element only): the element's dots become the new one. The
        // cost is one lookup, whatever the size of the set.
        // One search of the map (an add is usually of a new element, whose
        // bytes the map needs anyway).
        let key = ShortKey::new(elem);
        match self.entries.entry(key.clone()) {
            std::collections::btree_map::Entry::Occupied(mut o) => {
                for d in o.get().iter() {
                    delta.ctx.insert(*d);
                }
                *o.get_mut() = Dots::one(dot);
            }
            std::collections::btree_map::Entry::Vacant(v) => {
                v.insert(Dots::one(dot));
            }
        }
        delta.ctx.insert(dot);
        self.ctx.insert(dot);
        delta.entries.insert(key, Dots::one(dot));
        delta
    }

    /// Remove `elem`: drop the adds of it that were observed — all the ones
    /// in this state, or only those within `observed` when the remove is
    /// based on an earlier read. Returns the delta (empty if nothing to
    /// remove).
    pub fn remove(&mut self, elem: &[u8], observed: Option<&CausalContext>) -> ORSet {
        let mut delta = ORSet::default();
        // In place, as joining the delta would: the observed dots leave the
        // element (the context holds them already).
        if observed.is_none() {
            // Every dot goes: one search of the map.
            for d in self.entries.remove(elem).iter().flatten() {
                delta.ctx.insert(*d);
            }
            return delta;
        }
        if let Some(dots) = self.entries.get_mut(elem) {
            dots.retain(|d| {
                let gone = observed.is_none_or(|o| o.contains(d));
                if gone {
                    delta.ctx.insert(*d);
                }
                !gone
            });
            if dots.is_empty() {
                self.entries.remove(elem);
            }
        }
        delta
    }

    /// Delete the key: remove every add `observed` (the context of the
    /// read the delete is based on) covers; returns the delta.
    pub fn delete(&mut self, observed: &CausalContext) -> ORSet {
        let delta = ORSet {
            entries: BTreeMap::new(),
            ctx: observed.clone(),
            tomb: super::Boxed::from(CtxTomb::of(observed)),
        };
        self.join(&delta);
        delta
    }

    /// Whether this is the bottom of the lattice (joining it changes
    /// nothing): no element, no context, no delete. The delta of a remove
    /// that removed nothing.
    pub fn is_bottom(&self) -> bool {
        self.entries.is_empty() && self.ctx.is_empty() && !self.tomb.is_some()
    }

    /// Whether the set was deleted and nothing was added or removed since.
    pub fn is_absent(&self) -> bool {
        self.entries.is_empty() && self.tomb.get().covers(&self.ctx)
    }

    pub(crate) fn has_tomb(&self) -> bool {
        self.tomb.is_some()
    }

    pub(crate) fn tomb_mut(&mut self) -> &mut CtxTomb {
        self.tomb.get_mut()
    }

    pub(crate) fn tomb(&self) -> &CtxTomb {
        self.tomb.get()
    }

    /// Forget the deletes (collected); the context stays.
    pub(crate) fn collect(&mut self) {
        self.tomb.clear();
    }

    /// Make this replica's next dot on the key at least `floor + 1`, its
    /// earlier dots counted as seen (see `Engine::collect`: dots of a
    /// collected key are never issued again).
    pub(crate) fn seed_floor(&mut self, replica: ReplicaId, floor: u64) {
        if floor > 0 {
            self.ctx.insert_range(replica, 1, floor);
        }
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn parts(&self) -> (&BTreeMap<ShortKey, Dots>, &CausalContext, &CtxTomb) {
        (&self.entries, &self.ctx, self.tomb.get())
    }

    pub(crate) fn from_parts(
        entries: BTreeMap<ShortKey, Dots>,
        ctx: CausalContext,
        tomb: CtxTomb,
    ) -> ORSet {
        ORSet {
            entries,
            ctx,
            tomb: super::Boxed::from(tomb),
        }
    }

    /// The join of local adds' and removes' deltas, built at once from
    /// what they leave: `adds`, each surviving element with the dot of its
    /// last add (sorted by element), and `seen`, every dot the deltas'
    /// contexts hold (see `Slot::record_change` in `store/write/slot.rs`).
    pub(crate) fn from_changes(
        adds: impl IntoIterator<Item = (ShortKey, Dot)>,
        seen: Vec<Dot>,
    ) -> ORSet {
        ORSet {
            entries: adds.into_iter().map(|(e, d)| (e, Dots::one(d))).collect(),
            ctx: CausalContext::from_dots(seen),
            tomb: Default::default(),
        }
    }

    /// Whether `elem` is a member.
    pub fn contains(&self, elem: &[u8]) -> bool {
        self.entries.contains_key(elem)
    }

    /// The members in byte order.
    pub fn members(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.keys().map(|e| e.bytes())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every add this state has seen: pass it to a later remove.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    pub(crate) fn is_canonical(&self) -> bool {
        if !self.ctx.is_canonical() || !self.tomb.get().is_canonical(&self.ctx) {
            return false;
        }
        // No element without dots; every dot names an event the context
        // holds, and belongs to one element only (a dot names one add: the
        // in-place and walking joins agree only on such sets).
        let mut dots = Vec::with_capacity(self.entries.len());
        for ds in self.entries.values() {
            if ds.is_empty() {
                return false;
            }
            dots.extend(ds.iter().map(|d| (d.replica.0, d.counter)));
        }
        let vv: Vec<(u128, u64)> = self.ctx.vv().iter().map(|(r, n)| (r.0, n)).collect();
        let cloud: Vec<(u128, u64)> = self
            .ctx
            .cloud()
            .iter()
            .map(|d| (d.replica.0, d.counter))
            .collect();
        super::dots::held_once(&dots, &vv, &cloud)
    }
}

impl Lattice for ORSet {
    fn join(&mut self, other: &Self) {
        // A small state (a delta: a few elements, or far fewer than here)
        // is joined in place; two large states by one ordered walk. Same
        // result either way.
        let n = other.entries.len();
        if n <= 4 || n * 16 < self.entries.len() {
            self.join_small(other);
        } else {
            self.join_walk(other);
        }
        self.ctx.merge(&other.ctx);
        if other.has_tomb() {
            self.tomb.get_mut().join(other.tomb.get());
        }
    }
}

impl ORSet {
    /// Whether joining `other` may retire dots of elements `other` does not
    /// hold: some dot `other` has seen outside its entries is one this side
    /// has seen too. Decided from `other`'s dots when it has seen few (a
    /// delta); otherwise assumed.
    fn may_retire(&self, other: &Self) -> bool {
        const FEW: u64 = 64;
        let ctx = &other.ctx;
        let seen: u64 = ctx.vv().iter().map(|(_, n)| n).sum::<u64>() + ctx.cloud().len() as u64;
        if seen > FEW {
            return true;
        }
        let retires =
            |d: &Dot| self.ctx.contains(d) && !other.entries.values().any(|dots| dots.contains(d));
        ctx.vv()
            .iter()
            .flat_map(|(r, n)| (1..=n).map(move |c| Dot::new(r, c)))
            .chain(ctx.cloud().iter().copied())
            .any(|d| retires(&d))
    }

    /// In place, one lookup per element of `other` (and one pass over this
    /// side's dots when `other` has seen some that may be held here).
    fn join_small(&mut self, other: &Self) {
        if self.may_retire(other) {
            self.entries.retain(|k, dots| {
                if !other.entries.contains_key(k) {
                    dots.retain(|d| !other.ctx.contains(d));
                }
                !dots.is_empty()
            });
        }
        for (k, b) in &other.entries {
            match self.entries.get_mut(k) {
                Some(a) => {
                    a.retain(|d| b.contains(d) || !other.ctx.contains(d));
                    for d in b {
                        if !self.ctx.contains(d) {
                            a.insert(*d);
                        }
                    }
                    if a.is_empty() {
                        self.entries.remove(k);
                    }
                }
                None => {
                    let fresh: Dots = b
                        .iter()
                        .filter(|d| !self.ctx.contains(d))
                        .copied()
                        .collect();
                    if !fresh.is_empty() {
                        self.entries.insert(k.clone(), fresh);
                    }
                }
            }
        }
    }

    /// One ordered walk over both entry maps (no per-element lookups); the
    /// result is rebuilt from sorted pairs, which BTreeMap does in linear
    /// time. Entries only here lose the dots `other` has seen; entries only
    /// there keep the dots this side has not seen.
    fn join_walk(&mut self, other: &Self) {
        let mine = std::mem::take(&mut self.entries);
        let mut out: Vec<(ShortKey, Dots)> =
            Vec::with_capacity(mine.len().max(other.entries.len()));
        let mut a = mine.into_iter().peekable();
        let mut b = other.entries.iter().peekable();
        loop {
            let order = match (a.peek(), b.peek()) {
                (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => break,
            };
            match order {
                std::cmp::Ordering::Less => {
                    if let Some((k, mut dots)) = a.next() {
                        if !other.ctx.is_empty() {
                            dots.retain(|d| !other.ctx.contains(d));
                        }
                        if !dots.is_empty() {
                            out.push((k, dots));
                        }
                    }
                }
                std::cmp::Ordering::Greater => {
                    if let Some((k, dots)) = b.next() {
                        let fresh: Dots = dots
                            .iter()
                            .filter(|d| !self.ctx.contains(d))
                            .copied()
                            .collect();
                        if !fresh.is_empty() {
                            out.push((k.clone(), fresh));
                        }
                    }
                }
                std::cmp::Ordering::Equal => {
                    if let (Some((k, mut dots)), Some((_, theirs))) = (a.next(), b.next()) {
                        dots.retain(|d| theirs.contains(d) || !other.ctx.contains(d));
                        for d in theirs {
                            if !self.ctx.contains(d) {
                                dots.insert(*d);
                            }
                        }
                        if !dots.is_empty() {
                            out.push((k, dots));
                        }
                    }
                }
            }
        }
        self.entries = out.into_iter().collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    /// `s` is not canonical, and its encoding is refused by the decoder
    /// and not certified by the skimmer.
    fn assert_refused(s: ORSet) {
        assert!(!s.is_canonical());
        let bytes = crate::codec::encode_state(&crate::State::ORSet(s));
        assert_eq!(
            crate::codec::decode_state(&bytes),
            Err(crate::CodecError::NotCanonical)
        );
        assert_eq!(crate::codec::skim_state(&bytes), None);
    }

    /// A dot with counter 0 names no event, yet every context "holds" it
    /// (0 is below every vector entry): joins that look for the dots a
    /// context retires and joins that test each dot against the context
    /// would treat it differently. Such a state is refused, decoded or
    /// skimmed.
    #[test]
    fn a_dot_with_counter_zero_is_refused() {
        let mut s = ORSet::default();
        s.entries
            .insert(ShortKey::new(b"x"), Dots::one(Dot::new(A, 0)));
        assert_refused(s);
    }

    /// One dot under two elements: no replica makes it (a dot names one
    /// add), and `ORSet::join` in place and by its walk disagreed on it.
    /// Refused, decoded or skimmed.
    #[test]
    fn a_dot_under_two_elements_is_refused() {
        let mut s = ORSet::default();
        s.add(A, b"x");
        s.entries
            .insert(ShortKey::new(b"y"), Dots::one(Dot::new(A, 1)));
        assert_refused(s);
    }

    #[test]
    fn concurrent_add_wins_over_remove() {
        let mut a = ORSet::default();
        let d = a.add(A, b"tv");
        let mut b = a.clone();
        let rm = b.remove(b"tv", None);
        let re = a.add(A, b"tv");
        a.join(&rm);
        b.join(&re);
        assert!(a.contains(b"tv") && b.contains(b"tv"));
        assert_eq!(a, b);
        b.join(&d);
        assert_eq!(a, b, "an old duplicate changes nothing");
    }

    #[test]
    fn remove_then_re_add() {
        let mut a = ORSet::default();
        a.add(A, b"x");
        a.remove(b"x", None);
        assert!(!a.contains(b"x"));
        a.add(A, b"x");
        assert!(a.contains(b"x"));
        assert_eq!(a.entries[&b"x"[..]].len(), 1);
        assert!(
            a.ctx.cloud().is_empty(),
            "context stays compact: no tombstones"
        );
    }

    #[test]
    fn remove_only_removes_observed_adds() {
        let mut a = ORSet::default();
        a.add(A, b"x");
        let seen = a.context().clone();
        let mut b = ORSet::default();
        let d = b.add(B, b"x");
        a.join(&d);
        a.remove(b"x", Some(&seen));
        assert!(a.contains(b"x"), "B's add was not observed by the remove");
        a.remove(b"x", None);
        assert!(!a.contains(b"x"));
    }
}

#[cfg(test)]
mod delete {
    use super::*;

    #[test]
    fn delete_removes_observed_adds_and_concurrent_add_survives() {
        let (a_id, b_id) = (ReplicaId(1), ReplicaId(2));
        let mut phone = ORSet::default();
        phone.add(a_id, b"tv");
        let mut laptop = phone.clone();
        let seen = phone.context().clone();
        let del = phone.delete(&seen);
        assert!(phone.is_absent() && phone.is_canonical());
        let radio = laptop.add(b_id, b"radio");
        laptop.join(&del);
        phone.join(&radio);
        assert_eq!(phone, laptop);
        assert_eq!(phone.members().collect::<Vec<_>>(), vec![&b"radio"[..]]);
        assert!(!phone.is_absent());
        // Removing the survivor leaves an empty set, not an absent key.
        phone.remove(b"radio", None);
        assert!(phone.is_empty() && !phone.is_absent());
    }
}

#[cfg(test)]
mod join_paths {
    use super::*;

    /// The in-place and the walking join agree, whichever side is larger.
    #[test]
    fn small_and_walk_joins_agree() {
        let mut big = ORSet::default();
        for i in 0..100u8 {
            big.add(ReplicaId(1), &[i]);
        }
        let mut other = big.clone();
        other.remove(&[3], None);
        other.add(ReplicaId(2), &[200]);
        let mut small = ORSet::default();
        small.join(&other);
        let d = small.remove(&[7], None);
        for delta in [&other, &d] {
            let mut a = big.clone();
            a.join_small(delta);
            a.ctx.merge(&delta.ctx);
            let mut b = big.clone();
            b.join_walk(delta);
            b.ctx.merge(&delta.ctx);
            assert_eq!(a, b);
        }
    }

    use proptest::prelude::*;

    proptest! {
        /// `add` and `remove` change the state in place exactly as joining
        /// their deltas would, and the two join paths agree, on states
        /// built by three replicas that add, remove and join.
        #[test]
        fn in_place_ops_equal_joining_their_deltas(
            ops in prop::collection::vec((0..3u8, 0..4u8, 0..6u8), 1..80)
        ) {
            let mut reps = vec![ORSet::default(); 3];
            for (r, kind, e) in ops {
                let i = r as usize;
                let before = reps[i].clone();
                let delta = match kind {
                    0 | 1 => reps[i].add(ReplicaId(r as u128 + 1), &[e]),
                    2 => reps[i].remove(&[e], None),
                    _ => {
                        let other = reps[(i + 1) % 3].clone();
                        let (mut a, mut b) = (reps[i].clone(), reps[i].clone());
                        a.join_small(&other);
                        a.ctx.merge(&other.ctx);
                        b.join_walk(&other);
                        b.ctx.merge(&other.ctx);
                        prop_assert_eq!(&a, &b);
                        reps[i].join(&other);
                        continue;
                    }
                };
                let mut joined = before;
                joined.join(&delta);
                prop_assert_eq!(&reps[i], &joined);
                prop_assert!(reps[i].is_canonical());
            }
        }
    }
}
