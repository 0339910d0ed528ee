//! Batches of operations and merges, applied atomically by
//! [`crate::Engine::write`].

use crate::causal::{CausalContext, Dot};
use crate::codec::Delta;
use crate::crdt::{CrdtType, State};

/// One operation on one key.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// G-Counter: add `n`.
    Increment(u64),
    /// PN-Counter: add `n` (negative subtracts).
    PnAdd(i64),
    /// G-Set: add an element.
    GSetAdd(Vec<u8>),
    /// 2P-Set: add an element.
    TwoPAdd(Vec<u8>),
    /// 2P-Set: remove an element forever.
    TwoPRemove(Vec<u8>),
    /// OR-Set: add an element.
    OrAdd(Vec<u8>),
    /// OR-Set: remove an element's observed adds: all of them now, or only
    /// those within the context of an earlier read.
    OrRemove(Vec<u8>, Option<CausalContext>),
    /// LWW register: write a value at the next clock tick.
    LwwSet(Vec<u8>),
    /// FWW register: write a value (wins only if first).
    FwwSet(Vec<u8>),
    /// MV register: write a value, replacing the siblings the context (from
    /// the read this write is based on) covers.
    MvWrite(Vec<u8>, CausalContext),
    /// Join a peer's encoded delta or full state into the key.
    Merge(Vec<u8>),
    /// Delete the key (any type), removing what the given state (read
    /// earlier, of the key's type) holds, or, with `None`, what this
    /// replica holds now; see [`crate::Engine::delete`].
    Delete(Option<State>),
}

impl Op {
    /// The CRDT type the operation applies to (`None` for merges: their
    /// type is in the bytes).
    pub fn crdt_type(&self) -> Option<CrdtType> {
        Some(match self {
            Op::Increment(_) => CrdtType::GCounter,
            Op::PnAdd(_) => CrdtType::PNCounter,
            Op::GSetAdd(_) => CrdtType::GSet,
            Op::TwoPAdd(_) | Op::TwoPRemove(_) => CrdtType::TwoPSet,
            Op::OrAdd(_) | Op::OrRemove(..) => CrdtType::ORSet,
            Op::LwwSet(_) => CrdtType::LwwRegister,
            Op::FwwSet(_) => CrdtType::FwwRegister,
            Op::MvWrite(..) => CrdtType::MvRegister,
            Op::Merge(_) => return None,
            Op::Delete(observed) => return observed.as_ref().map(State::crdt_type),
        })
    }

    /// Whether the operation needs the key's current state (and so runs
    /// under the key's stripe lock). The others are blind writes.
    pub fn needs_state(&self) -> bool {
        matches!(
            self,
            Op::Increment(_)
                | Op::PnAdd(_)
                | Op::OrAdd(_)
                | Op::OrRemove(..)
                | Op::MvWrite(..)
                | Op::Delete(_)
        )
    }

    /// The value or element carried, for size checks.
    pub(crate) fn payload_len(&self) -> usize {
        match self {
            Op::GSetAdd(v)
            | Op::TwoPAdd(v)
            | Op::TwoPRemove(v)
            | Op::OrAdd(v)
            | Op::OrRemove(v, _)
            | Op::LwwSet(v)
            | Op::FwwSet(v)
            | Op::MvWrite(v, _) => v.len(),
            Op::Increment(_) | Op::PnAdd(_) | Op::Merge(_) | Op::Delete(_) => 0,
        }
    }
}

/// An ordered list of operations applied atomically: all or nothing, and
/// later operations on a key see earlier ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub(crate) ops: Vec<(Vec<u8>, Op)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// An empty batch with room for `n` operations.
    pub fn with_capacity(n: usize) -> Batch {
        Batch {
            ops: Vec::with_capacity(n),
        }
    }

    /// Append any operation.
    pub fn push(&mut self, key: impl Into<Vec<u8>>, op: Op) -> &mut Self {
        self.ops.push((key.into(), op));
        self
    }

    /// G-Counter increment.
    pub fn increment(&mut self, key: impl Into<Vec<u8>>, n: u64) -> &mut Self {
        self.push(key, Op::Increment(n))
    }

    /// PN-Counter add (negative subtracts).
    pub fn pn_add(&mut self, key: impl Into<Vec<u8>>, n: i64) -> &mut Self {
        self.push(key, Op::PnAdd(n))
    }

    /// G-Set add.
    pub fn gset_add(&mut self, key: impl Into<Vec<u8>>, elem: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key, Op::GSetAdd(elem.into()))
    }

    /// 2P-Set add.
    pub fn twop_add(&mut self, key: impl Into<Vec<u8>>, elem: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key, Op::TwoPAdd(elem.into()))
    }

    /// 2P-Set remove.
    pub fn twop_remove(&mut self, key: impl Into<Vec<u8>>, elem: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key, Op::TwoPRemove(elem.into()))
    }

    /// OR-Set add.
    pub fn orset_add(&mut self, key: impl Into<Vec<u8>>, elem: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key, Op::OrAdd(elem.into()))
    }

    /// OR-Set remove of every add of `elem` currently observed.
    pub fn orset_remove(&mut self, key: impl Into<Vec<u8>>, elem: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key, Op::OrRemove(elem.into(), None))
    }

    /// OR-Set remove of the adds of `elem` within `observed` (from a read).
    pub fn orset_remove_observed(
        &mut self,
        key: impl Into<Vec<u8>>,
        elem: impl Into<Vec<u8>>,
        observed: CausalContext,
    ) -> &mut Self {
        self.push(key, Op::OrRemove(elem.into(), Some(observed)))
    }

    /// LWW register write.
    pub fn lww_set(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key, Op::LwwSet(value.into()))
    }

    /// FWW register write.
    pub fn fww_set(&mut self, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key, Op::FwwSet(value.into()))
    }

    /// MV register write based on the read `context`.
    pub fn mv_write(
        &mut self,
        key: impl Into<Vec<u8>>,
        value: impl Into<Vec<u8>>,
        context: CausalContext,
    ) -> &mut Self {
        self.push(key, Op::MvWrite(value.into(), context))
    }

    /// Join a peer's encoded delta or state into `key`.
    pub fn merge(&mut self, key: impl Into<Vec<u8>>, bytes: impl Into<Vec<u8>>) -> &mut Self {
        self.push(key, Op::Merge(bytes.into()))
    }

    /// Delete `key`; see [`crate::Engine::delete`].
    pub fn delete(&mut self, key: impl Into<Vec<u8>>, observed: Option<State>) -> &mut Self {
        self.push(key, Op::Delete(observed))
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Remove every operation, keeping the allocation.
    pub fn clear(&mut self) {
        self.ops.clear();
    }
}

/// The delta of one local operation, with its key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyedDelta {
    /// The key operated on.
    pub key: Vec<u8>,
    /// The delta to ship to peers (`delta.encode()` gives the bytes
    /// `Engine::merge` takes).
    pub delta: Delta,
}

impl KeyedDelta {
    /// The operation's dot `(origin, seq)`.
    pub fn dot(&self) -> Dot {
        Dot::new(self.delta.origin, self.delta.seq)
    }

    /// A session token for this write: wait for it on another replica
    /// ([`crate::Engine::wait_for`]) to read your write there.
    pub fn token(&self) -> CausalContext {
        token_of(std::slice::from_ref(self))
    }
}

/// The session token of several writes (the join of their dots).
pub fn token_of(deltas: &[KeyedDelta]) -> CausalContext {
    let mut ctx = CausalContext::new();
    for d in deltas {
        ctx.insert(d.dot());
    }
    ctx
}
