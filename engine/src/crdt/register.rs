//! Registers: last-writer-wins and first-writer-wins on hybrid logical
//! timestamps, and the multi-value register whose concurrent writes become
//! siblings tracked by dots (dotted version vectors).

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
}

impl WinPolicy for FirstWins {
    fn wins(candidate: &Stamped, current: &Stamped) -> bool {
        candidate < current
    }
}

/// A register of one timestamped write, chosen by the policy `P`. Encodes
/// as `Option<Stamped>` (the policy takes no bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct TimestampedRegister<P> {
    current: Option<Stamped>,
    policy: PhantomData<P>,
}

/// Last-writer-wins register: the write with the greatest timestamp wins.
pub type LwwRegister = TimestampedRegister<LastWins>;

/// First-writer-wins register: the write with the smallest timestamp wins,
/// so once replicas have exchanged states the first value is final.
pub type FwwRegister = TimestampedRegister<FirstWins>;

impl<P: WinPolicy> TimestampedRegister<P> {
    /// Write `value` at `ts` (kept only if it wins); returns the delta.
    pub fn set(&mut self, ts: Timestamp, replica: ReplicaId, value: &[u8]) -> Self {
        let delta = TimestampedRegister {
            current: Some(Stamped {
                ts,
                replica,
                value: value.to_vec(),
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

    pub(crate) fn timestamp(&self) -> Option<Timestamp> {
        self.current.as_ref().map(|s| s.ts)
    }
}

impl<P: WinPolicy> Lattice for TimestampedRegister<P> {
    fn join(&mut self, other: &Self) {
        let replace = match (&self.current, &other.current) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(a), Some(b)) => P::wins(b, a),
        };
        if replace {
            self.current.clone_from(&other.current);
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
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode)]
pub struct MvRegister {
    values: BTreeMap<Dot, Vec<u8>>,
    ctx: CausalContext,
}

impl MvRegister {
    /// Write `value` on behalf of `replica`, replacing the siblings that
    /// `read` (the context of the read this write is based on) covers.
    /// Returns the delta.
    pub fn write(&mut self, replica: ReplicaId, value: &[u8], read: &CausalContext) -> MvRegister {
        let dot = self.ctx.next_dot(replica).max(read.next_dot(replica));
        let mut ctx = read.clone();
        ctx.insert(dot);
        let delta = MvRegister {
            values: BTreeMap::from([(dot, value.to_vec())]),
            ctx,
        };
        self.join(&delta);
        delta
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

    pub(crate) fn is_canonical(&self) -> bool {
        self.ctx.is_canonical() && self.values.keys().all(|d| self.ctx.contains(d))
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
