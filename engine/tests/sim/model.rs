//! The simulation's reference model: every operation issued (with what it
//! meant), and per replica the causal record it must have, derived from the
//! documented rules (ARCHITECTURE.md, "The causal record" and "Causal
//! delivery") rather than from the engine.

use super::net::dots_of;
use converge::codec::encode_state;
use converge::{Delivery, Delta, Dot, State, Value};
use std::collections::{BTreeMap, BTreeSet};

/// What an operation did, for the checks that do not use the lattice join.
#[derive(Clone, Debug)]
pub enum Intent {
    /// Counter increment (G) or addition (PN).
    Add(i128),
    /// Set add of a unique element.
    Insert(Vec<u8>),
    /// Set remove of an element the writer saw.
    Remove(Vec<u8>),
    /// LWW or FWW write (its stamp is in the delta).
    Set,
    /// MV write of a unique value, replacing the sibling values its read saw.
    Write {
        /// The value written.
        value: Vec<u8>,
        /// The siblings the write's read context covered.
        replaces: Vec<Vec<u8>>,
    },
    /// A delete of the key based on what the replica held: the operations
    /// on the key whose effects its state held then.
    Delete {
        /// Their dots.
        observed: BTreeSet<Dot>,
    },
}

/// One acknowledged operation.
#[derive(Clone, Debug)]
pub struct OpRec {
    /// Its dot.
    pub dot: Dot,
    /// Its key.
    pub key: Vec<u8>,
    /// Its delta state.
    pub delta: State,
    /// What it meant.
    pub intent: Intent,
}

/// What a replica must need before a delta applies: its origin's earlier
/// operations and its recorded dependencies.
pub fn needs_of(d: &Delta) -> BTreeSet<Dot> {
    let mut needs: BTreeSet<Dot> = (1..d.seq).map(|n| Dot::new(d.origin, n)).collect();
    if let Some(deps) = &d.deps {
        needs.extend(dots_of(deps));
    }
    needs
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Entry {
    dots: BTreeSet<Dot>,
    needs: BTreeSet<Dot>,
}

/// The causal record a replica must hold, and what waits for dependencies.
#[derive(Clone, Debug, Default)]
pub struct RecordModel {
    /// The dots whose effects the replica holds.
    pub record: BTreeSet<Dot>,
    pending: Vec<Entry>,
}

impl RecordModel {
    /// A local operation committed.
    pub fn local(&mut self, dot: Dot) {
        self.record.insert(dot);
    }

    /// A delta or page arrives: applied if its dependencies are held,
    /// parked otherwise, ignored if every dot is held. Returns what
    /// `apply_changes` must report for it.
    pub fn deliver(&mut self, dots: &BTreeSet<Dot>, needs: &BTreeSet<Dot>) -> Delivery {
        if dots.is_subset(&self.record) {
            return Delivery::Duplicate;
        }
        if needs.is_subset(&self.record) {
            self.record.extend(dots.iter().copied());
            self.drain();
            return Delivery::Applied;
        }
        let e = Entry {
            dots: dots.clone(),
            needs: needs.clone(),
        };
        if !self.pending.contains(&e) {
            self.pending.push(e);
        }
        Delivery::Pending
    }

    /// A converged sync session adds the peer's record.
    pub fn learn(&mut self, dots: &BTreeSet<Dot>) {
        self.record.extend(dots.iter().copied());
        self.drain();
    }

    /// Apply every parked entry whose dependencies are now held.
    fn drain(&mut self) {
        while let Some(i) = self
            .pending
            .iter()
            .position(|e| e.needs.is_subset(&self.record))
        {
            let e = self.pending.swap_remove(i);
            self.record.extend(e.dots);
        }
    }
}

/// The join of the deltas of `ops` on `key` whose dots `within` accepts.
pub fn join_of<'a>(
    ops: impl IntoIterator<Item = &'a OpRec>,
    key: &[u8],
    within: impl Fn(&Dot) -> bool,
) -> Option<State> {
    let mut acc: Option<State> = None;
    for o in ops.into_iter().filter(|o| o.key == key && within(&o.dot)) {
        match &mut acc {
            None => acc = Some(o.delta.clone()),
            Some(s) => s.try_join(&o.delta).expect("one type per key"),
        }
    }
    acc
}

/// Whether a delete based on `state` removes the effect of the operation
/// whose delta is `delta`: the state holds it. For counters, only the
/// counts matter (an increment made after an earlier delete carries that
/// delete's mark, which the deleting replica may not hold yet).
pub fn observed_by(state: &State, delta: &State) -> bool {
    let within = |s: &converge::crdt::GCounter, d: &converge::crdt::GCounter| {
        d.entries().all(|(r, c)| s.entry(r) >= c)
    };
    match (state, delta) {
        (State::GCounter(s), State::GCounter(d)) => within(s, d),
        (State::PNCounter(s), State::PNCounter(d)) => {
            within(s.increments(), d.increments()) && within(s.decrements(), d.decrements())
        }
        _ => covers(state, delta),
    }
}

/// Whether `big` holds everything `small` does (`big ⊔ small = big`).
pub fn covers(big: &State, small: &State) -> bool {
    let mut j = big.clone();
    j.try_join(small).is_ok() && encode_state(&j) == encode_state(big)
}

/// The value a key must have once every operation is everywhere, derived
/// from the operations' meaning (not from the lattice join): counters sum,
/// sets hold what was added and not removed, LWW keeps the greatest stamp
/// and FWW the least, an MV register every value no later write replaced;
/// and a delete takes away the operations it observed (LWW: writes stamped
/// before it). `None`: the key reads as absent (deleted, and every other
/// operation on it observed by a delete; LWW: no write after the last
/// delete).
pub fn expected_value(ops: &[OpRec], key: &[u8]) -> Option<Value> {
    let all: Vec<&OpRec> = ops.iter().filter(|o| o.key == key).collect();
    let mut observed: BTreeSet<Dot> = BTreeSet::new();
    let mut deletes = Vec::new();
    for o in &all {
        if let Intent::Delete { observed: seen } = &o.intent {
            observed.extend(seen.iter().copied());
            deletes.push(*o);
        }
    }
    let ops: Vec<&OpRec> = all
        .iter()
        .copied()
        .filter(|o| !matches!(o.intent, Intent::Delete { .. }))
        .collect();
    let first = ops.first().or(all.first())?;
    // (An operation with no effect, a PN add of 0, re-creates nothing; nor
    // does a remove of an element whose add a delete observed: the delete
    // covers its effect.)
    let inserted: BTreeMap<&[u8], Dot> = ops
        .iter()
        .filter_map(|o| match &o.intent {
            Intent::Insert(e) => Some((e.as_slice(), o.dot)),
            _ => None,
        })
        .collect();
    let live: Vec<&OpRec> = ops
        .iter()
        .copied()
        .filter(|o| !observed.contains(&o.dot) && !o.delta.is_empty())
        .filter(|o| match &o.intent {
            Intent::Remove(e) => inserted
                .get(e.as_slice())
                .is_none_or(|d| !observed.contains(d)),
            _ => true,
        })
        .collect();
    if !deletes.is_empty() && !matches!(first.delta, State::LwwRegister(_)) && live.is_empty() {
        return None;
    }
    let stamps = || {
        ops.iter().map(|o| match Value::of(&o.delta) {
            Value::Register(Some(s)) => s,
            other => panic!("register delta reads as {other:?}"),
        })
    };
    Some(match &first.delta {
        State::GCounter(_) | State::PNCounter(_) => Value::Counter(
            live.iter()
                .map(|o| match o.intent {
                    Intent::Add(n) => n,
                    _ => unreachable!(),
                })
                .sum(),
        ),
        State::GSet(_) | State::TwoPSet(_) | State::ORSet(_) => {
            let mut members = BTreeSet::new();
            let mut removed = BTreeSet::new();
            for o in &ops {
                match &o.intent {
                    Intent::Insert(e) if !observed.contains(&o.dot) => {
                        members.insert(e.clone());
                    }
                    Intent::Insert(_) => {}
                    Intent::Remove(e) => {
                        removed.insert(e.clone());
                    }
                    _ => unreachable!(),
                };
            }
            let members: Vec<Vec<u8>> = members.difference(&removed).cloned().collect();
            return Some(Value::Set(converge::SetRead {
                members,
                context: Default::default(),
            }));
        }
        State::LwwRegister(_) => {
            let last_delete = deletes
                .iter()
                .map(|d| {
                    (
                        d.delta.max_timestamp().expect("a delete's stamp"),
                        d.dot.replica,
                    )
                })
                .max();
            let last = stamps().max();
            match (last, last_delete) {
                (Some(w), Some(d)) if (w.ts, w.replica) <= d => return None,
                (None, _) => return None,
                (w, _) => Value::Register(w),
            }
        }
        State::FwwRegister(_) => Value::Register(stamps().min()),
        State::MvRegister(_) => {
            let mut values = BTreeMap::new();
            let mut replaced = BTreeSet::new();
            for o in &ops {
                if let Intent::Write { value, replaces } = &o.intent {
                    if !observed.contains(&o.dot) {
                        values.insert(value.clone(), ());
                    }
                    replaced.extend(replaces.iter().cloned());
                }
            }
            let live: Vec<Vec<u8>> = values
                .into_keys()
                .filter(|v| !replaced.contains(v))
                .collect();
            return Some(Value::Set(converge::SetRead {
                members: live,
                context: Default::default(),
            }));
        }
    })
}

/// A read value in the shape [`expected_value`] gives: set contexts
/// dropped, MV siblings as their sorted values.
pub fn comparable(v: Value) -> Value {
    match v {
        Value::Set(s) => Value::Set(converge::SetRead {
            members: s.members,
            context: Default::default(),
        }),
        Value::Mv(m) => {
            let mut members: Vec<Vec<u8>> = m.siblings.into_iter().map(|s| s.value).collect();
            members.sort();
            Value::Set(converge::SetRead {
                members,
                context: Default::default(),
            })
        }
        other => other,
    }
}
