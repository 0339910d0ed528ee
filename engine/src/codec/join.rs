//! The join of encoded OR-Set states, without decoding them.
//!
//! RocksDB's merge operator joins the values a key piles up (at reads, at
//! flushes and compactions). For full OR-Set states from peers those are
//! large (a 1,000-element state is 32 KB), and decoding each into its
//! maps, joining and encoding the result costs most of a flush's time:
//! 180 µs per 32 KB state measured before this (BENCHMARKS.md, "why the
//! writer stops in the big-state rows"). [`join_orset_states`] joins the
//! encodings in one ordered walk over both entry lists instead, copying
//! an entry's bytes whole when the join keeps it as it is, and decoding
//! only the two causal contexts (a few replicas' entries).
//!
//! It covers the plain (never deleted) OR-Set; anything else is not
//! joined here (`None`) and takes the decoding path. The result is the
//! canonical encoding of `ORSet::join` of the decoded states: the
//! property test below holds it to that, byte for byte.
//!
//! The values it joins are the store's: each was certified canonical
//! when the write path took it in (`skim_state`, or decoded and checked),
//! or is an output of this join. So it checks what damage could break —
//! each value's checksum (`split_header`), and its structure as it walks
//! it (every read bounded) — but not their canonical form again: a
//! value it cannot walk is left to the decoding path, which reports it.
//! (Checking it again with `skim_state` cost a quarter of the join.)

use super::skim::Reader;
use super::{config, seal_state_body_into, split_header, KIND_STATE};
use crate::causal::{CausalContext, Dot, ReplicaId};
use std::cmp::Ordering;
use std::ops::Range;

/// The body of a sealed full-state encoding, its checksum checked.
fn body(v: &[u8]) -> Option<&[u8]> {
    split_header(v, &[KIND_STATE]).ok().map(|(_, b)| b)
}

/// The variant index of a plain OR-Set state in a state body.
const ORSET_VARIANT: u128 = 4;

/// The join of sealed full-state encodings that are all plain OR-Sets (at
/// least two), sealed; `None` if one is not, or does not walk (join them
/// by decoding). The caller bounds the result's size.
///
/// A join of two bodies costs about the size of both, so the two smallest
/// bodies are joined first, again and again (as a Huffman code is built):
/// a large stored state under a pile of small operands is walked once, at
/// the end, not once per operand. (Folded left to right, reading a 3.5 MB
/// set under 2,600 operands of 4 KB took tens of seconds, BENCHMARKS.md.)
///
/// Not for applications (the store's merge operator calls it): public for
/// the benches' `join_time` example.
pub fn join_orset_states(values: &[&[u8]]) -> Option<Vec<u8>> {
    use std::borrow::Cow;
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    if values.len() < 2 {
        return None;
    }
    let mut bodies: Vec<Option<Cow<[u8]>>> = Vec::with_capacity(2 * values.len());
    let mut heap = BinaryHeap::with_capacity(values.len());
    for v in values {
        let b = body(v)?;
        heap.push(Reverse((b.len(), bodies.len())));
        bodies.push(Some(Cow::Borrowed(b)));
    }
    // Each step takes the two smallest bodies out and puts their join in.
    loop {
        let Reverse((_, i)) = heap.pop()?;
        let a = bodies[i].take()?;
        let Some(Reverse((_, j))) = heap.pop() else {
            let mut out = Vec::with_capacity(a.len() + 8);
            seal_state_body_into(&a, &mut out);
            return Some(out);
        };
        let b = bodies[j].take()?;
        let joined = join_bodies(&a, &b)?;
        heap.push(Reverse((joined.len(), bodies.len())));
        bodies.push(Some(Cow::Owned(joined)));
    }
}

/// A stored plain OR-Set, kept as its encoding: what a local add or
/// remove needs of it (an element's dots, the next dot of a replica) is
/// looked up in its bytes, and its changes are joined into those bytes
/// ([`OrSetBytes::join`]), so the write path changes a set it did not
/// have decoded without decoding it (`store/write/slot.rs`). Decoding
/// costs about 115 ns per element, walking the bytes about 15
/// (`decode_time`).
pub(crate) struct OrSetBytes {
    /// The sealed value, as stored.
    value: Vec<u8>,
    /// Each entry, in element order: where its element lies in `value`,
    /// and where its dots are in `dots`.
    entries: Vec<(Range<usize>, Range<usize>)>,
    dots: Vec<Dot>,
    ctx: CausalContext,
}

impl OrSetBytes {
    /// The set a stored value holds, if it is a plain OR-Set whose bytes
    /// walk (its checksum checked); `None` otherwise (decode it).
    pub(crate) fn of(value: &[u8]) -> Option<OrSetBytes> {
        let b = body(value)?;
        let at = b.as_ptr() as usize - value.as_ptr() as usize;
        let p = Parsed::of(b)?;
        let entries = p
            .entries
            .iter()
            .map(|(elem, _, dots)| {
                let start = at + (elem.as_ptr() as usize - b.as_ptr() as usize);
                (start..start + elem.len(), dots.clone())
            })
            .collect();
        Some(OrSetBytes {
            value: value.to_vec(),
            entries,
            dots: p.dots,
            ctx: p.ctx,
        })
    }

    /// The dots of `elem` (none if it is not a member).
    pub(crate) fn dots(&self, elem: &[u8]) -> &[Dot] {
        match self
            .entries
            .binary_search_by(|(e, _)| self.value[e.clone()].cmp(elem))
        {
            Ok(i) => &self.dots[self.entries[i].1.clone()],
            Err(_) => &[],
        }
    }

    /// The set's causal context.
    pub(crate) fn context(&self) -> &CausalContext {
        &self.ctx
    }

    /// The sealed encoding of the join of this set and `changes` (a sealed
    /// plain OR-Set); `None` if `changes` is not one.
    pub(crate) fn join(&self, changes: &[u8]) -> Option<Vec<u8>> {
        join_orset_states(&[&self.value, changes])
    }
}

/// An OR-Set body's entries as they lie in its bytes, and its context.
struct Parsed<'a> {
    /// Each entry: its element, its bytes (element and dots, as encoded)
    /// and where its dots are in `dots`.
    entries: Vec<(&'a [u8], &'a [u8], Range<usize>)>,
    dots: Vec<Dot>,
    ctx: CausalContext,
}

impl<'a> Parsed<'a> {
    /// Parse a canonical plain OR-Set body (certified, or made by
    /// [`join_bodies`]); `None` if it is not one.
    fn of(body: &'a [u8]) -> Option<Parsed<'a>> {
        let mut r = Reader { b: body };
        if r.varint()? != ORSET_VARIANT {
            return None;
        }
        let n = r.len(3)?;
        let mut entries = Vec::with_capacity(n);
        let mut dots = Vec::with_capacity(n);
        for _ in 0..n {
            let start = r.b;
            let elem = r.bytes()?;
            let k = r.len(2)?;
            let first = dots.len();
            for _ in 0..k {
                dots.push(Dot::new(ReplicaId(r.varint()?), r.u64()?));
            }
            let raw = &start[..start.len() - r.b.len()];
            entries.push((elem, raw, first..dots.len()));
        }
        let (ctx, used): (CausalContext, usize) = bincode::decode_from_slice(r.b, config()).ok()?;
        (used == r.b.len()).then_some(Parsed { entries, dots, ctx })
    }

    fn dots_of(&self, i: usize) -> &[Dot] {
        &self.dots[self.entries[i].2.clone()]
    }
}

/// The body of the join of two plain OR-Set bodies, as `ORSet::join`
/// makes it: an element only one side holds keeps the dots the other side
/// has not seen; an element both hold keeps the dots both hold, and each
/// side's dots the other has not seen; an element left without dots is
/// dropped; the contexts merge.
fn join_bodies(a: &[u8], b: &[u8]) -> Option<Vec<u8>> {
    let pa = Parsed::of(a)?;
    let pb = Parsed::of(b)?;
    let mut entries = Vec::with_capacity(a.len() + b.len());
    let mut n: u64 = 0;
    let mut kept: Vec<Dot> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < pa.entries.len() || j < pb.entries.len() {
        let order = match (pa.entries.get(i), pb.entries.get(j)) {
            (Some(x), Some(y)) => x.0.cmp(y.0),
            (Some(_), None) => Ordering::Less,
            _ => Ordering::Greater,
        };
        kept.clear();
        let (elem, raw) = match order {
            Ordering::Less => {
                i += 1;
                one_side(&pa, i - 1, &pb.ctx, &mut kept)
            }
            Ordering::Greater => {
                j += 1;
                one_side(&pb, j - 1, &pa.ctx, &mut kept)
            }
            Ordering::Equal => {
                let (ea, eb) = (&pa.entries[i], &pb.entries[j]);
                let (da, db) = (pa.dots_of(i), pb.dots_of(j));
                i += 1;
                j += 1;
                if ea.1 == eb.1 {
                    // The same dots on both sides: kept as they are.
                    (ea.0, Some(ea.1))
                } else {
                    both_sides(da, db, &pa.ctx, &pb.ctx, &mut kept);
                    // Kept whole when the join keeps one side's dots.
                    let same = |ds: &[Dot]| kept.as_slice() == ds;
                    let raw = if same(da) {
                        Some(ea.1)
                    } else if same(db) {
                        Some(eb.1)
                    } else {
                        None
                    };
                    (ea.0, raw)
                }
            }
        };
        match raw {
            Some(raw) => entries.extend_from_slice(raw),
            None if kept.is_empty() => continue,
            None => {
                put_varint(&mut entries, elem.len() as u128);
                entries.extend_from_slice(elem);
                put_varint(&mut entries, kept.len() as u128);
                for d in &kept {
                    put_varint(&mut entries, d.replica.0);
                    put_varint(&mut entries, d.counter as u128);
                }
            }
        }
        n += 1;
    }
    let mut ctx = pa.ctx;
    ctx.merge(&pb.ctx);
    let mut out = Vec::with_capacity(entries.len() + 64);
    put_varint(&mut out, ORSET_VARIANT);
    put_varint(&mut out, n as u128);
    out.extend_from_slice(&entries);
    bincode::encode_into_std_write(&ctx, &mut out, config()).ok()?;
    Some(out)
}

/// An element only one side holds (`p`'s entry `i`): the dots the other
/// side (its context `other`) has not seen, into `kept`; the element, and
/// the entry's bytes when it keeps them all.
fn one_side<'a>(
    p: &Parsed<'a>,
    i: usize,
    other: &CausalContext,
    kept: &mut Vec<Dot>,
) -> (&'a [u8], Option<&'a [u8]>) {
    let e = &p.entries[i];
    let ds = p.dots_of(i);
    kept.extend(ds.iter().filter(|d| !other.contains(d)));
    (e.0, (kept.len() == ds.len()).then_some(e.1))
}

/// The dots an element both sides hold keeps, in order, into `kept`:
/// those both hold, and each side's that the other has not seen (`da`,
/// `db`: each side's dots, sorted; `ca`, `cb`: their contexts).
fn both_sides(da: &[Dot], db: &[Dot], ca: &CausalContext, cb: &CausalContext, kept: &mut Vec<Dot>) {
    let (mut x, mut y) = (0, 0);
    loop {
        match (da.get(x), db.get(y)) {
            (Some(p), Some(q)) if p == q => {
                kept.push(*p);
                x += 1;
                y += 1;
            }
            (Some(p), q) if q.is_none_or(|q| p < q) => {
                if !cb.contains(p) {
                    kept.push(*p);
                }
                x += 1;
            }
            (_, Some(q)) => {
                if !ca.contains(q) {
                    kept.push(*q);
                }
                y += 1;
            }
            _ => return,
        }
    }
}

/// Append `v` as a bincode varint (its minimal form, as the encoder
/// writes it).
#[inline]
fn put_varint(out: &mut Vec<u8>, v: u128) {
    if v < 251 {
        out.push(v as u8);
    } else if let Ok(v) = u16::try_from(v) {
        out.push(251);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u32::try_from(v) {
        out.push(252);
        out.extend_from_slice(&v.to_le_bytes());
    } else if let Ok(v) = u64::try_from(v) {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    } else {
        out.push(254);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::join_orset_states;
    use crate::causal::ReplicaId;
    use crate::codec::encode_state;
    use crate::crdt::{GCounter, Lattice, ORSet, State};
    use proptest::prelude::*;

    /// Replica ids of every varint width.
    const IDS: [u128; 4] = [1, 300, 1 << 40, u128::MAX - 7];

    /// Three replicas' OR-Sets after a random history: adds (some of
    /// elements added before), removes of what a replica observes, full
    /// syncs from one replica to another, and single add deltas delivered
    /// to another replica alone (isolated dots in its context). Each set
    /// is one replica's, with its own id (`shift` varies which id widths
    /// meet).
    fn replicas() -> impl Strategy<Value = Vec<ORSet>> {
        let op = (0usize..3, 0usize..3, 0u8..4, 0u8..40);
        (0usize..4, prop::collection::vec(op, 0..60)).prop_map(|(shift, ops)| {
            let mut sets = vec![ORSet::default(), ORSet::default(), ORSet::default()];
            for (at, to, kind, elem) in ops {
                let e = vec![elem; 1 + (elem % 10) as usize * 30];
                let r = ReplicaId(IDS[(at + shift) % IDS.len()]);
                match kind {
                    0 => {
                        sets[at].add(r, &e);
                    }
                    1 => {
                        sets[at].remove(&e, None);
                    }
                    2 => {
                        let from = sets[at].clone();
                        sets[to].join(&from);
                    }
                    _ => {
                        let d = sets[at].add(r, &e);
                        sets[to].join(&d);
                    }
                }
            }
            sets
        })
    }

    /// The three replicas' OR-Sets after a random history of adds,
    /// removes and full syncs (as in [`replicas`]), then the delta of each
    /// of its adds and removes.
    fn pile() -> impl Strategy<Value = Vec<ORSet>> {
        let op = (0usize..3, 0u8..3, 0u8..40);
        (0usize..4, prop::collection::vec(op, 0..80)).prop_map(|(shift, ops)| {
            let mut sets = vec![ORSet::default(), ORSet::default(), ORSet::default()];
            let mut deltas = Vec::new();
            for (at, kind, elem) in ops {
                let e = vec![elem; 1 + (elem % 10) as usize * 30];
                let r = ReplicaId(IDS[(at + shift) % IDS.len()]);
                match kind {
                    0 => deltas.push(sets[at].add(r, &e)),
                    1 => deltas.push(sets[at].remove(&e, None)),
                    _ => {
                        let from = sets[at].clone();
                        sets[(at + 1) % 3].join(&from);
                    }
                }
            }
            sets.extend(deltas);
            sets
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Byte for byte the encoding of the decoded join, for two and
        /// three states, in any order.
        #[test]
        fn joins_as_the_decoded_join(sets in replicas(), order in 0usize..6) {
            let enc: Vec<Vec<u8>> =
                sets.iter().map(|s| encode_state(&State::ORSet(s.clone()))).collect();
            let mut two = sets[0].clone();
            two.join(&sets[1]);
            prop_assert_eq!(
                join_orset_states(&[&enc[0], &enc[1]]),
                Some(encode_state(&State::ORSet(two.clone())))
            );
            let mut all = two;
            all.join(&sets[2]);
            let perms = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
            let p = perms[order];
            let vals = [&enc[p[0]][..], &enc[p[1]][..], &enc[p[2]][..]];
            prop_assert_eq!(
                join_orset_states(&vals),
                Some(encode_state(&State::ORSet(all)))
            );
        }

        /// The same for many states of different sizes (joined smallest
        /// first, whatever their order): a history's replica states with
        /// every delta it made, as a stored state lies under a pile of
        /// operands.
        #[test]
        fn many_join_as_the_decoded_join(sets in pile()) {
            let enc: Vec<Vec<u8>> =
                sets.iter().map(|s| encode_state(&State::ORSet(s.clone()))).collect();
            let mut all = ORSet::default();
            for s in &sets {
                all.join(s);
            }
            let vals: Vec<&[u8]> = enc.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(
                join_orset_states(&vals),
                Some(encode_state(&State::ORSet(all)))
            );
        }
    }

    /// Anything but plain OR-Sets is left to the decoding path.
    #[test]
    fn other_values_are_not_joined_here() {
        let mut s = ORSet::default();
        s.add(ReplicaId(1), b"x");
        let set = encode_state(&State::ORSet(s.clone()));
        let mut counter = GCounter::default();
        counter.increment(ReplicaId(1), 3).unwrap();
        let counter = encode_state(&State::GCounter(counter));
        assert_eq!(join_orset_states(&[&set, &counter]), None);
        assert_eq!(join_orset_states(&[&set]), None);
        let mut damaged = set.clone();
        let last = damaged.len() - 1;
        damaged[last] ^= 1;
        assert_eq!(join_orset_states(&[&set, &damaged]), None);
        let mut deleted = State::ORSet(s.clone());
        let observed = deleted.clone();
        deleted
            .delete(&observed, Default::default(), ReplicaId(1))
            .unwrap();
        assert!(deleted.has_tomb());
        let deleted = encode_state(&deleted);
        assert_eq!(join_orset_states(&[&set, &deleted]), None);
    }
}
