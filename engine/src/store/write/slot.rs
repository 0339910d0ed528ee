//! Step 1½ and step 3 of the write path (see the parent module): the
//! batch's distinct keys, each with its working state (a [`Slot`]), and
//! what the write path knows of each key before it applies anything — its
//! type and size bound from the type cache or `types`, and its state when
//! the key's operations need it.

use super::super::batch::Op;
use super::super::stored::decode_stored;
use super::super::types::{parse_entry, KeyMeta};
use super::super::{Engine, CF_STATE, CF_TYPES};
use super::{mismatch, Prepared};
use crate::causal::Dot;
use crate::codec::{Item, OrSetBytes};
use crate::crdt::{CrdtType, State};
use crate::error::Result;
use crate::shortkey::ShortKey;
use foldhash::{HashMap, HashMapExt};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Encoded size from which a key whose state the batch holds is written as
/// the join of its changes (a merge operand) rather than put whole.
/// Measured (`hot manysets`, adds of new elements to 1,000 cached OR-Sets
/// of 300 elements, about 6 KB each): 64 KiB (before) 28k–33k ops/s,
/// 4 KiB 103k, 1 KiB 142k–170k; the report's OR-Set rows (sets of about
/// 200 bytes) are unchanged.
pub(super) const BIG_STATE: u64 = 1 << 10;

/// Per-key working state while a batch is applied.
pub(super) struct Slot<'a> {
    pub(super) key: &'a [u8],
    pub(super) needs_state: bool,
    pub(super) ops: usize,
    pub(super) ty: Option<CrdtType>,
    /// The store held nothing of the key (no type, no state): the batch
    /// creates it.
    pub(super) is_new: bool,
    /// `types` holds no entry for the key and is exact
    /// (`Engine::types_exact`): the store holds no state of it either.
    pub(super) absent: bool,
    /// Upper bound of the stored state's encoded size (`u64::MAX`:
    /// unknown; 0 for a new key) and the persisted reservation; see
    /// `types.rs`.
    pub(super) used: u64,
    pub(super) reserved: Option<u64>,
    /// Whether the `types` entry flags a tombstone.
    pub(super) tomb: bool,
    /// Whether the batch writes the key as an FWW register (blind, unless
    /// a delete reached the key: the write belongs to the epoch the
    /// state holds).
    pub(super) fww: bool,
    /// The collection floor this batch seeded the key's empty state with
    /// (its first local delta carries it too); 0: none.
    pub(super) seed: u64,
    /// Whether every operation of the batch on the key is a local counter
    /// increment (G-Counter or PN-Counter).
    pub(super) counts_only: bool,
    /// Whether every operation of the batch on the key is a local OR-Set
    /// remove without an observed context.
    pub(super) removes_only: bool,
    /// Whether every operation of the batch on the key is a local OR-Set
    /// add or remove: the operations [`Slot::set`] applies.
    pub(super) adds_removes: bool,
    /// `KeyMeta::piled` of the key (`PILED_UNKNOWN` until the cache or
    /// `types` knows it; 0 for a key being created), and whether this
    /// batch adds to the pile (removes on a small cached state, written
    /// as an operand).
    pub(super) piled: u8,
    pub(super) piling: bool,
    /// `KeyMeta::whole`: the exact size of the state as last put whole
    /// (or read), known while the cache holds it; `u64::MAX` otherwise.
    pub(super) whole: u64,
    /// This replica's counter entries, known without reading the state
    /// (see `KeyMeta::own`).
    pub(super) own: Option<[u64; 2]>,
    /// Current state, for keys whose state is read or taken from the
    /// cache (then replaced by a put, or joined with `operand` if `big`).
    pub(super) state: Option<State>,
    /// The state is large (over [`BIG_STATE`]): the batch writes the join
    /// of its changes to it as an operand (`operand`) instead of putting
    /// the whole state, keeping the write proportional to the change.
    pub(super) big: bool,
    /// For counters incremented blind: the increments advance `own`
    /// (this replica's entries, known without reading the state) and
    /// their deltas are built from it.
    pub(super) counting: bool,
    /// Join of everything this batch writes to a key that is not read
    /// (`None` when that is one delta, `operand_delta`). Boxed: most keys
    /// have none, and a `Slot` is moved whole.
    pub(super) operand: Option<Box<State>>,
    /// For a key written blind by one local operation: the index of its
    /// delta in the batch's deltas, which is the operand (written from
    /// there, not copied into `operand`).
    pub(super) operand_delta: Option<usize>,
    /// A big OR-Set's local adds and removes, recorded as they are applied
    /// and joined into `operand` once, by [`Slot::join_changes`]: cheaper
    /// than joining each operation's delta.
    pub(super) changes: Option<Box<OrChanges<'a>>>,
    /// An OR-Set read from the store while the state cache is full, kept
    /// as its encoding (see [`SetBytes`]); the key's state is then `None`
    /// and the batch writes the join of its changes, `operand`, into it.
    pub(super) set: Option<Box<SetBytes<'a>>>,
    /// The validated bytes of a key's only operation, a full-state merge:
    /// written through as the operand, not re-encoded.
    pub(super) raw: Option<&'a [u8]>,
    /// The certified state bytes of a key's only operation, a peer's
    /// delta (`Prepared::RawDelta`): sealed as a full state and written as
    /// the operand, not decoded and encoded again.
    pub(super) raw_body: Option<&'a [u8]>,
    /// The entry hash of what the key holds once the batch is written
    /// (with the tree on), so that the settle need not read it back: of
    /// the state the batch puts whole, or of the operand that creates the
    /// key; 0 for any other operand.
    pub(super) hash: u128,
}

/// What a batch's local OR-Set adds and removes (without an observed
/// context) changed on a big state: their deltas' join is the OR-Set of
/// the surviving adds with every dot the deltas saw.
#[derive(Default)]
pub(super) struct OrChanges<'a> {
    /// Each element's last add and its dot; a later remove drops it.
    adds: BTreeMap<&'a [u8], Dot>,
    /// Every dot of the deltas' contexts.
    seen: Vec<Dot>,
}

/// An OR-Set the batch changes without decoding it: read from the store
/// on a state cache miss while the cache is full (so a decoded state would
/// not be kept for the next write); the batch's changes are written as an
/// operand on a short pile, or the set whole as the join of its bytes and
/// the changes (`stage.rs`, `SET_PILE`). Decoding a set costs about
/// 115 ns per element (one allocation each, and their frees when it is
/// dropped), encoding it about 20; this walks its bytes (about 15 ns per
/// element) and joins them (`decode_time`; BENCHMARKS.md, "many mid-size
/// sets").
pub(super) struct SetBytes<'a> {
    pub(super) stored: OrSetBytes,
    /// The dots the elements the batch added or removed so far hold now.
    now: BTreeMap<&'a [u8], Vec<Dot>>,
    /// The counter of this replica's next dot.
    next: u64,
}

impl<'a> SetBytes<'a> {
    pub(super) fn new(stored: OrSetBytes, me: crate::causal::ReplicaId) -> SetBytes<'a> {
        let next = stored.context().next_dot(me).counter;
        SetBytes {
            stored,
            now: BTreeMap::new(),
            next,
        }
    }

    /// Apply a local add or remove of the set: its delta, as `ORSet::add`
    /// and `ORSet::remove` make it on the decoded set (an add: the
    /// element's dots before it and its one new dot in the delta's
    /// context; a remove: the dots it removes, all of the element's or
    /// those its observed context holds). `None` for any other operation.
    pub(super) fn apply(&mut self, op: &'a Op, me: crate::causal::ReplicaId) -> Option<State> {
        let (elem, observed) = match op {
            Op::OrAdd(e) => (e.as_slice(), None),
            Op::OrRemove(e, observed) => (e.as_slice(), Some(observed.as_ref())),
            _ => return None,
        };
        let mut dots: Vec<Dot> = match self.now.get(elem) {
            Some(d) => d.clone(),
            None => self.stored.dots(elem).to_vec(),
        };
        let (added, seen) = match observed {
            None => {
                let dot = Dot::new(me, self.next);
                self.next += 1;
                dots.push(dot);
                self.now.insert(elem, vec![dot]);
                (Some((ShortKey::new(elem), dot)), dots)
            }
            Some(observed) => {
                let (gone, kept) = dots
                    .into_iter()
                    .partition(|d| observed.is_none_or(|o| o.contains(d)));
                self.now.insert(elem, kept);
                (None, gone)
            }
        };
        Some(State::ORSet(crate::crdt::ORSet::from_changes(added, seen)))
    }
}

impl<'a> Slot<'a> {
    /// The slot of a key the batch has not looked at yet.
    fn new(key: &'a [u8]) -> Slot<'a> {
        Slot {
            key,
            needs_state: false,
            ops: 0,
            ty: None,
            is_new: false,
            absent: false,
            used: u64::MAX,
            reserved: None,
            tomb: false,
            fww: false,
            seed: 0,
            counts_only: true,
            removes_only: true,
            adds_removes: true,
            piled: crate::store::types::PILED_UNKNOWN,
            piling: false,
            whole: u64::MAX,
            own: None,
            state: None,
            big: false,
            counting: false,
            operand: None,
            operand_delta: None,
            changes: None,
            set: None,
            raw: None,
            raw_body: None,
            hash: 0,
        }
    }

    /// Whether the batch writes the key as the join of its changes (blind
    /// writes, and big states), which `operand` accumulates (or
    /// `operand_delta` names, for a key's only change).
    pub(super) fn writes_operand(&self) -> bool {
        self.state.is_none() || self.big
    }

    /// Join one change into `operand` (taken as is if it is the first).
    pub(super) fn join_operand(&mut self, delta: Cow<State>) -> Result<()> {
        match self.operand.as_mut() {
            None => self.operand = Some(Box::new(delta.into_owned())),
            Some(acc) => acc.try_join(&delta).map_err(mismatch)?,
        }
        Ok(())
    }

    /// Record a local OR-Set add or remove on a big state for
    /// [`Slot::join_changes`] instead of joining its delta `d` now; false
    /// (nothing recorded) for any other operation or key, whose delta the
    /// caller joins.
    pub(super) fn record_change(&mut self, op: &'a Op, d: &State) -> bool {
        /// Contexts reaching further back than this many dots of a replica
        /// (a seeded floor) are joined as deltas.
        const RUN: u64 = 64;
        let (elem, adds) = match op {
            Op::OrAdd(e) => (e, true),
            Op::OrRemove(e, None) => (e, false),
            _ => return false,
        };
        let State::ORSet(s) = d else {
            return false;
        };
        let (entries, ctx, _) = s.parts();
        // (`big` implies the batch holds the state.)
        if !self.big || s.has_tomb() {
            return false;
        }
        if ctx.vv().iter().any(|(_, n)| n > RUN) {
            return false;
        }
        // An add's delta holds its element alone, with the add's one dot.
        let added = match (adds, entries.len(), entries.values().next()) {
            (true, 1, Some(dots)) => match dots.as_slice() {
                [dot] => Some(*dot),
                _ => return false,
            },
            (false, 0, _) => None,
            _ => return false,
        };
        let c = self.changes.get_or_insert_with(Default::default);
        for (r, n) in ctx.vv().iter() {
            c.seen.extend((1..=n).map(|k| Dot::new(r, k)));
        }
        c.seen.extend(ctx.cloud().iter().copied());
        match added {
            Some(dot) => c.adds.insert(elem.as_slice(), dot),
            None => c.adds.remove(elem.as_slice()),
        };
        true
    }

    /// Join what [`Slot::record_change`] recorded into the operand.
    pub(super) fn join_changes(&mut self) -> Result<()> {
        let Some(c) = self.changes.take() else {
            return Ok(());
        };
        let adds = c.adds.into_iter().map(|(e, d)| (ShortKey::new(e), d));
        let joined = State::ORSet(crate::crdt::ORSet::from_changes(adds, c.seen));
        self.join_operand(Cow::Owned(joined))
    }

    /// Take what the cache or `types` knows of the key.
    pub(super) fn know(&mut self, m: KeyMeta) {
        self.piled = m.piled;
        self.whole = m.whole;
        self.ty = Some(m.ty);
        self.used = m.used;
        self.reserved = m.reserved;
        self.tomb = m.tomb;
        self.own = m.own;
    }
}

/// A counter's entries of `me` (increments, decrements).
pub(super) fn own_entries(st: &State, me: crate::causal::ReplicaId) -> Option<[u64; 2]> {
    match st {
        State::GCounter(g) => Some([g.entry(me), 0]),
        State::PNCounter(c) => Some([c.increments().entry(me), c.decrements().entry(me)]),
        _ => None,
    }
}

/// Step 1½: the batch's distinct keys, in first-seen order, and the slot
/// of each item (so later steps find it without hashing its key again).
pub(super) fn slots_of<'a>(items: &[(&'a [u8], Prepared<'a>)]) -> (Vec<usize>, Vec<Slot<'a>>) {
    // Distinct keys, in first-seen order.
    let indexed = items.len() > 1;
    let mut index: HashMap<&[u8], usize> =
        HashMap::with_capacity(if indexed { items.len() } else { 0 });
    let mut of_item = Vec::with_capacity(items.len());
    // At most one slot per item (a `Slot` is large: growing the vector by
    // doubling copied it about 7 times per batch of 100).
    let mut slots: Vec<Slot> = Vec::with_capacity(items.len());
    for (key, prep) in items {
        // A batch of one item needs no index of its keys.
        let i = if !indexed {
            slots.push(Slot::new(key));
            0
        } else {
            *index.entry(*key).or_insert_with(|| {
                slots.push(Slot::new(key));
                slots.len() - 1
            })
        };
        of_item.push(i);
        let slot = &mut slots[i];
        slot.needs_state |= matches!(prep, Prepared::Local(op) if op.needs_state());
        slot.fww |= matches!(prep, Prepared::Local(Op::FwwSet(_)));
        slot.counts_only &= matches!(prep, Prepared::Local(Op::Increment(_) | Op::PnAdd(_)));
        slot.removes_only &= matches!(prep, Prepared::Local(Op::OrRemove(_, None)));
        slot.adds_removes &= matches!(prep, Prepared::Local(Op::OrAdd(_) | Op::OrRemove(..)));
        slot.ops += 1;
        slot.raw = match (slot.ops, prep) {
            (1, Prepared::Merge(item, Some(bytes))) if matches!(**item, Item::State(_)) => {
                Some(*bytes)
            }
            (1, Prepared::Raw(_, bytes)) => Some(*bytes),
            _ => None,
        };
    }

    (of_item, slots)
}

impl Engine {
    /// Step 3 (and the state reads of step 4): what the write path knows
    /// of each key — type and size bound from the cache, else one
    /// multi-get on `types`; keys whose operations need their state read
    /// it (and learn their type from it).
    pub(super) fn know_keys(&self, slots: &mut [Slot]) -> Result<()> {
        // Every writer takes a cached state out before it commits (see
        // `TypeCache`): into the slot, where only keys whose state is read
        // keep it (`read_states`).
        let mut lookup = Vec::new();
        for (i, s) in slots.iter_mut().enumerate() {
            match self.types.take(s.key) {
                Some((m, st)) => {
                    s.know(m);
                    s.state = st;
                }
                // Keys whose state is read learn their type from it, unless
                // `types` is exact: then a key it lacks is being created,
                // and its (absent) state is not read.
                None if !s.needs_state || self.types_exact => lookup.push(i),
                None => {}
            }
        }
        if !lookup.is_empty() {
            // Column families are looked up only when needed: a lookup by
            // name searches the database's map of them.
            let types_cf = self.cf(CF_TYPES)?;
            let ks: Vec<&[u8]> = lookup.iter().map(|i| slots[*i].key).collect();
            for (i, r) in lookup
                .iter()
                .zip(self.db.batched_multi_get_cf(types_cf, &ks, false))
            {
                match r? {
                    Some(b) => slots[*i].know(parse_entry(&b)?),
                    None if self.types_exact => {
                        // Being created: no operand lies on it.
                        slots[*i].absent = true;
                        slots[*i].piled = 0;
                    }
                    None => {}
                }
            }
        }
        for s in slots.iter_mut() {
            // An FWW write to a key a delete reached writes in its epoch.
            s.needs_state |= s.fww && s.tomb;
            // Increments of a counter whose own entries are known need no
            // read: their deltas are this replica's next entries.
            if let (true, false, Some(_)) = (s.counts_only, s.tomb, s.own) {
                s.counting = matches!(s.ty, Some(CrdtType::GCounter | CrdtType::PNCounter));
                s.needs_state &= !s.counting;
            }
        }
        self.read_states(slots)
    }

    /// Step 4's reads: the state of each key whose operations need it, from
    /// the cache (what step 3 took out of it, in `Slot::state`) or the
    /// store, and whether the batch writes it whole or as its changes
    /// (`Slot::big`, `Slot::piling`). Keys whose state is not read drop
    /// what step 3 took (a blind write leaves none in the cache).
    fn read_states(&self, slots: &mut [Slot]) -> Result<()> {
        let mut state_cf = None;
        for s in slots.iter_mut() {
            if !s.needs_state {
                s.state = None;
                continue;
            }
            // The state a previous write left in the cache is the stored
            // one (every writer of the key holds its stripe, and one that
            // does not hold the whole state leaves none).
            let hit = s.state.is_some();
            // A key being created has no state to read (see
            // `Engine::types_exact`).
            let stored = if hit || s.absent {
                None
            } else {
                self.db
                    .get_pinned_cf(self.cf_once(&mut state_cf, CF_STATE)?, s.key)?
            };
            if let Some(b) = stored {
                // A set the cache would not keep: changed as its bytes.
                if let Some(set) = (s.adds_removes && self.types.is_full())
                    .then(|| OrSetBytes::of(&b))
                    .flatten()
                {
                    s.used = b.len() as u64;
                    s.ty = Some(CrdtType::ORSet);
                    s.set = Some(Box::new(SetBytes::new(set, self.replica)));
                    continue;
                }
                let st = decode_stored(s.key, &b)?;
                if crate::store::stored::is_plain_state(&b) {
                    // The exact size: the bound need not stay loose.
                    s.used = b.len() as u64;
                    s.whole = s.used;
                }
                s.ty = Some(st.crdt_type());
                s.state = Some(st);
            }
            // A batch of removes on a small cached set writes them as an
            // operand too (a remove's delta is a context; the put would
            // rewrite the set), up to `PILE` batches in a row. Measured:
            // removes 1.5–1.8× faster; adds written so were slower (more
            // memtable entries before a flush), so they put the state.
            // Only a state the cache held is written as operands: one read
            // from the store may lie on a pile of operands of unknown size
            // (the read joined them), and is put whole, which the read's
            // cost already was.
            let known = hit && s.state.is_some() && s.used != u64::MAX;
            s.piling = known
                && s.removes_only
                && s.piled < crate::store::types::PILE
                && s.used <= BIG_STATE;
            s.big = known && (s.used > BIG_STATE || s.piling);
        }
        Ok(())
    }
}
