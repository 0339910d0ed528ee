//! Step 4 of the write path (see the parent module): the batch's
//! operations applied in order to the in-batch overlay of its keys. Local
//! operations produce their deltas; a peer's delta whose dependencies the
//! record (or the batch) does not hold is set aside to park in the
//! pending area.

use super::super::batch::{KeyedDelta, Op};
use super::super::Engine;
use super::slot::Slot;
use super::{mismatch, Extra, Prepared};
use crate::causal::{CausalContext, Dot, Timestamp};
use crate::codec::{decode_item, Changes, Delta, Item, SkimmedDelta};
use crate::crdt::{CrdtType, FwwRegister, GCounter, LwwRegister, PNCounter, State};
use crate::error::{Error, Result};
use foldhash::{HashMap, HashMapExt};
use std::borrow::Cow;

/// What applying a batch's operations produced (step 4).
pub(super) struct Applied {
    /// The local operations' deltas (numbered at commit).
    pub(super) deltas: Vec<KeyedDelta>,
    /// The latest register timestamp written or merged.
    pub(super) max_ts: Option<Timestamp>,
    /// The peers' dots the batch's applied deltas add to the record. A
    /// superset: a delta applied from its bytes adds its origin's run
    /// from 1, whose earlier dots the record (or the batch) holds already,
    /// so joining it into the record gives the same record.
    pub(super) remote: CausalContext,
}

/// What one operation brings to its key once admitted (step 4).
enum Change<'a> {
    /// A peer's state or delta, visible now.
    Incoming(State),
    /// A local operation.
    Local(&'a Op),
    /// A payload `stage` writes through from its bytes: nothing to apply.
    Through,
}

/// The CRDT type an operation writes its key as; `None` when it is no
/// operation on this key: a delete based on what this replica holds, of
/// a key that does not exist or already reads as absent, and a remove
/// from a key that does not exist (nothing removed, the key not created).
fn operation_type(prep: &Prepared, slot: &Slot) -> Option<CrdtType> {
    Some(match prep {
        Prepared::Raw(ty, _) => *ty,
        Prepared::RawDelta(d, _) => d.ty,
        Prepared::Merge(item, _) => item.state().crdt_type(),
        Prepared::Local(Op::Delete(None)) => match (slot.ty, &slot.state) {
            (Some(_), Some(st)) if st.is_absent() => return None,
            (Some(t), _) => t,
            (None, _) => return None,
        },
        Prepared::Local(Op::OrRemove(..)) if slot.ty.is_none() => return None,
        Prepared::Local(op) => op.crdt_type().unwrap_or(CrdtType::GCounter),
    })
}

impl Engine {
    /// Step 4: apply the operations in order to the in-batch overlay:
    /// local operations produce their deltas, merged deltas whose
    /// dependencies are missing are set aside to park.
    pub(super) fn apply_all<'a>(
        &self,
        items: Vec<(&'a [u8], Prepared<'a>)>,
        of_item: &[usize],
        slots: &mut [Slot<'a>],
        extra: &mut Extra,
    ) -> Result<Applied> {
        // A delta per local operation.
        let locals = items
            .iter()
            .filter(|(_, p)| matches!(p, Prepared::Local(_)))
            .count();
        let mut out = Applied {
            deltas: Vec::with_capacity(locals),
            max_ts: None,
            remote: CausalContext::new(),
        };
        // Per origin, how far its operations are held (`plainly_deliverable`).
        let mut reach = HashMap::new();
        for ((key, prep), &i) in items.into_iter().zip(of_item) {
            let slot = &mut slots[i];
            let prep = self.through_or_decoded(prep, slot, &out.remote, &mut reach)?;
            let Some(ty) = operation_type(&prep, slot) else {
                continue;
            };
            // Checked before anything else, so a delta that will wait in the
            // pending area is refused the same way as one applied now.
            if let Some(stored) = slot.ty.filter(|stored| *stored != ty) {
                return Err(Error::WrongType {
                    stored,
                    requested: ty,
                });
            }
            let Some(change) = self.admit(key, prep, slot, &mut out, extra) else {
                continue;
            };
            self.open_slot(slot, ty);
            match change {
                Change::Incoming(s) => {
                    // Later local operations on this key must see merged input.
                    if let Some(st) = slot.state.as_mut() {
                        st.try_join(&s).map_err(mismatch)?;
                    }
                    if slot.writes_operand() {
                        slot.join_operand(Cow::Owned(s))?;
                    }
                }
                Change::Local(op) => self.apply_op(key, op, ty, slot, &mut out)?,
                Change::Through => {}
            }
        }
        for slot in slots.iter_mut() {
            slot.join_changes()?;
        }
        Ok(out)
    }

    /// A certified payload stays certified (written through from its
    /// bytes) only as its key's only operation, on a key whose state the
    /// batch does not read, and (a peer's delta) deliverable at once;
    /// otherwise it is decoded here.
    fn through_or_decoded<'a>(
        &self,
        prep: Prepared<'a>,
        slot: &Slot,
        remote: &CausalContext,
        reach: &mut HashMap<crate::causal::ReplicaId, u64>,
    ) -> Result<Prepared<'a>> {
        Ok(match prep {
            Prepared::Raw(_, bytes) if slot.ops > 1 || slot.needs_state => {
                Prepared::Merge(Box::new(decode_item(bytes)?), Some(bytes))
            }
            Prepared::RawDelta(d, bytes)
                if slot.ops > 1
                    || slot.needs_state
                    || !self.plainly_deliverable(&d, remote, reach) =>
            {
                Prepared::Merge(Box::new(decode_item(bytes)?), Some(bytes))
            }
            p => p,
        })
    }

    /// What an operation of the key's type brings to the key, once
    /// admitted: a peer's payload that may become visible now (recording
    /// its dot and timestamp in `out`), a local operation, or a payload
    /// written through. `None`: nothing to apply (a delta parked, or held
    /// already; a state whose tombstone this replica collected).
    fn admit<'a>(
        &self,
        key: &[u8],
        prep: Prepared<'a>,
        slot: &mut Slot<'a>,
        out: &mut Applied,
        extra: &mut Extra,
    ) -> Option<Change<'a>> {
        match prep {
            Prepared::Merge(item, _) => {
                let s = match *item {
                    Item::Delta(mut d) => {
                        let dot = Dot::new(d.origin, d.seq);
                        if d.state.is_delete() {
                            // Collection waits for this delete by its dot.
                            d.state.mark_delete(dot);
                        }
                        let s = self.deliverable(key, d, &out.remote, extra)?;
                        out.remote.insert(dot);
                        s
                    }
                    Item::State(s) => s,
                };
                // A tombstone this replica collected already: collected
                // on arrival too, with what it removed.
                let had_tomb = s.has_tomb();
                let Some(s) = self.strip_collected(s) else {
                    slot.raw = None;
                    return None;
                };
                if had_tomb && !s.has_tomb() {
                    slot.raw = None;
                }
                out.max_ts = out.max_ts.max(s.max_timestamp());
                Some(Change::Incoming(s))
            }
            Prepared::Local(op) => Some(Change::Local(op)),
            // Written through by `stage` (`slot.raw`).
            Prepared::Raw(..) => Some(Change::Through),
            // Deliverable (checked by `through_or_decoded`), of a state
            // with no tombstone or timestamp: recorded, and written by
            // `stage` from its bytes (`slot.raw_body`).
            Prepared::RawDelta(d, _) => {
                if d.deps {
                    // Every earlier operation of its origin is held
                    // (`plainly_deliverable`): the batch's dots claim
                    // them too, as a run from 1 in the vector, which
                    // records, merges and encodes cheaply, rather than
                    // as isolated dots. The record they join is the
                    // same.
                    out.remote.insert_range(d.dot.replica, 1, d.dot.counter);
                } else {
                    out.remote.insert(d.dot);
                }
                slot.raw_body = Some(d.body);
                Some(Change::Through)
            }
        }
    }

    /// Before a key's first applied operation: a key the store held
    /// nothing of is created with the operation's type, and a key whose
    /// operations need its state and has none (never written, or purged)
    /// starts from the empty state, its dots above the collection floor.
    fn open_slot(&self, slot: &mut Slot, ty: CrdtType) {
        if slot.ty.is_none() {
            slot.ty = Some(ty);
            slot.is_new = true;
            slot.used = 0;
        }
        if slot.needs_state && slot.state.is_none() && slot.set.is_none() {
            let mut st = State::empty(ty);
            let floor = self.gc.floor.load(std::sync::atomic::Ordering::Acquire);
            if floor > 0 {
                st.seed_floor(self.replica, floor);
                slot.seed = floor;
            }
            slot.state = Some(st);
        }
    }

    /// Apply a local operation to its key's overlay and add its delta to
    /// `out` (none for a remove that removed nothing).
    fn apply_op<'a>(
        &self,
        key: &[u8],
        op: &'a Op,
        ty: CrdtType,
        slot: &mut Slot<'a>,
        out: &mut Applied,
    ) -> Result<()> {
        let mut d = match (&mut slot.state, &mut slot.own) {
            (None, Some(own)) if slot.counting => self.count(op, ty, own)?,
            (None, _) if slot.set.is_some() => slot
                .set
                .as_mut()
                .and_then(|set| set.apply(op, self.replica))
                .ok_or_else(|| Error::InvalidArgument("not an OR-Set operation".into()))?,
            (st, _) => self.apply_local(op, st.as_mut(), ty)?,
        };
        if matches!(&d, State::ORSet(s) if s.is_bottom()) {
            // A remove that removed nothing (the state is unchanged): no
            // delta. Shipped, it would be a numbered operation that
            // re-creates a deleted key on a replica that collected its
            // tombstone.
            return Ok(());
        }
        if slot.seed > 0 {
            // The first delta says so too (compact contexts).
            d.seed_floor(self.replica, std::mem::take(&mut slot.seed));
        }
        if let State::LwwRegister(_) | State::FwwRegister(_) = d {
            out.max_ts = out.max_ts.max(d.max_timestamp());
        }
        // A key whose state was read takes the operation into it (above);
        // the others, and big states (written as their changes), join the
        // delta into the operand (a big OR-Set's adds and removes:
        // recorded, joined at the end).
        if slot.writes_operand() && !slot.record_change(op, &d) {
            if slot.ops == 1 {
                // The key's only change: written from the delta itself
                // (`stage`), not from a copy.
                slot.operand_delta = Some(out.deltas.len());
            } else {
                slot.join_operand(Cow::Borrowed(&d))?;
            }
        }
        // The sequence number and dependencies are set at commit.
        out.deltas.push(KeyedDelta {
            key: key.to_vec(),
            delta: Delta {
                origin: self.replica,
                seq: 0,
                deps: Some(CausalContext::new()),
                state: d,
            },
        });
        Ok(())
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
}
