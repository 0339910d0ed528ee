//! The write path. For a batch:
//! 1. validate every key, value and merge payload (decode + canonical
//!    check; full states of the plain counters, G-Set and OR-Set, and
//!    peers' deltas of them with no dependency beyond their origin's, are
//!    skimmed instead, `codec/skim.rs`, and decoded only if needed);
//! 2. lock the stripes of the batch's keys (ascending, so no deadlock);
//! 3. look up each key's type and size bound, taking any cached state out
//!    (a bounded in-memory cache,
//!    then one multi-get on `types`; no state read; see `types.rs`);
//!    in a store whose `types` is exact (`Engine::types_exact`) every key
//!    the cache lacks is looked up there, and a key without an entry is
//!    being created: its state is not read;
//! 4. read the states of keys whose operations need them (counters whose
//!    own entries the type cache does not know, OR-Set, MV register; an
//!    OR-Set or MV-register state the previous write left in the cache is
//!    taken from it instead), apply the operations in order to an in-batch overlay,
//!    producing one delta per local operation; a merged delta whose
//!    dependencies the record (or the batch) does not hold is set aside to
//!    be parked in the pending area (`pending.rs`) instead;
//! 5. stage each key: put the new full state of keys that were read (the
//!    join of the batch's changes, as an operand, for states over
//!    [`BIG_STATE`], and for a batch of only OR-Set removes on a cached
//!    state, up to `types::PILE` batches in a row), merge one joined
//!    operand into `state` for the others (blind writes),
//!    checking every key against the state size limit (exactly for read
//!    keys, by the size bound for blind ones, exactly again when the bound
//!    says it might not fit); put the `types` entry of new keys and of keys
//!    whose size reservation grows;
//! 6. under the commit lock: merge the record's new dots and the clock into
//!    `meta`, put parked deltas into `pending`, number the local operations,
//!    record the first one's dependencies, log them for the changes feed
//!    (`feed.rs`; with the feed off, put `meta/seq`) — one RocksDB write batch with the
//!    configured durability;
//! 7. cache the keys' types and bounds (and the OR-Set and MV-register
//!    states the batch held; every write took a cached state out in
//!    step 3, so a blind write leaves none), mark the keys dirty for the
//!    anti-entropy tree, publish the new dots, index the parked deltas,
//!    release the locks, then drain the pending entries the new dots made
//!    ready.
//!
//! A failure before step 6 (including `StateTooLarge`) writes nothing; a
//! failure of step 6 poisons the engine (state on disk is then known only
//! after reopen).

use super::batch::{Batch, KeyedDelta, Op};
use super::commit::{Done, Ready};
use super::merge::encode_ts;
use super::stored::decode_stored;
use super::types::{encode_entry, parse_entry, KeyMeta, JOIN_SLACK};
use super::{
    Engine, CF_META, CF_PENDING, CF_STATE, CF_TYPES, MAX_KEY_LEN, MAX_VALUE_LEN, META_CTX, META_HLC,
};
use crate::causal::{CausalContext, Dot, Timestamp};
use crate::codec::{
    decode_item, encode_context, skim_delta, Changes, Delta, Item, SkimmedDelta, MAX_STATE_LEN,
};
use crate::crdt::{CrdtType, FwwRegister, GCounter, LwwRegister, PNCounter, State};
use crate::error::{Error, Result};
use foldhash::{HashMap, HashMapExt};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Encoded size from which a key whose state the batch holds is written as
/// the join of its changes (a merge operand) rather than put whole.
const BIG_STATE: u64 = 64 << 10;

/// Per-key working state while a batch is applied.
struct Slot<'a> {
    key: &'a [u8],
    needs_state: bool,
    ops: usize,
    ty: Option<CrdtType>,
    /// The store held nothing of the key (no type, no state): the batch
    /// creates it.
    is_new: bool,
    /// `types` holds no entry for the key and is exact
    /// (`Engine::types_exact`): the store holds no state of it either.
    absent: bool,
    /// Upper bound of the stored state's encoded size (`u64::MAX`:
    /// unknown; 0 for a new key) and the persisted reservation; see
    /// `types.rs`.
    used: u64,
    reserved: Option<u64>,
    /// Whether the `types` entry flags a tombstone.
    tomb: bool,
    /// Whether the batch writes the key as an FWW register (blind, unless
    /// a delete reached the key: the write belongs to the epoch the
    /// state holds).
    fww: bool,
    /// The collection floor this batch seeded the key's empty state with
    /// (its first local delta carries it too); 0: none.
    seed: u64,
    /// Whether every operation of the batch on the key is a local counter
    /// increment (G-Counter or PN-Counter).
    counts_only: bool,
    /// Whether every operation of the batch on the key is a local OR-Set
    /// remove without an observed context.
    removes_only: bool,
    /// `KeyMeta::piled` of the key, and whether this batch adds to the
    /// pile (removes on a small cached state, written as an operand).
    piled: u8,
    piling: bool,
    /// This replica's counter entries, known without reading the state
    /// (see `KeyMeta::own`).
    own: Option<[u64; 2]>,
    /// Current state, for keys whose state is read or taken from the
    /// cache (then replaced by a put, or joined with `operand` if `big`).
    state: Option<State>,
    /// The state is large (over [`BIG_STATE`]): the batch writes the join
    /// of its changes to it as an operand (`operand`) instead of putting
    /// the whole state, keeping the write proportional to the change.
    big: bool,
    /// For counters incremented blind: the increments advance `own`
    /// (this replica's entries, known without reading the state) and
    /// their deltas are built from it.
    counting: bool,
    /// Join of everything this batch writes to a key that is not read
    /// (`None` when that is one delta, `operand_delta`).
    operand: Option<State>,
    /// For a key written blind by one local operation: the index of its
    /// delta in the batch's deltas, which is the operand (written from
    /// there, not copied into `operand`).
    operand_delta: Option<usize>,
    /// A big OR-Set's local adds and removes, recorded as they are applied
    /// and joined into `operand` once, by [`Slot::join_changes`]: cheaper
    /// than joining each operation's delta.
    changes: Option<Box<OrChanges<'a>>>,
    /// The validated bytes of a key's only operation, a full-state merge:
    /// written through as the operand, not re-encoded.
    raw: Option<&'a [u8]>,
    /// The certified state bytes of a key's only operation, a peer's
    /// delta (`Prepared::RawDelta`): sealed as a full state and written as
    /// the operand, not decoded and encoded again.
    raw_body: Option<&'a [u8]>,
    /// The entry hash of what the key holds once the batch is written
    /// (with the tree on), so that the settle need not read it back: of
    /// the state the batch puts whole, or of the operand that creates the
    /// key; 0 for any other operand.
    hash: u128,
}

/// What a batch's local OR-Set adds and removes (without an observed
/// context) changed on a big state: their deltas' join is the OR-Set of
/// the surviving adds with every dot the deltas saw.
#[derive(Default)]
struct OrChanges<'a> {
    /// Each element's last add and its dot; a later remove drops it.
    adds: BTreeMap<&'a [u8], Dot>,
    /// Every dot of the deltas' contexts.
    seen: Vec<Dot>,
}

/// An operation ready to apply: local, or a merge payload decoded during
/// validation (with its bytes when they came from the caller).
pub(super) enum Prepared<'a> {
    Local(&'a Op),
    Merge(Item, Option<&'a [u8]>),
    /// A full state certified canonical without decoding it
    /// (`codec::skim_state`): written through as the key's operand, and
    /// decoded only if the batch needs it as a state (other operations on
    /// the key).
    Raw(CrdtType, &'a [u8]),
    /// A peer's delta certified without decoding it
    /// (`codec::skim_delta`): applied from its dot and state bytes (the
    /// state written as the key's operand, sealed around them) when it is
    /// the key's only operation and deliverable at once; decoded
    /// otherwise (its bytes).
    RawDelta(SkimmedDelta<'a>, &'a [u8]),
}

/// What a commit brings besides its operations.
#[derive(Default)]
pub(super) struct Extra {
    /// Dots the commit adds to the record (a page of changes, drained
    /// pending entries).
    pub(super) dots: CausalContext,
    /// Pending rows the commit applies (deleted in the same batch).
    pub(super) release: Vec<u64>,
    /// Pages to keep pending (with their encodings).
    pub(super) park: Vec<(Changes, Vec<u8>)>,
}

fn mismatch(m: crate::crdt::TypeMismatch) -> Error {
    Error::WrongType {
        stored: m.expected,
        requested: m.found,
    }
}

impl Engine {
    /// Apply a batch atomically. Returns the delta of every local operation
    /// (merges produce none), in batch order. A merged delta whose causal
    /// dependencies this replica does not hold yet is kept in the pending
    /// area (in the same atomic write) and becomes visible when they
    /// arrive; see [`Engine::pending`].
    pub fn write(&self, batch: &Batch) -> Result<Vec<KeyedDelta>> {
        self.check_writable()?;
        if batch.ops.is_empty() {
            return Ok(Vec::new());
        }
        let items = validate(batch)?;
        let done = self.commit_items(items, Extra::default())?;
        self.after_commit(&done)?;
        Ok(done.deltas)
    }

    /// Drain what a commit may have made ready. The commit itself
    /// succeeded; a failure here is reported but loses nothing (the
    /// entries stay pending).
    pub(super) fn after_commit(&self, done: &Done) -> Result<()> {
        if done.parked || (!done.remote.is_empty() && !self.pending.is_empty()) {
            self.drain(done.remote.clone())?;
        }
        Ok(())
    }

    /// Join full states into keys and add `dots` to the record in one
    /// atomic write, deleting the pending rows `release`: how pages of
    /// changes and drained pending entries are applied.
    pub(super) fn commit_states(
        &self,
        states: Vec<(&[u8], State)>,
        dots: CausalContext,
        release: Vec<u64>,
    ) -> Result<Done> {
        self.check_writable()?;
        let items = states
            .into_iter()
            .map(|(k, st)| (k, Prepared::Merge(Item::State(st), None)))
            .collect();
        self.commit_items(
            items,
            Extra {
                dots,
                release,
                park: Vec::new(),
            },
        )
    }

    /// The write path proper (steps 2–7 of the module documentation).
    pub(super) fn commit_items(
        &self,
        items: Vec<(&[u8], Prepared)>,
        mut extra: Extra,
    ) -> Result<Done> {
        let (index, mut slots) = slots_of(&items);
        let size_hint = write_size_hint(&items);
        // Every writer of a key holds the key's stripe, so a
        // read-modify-write can replace the state with a put, and a key's
        // size bound (types.rs) is read and updated under the stripe. Blind
        // writes still read no state.
        let guards = self
            .locks
            .lock_all(slots.iter().map(|s| self.locks.stripe(s.key)).collect());
        // Before the keys are looked at: the tree tells from it whether a
        // key this batch creates can have an index entry (none can unless
        // a settle ran meanwhile).
        let epoch = self.tree.epoch();
        self.know_keys(&mut slots)?;
        let Applied {
            deltas,
            max_ts,
            mut remote,
        } = self.apply_all(items, &index, &mut slots, &mut extra)?;
        // Step 5: each key's put or operand, checked against the size limit.
        let mut wb = rocksdb::WriteBatch::with_capacity_bytes(size_hint);
        let mut metas = Vec::with_capacity(slots.len());
        // The keys written, with their hints, for the tree, and whether the
        // batch creates them (the settler's ingest rule; a created key's
        // fold reads no old index entry). A key the batch leaves as it was
        // (a delete or remove of nothing) is not marked.
        let aae = self.options.anti_entropy;
        let mut keys: Vec<crate::aae::Written> =
            Vec::with_capacity(if aae { slots.len() } else { 0 });
        // The log's operations (with the feed on), encoded outside the
        // commit lock (only the dependencies are added under it), before
        // the keys are staged: a key's only operation is written from its
        // state's body there.
        let mut bodies = Vec::new();
        let logged = (self.options.changes_feed && !deltas.is_empty())
            .then(|| super::feed::encode_log_ops_into(&deltas, Some(&mut bodies)));
        let mut staging = Staging {
            state: self.cf(CF_STATE)?,
            meta: None,
            types: None,
            scratch: Vec::with_capacity(256),
            log: logged.as_deref().map(|log| (log, &bodies[..])),
        };
        for slot in &mut slots {
            if let Some(m) = self.stage(slot, &deltas, &mut wb, &mut staging)? {
                if aae {
                    keys.push((
                        crate::shortkey::ShortKey::new(slot.key),
                        slot.hash,
                        slot.is_new,
                    ));
                }
                // The whole state goes back to the cache with the key's
                // metadata (OR-Set and MV register: the types whose writes
                // read it; not after a delete, whose marker is joined at
                // commit). Any other write leaves none (step 3 took it).
                let keep = !m.tomb && super::types::holds_state(m.ty);
                let state = slot.state.take().filter(|_| keep);
                metas.push((slot.key, m, state));
            }
        }
        // Step 6, the part that needs no order: record, clock, applied
        // pending rows.
        remote.merge(&extra.dots);
        self.stage_meta(&mut wb, &remote, max_ts, &extra.release)?;

        // Commit: the sequence numbers of the local operations are taken
        // in commit order by the group commit (`commit.rs`) and persisted in
        // the same RocksDB batch (the log entry or `meta/seq`), so they are
        // consecutive, and a batch that fails consumes none. A batch that
        // adds no dot (only full states merged) needs no order: it is
        // written directly.
        let ordered = !deltas.is_empty() || !remote.is_empty() || !extra.park.is_empty();
        let done = if ordered {
            self.commit_ready(Ready {
                wb,
                deltas,
                remote,
                park: std::mem::take(&mut extra.park),
                logged,
                release: std::mem::take(&mut extra.release),
                keys,
                epoch,
            })?
        } else {
            self.check_writable()?;
            self.write_or_poison(wb)?;
            if self.options.anti_entropy {
                self.tree.mark_dirty_owned(keys, epoch);
            }
            if !extra.release.is_empty() {
                self.pending.index.lock().release(&extra.release);
            }
            Done {
                deltas,
                remote,
                parked: false,
                log_bytes: 0,
            }
        };
        // Size bounds change under the keys' stripes only.
        for (key, m, state) in metas {
            self.types.insert(key, m, state);
        }
        // The data is written: release the keys before a possible settle.
        drop(guards);
        if done.log_bytes > 0 {
            self.feed.grew(self);
        }
        if self.tree.over_budget() {
            // The background settler fell behind: bound the memory of the
            // dirty set here (back-pressure). The write itself succeeded;
            // keys that fail to fold stay dirty for the next settle.
            let _ = self.tree.settle(&self.db);
        } else if self.tree.dirty_keys() >= crate::aae::settler::WAKE_AT {
            self.nudge_settler();
        }
        Ok(done)
    }

    /// The batch's record, clock and applied pending rows, into `wb`.
    fn stage_meta(
        &self,
        wb: &mut rocksdb::WriteBatch,
        remote: &CausalContext,
        max_ts: Option<Timestamp>,
        release: &[u64],
    ) -> Result<()> {
        let meta_cf = self.cf(CF_META)?;
        if !remote.is_empty() {
            wb.merge_cf(meta_cf, META_CTX, encode_context(remote));
        }
        if let Some(ts) = max_ts {
            self.clock.observe(ts);
            wb.merge_cf(meta_cf, META_HLC, encode_ts(ts));
        }
        let pending_cf = self.cf(CF_PENDING)?;
        for id in release {
            wb.delete_cf(pending_cf, id.to_be_bytes());
        }
        Ok(())
    }

    /// Step 3 (and the state reads of step 4): what the write path knows
    /// of each key — type and size bound from the cache, else one
    /// multi-get on `types`; keys whose operations need their state read
    /// it (and learn their type from it).
    fn know_keys(&self, slots: &mut [Slot]) -> Result<()> {
        // Types and size bounds: from the cache, else one multi-get on
        // `types` (keys whose state is read learn their type from it).
        let types_cf = self.cf(CF_TYPES)?;
        // Every writer takes a cached state out before it commits (see
        // `TypeCache`); only keys whose state is read use it.
        let mut lookup = Vec::with_capacity(slots.len());
        let mut taken: Vec<Option<State>> = Vec::with_capacity(slots.len());
        for (i, s) in slots.iter_mut().enumerate() {
            taken.push(match self.types.take(s.key) {
                Some((m, st)) => {
                    s.know(m);
                    st
                }
                // Keys whose state is read learn their type from it, unless
                // `types` is exact: then a key it lacks is being created,
                // and its (absent) state is not read.
                None if !s.needs_state || self.types_exact => {
                    lookup.push(i);
                    None
                }
                None => None,
            });
        }
        if !lookup.is_empty() {
            let ks: Vec<&[u8]> = lookup.iter().map(|i| slots[*i].key).collect();
            for (i, r) in lookup
                .iter()
                .zip(self.db.batched_multi_get_cf(types_cf, &ks, false))
            {
                match r? {
                    Some(b) => slots[*i].know(parse_entry(&b)?),
                    None => slots[*i].absent = self.types_exact,
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
        let state_cf = self.cf(CF_STATE)?;
        for (s, cached) in slots.iter_mut().zip(taken).filter(|(s, _)| s.needs_state) {
            // The state a previous write left in the cache is the stored
            // one (every writer of the key holds its stripe, and one that
            // does not hold the whole state leaves none).
            let hit = cached.is_some();
            if let Some(st) = cached {
                s.state = Some(st);
            } else if s.absent {
                // No state to read (see `Engine::types_exact`).
            } else if let Some(b) = self.db.get_pinned_cf(state_cf, s.key)? {
                let st = decode_stored(s.key, &b)?;
                if super::stored::is_plain_state(&b) {
                    // The exact size: the bound need not stay loose.
                    s.used = b.len() as u64;
                }
                s.ty = Some(st.crdt_type());
                s.state = Some(st);
            }
            // A batch of removes on a small cached set writes them as an
            // operand too (a remove's delta is a context; the put would
            // rewrite the set), up to `PILE` batches in a row. Measured:
            // removes 1.5–1.8× faster; adds written so were slower (more
            // memtable entries before a flush), so they put the state.
            let known = s.state.is_some() && s.used != u64::MAX;
            s.piling = known
                && hit
                && s.removes_only
                && s.piled < super::types::PILE
                && s.used <= BIG_STATE;
            s.big = known && (s.used > BIG_STATE || s.piling);
        }

        Ok(())
    }

    /// Step 4: apply the operations in order to the in-batch overlay:
    /// local operations produce their deltas, merged deltas whose
    /// dependencies are missing are set aside to park.
    fn apply_all<'a>(
        &self,
        items: Vec<(&'a [u8], Prepared<'a>)>,
        index: &HashMap<&'a [u8], usize>,
        slots: &mut [Slot<'a>],
        extra: &mut Extra,
    ) -> Result<Applied> {
        // Apply in order. A delta per local operation.
        let locals = items
            .iter()
            .filter(|(_, p)| matches!(p, Prepared::Local(_)))
            .count();
        let mut deltas = Vec::with_capacity(locals);
        let mut max_ts: Option<Timestamp> = None;
        // Dots of the peers' deltas merged by this batch.
        let mut remote = CausalContext::new();
        // Per origin, how far its operations are held (`plainly_deliverable`).
        let mut reach = HashMap::new();
        for (key, prep) in items {
            let slot = &mut slots[index[key]];
            let prep = match prep {
                Prepared::Raw(_, bytes) if slot.ops > 1 || slot.needs_state => {
                    Prepared::Merge(decode_item(bytes)?, Some(bytes))
                }
                Prepared::RawDelta(d, bytes)
                    if slot.ops > 1
                        || slot.needs_state
                        || !self.plainly_deliverable(&d, &remote, &mut reach) =>
                {
                    Prepared::Merge(decode_item(bytes)?, Some(bytes))
                }
                p => p,
            };
            let ty = match &prep {
                Prepared::Raw(ty, _) => *ty,
                Prepared::RawDelta(d, _) => d.ty,
                Prepared::Merge(item, _) => item.state().crdt_type(),
                // A delete based on what this replica holds: of the key's
                // type; nothing to delete if the key does not exist or
                // already reads as absent.
                Prepared::Local(Op::Delete(None)) => match (slot.ty, &slot.state) {
                    (Some(_), Some(st)) if st.is_absent() => continue,
                    (Some(t), _) => t,
                    (None, _) => continue,
                },
                // A remove from a key that does not exist removes nothing:
                // no operation, and the key is not created.
                Prepared::Local(Op::OrRemove(..)) if slot.ty.is_none() => continue,
                Prepared::Local(op) => op.crdt_type().unwrap_or(CrdtType::GCounter),
            };
            // Checked before anything else, so a delta that will wait in the
            // pending area is refused the same way as one applied now.
            if let Some(stored) = slot.ty.filter(|stored| *stored != ty) {
                return Err(Error::WrongType {
                    stored,
                    requested: ty,
                });
            }
            let (incoming, op) = match prep {
                Prepared::Merge(item, _) => {
                    let s = match item {
                        Item::Delta(mut d) => {
                            let dot = Dot::new(d.origin, d.seq);
                            if d.state.is_delete() {
                                // Collection waits for this delete by its dot.
                                d.state.mark_delete(dot);
                            }
                            match self.deliverable(key, d, &remote, extra) {
                                Some(s) => {
                                    remote.insert(dot);
                                    s
                                }
                                None => continue,
                            }
                        }
                        Item::State(s) => s,
                    };
                    // A tombstone this replica collected already: collected
                    // on arrival too, with what it removed.
                    let had_tomb = s.has_tomb();
                    let Some(s) = self.strip_collected(s) else {
                        slot.raw = None;
                        continue;
                    };
                    if had_tomb && !s.has_tomb() {
                        slot.raw = None;
                    }
                    max_ts = max_ts.max(s.max_timestamp());
                    (Some(s), None)
                }
                Prepared::Local(op) => (None, Some(op)),
                // Written through by `stage` (`slot.raw`).
                Prepared::Raw(..) => (None, None),
                // Deliverable (checked above), of a state with no
                // tombstone or timestamp: recorded, and written by
                // `stage` from its bytes (`slot.raw_body`).
                Prepared::RawDelta(d, _) => {
                    if d.deps {
                        // Every earlier operation of its origin is held
                        // (`plainly_deliverable`): the batch's dots claim
                        // them too, as a run from 1 in the vector, which
                        // records, merges and encodes cheaply, rather than
                        // as isolated dots. The record they join is the
                        // same.
                        remote.insert_range(d.dot.replica, 1, d.dot.counter);
                    } else {
                        remote.insert(d.dot);
                    }
                    slot.raw_body = Some(d.body);
                    (None, None)
                }
            };
            if slot.ty.is_none() {
                slot.ty = Some(ty);
                slot.is_new = true;
                slot.used = 0;
            }
            if slot.needs_state && slot.state.is_none() {
                // A key this replica holds no state of (never written, or
                // purged): its dots start above the collection floor.
                let mut st = State::empty(ty);
                let floor = self.gc.floor.load(std::sync::atomic::Ordering::Acquire);
                if floor > 0 {
                    st.seed_floor(self.replica, floor);
                    slot.seed = floor;
                }
                slot.state = Some(st);
            }
            let delta = match (incoming, op) {
                (Some(s), _) => {
                    // Later local operations on this key must see merged input.
                    if let Some(st) = slot.state.as_mut() {
                        st.try_join(&s).map_err(mismatch)?;
                    }
                    s
                }
                (None, Some(op)) => {
                    let mut d = match (&mut slot.state, &mut slot.own) {
                        (None, Some(own)) if slot.counting => self.count(op, ty, own)?,
                        (st, _) => self.apply_local(op, st.as_mut(), ty)?,
                    };
                    if matches!(&d, State::ORSet(s) if s.is_bottom()) {
                        // A remove that removed nothing (the state is
                        // unchanged): no delta. Shipped, it would be a
                        // numbered operation that re-creates a deleted
                        // key on a replica that collected its tombstone.
                        continue;
                    }
                    if slot.seed > 0 {
                        // The first delta says so too (compact contexts).
                        d.seed_floor(self.replica, std::mem::take(&mut slot.seed));
                    }
                    if let State::LwwRegister(_) | State::FwwRegister(_) = d {
                        max_ts = max_ts.max(d.max_timestamp());
                    }
                    // A key whose state was read takes the operation
                    // into it (above); the others, and big states (written
                    // as their changes), join the delta into the operand
                    // (a big OR-Set's adds and removes: recorded, joined
                    // at the end).
                    if slot.writes_operand() && !slot.record_change(op, &d) {
                        if slot.ops == 1 {
                            // The key's only change: written from the
                            // delta itself (`stage`), not from a copy.
                            slot.operand_delta = Some(deltas.len());
                        } else {
                            slot.join_operand(Cow::Borrowed(&d))?;
                        }
                    }
                    // The sequence number and dependencies are set at
                    // commit.
                    deltas.push(KeyedDelta {
                        key: key.to_vec(),
                        delta: Delta {
                            origin: self.replica,
                            seq: 0,
                            deps: Some(CausalContext::new()),
                            state: d,
                        },
                    });
                    continue;
                }
                (None, None) => continue,
            };
            if slot.writes_operand() {
                slot.join_operand(Cow::Owned(delta))?;
            }
        }

        for slot in slots.iter_mut() {
            slot.join_changes()?;
        }
        Ok(Applied {
            deltas,
            max_ts,
            remote,
        })
    }

    /// Whether a merged delta may become visible now: `Some(state)` if
    /// so (no recorded dependencies, or all held by the record or by this
    /// batch), else `None` after adding it to the pages to park (unless it
    /// is pending already), or when the record holds it already.
    fn deliverable(
        &self,
        key: &[u8],
        d: Delta,
        batch: &CausalContext,
        extra: &mut Extra,
    ) -> Option<State> {
        let dot = Dot::new(d.origin, d.seq);
        {
            let ctx = self.context.lock();
            if ctx.contains(&dot) {
                // Applied before: its effects are here, or were collected
                // with a tombstone (applying it again could bring them
                // back).
                return None;
            }
            match &d.deps {
                None => return Some(d.state),
                // The common case: only the origin's earlier operations,
                // held as a prefix of the record's vector or the batch's.
                Some(deps)
                    if deps.is_empty()
                        && ctx.vv().get(d.origin).max(batch.vv().get(d.origin))
                            >= d.seq.saturating_sub(1) =>
                {
                    return Some(d.state)
                }
                Some(_) => {}
            }
        }
        let Some(needs) = d.requires() else {
            return Some(d.state);
        };
        {
            let ctx = self.context.lock();
            if ctx.contains(&dot) || ctx.first_missing(Some(batch), &needs).is_none() {
                return Some(d.state);
            }
        }
        let mut dots = CausalContext::new();
        dots.insert(dot);
        if extra.park.iter().any(|(c, _)| c.dots.includes(&dots))
            || self.pending.index.lock().holds_all(&dots)
        {
            return None;
        }
        let page = Changes {
            dots,
            deps: needs,
            entries: vec![(key.to_vec(), d.state)],
        };
        let bytes = page.encode();
        extra.park.push((page, bytes));
        None
    }

    /// Whether a certified delta (`Prepared::RawDelta`) is applied at once,
    /// as [`Engine::deliverable`] would find: not applied before, and its
    /// only dependencies, the origin's earlier operations, all held by the
    /// record or by the batch (`batch`). Anything else is decoded and takes
    /// the full path. `reach` keeps, per origin, how far the record and the
    /// batch together were found to hold its operations without a gap
    /// (the batch holds a run that does not start at 1 as isolated dots),
    /// so each dot is looked at once per batch.
    fn plainly_deliverable(
        &self,
        d: &SkimmedDelta,
        batch: &CausalContext,
        reach: &mut HashMap<crate::causal::ReplicaId, u64>,
    ) -> bool {
        let ctx = self.context.lock();
        if ctx.contains(&d.dot) {
            return false;
        }
        if !d.deps {
            return true;
        }
        let origin = d.dot.replica;
        // The origin's operations before this one (the sequence number is
        // at least 1: `skim_delta`).
        let before = d.dot.counter - 1;
        let held = reach.entry(origin).or_insert(0);
        let mut have = (*held)
            .max(ctx.vv().get(origin))
            .max(batch.vv().get(origin));
        while have < before {
            let next = Dot::new(origin, have + 1);
            if !(batch.contains(&next) || ctx.contains(&next)) {
                break;
            }
            have += 1;
        }
        *held = have;
        have >= before
    }

    /// Under the commit lock: give the pages to park their pending ids and
    /// put them in `wb`, unless they are pending already; fails with
    /// [`Error::PendingFull`] if they do not fit.
    pub(super) fn stage_parked(
        &self,
        park: &mut Vec<(Changes, Vec<u8>)>,
        wb: &mut rocksdb::WriteBatch,
    ) -> Result<Vec<(u64, Changes, u64)>> {
        if park.is_empty() {
            return Ok(Vec::new());
        }
        let mut index = self.pending.index.lock();
        park.retain(|(c, _)| !index.holds_all(&c.dots));
        let bytes: u64 = park.iter().map(|(_, b)| b.len() as u64).sum();
        index.check_room(
            park.len(),
            bytes,
            self.options.max_pending,
            self.options.max_pending_bytes,
        )?;
        let cf = self.cf(CF_PENDING)?;
        let mut out = Vec::with_capacity(park.len());
        for (c, b) in park.drain(..) {
            let id = index.next_id;
            index.next_id += 1;
            wb.put_cf(cf, id.to_be_bytes(), &b);
            out.push((id, c, b.len() as u64));
        }
        Ok(out)
    }

    /// Add a slot's writes to `wb`: the new state (read-modify-write keys,
    /// and blind writes whose size bound would pass the limit: those read
    /// the state and check the exact size) or the joined operand (blind
    /// writes), and the `types` entry when the key is new or its
    /// reservation must grow. Fails, writing nothing, if the state would
    /// exceed [`MAX_STATE_LEN`]. Returns what the key's cache entry
    /// becomes once the batch is written.
    fn stage<'e>(
        &'e self,
        slot: &mut Slot,
        deltas: &[KeyedDelta],
        wb: &mut rocksdb::WriteBatch,
        staging: &mut Staging<'e>,
    ) -> Result<Option<KeyMeta>> {
        let Some(ty) = slot.ty else {
            return Ok(None);
        };
        let state_cf = staging.state;
        // What the batch joins into the stored state, if it is not put whole.
        let operand = slot
            .operand
            .as_ref()
            .or_else(|| slot.operand_delta.map(|i| &deltas[i].delta.state));
        let tomb = slot.tomb || slot.state.as_ref().or(operand).is_some_and(State::has_tomb);
        // The size bound, and the pile of remove operands (`KeyMeta::piled`).
        let (used, piled) = match &slot.state {
            // A big state's changes, as a blind write's operand would be
            // (nothing to write if the batch changed nothing).
            Some(_) if slot.big && !tomb && operand.is_none() => (slot.used, slot.piled),
            Some(st) if !slot.big || tomb => (
                self.put_checked(wb, slot.key, st, &mut slot.hash, staging)?,
                0,
            ),
            _ => {
                // A key's only full-state merge is written as its
                // validated bytes; anything else as the joined operand.
                // A state body to seal: a peer's delta's (`raw_body`), or a
                // key's only local operation's, in the log entry (with the
                // feed on).
                let logged = slot
                    .operand_delta
                    .and_then(|i| staging.log.map(|(log, bodies)| &log[bodies[i].clone()]));
                let bytes: &[u8] = match (slot.raw, slot.raw_body.or(logged), operand) {
                    (Some(raw), _, _) => raw,
                    (None, Some(body), _) => {
                        staging.scratch.clear();
                        crate::codec::seal_state_body_into(body, &mut staging.scratch);
                        &staging.scratch
                    }
                    (None, None, Some(operand)) => {
                        staging.scratch.clear();
                        crate::codec::encode_state_into(operand, &mut staging.scratch);
                        &staging.scratch
                    }
                    (None, None, None) => return Ok(None),
                };
                let bound = slot
                    .used
                    .saturating_add(bytes.len() as u64)
                    .saturating_add(JOIN_SLACK);
                if bound <= MAX_STATE_LEN as u64 {
                    wb.merge_cf(state_cf, slot.key, bytes);
                    if self.options.anti_entropy && slot.is_new {
                        // The store held nothing of the key: it now holds
                        // this operand as it is (one value merges to itself,
                        // `stored::try_join_all`), so the settle need not
                        // read it back (a delete's marker, joined at
                        // commit, clears the hint: `meta_after`).
                        slot.hash = crate::aae::hash::entry_hash(slot.key, bytes);
                    }
                    (bound, if slot.piling { slot.piled + 1 } else { 0 })
                } else if let Some(st) = &slot.state {
                    // The bound says it might not fit: join exactly (a big
                    // state the batch holds is that join already).
                    (
                        self.put_checked(wb, slot.key, st, &mut slot.hash, staging)?,
                        0,
                    )
                } else {
                    let mut st = match self.db.get_pinned_cf(state_cf, slot.key)? {
                        Some(b) => decode_stored(slot.key, &b)?,
                        None => State::empty(ty),
                    };
                    match operand {
                        Some(operand) => st.try_join(operand),
                        None => st.try_join(&crate::codec::decode_state(bytes)?),
                    }
                    .map_err(mismatch)?;
                    (
                        self.put_checked(wb, slot.key, &st, &mut slot.hash, staging)?,
                        0,
                    )
                }
            }
        };
        self.meta_after(slot, wb, ty, tomb, (used, piled), staging)
    }

    /// The rest of [`Engine::stage`] once the state's write is staged
    /// (`used`: its size bound): the tombstone index and `types` entry,
    /// and what the key's cache entry becomes.
    fn meta_after<'e>(
        &'e self,
        slot: &mut Slot,
        wb: &mut rocksdb::WriteBatch,
        ty: CrdtType,
        tomb: bool,
        (used, piled): (u64, u8),
        staging: &mut Staging<'e>,
    ) -> Result<Option<KeyMeta>> {
        if tomb {
            // A delete's marker is joined at commit (`commit.rs`): what a
            // key with a tombstone holds is read back by the settle.
            slot.hash = 0;
        }
        if tomb && !slot.tomb {
            // Indexed for collection (`gc.rs`).
            let meta = Staging::family(&mut staging.meta, self, CF_META)?;
            wb.put_cf(meta, super::gc::tomb_key(slot.key), []);
        }
        // A new key has no reservation yet; a key a delete reached for
        // the first time gets its flag.
        let kept = slot.reserved.filter(|r| used <= *r);
        let reserved = kept.unwrap_or_else(|| KeyMeta::reservation_for(used));
        if kept.is_none() || tomb != slot.tomb {
            wb.put_cf(
                Staging::family(&mut staging.types, self, CF_TYPES)?,
                slot.key,
                encode_entry(ty, reserved, tomb),
            );
        }
        Ok(Some(KeyMeta {
            ty,
            used,
            reserved: Some(reserved),
            tomb,
            own: if tomb {
                None
            } else {
                match &slot.state {
                    Some(st) => own_entries(st, self.replica),
                    None if slot.counting => slot.own,
                    None => None,
                }
            },
            piled,
        }))
    }

    /// A local increment of a counter incremented blind
    /// ([`Slot::counting`]): its delta is this replica's next entry, built
    /// from `own` (this replica's increments and decrements), which it
    /// advances. The delta [`Engine::apply_local`] makes on the state (the
    /// key has no tombstone, so the delta carries none).
    fn count(&self, op: &Op, ty: CrdtType, own: &mut [u64; 2]) -> Result<State> {
        let me = self.replica;
        let next = |entry: &mut u64, n: u64| -> Result<GCounter> {
            if n == 0 {
                return Ok(GCounter::default());
            }
            let Some(sum) = entry.checked_add(n) else {
                return Err(Error::Overflow);
            };
            *entry = sum;
            Ok(GCounter::with_entry(me, *entry))
        };
        Ok(match (op, ty) {
            (Op::Increment(n), CrdtType::GCounter) => State::GCounter(next(&mut own[0], *n)?),
            (Op::PnAdd(n), CrdtType::PNCounter) => State::PNCounter(if *n >= 0 {
                PNCounter::from_parts(next(&mut own[0], *n as u64)?, GCounter::default())
            } else {
                PNCounter::from_parts(GCounter::default(), next(&mut own[1], n.unsigned_abs())?)
            }),
            (op, stored) => {
                return Err(Error::WrongType {
                    stored,
                    requested: op.crdt_type().unwrap_or(stored),
                })
            }
        })
    }

    /// Apply one local operation to `state` (or, for blind operations, to
    /// the empty state; a blind register write is its delta alone) and
    /// return its delta.
    fn apply_local(&self, op: &Op, state: Option<&mut State>, ty: CrdtType) -> Result<State> {
        let me = self.replica;
        let mut scratch;
        let st = match (state, op, ty) {
            (Some(s), _, _) => s,
            // Blind register writes: the delta is the write alone.
            (None, Op::LwwSet(v), CrdtType::LwwRegister) => {
                return Ok(State::LwwRegister(LwwRegister::blind_set(
                    self.clock.tick(),
                    me,
                    v,
                )))
            }
            (None, Op::FwwSet(v), CrdtType::FwwRegister) => {
                return Ok(State::FwwRegister(FwwRegister::blind_set(
                    self.clock.tick(),
                    me,
                    v,
                )))
            }
            (None, _, _) => {
                scratch = State::empty(ty);
                &mut scratch
            }
        };
        Ok(match (op, st) {
            (Op::Increment(n), State::GCounter(c)) => {
                State::GCounter(c.increment(me, *n).map_err(|_| Error::Overflow)?)
            }
            (Op::PnAdd(n), State::PNCounter(c)) => {
                State::PNCounter(c.add(me, *n).map_err(|_| Error::Overflow)?)
            }
            (Op::GSetAdd(e), State::GSet(s)) => State::GSet(s.add(e)),
            (Op::TwoPAdd(e), State::TwoPSet(s)) => State::TwoPSet(s.add(e)),
            (Op::TwoPRemove(e), State::TwoPSet(s)) => State::TwoPSet(s.remove(e)),
            (Op::OrAdd(e), State::ORSet(s)) => State::ORSet(s.add(me, e)),
            (Op::OrRemove(e, ctx), State::ORSet(s)) => State::ORSet(s.remove(e, ctx.as_ref())),
            (Op::LwwSet(v), State::LwwRegister(r)) => {
                State::LwwRegister(r.set(self.clock.tick(), me, v))
            }
            (Op::FwwSet(v), State::FwwRegister(r)) => {
                State::FwwRegister(r.set(self.clock.tick(), me, v))
            }
            (Op::MvWrite(v, ctx), State::MvRegister(r)) => State::MvRegister(r.write(me, v, ctx)),
            (Op::Delete(observed), st) => {
                let now;
                let observed = match observed {
                    Some(o) => o,
                    None => {
                        now = st.clone();
                        &now
                    }
                };
                st.delete(observed, self.clock.tick(), me)
                    .map_err(mismatch)?
            }
            (op, st) => {
                return Err(Error::WrongType {
                    stored: st.crdt_type(),
                    requested: op.crdt_type().unwrap_or(st.crdt_type()),
                })
            }
        })
    }

    /// Delete `key`, whatever its type, as a replicated operation (a delta
    /// like any other: ship it, log it, sync it). `observed` is the state
    /// the caller read (from [`Engine::state`], of the key's type) and the
    /// delete removes what it holds; `None` removes what this replica holds
    /// now. Per type: counters forget the observed increments (concurrent
    /// ones survive and count from zero); OR-Set and MV register remove
    /// the observed adds and writes (concurrent ones survive); G-Set and
    /// 2P-Set remove the observed elements (re-adding one of them has no
    /// effect while the tombstone lives); an LWW register gets a tombstone
    /// at the next clock tick, ordered like a write; an FWW register starts
    /// a new epoch in which the first write wins again.
    ///
    /// Afterwards the key reads as absent ([`Engine::read`] returns `None`,
    /// [`Engine::keys`] skips it) until a write the delete did not observe
    /// re-creates it; it keeps its type meanwhile (a write of another type
    /// is `WrongType`). Returns the delta, or `None` when there was nothing
    /// to delete (`observed` is `None` and the key does not exist or
    /// already reads as absent).
    pub fn delete(&self, key: &[u8], observed: Option<&State>) -> Result<Option<KeyedDelta>> {
        self.one(key, Op::Delete(observed.cloned()))
    }

    /// Join a peer's encoded delta or full state into `key`.
    pub fn merge(&self, key: &[u8], bytes: &[u8]) -> Result<()> {
        let mut b = Batch::with_capacity(1);
        b.merge(key, bytes);
        self.write(&b).map(|_| ())
    }

    fn single(&self, key: &[u8], op: Op) -> Result<KeyedDelta> {
        self.one(key, op)?
            .ok_or_else(|| Error::InvalidArgument("operation produced no delta".into()))
    }

    /// Write one operation; its delta, or `None` when it was no operation
    /// (a delete with nothing to delete, a remove that removed nothing).
    fn one(&self, key: &[u8], op: Op) -> Result<Option<KeyedDelta>> {
        let mut b = Batch::with_capacity(1);
        b.push(key, op);
        Ok(self.write(&b)?.pop())
    }

    /// G-Counter: add `n`. Returns the delta.
    pub fn increment(&self, key: &[u8], n: u64) -> Result<KeyedDelta> {
        self.single(key, Op::Increment(n))
    }

    /// PN-Counter: add `n` (negative subtracts). Returns the delta.
    pub fn pn_add(&self, key: &[u8], n: i64) -> Result<KeyedDelta> {
        self.single(key, Op::PnAdd(n))
    }

    /// G-Set: add `elem`. Returns the delta.
    pub fn gset_add(&self, key: &[u8], elem: &[u8]) -> Result<KeyedDelta> {
        self.single(key, Op::GSetAdd(elem.to_vec()))
    }

    /// 2P-Set: add `elem`. Returns the delta.
    pub fn twop_add(&self, key: &[u8], elem: &[u8]) -> Result<KeyedDelta> {
        self.single(key, Op::TwoPAdd(elem.to_vec()))
    }

    /// 2P-Set: remove `elem` forever. Returns the delta.
    pub fn twop_remove(&self, key: &[u8], elem: &[u8]) -> Result<KeyedDelta> {
        self.single(key, Op::TwoPRemove(elem.to_vec()))
    }

    /// OR-Set: add `elem`. Returns the delta.
    pub fn orset_add(&self, key: &[u8], elem: &[u8]) -> Result<KeyedDelta> {
        self.single(key, Op::OrAdd(elem.to_vec()))
    }

    /// OR-Set: remove `elem` (the adds of it observed now, or within
    /// `observed`). Returns the delta, or `None` when the remove removed
    /// nothing (the key holds no add of `elem` it observed, or does not
    /// exist): such a remove is no operation at all. It writes nothing,
    /// takes no sequence number, does not create the key and leaves a
    /// deleted key absent.
    pub fn orset_remove(
        &self,
        key: &[u8],
        elem: &[u8],
        observed: Option<CausalContext>,
    ) -> Result<Option<KeyedDelta>> {
        self.one(key, Op::OrRemove(elem.to_vec(), observed))
    }

    /// LWW register: write `value`. Returns the delta.
    pub fn lww_set(&self, key: &[u8], value: &[u8]) -> Result<KeyedDelta> {
        self.single(key, Op::LwwSet(value.to_vec()))
    }

    /// FWW register: write `value`. Returns the delta.
    pub fn fww_set(&self, key: &[u8], value: &[u8]) -> Result<KeyedDelta> {
        self.single(key, Op::FwwSet(value.to_vec()))
    }

    /// MV register: write `value` based on the read `context`. Returns the
    /// delta.
    pub fn mv_write(
        &self,
        key: &[u8],
        value: &[u8],
        context: &CausalContext,
    ) -> Result<KeyedDelta> {
        self.single(key, Op::MvWrite(value.to_vec(), context.clone()))
    }

    /// MV register: if the key has several siblings, ask `resolve` for one
    /// value (for example a union of shopping carts) and write it with the
    /// context of the read, replacing them. Returns the delta, or `None` if
    /// there was nothing to resolve. A sibling written concurrently with the
    /// resolution survives as a sibling of the result. If `resolve` fails,
    /// nothing is written.
    pub fn mv_resolve<F>(&self, key: &[u8], resolve: F) -> Result<Option<KeyedDelta>>
    where
        F: FnOnce(&[crate::crdt::Sibling]) -> std::result::Result<Vec<u8>, String>,
    {
        let read = self.mv_read(key)?;
        if read.siblings.len() < 2 {
            return Ok(None);
        }
        let value = resolve(&read.siblings).map_err(Error::MergeFunction)?;
        self.mv_write(key, &value, &read.context).map(Some)
    }
}

impl<'a> Slot<'a> {
    /// Whether the batch writes the key as the join of its changes (blind
    /// writes, and big states), which `operand` accumulates (or
    /// `operand_delta` names, for a key's only change).
    fn writes_operand(&self) -> bool {
        self.state.is_none() || self.big
    }

    /// Join one change into `operand` (taken as is if it is the first).
    fn join_operand(&mut self, delta: Cow<State>) -> Result<()> {
        match self.operand.as_mut() {
            None => self.operand = Some(delta.into_owned()),
            Some(acc) => acc.try_join(&delta).map_err(mismatch)?,
        }
        Ok(())
    }

    /// Record a local OR-Set add or remove on a big state for
    /// [`Slot::join_changes`] instead of joining its delta `d` now; false
    /// (nothing recorded) for any other operation or key, whose delta the
    /// caller joins.
    fn record_change(&mut self, op: &'a Op, d: &State) -> bool {
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
    fn join_changes(&mut self) -> Result<()> {
        let Some(c) = self.changes.take() else {
            return Ok(());
        };
        let adds = c.adds.into_iter().map(|(e, d)| (e.to_vec(), d));
        let joined = State::ORSet(crate::crdt::ORSet::from_changes(adds, c.seen));
        self.join_operand(Cow::Owned(joined))
    }

    /// Take what the cache or `types` knows of the key.
    fn know(&mut self, m: KeyMeta) {
        self.piled = m.piled;
        self.ty = Some(m.ty);
        self.used = m.used;
        self.reserved = m.reserved;
        self.tomb = m.tomb;
        self.own = m.own;
    }
}

/// A counter's entries of `me` (increments, decrements).
fn own_entries(st: &State, me: crate::causal::ReplicaId) -> Option<[u64; 2]> {
    match st {
        State::GCounter(g) => Some([g.entry(me), 0]),
        State::PNCounter(c) => Some([c.increments().entry(me), c.decrements().entry(me)]),
        _ => None,
    }
}

impl Engine {
    /// Put `state` as `key`'s value if its encoding is within
    /// [`MAX_STATE_LEN`]; returns the encoded size. With the tree on,
    /// `hash` becomes the entry hash of what it put (`Slot::hash`).
    fn put_checked(
        &self,
        wb: &mut rocksdb::WriteBatch,
        key: &[u8],
        state: &State,
        hash: &mut u128,
        staging: &mut Staging,
    ) -> Result<u64> {
        staging.scratch.clear();
        crate::codec::encode_state_into(state, &mut staging.scratch);
        let bytes = &staging.scratch[..];
        let size = bytes.len() as u64;
        if bytes.len() > MAX_STATE_LEN {
            return Err(Error::StateTooLarge {
                key: key.to_vec(),
                size,
                max: MAX_STATE_LEN as u64,
            });
        }
        if self.options.anti_entropy {
            *hash = crate::aae::hash::entry_hash(key, bytes);
        }
        wb.put_cf(staging.state, key, bytes);
        Ok(size)
    }
}

/// What staging a batch's keys (step 5) writes with: the column families,
/// looked up at most once per batch (a lookup searches the database's map
/// of names: measured, about 200 instructions each, one or two per
/// operation before), `meta` and `types` when first needed; and one
/// encoding buffer for the batch's states and operands (each is copied
/// into the RocksDB batch).
struct Staging<'e> {
    state: &'e rocksdb::ColumnFamily,
    meta: Option<&'e rocksdb::ColumnFamily>,
    types: Option<&'e rocksdb::ColumnFamily>,
    scratch: Vec<u8>,
    /// The batch's log operations and where each delta's state body lies
    /// in them (`feed::encode_log_ops_into`), with the changes feed on.
    log: Option<(&'e [u8], &'e [std::ops::Range<usize>])>,
}

impl<'e> Staging<'e> {
    /// The column family `name` held in `slot`, looked up the first time.
    fn family(
        slot: &mut Option<&'e rocksdb::ColumnFamily>,
        engine: &'e Engine,
        name: &str,
    ) -> Result<&'e rocksdb::ColumnFamily> {
        if let Some(cf) = *slot {
            return Ok(cf);
        }
        let cf = engine.cf(name)?;
        *slot = Some(cf);
        Ok(cf)
    }
}

/// What applying a batch's operations produced (step 4).
struct Applied {
    /// The local operations' deltas (numbered at commit).
    deltas: Vec<KeyedDelta>,
    /// The latest register timestamp written or merged.
    max_ts: Option<Timestamp>,
    /// The peers' dots the batch's applied deltas add to the record. A
    /// superset: a delta applied from its bytes adds its origin's run
    /// from 1, whose earlier dots the record (or the batch) holds already,
    /// so joining it into the record gives the same record.
    remote: CausalContext,
}

/// Step 1½: the batch's distinct keys, in first-seen order, and where each
/// key's slot is.
fn slots_of<'a>(items: &[(&'a [u8], Prepared<'a>)]) -> (HashMap<&'a [u8], usize>, Vec<Slot<'a>>) {
    // Distinct keys, in first-seen order.
    let mut index: HashMap<&[u8], usize> = HashMap::with_capacity(items.len());
    // At most one slot per item (a `Slot` is large: growing the vector by
    // doubling copied it about 7 times per batch of 100).
    let mut slots: Vec<Slot> = Vec::with_capacity(items.len());
    for (key, prep) in items {
        let i = *index.entry(*key).or_insert_with(|| {
            slots.push(Slot {
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
                piled: 0,
                piling: false,
                own: None,
                state: None,
                big: false,
                counting: false,
                operand: None,
                operand_delta: None,
                changes: None,
                raw: None,
                raw_body: None,
                hash: 0,
            });
            slots.len() - 1
        });
        let slot = &mut slots[i];
        slot.needs_state |= matches!(prep, Prepared::Local(op) if op.needs_state());
        slot.fww |= matches!(prep, Prepared::Local(Op::FwwSet(_)));
        slot.counts_only &= matches!(prep, Prepared::Local(Op::Increment(_) | Op::PnAdd(_)));
        slot.removes_only &= matches!(prep, Prepared::Local(Op::OrRemove(_, None)));
        slot.ops += 1;
        slot.raw = match (slot.ops, prep) {
            (1, Prepared::Merge(Item::State(_), Some(bytes)) | Prepared::Raw(_, bytes)) => {
                Some(*bytes)
            }
            _ => None,
        };
    }

    (index, slots)
}

/// About how many bytes a batch's RocksDB write takes (each key's state
/// entry and, for a new key, its `types` entry; the record, clock and log
/// entries), so that the write's buffer is allocated once: grown from
/// empty it was reallocated and copied about 8 times per batch of 100.
fn write_size_hint(items: &[(&[u8], Prepared)]) -> usize {
    let per_op: usize = items
        .iter()
        .map(|(key, p)| {
            2 * key.len()
                + 48
                + match p {
                    Prepared::Local(op) => op.payload_len(),
                    Prepared::Merge(_, Some(bytes))
                    | Prepared::Raw(_, bytes)
                    | Prepared::RawDelta(_, bytes) => bytes.len(),
                    Prepared::Merge(_, None) => 64,
                }
        })
        .sum();
    per_op + 256
}

/// Check sizes and decode merge payloads before anything is touched.
fn validate(batch: &Batch) -> Result<Vec<(&[u8], Prepared<'_>)>> {
    let mut out = Vec::with_capacity(batch.ops.len());
    for (key, op) in &batch.ops {
        if key.len() > MAX_KEY_LEN {
            return Err(Error::KeyTooLarge {
                len: key.len(),
                max: MAX_KEY_LEN,
            });
        }
        if op.payload_len() > MAX_VALUE_LEN {
            return Err(Error::ValueTooLarge {
                len: op.payload_len(),
                max: MAX_VALUE_LEN,
            });
        }
        out.push((
            key.as_slice(),
            match op {
                Op::Merge(bytes) => match crate::codec::skim_state(bytes) {
                    Some(ty) => Prepared::Raw(ty, bytes),
                    None => match skim_delta(bytes) {
                        Some(d) => Prepared::RawDelta(d, bytes),
                        None => Prepared::Merge(decode_item(bytes)?, Some(bytes)),
                    },
                },
                _ => Prepared::Local(op),
            },
        ));
    }
    Ok(out)
}
