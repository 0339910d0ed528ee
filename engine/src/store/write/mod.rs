//! The write path. For a batch (each step names the file and function
//! that does it; [`Engine::commit_items`] runs them in order):
//! 1. (`validate`, here) validate every key, value and merge payload (decode + canonical
//!    check; full states of the plain counters, G-Set and OR-Set, and
//!    peers' deltas of them with no dependency beyond their origin's, are
//!    skimmed instead, `codec/skim.rs`, and decoded only if needed);
//! 2. (`commit_items`) lock the stripes of the batch's keys (ascending, so no deadlock);
//! 3. (`slot.rs`: `slots_of`, `know_keys`) look up each key's type and size bound, taking any cached state out
//!    (a bounded in-memory cache,
//!    then one multi-get on `types`; no state read; see `types.rs`);
//!    in a store whose `types` is exact (`Engine::types_exact`) every key
//!    the cache lacks is looked up there, and a key without an entry is
//!    being created: its state is not read;
//! 4. (`slot.rs`: `read_states`; `apply.rs`: `apply_all`) read the states of keys whose operations need them (counters whose
//!    own entries the type cache does not know, OR-Set, MV register; an
//!    OR-Set or MV-register state the previous write left in the cache is
//!    taken from it instead; with the cache full, an OR-Set changed only by
//!    adds and removes is read as its bytes, `slot::SetBytes`, not decoded),
//!    apply the operations in order to an in-batch overlay,
//!    producing one delta per local operation; a merged delta whose
//!    dependencies the record (or the batch) does not hold is set aside to
//!    be parked in the pending area (`pending.rs`) instead;
//! 5. (`stage.rs`: `stage_all`) stage each key: put the new full state of keys that were read (a
//!    set read as its bytes: its changes as an operand on a short pile, else the
//!    byte-level join of its bytes and changes; the
//!    join of the batch's changes, as an operand, for cached states over
//!    `BIG_STATE` until their pile reaches `PILE_OF_WHOLE` times the state,
//!    and for a batch of only OR-Set removes on a cached
//!    state, up to `types::PILE` batches in a row), merge one joined
//!    operand into `state` for the others (blind writes),
//!    checking every key against the state size limit (exactly for read
//!    keys, by the size bound for blind ones, exactly again when the bound
//!    says it might not fit); put the `types` entry of new keys and of keys
//!    whose size reservation grows;
//! 6. (`stage_meta`, `commit_staged` here, then `commit.rs`) under the commit lock: merge the record's new dots and the clock into
//!    `meta`, put parked deltas into `pending`, number the local operations,
//!    record the first one's dependencies, log them for the changes feed
//!    (`feed.rs`; with the feed off, put `meta/seq`) — one RocksDB write batch with the
//!    configured durability;
//! 7. (`commit.rs`, `commit_items`, `after_write`) cache the keys' types and bounds (and the OR-Set and MV-register
//!    states the batch held; every write took a cached state out in
//!    step 3, so a blind write leaves none), mark the keys dirty for the
//!    anti-entropy tree, publish the new dots, index the parked deltas,
//!    release the locks, then drain the pending entries the new dots made
//!    ready.
//!
//! A failure before step 6 (including `StateTooLarge`) writes nothing; a
//! failure of step 6 poisons the engine (state on disk is then known only
//! after reopen).

mod apply;
mod slot;
mod stage;
#[cfg(test)]
mod tests;
pub mod timing;

use self::apply::Applied;
use self::slot::slots_of;
use self::stage::{write_size_hint, Staged};
use self::timing::{Clock, Step};
use super::batch::{Batch, KeyedDelta, Op};
use super::commit::{Done, Ready};
use super::merge::encode_ts;
use super::{Engine, CF_META, CF_PENDING, MAX_KEY_LEN, MAX_VALUE_LEN, META_CTX, META_HLC};
use crate::causal::{CausalContext, Timestamp};
use crate::codec::{decode_item, encode_context, skim_delta, Changes, Item, SkimmedDelta};
use crate::crdt::{CrdtType, State};
use crate::error::{Error, Result};

/// An operation ready to apply: local, or a merge payload decoded during
/// validation (with its bytes when they came from the caller).
pub(super) enum Prepared<'a> {
    Local(&'a Op),
    /// Boxed: a decoded item is large (176 bytes), and a batch of local
    /// operations carries none; every item of the batch is this enum.
    Merge(Box<Item>, Option<&'a [u8]>),
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
        let mut clock = Clock::start();
        let items = validate(batch)?;
        clock.lap(Step::Validate);
        let done = self.commit_items(items, Extra::default())?;
        let mut clock = Clock::start();
        self.after_commit(&done)?;
        clock.lap(Step::Drain);
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
            .map(|(k, st)| (k, Prepared::Merge(Box::new(Item::State(st)), None)))
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
        let mut clock = Clock::start();
        let (of_item, mut slots) = slots_of(&items);
        let size_hint = write_size_hint(&items);
        clock.lap(Step::Slots);
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
        clock.lap(Step::Lock);
        self.know_keys(&mut slots)?;
        clock.lap(Step::Know);
        let mut applied = self.apply_all(items, &of_item, &mut slots, &mut extra)?;
        clock.lap(Step::Apply);
        let Staged {
            mut wb,
            metas,
            keys,
            logged,
        } = self.stage_all(&mut slots, &applied.deltas, size_hint)?;
        clock.lap(Step::Stage);
        // Step 6, the part that needs no order: record, clock, applied
        // pending rows.
        applied.remote.merge(&extra.dots);
        self.stage_meta(&mut wb, &applied.remote, applied.max_ts, &extra.release)?;
        clock.lap(Step::Meta);
        let done = self.commit_staged(wb, logged, keys, epoch, applied, &mut extra)?;
        clock.lap(Step::Commit);
        // Size bounds change under the keys' stripes only.
        for (key, m, state) in metas {
            self.types.insert(key, m, state);
        }
        clock.lap(Step::Cache);
        // The data is written: release the keys before a possible settle.
        drop(guards);
        self.after_write(&done);
        clock.lap(Step::Release);
        Ok(done)
    }

    /// Step 6: commit the staged batch. The sequence numbers of the local
    /// operations are taken in commit order by the group commit
    /// (`commit.rs`) and persisted in the same RocksDB batch (the log entry
    /// or `meta/seq`), so they are consecutive, and a batch that fails
    /// consumes none. A batch that adds no dot (only full states merged)
    /// needs no order: it is written directly.
    fn commit_staged(
        &self,
        wb: rocksdb::WriteBatch,
        logged: Option<Vec<u8>>,
        keys: Vec<crate::aae::Written>,
        epoch: u64,
        applied: Applied,
        extra: &mut Extra,
    ) -> Result<Done> {
        let Applied { deltas, remote, .. } = applied;
        if !deltas.is_empty() || !remote.is_empty() || !extra.park.is_empty() {
            return self.commit_ready(Ready {
                wb,
                deltas,
                remote,
                park: std::mem::take(&mut extra.park),
                logged,
                release: std::mem::take(&mut extra.release),
                keys,
                epoch,
            });
        }
        self.check_writable()?;
        self.write_or_poison(wb)?;
        if self.options.anti_entropy {
            self.tree.mark_dirty_owned(keys, epoch);
        }
        if !extra.release.is_empty() {
            self.pending.index.lock().release(&extra.release);
        }
        Ok(Done {
            deltas,
            remote,
            parked: false,
            log_bytes: 0,
        })
    }

    /// Step 7's background work, once the keys are released: trim the
    /// changes feed's log if it grew, and keep the anti-entropy tree's
    /// dirty set within its budget (settle here if the background settler
    /// fell behind, wake it once enough keys are dirty).
    fn after_write(&self, done: &Done) {
        if done.log_bytes > 0 {
            self.feed.grew(self);
        }
        if self.tree.over_budget() {
            // Back-pressure: bound the memory of the dirty set here. The
            // write itself succeeded; keys that fail to fold stay dirty
            // for the next settle.
            let _ = self.tree.settle(&self.db);
        } else if self.tree.dirty_keys() >= crate::aae::settler::WAKE_AT {
            self.nudge_settler();
        }
    }

    /// The batch's record, clock and applied pending rows, into `wb`.
    fn stage_meta(
        &self,
        wb: &mut rocksdb::WriteBatch,
        remote: &CausalContext,
        max_ts: Option<Timestamp>,
        release: &[u64],
    ) -> Result<()> {
        // Column families are looked up only when needed, and once: a
        // lookup by name searches the database's map of them.
        let mut meta = None;
        if !remote.is_empty() {
            wb.merge_cf(
                self.cf_once(&mut meta, CF_META)?,
                META_CTX,
                encode_context(remote),
            );
        }
        if let Some(ts) = max_ts {
            self.clock.observe(ts);
            wb.merge_cf(self.cf_once(&mut meta, CF_META)?, META_HLC, encode_ts(ts));
        }
        if !release.is_empty() {
            let pending_cf = self.cf(CF_PENDING)?;
            for id in release {
                wb.delete_cf(pending_cf, id.to_be_bytes());
            }
        }
        Ok(())
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
                        None => Prepared::Merge(Box::new(decode_item(bytes)?), Some(bytes)),
                    },
                },
                _ => Prepared::Local(op),
            },
        ));
    }
    Ok(out)
}
