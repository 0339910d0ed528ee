//! Registers: last-writer-wins and first-writer-wins on hybrid logical
//! timestamps, and the multi-value register whose concurrent writes become
//! siblings tracked by dots (dotted version vectors).
//!
//! Deletes: an LWW register's delete is a timestamped tombstone ordered like
//! any write (a later write re-creates the key, an earlier one stays
//! hidden). An FWW register's delete starts a new epoch at its timestamp:
//! writes made before it (in an older epoch) lose, and the first write of
//! the new epoch wins. An MV register's delete removes the siblings its
//! context observed; a concurrent write survives.

use super::orset::CtxTomb;
use super::Lattice;
use crate::causal::{CausalContext, Dot, ReplicaId, Timestamp};
use bincode::{Decode, Encode};
use std::collections::BTreeMap;
use std::marker::PhantomData;

/// One timestamped write. Writes are totally ordered by
/// (timestamp, replica, value), so ties are broken by replica id.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub struct Stamped {
    /// When it was written.
    pub ts: Timestamp,
    /// Who wrote it.
    pub replica: ReplicaId,
    /// The value.
    pub value: Vec<u8>,
}

/// Which of two timestamped writes a register keeps.
pub trait WinPolicy {
    /// Whether `candidate` replaces `current`.
    fn wins(candidate: &Stamped, current: &Stamped) -> bool;
    /// Whether a delete starts an epoch (first-writer-wins: writes of an
    /// older epoch lose) rather than being ordered as a write.
    const EPOCHS: bool;
}

/// When and by whom a register was deleted.
pub type DeleteStamp = (Timestamp, ReplicaId);

/// A register's tombstone: the latest delete, and the deletes applied
/// (see [`crate::State::mark_delete`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub(crate) struct RegTomb {
    pub(crate) at: Option<DeleteStamp>,
    pub(crate) dels: crate::causal::VersionVector,
}

/// Keep the write with the greatest (timestamp, replica, value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct LastWins;

/// Keep the write with the smallest (timestamp, replica, value).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct FirstWins;

impl WinPolicy for LastWins {
    fn wins(candidate: &Stamped, current: &Stamped) -> bool {
        candidate > current
    }
    const EPOCHS: bool = false;
}

impl WinPolicy for FirstWins {
    fn wins(candidate: &Stamped, current: &Stamped) -> bool {
        candidate < current
    }
    const EPOCHS: bool = true;
}

/// A register of one timestamped write, chosen by the policy `P`, and the
/// latest delete (LWW: the tombstone; FWW: the epoch). Encodes as
/// `Option<Stamped>`, then the delete when there is one (the policy takes
/// no bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimestampedRegister<P> {
    current: Option<Stamped>,
    tomb: super::Boxed<RegTomb>,
    policy: PhantomData<P>,
}

/// Last-writer-wins register: the write with the greatest timestamp wins.
pub type LwwRegister = TimestampedRegister<LastWins>;

/// First-writer-wins register: the write with the smallest timestamp wins,
/// so once replicas have exchanged states the first value is final.
pub type FwwRegister = TimestampedRegister<FirstWins>;

static NO_REG_TOMB: RegTomb = RegTomb {
    at: None,
    dels: crate::causal::VersionVector::new(),
};

impl super::Empty for RegTomb {
    fn empty() -> &'static Self {
        &NO_REG_TOMB
    }
}

impl<P> Default for TimestampedRegister<P> {
    fn default() -> Self {
        TimestampedRegister {
            current: None,
            tomb: super::Boxed::default(),
            policy: PhantomData,
        }
    }
}

/// Whether write `w` was made after delete `d` in timestamp order.
fn after(w: &Stamped, d: &DeleteStamp) -> bool {
    (w.ts, w.replica) > *d
}

impl<P: WinPolicy> TimestampedRegister<P> {
    /// Write `value` at `ts` (kept only if it wins); returns the delta.
    /// An FWW write belongs to the epoch of the state it is made on.
    pub fn set(&mut self, ts: Timestamp, replica: ReplicaId, value: &[u8]) -> Self {
        let epoch = if P::EPOCHS { self.tomb.get().at } else { None };
        let delta = TimestampedRegister {
            current: Some(Stamped {
                ts,
                replica,
                value: value.to_vec(),
            }),
            tomb: super::Boxed::from(RegTomb {
                at: epoch,
                dels: Default::default(),
            }),
            policy: PhantomData,
        };
        self.join(&delta);
        delta
    }

    /// The delta [`TimestampedRegister::set`] returns on a register that
    /// saw no delete (so no epoch), made without a register to write to:
    /// the write alone. For blind writes, which read no state.
    pub(crate) fn blind_set(ts: Timestamp, replica: ReplicaId, value: &[u8]) -> Self {
        TimestampedRegister {
            current: Some(Stamped {
                ts,
                replica,
                value: value.to_vec(),
            }),
            tomb: Default::default(),
            policy: PhantomData,
        }
    }

    /// Delete the key at `ts` (a clock tick later than anything this
    /// replica has seen); returns the delta.
    pub fn delete(&mut self, ts: Timestamp, replica: ReplicaId) -> Self {
        let delta = TimestampedRegister {
            current: None,
            tomb: super::Boxed::from(RegTomb {
                at: Some((ts, replica)),
                dels: Default::default(),
            }),
            policy: PhantomData,
        };
        self.join(&delta);
        delta
    }

    /// The winning write, if any.
    pub fn get(&self) -> Option<&Stamped> {
        self.current.as_ref()
    }

    /// Whether the register was deleted and not written since.
    pub fn is_absent(&self) -> bool {
        self.tomb.get().at.is_some() && self.current.is_none()
    }

    pub(crate) fn has_tomb(&self) -> bool {
        self.tomb.is_some()
    }

    pub(crate) fn tomb(&self) -> &RegTomb {
        self.tomb.get()
    }

    pub(crate) fn from_parts(current: Option<Stamped>, tomb: RegTomb) -> Self {
        TimestampedRegister {
            current,
            tomb: super::Boxed::from(tomb),
            policy: PhantomData,
        }
    }

    pub(crate) fn current(&self) -> &Option<Stamped> {
        &self.current
    }

    pub(crate) fn dels_mut(&mut self) -> &mut crate::causal::VersionVector {
        &mut self.tomb.get_mut().dels
    }

    pub(crate) fn dels(&self) -> &crate::causal::VersionVector {
        &self.tomb.get().dels
    }

    pub(crate) fn is_delete(&self) -> bool {
        self.is_absent()
    }

    /// Forget the deletes (collected): a write that outlived them stays.
    pub(crate) fn collect(&mut self) {
        self.tomb.clear();
    }

    pub(crate) fn is_canonical(&self) -> bool {
        let t = self.tomb.get();
        // LWW: a write the tombstone hides is not kept.
        t.dels.is_canonical()
            && (P::EPOCHS
                || match (&self.current, &t.at) {
                    (Some(w), Some(d)) => after(w, d),
                    _ => true,
                })
    }

    pub(crate) fn timestamp(&self) -> Option<Timestamp> {
        let w = self.current.as_ref().map(|s| s.ts);
        w.max(self.tomb.get().at.map(|d| d.0))
    }

    fn join_writes(&mut self, other: &Option<Stamped>) {
        let replace = match (&self.current, other) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(b)) => P::wins(b, a),
        };
        if replace {
            self.current.clone_from(other);
        }
    }

    fn join_tomb(&mut self, other: &RegTomb) {
        if other != RegTomb::empty_ref() {
            let t = self.tomb.get_mut();
            t.dels.merge(&other.dels);
            t.at = t.at.max(other.at);
        }
    }
}

impl RegTomb {
    fn empty_ref() -> &'static RegTomb {
        &NO_REG_TOMB
    }
}

impl<P: WinPolicy> Lattice for TimestampedRegister<P> {
    fn join(&mut self, other: &Self) {
        let (mine, theirs) = (self.tomb.get().at, other.tomb.get().at);
        if P::EPOCHS {
            // The later epoch wins whole; within one, the first write.
            match mine.cmp(&theirs) {
                std::cmp::Ordering::Less => self.current.clone_from(&other.current),
                std::cmp::Ordering::Equal => self.join_writes(&other.current),
                std::cmp::Ordering::Greater => {}
            }
            self.join_tomb(other.tomb.get());
            return;
        }
        self.join_writes(&other.current);
        self.join_tomb(other.tomb.get());
        if let (Some(w), Some(d)) = (&self.current, &self.tomb.get().at) {
            if !after(w, d) {
                self.current = None;
            }
        }
    }
}

/// One of the concurrent values of an MV register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sibling {
    /// The write that produced it.
    pub dot: Dot,
    /// The value.
    pub value: Vec<u8>,
}

/// Multi-value register: a write based on a read context replaces every
/// value that context covers; writes concurrent with each other all stay,
/// as siblings, until a write whose context covers them all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MvRegister {
    values: BTreeMap<Dot, Vec<u8>>,
    ctx: CausalContext,
    tomb: super::Boxed<CtxTomb>,
}

impl MvRegister {
    /// Write `value` on behalf of `replica`, replacing the siblings that
    /// `read` (the context of the read this write is based on) covers.
    /// Returns the delta.
    pub fn write(&mut self, replica: ReplicaId, value: &[u8], read: &CausalContext) -> MvRegister {
        let dot = self.ctx.next_dot(replica).max(read.next_dot(replica));
        let mut ctx = read.clone();
        ctx.insert(dot);
        // Applied in place, as joining the delta would (see `join`): the
        // siblings the delta's context covers go, its value comes in
        // unless this state saw its dot already.
        self.values.retain(|d, _| *d == dot || !ctx.contains(d));
        if !self.ctx.contains(&dot) && !self.values.contains_key(&dot) {
            self.values.insert(dot, value.to_vec());
        }
        self.ctx.merge(&ctx);
        MvRegister {
            values: BTreeMap::from([(dot, value.to_vec())]),
            ctx,
            tomb: super::Boxed::default(),
        }
    }

    /// The current siblings, ordered by dot.
    pub fn siblings(&self) -> Vec<Sibling> {
        self.values
            .iter()
            .map(|(dot, value)| Sibling {
                dot: *dot,
                value: value.clone(),
            })
            .collect()
    }

    /// Every write this state has seen: pass it to the next write.
    pub fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// Delete the key: remove the siblings `observed` (the context of the
    /// read the delete is based on) covers; returns the delta.
    pub fn delete(&mut self, observed: &CausalContext) -> MvRegister {
        let delta = MvRegister {
            values: BTreeMap::new(),
            ctx: observed.clone(),
            tomb: super::Boxed::from(CtxTomb::of(observed)),
        };
        self.join(&delta);
        delta
    }

    /// Whether the register was deleted and not written since.
    pub fn is_absent(&self) -> bool {
        self.values.is_empty() && self.tomb.get().covers(&self.ctx)
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

    /// See [`super::ORSet`]'s `seed_floor`.
    pub(crate) fn seed_floor(&mut self, replica: ReplicaId, floor: u64) {
        if floor > 0 {
            self.ctx.insert_range(replica, 1, floor);
        }
    }

    #[allow(clippy::type_complexity)]
    pub(crate) fn parts(&self) -> (&BTreeMap<Dot, Vec<u8>>, &CausalContext, &CtxTomb) {
        (&self.values, &self.ctx, self.tomb.get())
    }

    pub(crate) fn from_parts(
        values: BTreeMap<Dot, Vec<u8>>,
        ctx: CausalContext,
        tomb: CtxTomb,
    ) -> MvRegister {
        MvRegister {
            values,
            ctx,
            tomb: super::Boxed::from(tomb),
        }
    }

    pub(crate) fn is_canonical(&self) -> bool {
        self.ctx.is_canonical()
            && self.tomb.get().is_canonical(&self.ctx)
            && self
                .values
                .keys()
                .all(|d| d.counter > 0 && self.ctx.contains(d))
    }
}

impl Lattice for MvRegister {
    fn join(&mut self, other: &Self) {
        // Keep a value both have, or one that the other side has never seen.
        self.values
            .retain(|d, _| other.values.contains_key(d) || !other.ctx.contains(d));
        for (d, v) in &other.values {
            if !self.ctx.contains(d) && !self.values.contains_key(d) {
                self.values.insert(*d, v.clone());
            }
        }
        self.ctx.merge(&other.ctx);
        if other.has_tomb() {
            self.tomb.get_mut().join(other.tomb.get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: ReplicaId = ReplicaId(1);
    const B: ReplicaId = ReplicaId(2);

    fn ts(ms: u64) -> Timestamp {
        Timestamp {
            wall_ms: ms,
            logical: 0,
        }
    }

    /// A write changes the state as joining its delta would.
    #[test]
    fn mv_write_in_place_is_the_join_of_its_delta() {
        let mut a = MvRegister::default();
        let mut b = MvRegister::default();
        let da = a.write(A, b"a1", &CausalContext::new());
        b.write(B, b"b1", &CausalContext::new());
        // Concurrent siblings, then writes based on partial and full reads,
        // from either replica, and one based on a read that saw more than
        // the state (a later write of A's that this state never got).
        b.join(&da);
        let mut ahead = a.clone();
        ahead.write(A, b"a2", &a.context().clone());
        let reads = [
            CausalContext::new(),
            da.context().clone(),
            b.context().clone(),
            ahead.context().clone(),
        ];
        let mut deleted = b.clone();
        deleted.delete(&da.context().clone());
        for state in [a.clone(), b.clone(), deleted, MvRegister::default()] {
            for read in &reads {
                for r in [A, B] {
                    let mut in_place = state.clone();
                    let delta = in_place.write(r, b"v", read);
                    let mut joined = state.clone();
                    joined.join(&delta);
                    assert_eq!(in_place, joined, "{r:?} on {state:?} read {read:?}");
                }
            }
        }
    }

    #[test]
    fn blind_set_is_the_delta_of_a_write_on_an_empty_register() {
        assert_eq!(
            LwwRegister::blind_set(ts(5), A, b"v"),
            LwwRegister::default().set(ts(5), A, b"v")
        );
        assert_eq!(
            FwwRegister::blind_set(ts(5), A, b"v"),
            FwwRegister::default().set(ts(5), A, b"v")
        );
        // After a delete, an FWW write carries the epoch: not blind.
        let mut f = FwwRegister::default();
        f.delete(ts(6), B);
        assert_ne!(
            f.set(ts(7), A, b"v"),
            FwwRegister::blind_set(ts(7), A, b"v")
        );
    }

    #[test]
    fn lww_latest_wins_ties_by_replica() {
        let mut a = LwwRegister::default();
        let mut b = LwwRegister::default();
        let da = a.set(ts(5), A, b"a");
        let db = b.set(ts(5), B, b"b");
        a.join(&db);
        b.join(&da);
        assert_eq!(a, b);
        assert_eq!(a.get().unwrap().value, b"b");
        a.set(ts(4), A, b"old");
        assert_eq!(a.get().unwrap().value, b"b");
    }

    #[test]
    fn lww_delete_is_an_ordered_tombstone() {
        let mut a = LwwRegister::default();
        let w = a.set(ts(5), A, b"v");
        let del = a.delete(ts(6), A);
        assert!(a.is_absent() && a.is_canonical());
        let mut b = LwwRegister::default();
        let late = b.set(ts(7), B, b"later");
        b.join(&del);
        b.join(&w);
        a.join(&late);
        assert_eq!(a, b);
        assert_eq!(a.get().unwrap().value, b"later");
        let mut c = LwwRegister::default();
        c.join(&w);
        c.join(&del);
        assert!(c.is_absent(), "an earlier write stays hidden");
    }

    #[test]
    fn fww_delete_starts_an_epoch() {
        let mut a = FwwRegister::default();
        a.set(ts(5), A, b"first");
        let mut b = a.clone();
        let del = a.delete(ts(6), A);
        assert!(a.is_absent());
        let old = b.set(ts(7), B, b"old epoch");
        let new = a.set(ts(8), A, b"new epoch");
        let newer = a.set(ts(9), B, b"second of the epoch");
        b.join(&del);
        b.join(&newer);
        b.join(&new);
        a.join(&old);
        assert_eq!(a, b);
        assert_eq!(a.get().unwrap().value, b"new epoch");
    }

    #[test]
    fn mv_delete_keeps_concurrent_write() {
        let mut a = MvRegister::default();
        a.write(A, b"x", &CausalContext::new());
        let mut b = a.clone();
        let seen = a.context().clone();
        let del = a.delete(&seen);
        assert!(a.is_absent() && a.is_canonical());
        let y = b.write(B, b"y", &CausalContext::new());
        b.join(&del);
        a.join(&y);
        assert_eq!(a, b);
        let sib: Vec<_> = a.siblings().into_iter().map(|s| s.value).collect();
        assert_eq!(sib, vec![b"y".to_vec()]);
        assert!(!a.is_absent());
    }

    #[test]
    fn fww_first_wins() {
        let mut a = FwwRegister::default();
        a.set(ts(5), A, b"first");
        let mut b = FwwRegister::default();
        let late = b.set(ts(9), B, b"late");
        a.join(&late);
        assert_eq!(a.get().unwrap().value, b"first");
    }

    #[test]
    fn concurrent_writes_are_siblings_then_collapse() {
        let mut a = MvRegister::default();
        let mut b = MvRegister::default();
        let da = a.write(A, b"x", &CausalContext::new());
        let db = b.write(B, b"y", &CausalContext::new());
        a.join(&db);
        b.join(&da);
        assert_eq!(a, b);
        let sib: Vec<_> = a.siblings().into_iter().map(|s| s.value).collect();
        assert_eq!(sib, vec![b"x".to_vec(), b"y".to_vec()]);
        let ctx = a.context().clone();
        let dz = a.write(A, b"z", &ctx);
        b.join(&dz);
        assert_eq!(a, b);
        assert_eq!(b.siblings().len(), 1);
        assert_eq!(b.siblings()[0].value, b"z");
        b.join(&da);
        assert_eq!(
            b.siblings().len(),
            1,
            "an old delta cannot resurrect a sibling"
        );
    }

    #[test]
    fn write_with_partial_context_keeps_unseen_sibling() {
        let mut a = MvRegister::default();
        a.write(A, b"x", &CausalContext::new());
        let seen = a.context().clone();
        let mut b = MvRegister::default();
        let db = b.write(B, b"y", &CausalContext::new());
        a.join(&db);
        a.write(A, b"z", &seen);
        let sib: Vec<_> = a.siblings().into_iter().map(|s| s.value).collect();
        assert_eq!(sib, vec![b"z".to_vec(), b"y".to_vec()]);
    }
}
