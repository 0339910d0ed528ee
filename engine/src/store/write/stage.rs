//! Step 5 of the write path (see the parent module), and the parked
//! pages of step 6: each key's put or operand, checked against the state
//! size limit, with its `types` entry when the key is new or its
//! reservation grows.

use super::super::batch::KeyedDelta;
use super::super::stored::decode_stored;
use super::super::types::{encode_entry, KeyMeta, JOIN_SLACK};
use super::super::{Engine, CF_META, CF_PENDING, CF_STATE, CF_TYPES};
use super::slot::{own_entries, Slot};
use super::{mismatch, Prepared};
use crate::codec::{Changes, MAX_STATE_LEN};
use crate::crdt::{CrdtType, State};
use crate::error::{Error, Result};

/// How many times its own size a big state's pile of operands may grow to
/// before the state is put whole again ([`Engine::stage`]). Measured on a
/// set of 100,000 elements under adds and removes (`hot bigset`, 800,000
/// operations): 1 ran at 0.51–0.65M ops/s, 2 at 0.74–0.77M, 3 at
/// 0.81–0.82M, never putting it whole (until the cliff) 0.81–0.95M.
const PILE_OF_WHOLE: u64 = 3;

/// Operands a set changed as its bytes (`slot::SetBytes`) takes on top of
/// its last whole put before it is put whole again (`KeyMeta::piled`;
/// unknown after a cache miss, so such a set is put whole). Measured on
/// 20,000 sets of 300 elements (`hot manysets`, two rounds): always put
/// whole 16.9k–17.9k ops/s, 1 operand 27.6k–36.1k, 3 27.0k–38.0k, 8
/// 31.9k–35.2k; on sets of 30 elements 74k–86k, 108k–121k, 89k–116k,
/// 91k–103k. A long pile (up to four times the set's size) ran no faster
/// than putting it whole: each write's read joins the pile.
pub(super) const SET_PILE: u8 = 3;

/// A batch's keys staged (step 5).
pub(super) struct Staged<'a> {
    /// The batch's RocksDB write so far.
    pub(super) wb: rocksdb::WriteBatch,
    /// What each written key's cache entry becomes once the batch is
    /// written, with the state to keep in it.
    pub(super) metas: Vec<(&'a [u8], KeyMeta, Option<State>)>,
    /// The keys written, with their hints, for the tree, and whether the
    /// batch creates them (the settler's ingest rule; a created key's
    /// fold reads no old index entry). A key the batch leaves as it was
    /// (a delete or remove of nothing) is not marked.
    pub(super) keys: Vec<crate::aae::Written>,
    /// The log's operations (`feed::encode_log_ops_into`), with the
    /// changes feed on and local operations in the batch.
    pub(super) logged: Option<Vec<u8>>,
}

/// What staging a batch's keys (step 5) writes with: the column families,
/// looked up at most once per batch (a lookup searches the database's map
/// of names: measured, about 200 instructions each, one or two per
/// operation before), `meta` and `types` when first needed; and one
/// encoding buffer for the batch's states and operands (each is copied
/// into the RocksDB batch).
pub(super) struct Staging<'e> {
    pub(super) state: &'e rocksdb::ColumnFamily,
    pub(super) meta: Option<&'e rocksdb::ColumnFamily>,
    pub(super) types: Option<&'e rocksdb::ColumnFamily>,
    pub(super) scratch: Vec<u8>,
    /// The batch's log operations and where each delta's state body lies
    /// in them (`feed::encode_log_ops_into`), with the changes feed on.
    pub(super) log: Option<(&'e [u8], &'e [std::ops::Range<usize>])>,
}

impl Engine {
    /// Step 5: stage every key the batch writes into a new RocksDB batch
    /// (see [`Engine::stage`]), with the log's operations (with the
    /// changes feed on) encoded outside the commit lock: only their
    /// dependencies are added under it.
    pub(super) fn stage_all<'a>(
        &self,
        slots: &mut [Slot<'a>],
        deltas: &[KeyedDelta],
        size_hint: usize,
    ) -> Result<Staged<'a>> {
        let mut wb = rocksdb::WriteBatch::with_capacity_bytes(size_hint);
        let mut metas = Vec::with_capacity(slots.len());
        let aae = self.options.anti_entropy;
        let mut keys: Vec<crate::aae::Written> =
            Vec::with_capacity(if aae { slots.len() } else { 0 });
        // Encoded before the keys are staged: a key's only operation is
        // written from its state's body in the log.
        let mut bodies = Vec::new();
        let logged = (self.options.changes_feed && !deltas.is_empty())
            .then(|| crate::store::feed::encode_log_ops_into(deltas, Some(&mut bodies)));
        let mut staging = Staging {
            state: self.cf(CF_STATE)?,
            meta: None,
            types: None,
            scratch: Vec::with_capacity(256),
            log: logged.as_deref().map(|log| (log, &bodies[..])),
        };
        for slot in slots.iter_mut() {
            let Some(m) = self.stage(slot, deltas, &mut wb, &mut staging)? else {
                continue;
            };
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
            let keep = !m.tomb && crate::store::types::holds_state(m.ty);
            let state = slot.state.take().filter(|_| keep);
            metas.push((slot.key, m, state));
        }
        Ok(Staged {
            wb,
            metas,
            keys,
            logged,
        })
    }

    /// Under the commit lock: give the pages to park their pending ids and
    /// put them in `wb`, unless they are pending already; fails with
    /// [`Error::PendingFull`] if they do not fit.
    pub(in crate::store) fn stage_parked(
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
    pub(super) fn stage<'e>(
        &'e self,
        slot: &mut Slot,
        deltas: &[KeyedDelta],
        wb: &mut rocksdb::WriteBatch,
        staging: &mut Staging<'e>,
    ) -> Result<Option<KeyMeta>> {
        let Some(ty) = slot.ty else {
            return Ok(None);
        };
        // What the batch joins into the stored state, if it is not put whole.
        let operand = slot
            .operand
            .as_deref()
            .or_else(|| slot.operand_delta.map(|i| &deltas[i].delta.state));
        let tomb = slot.tomb || slot.state.as_ref().or(operand).is_some_and(State::has_tomb);
        // The size bound, and the pile of remove operands (`KeyMeta::piled`).
        let (used, piled) = match &slot.state {
            // A big state's changes, as a blind write's operand would be
            // (nothing to write if the batch changed nothing).
            Some(_) if slot.big && !tomb && operand.is_none() => (slot.used, slot.piled),
            Some(st) if !slot.big || tomb => {
                let size = self.put_checked(wb, slot.key, st, &mut slot.hash, staging)?;
                slot.whole = size;
                (size, 0)
            }
            _ => match self.stage_operand(slot, deltas, ty, wb, staging)? {
                Some(bound) => bound,
                None => return Ok(None),
            },
        };
        self.meta_after(slot, wb, ty, tomb, (used, piled), staging)
    }

    /// [`Engine::stage`] of a key written as an operand (blind writes,
    /// big states): the joined operand, or a key's only full-state merge
    /// as its validated bytes, or a state body sealed (a peer's delta's,
    /// or a key's only local operation's in the log entry). Returns the
    /// key's size bound and pile (`KeyMeta::piled`) after it, `None` if
    /// the batch writes nothing to the key. When the bound says the state
    /// might pass the limit, the key's state is joined exactly and put.
    fn stage_operand<'e>(
        &'e self,
        slot: &mut Slot,
        deltas: &[KeyedDelta],
        ty: CrdtType,
        wb: &mut rocksdb::WriteBatch,
        staging: &mut Staging<'e>,
    ) -> Result<Option<(u64, u8)>> {
        let state_cf = staging.state;
        let operand = slot
            .operand
            .as_deref()
            .or_else(|| slot.operand_delta.map(|i| &deltas[i].delta.state));
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
        if let Some(set) = &slot.set {
            // A set changed as its bytes takes its changes as an operand
            // while the pile on its last whole put is short.
            if slot.piled < SET_PILE && bound <= MAX_STATE_LEN as u64 {
                wb.merge_cf(state_cf, slot.key, bytes);
                return Ok(Some((bound, slot.piled + 1)));
            }
            // Then the set is put whole, joined with its changes from the
            // bytes (both plain OR-Sets: the join cannot fail).
            let joined = set.stored.join(bytes).ok_or_else(|| {
                Error::Corruption("stored OR-Set did not join its changes".into())
            })?;
            let size = self.put_bytes_checked(wb, slot.key, &joined, &mut slot.hash, staging)?;
            return Ok(Some((size, 0)));
        }
        // A big state's changes pile up as operands on the state last put
        // whole until they add up to `PILE_OF_WHOLE` times its size (the
        // bound's growth past it); then the state is put whole again. The
        // put costs about what a fraction of the pile's writes did, so the
        // write stays proportional to the change; and the pile a read past
        // the cache joins, and the size bound, stay within a few times the
        // state. Unbounded, the bound of a set of 100,000 elements under
        // adds and removes reached the cache's budget after about a million
        // operations; the state then left the cache, and every batch read
        // and joined the whole pile (15k ops/s, from 800k).
        let pile_full = slot.big
            && !slot.piling
            && (slot.whole == u64::MAX || bound > slot.whole.saturating_mul(PILE_OF_WHOLE + 1));
        if bound <= MAX_STATE_LEN as u64 && !pile_full {
            wb.merge_cf(state_cf, slot.key, bytes);
            if self.options.anti_entropy && slot.is_new {
                // The store held nothing of the key: it now holds this
                // operand as it is (one value merges to itself,
                // `stored::try_join_all`), so the settle need not read it
                // back (a delete's marker, joined at commit, clears the
                // hint: `meta_after`).
                slot.hash = crate::aae::hash::entry_hash(slot.key, bytes);
            }
            // Every operand counts: a set changed as its bytes is put
            // whole after `SET_PILE` of them, whoever wrote them.
            return Ok(Some((bound, slot.piled.saturating_add(1))));
        }
        if let Some(st) = &slot.state {
            // The pile is full, or the bound says the state might not fit:
            // join exactly (a big state the batch holds is that join
            // already).
            let size = self.put_checked(wb, slot.key, st, &mut slot.hash, staging)?;
            slot.whole = size;
            return Ok(Some((size, 0)));
        }
        let mut st = match self.db.get_pinned_cf(state_cf, slot.key)? {
            Some(b) => decode_stored(slot.key, &b)?,
            None => State::empty(ty),
        };
        match operand {
            Some(operand) => st.try_join(operand),
            None => st.try_join(&crate::codec::decode_state(bytes)?),
        }
        .map_err(mismatch)?;
        let size = self.put_checked(wb, slot.key, &st, &mut slot.hash, staging)?;
        Ok(Some((size, 0)))
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
            let meta = self.cf_once(&mut staging.meta, CF_META)?;
            wb.put_cf(meta, crate::store::gc::tomb_key(slot.key), []);
        }
        // A new key has no reservation yet; a key a delete reached for
        // the first time gets its flag.
        let kept = slot.reserved.filter(|r| used <= *r);
        let reserved = kept.unwrap_or_else(|| KeyMeta::reservation_for(used));
        if kept.is_none() || tomb != slot.tomb {
            wb.put_cf(
                self.cf_once(&mut staging.types, CF_TYPES)?,
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
            whole: slot.whole,
        }))
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
        let bytes = std::mem::take(&mut staging.scratch);
        let size = self.put_bytes_checked(wb, key, &bytes, hash, staging);
        staging.scratch = bytes;
        size
    }

    /// Put the encoded state `bytes` as `key`'s value if it is within
    /// [`MAX_STATE_LEN`], as [`Engine::put_checked`] does.
    fn put_bytes_checked(
        &self,
        wb: &mut rocksdb::WriteBatch,
        key: &[u8],
        bytes: &[u8],
        hash: &mut u128,
        staging: &Staging,
    ) -> Result<u64> {
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

/// About how many bytes a batch's RocksDB write takes (each key's state
/// entry and, for a new key, its `types` entry; the record, clock and log
/// entries), so that the write's buffer is allocated once: grown from
/// empty it was reallocated and copied about 8 times per batch of 100.
pub(super) fn write_size_hint(items: &[(&[u8], Prepared)]) -> usize {
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
