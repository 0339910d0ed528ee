//! Certify that an encoded full state, or a peer's delta of one, is
//! canonical without decoding it.
//!
//! The write path passes a peer's full state to RocksDB's merge operator
//! as its validated bytes (and a delta's state, sealed as a full state:
//! [`skim_delta`] certifies the envelope too). Validating by decoding
//! builds the whole state (for an OR-Set of 1,000 elements, a thousand
//! allocations) only to drop it again, and a delta's state would be
//! encoded again to be written. [`skim_state`] walks the bytes once instead, allocating
//! nothing but a list of the dots an OR-Set's entries name, and checks
//! what the decoder and the canonical checks would: minimal varints,
//! strictly increasing collections, no zero version-vector entries, a
//! compact causal context holding every entry's dots, no trailing bytes.
//!
//! It covers the plain (never deleted) G-Counter, PN-Counter, G-Set and
//! OR-Set. It may refuse more than the decoder does, never less: a state
//! it does not certify (another type, a tombstone, anything unusual) takes
//! the decoding path, which accepts it or gives the typed error. The
//! property test below holds it to that against the decoder on valid and
//! damaged encodings.

use super::{split_header, KIND_DELTA, KIND_DELTA_DEPS, KIND_STATE};
use crate::causal::{Dot, ReplicaId};
use crate::crdt::CrdtType;
use std::cmp::Ordering;

/// The type of a sealed full-state encoding (`bytes`, as
/// [`super::encode_state`] makes it) that is certainly canonical and
/// would decode; `None` if not certified (decode it to know). Public for
/// the fuzz harness only (`fuzz/fuzz_targets/codec.rs` holds it to the
/// decoder).
pub fn skim_state(bytes: &[u8]) -> Option<CrdtType> {
    let (_, body) = split_header(bytes, &[KIND_STATE]).ok()?;
    skim_state_body(body)
}

/// A delta envelope certified by [`skim_delta`]: its dot, and its state
/// as the body of a full-state encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SkimmedDelta<'a> {
    /// The operation's dot (origin and sequence number, at least 1).
    pub(crate) dot: Dot,
    /// Whether the envelope records dependencies (kind 8); they are empty
    /// (nothing but the origin's earlier operations, which the sequence
    /// number implies).
    pub(crate) deps: bool,
    /// The state's type.
    pub(crate) ty: CrdtType,
    /// The state's canonical encoding (bincode body, as in a full-state
    /// encoding: sealing it gives the bytes [`super::encode_state`] makes
    /// of the decoded state).
    pub(crate) body: &'a [u8],
}

/// A sealed delta envelope (`bytes`, as `Delta::encode` makes it) that is
/// certainly well formed and would decode to a canonical delta, with no
/// recorded dependencies beyond the origin's earlier operations and a
/// state [`skim_state`] certifies; `None` if not certified (decode it to
/// know). Refuses more than the decoder does, never less (the property
/// test below holds it to that).
pub(crate) fn skim_delta(bytes: &[u8]) -> Option<SkimmedDelta<'_>> {
    let (kind, body) = split_header(bytes, &[KIND_DELTA, KIND_DELTA_DEPS]).ok()?;
    let mut r = Reader { b: body };
    let origin = ReplicaId(r.varint()?);
    let seq = r.u64()?;
    if seq == 0 {
        return None;
    }
    let deps = kind == KIND_DELTA_DEPS;
    // Dependencies: only the empty context (no vector entry, no cloud).
    if deps && (r.varint()? != 0 || r.varint()? != 0) {
        return None;
    }
    let body = r.b;
    let ty = skim_state_body(body)?;
    Some(SkimmedDelta {
        dot: Dot::new(origin, seq),
        deps,
        ty,
        body,
    })
}

/// The type of a full state's body (what follows the version and kind
/// bytes) if it is certainly canonical and would decode.
fn skim_state_body(body: &[u8]) -> Option<CrdtType> {
    let mut r = Reader { b: body };
    let ty = match r.varint()? {
        0 => {
            r.skip_version_vector()?;
            CrdtType::GCounter
        }
        1 => {
            r.skip_version_vector()?;
            r.skip_version_vector()?;
            CrdtType::PNCounter
        }
        2 => {
            r.byte_set()?;
            CrdtType::GSet
        }
        4 => {
            r.orset()?;
            CrdtType::ORSet
        }
        _ => return None,
    };
    r.b.is_empty().then_some(ty)
}

/// A dot as encoded (replica, counter).
type RawDot = (u128, u64);

pub(super) struct Reader<'a> {
    pub(super) b: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A bincode varint in its minimal form (a longer form decodes too,
    /// but is not canonical).
    #[inline]
    pub(super) fn varint(&mut self) -> Option<u128> {
        let (&first, rest) = self.b.split_first()?;
        // Each width read at its own size (a copy of a variable length
        // was a call to `memcpy` per varint: replica ids take 16 bytes).
        let (v, width, min) = match first {
            0..=250 => {
                self.b = rest;
                return Some(first as u128);
            }
            251 => (u16::from_le_bytes(*rest.first_chunk()?) as u128, 2, 251u128),
            252 => (u32::from_le_bytes(*rest.first_chunk()?) as u128, 4, 1 << 16),
            253 => (u64::from_le_bytes(*rest.first_chunk()?) as u128, 8, 1 << 32),
            254 => (u128::from_le_bytes(*rest.first_chunk()?), 16, 1 << 64),
            _ => return None,
        };
        self.b = &rest[width..];
        (v >= min).then_some(v)
    }

    #[inline]
    pub(super) fn u64(&mut self) -> Option<u64> {
        u64::try_from(self.varint()?).ok()
    }

    /// A collection length, no larger than what the remaining bytes could
    /// hold at `min_each` bytes per element.
    pub(super) fn len(&mut self, min_each: usize) -> Option<usize> {
        let n = usize::try_from(self.u64()?).ok()?;
        (n.checked_mul(min_each)? <= self.b.len()).then_some(n)
    }

    pub(super) fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len(1)?;
        let (v, rest) = self.b.split_at(n);
        self.b = rest;
        Some(v)
    }

    #[inline]
    fn dot(&mut self) -> Option<RawDot> {
        Some((self.varint()?, self.u64()?))
    }

    /// A version vector: replicas strictly increasing, no zero entry;
    /// `each` sees its entries in order.
    #[inline]
    fn version_vector_each(&mut self, mut each: impl FnMut(RawDot)) -> Option<()> {
        let n = self.len(2)?;
        let mut last = None;
        for _ in 0..n {
            let (r, c) = self.dot()?;
            if c == 0 || last.is_some_and(|p| p >= r) {
                return None;
            }
            last = Some(r);
            each((r, c));
        }
        Some(())
    }

    /// A version vector, checked without keeping its entries.
    fn skip_version_vector(&mut self) -> Option<()> {
        self.version_vector_each(|_| ())
    }

    /// A version vector, checked, with its entries.
    fn version_vector(&mut self) -> Option<Vec<RawDot>> {
        let mut out = Vec::new();
        self.version_vector_each(|d| out.push(d))?;
        Some(out)
    }

    /// A byte string greater than `last` (the previous one of a set or
    /// map), which it becomes.
    fn next_bytes(&mut self, last: &mut Option<&'a [u8]>) -> Option<()> {
        let e = self.bytes()?;
        if last.is_some_and(|p| p.cmp(e) != Ordering::Less) {
            return None;
        }
        *last = Some(e);
        Some(())
    }

    /// A set of byte strings, strictly increasing.
    fn byte_set(&mut self) -> Option<()> {
        let n = self.len(1)?;
        let mut last = None;
        for _ in 0..n {
            self.next_bytes(&mut last)?;
        }
        Some(())
    }

    /// A set of dots, strictly increasing, appended to `out`; at least one
    /// when `nonempty`.
    fn dot_set(&mut self, nonempty: bool, out: &mut Vec<RawDot>) -> Option<()> {
        let n = self.len(2)?;
        if nonempty && n == 0 {
            return None;
        }
        let start = out.len();
        for _ in 0..n {
            let d = self.dot()?;
            if out.len() > start && out[out.len() - 1] >= d {
                return None;
            }
            out.push(d);
        }
        Some(())
    }

    /// An OR-Set: entries (elements strictly increasing, each with a
    /// non-empty set of dots), then a compact causal context that holds
    /// every one of those dots.
    fn orset(&mut self) -> Option<()> {
        let n = self.len(3)?;
        let mut dots = Vec::with_capacity(n);
        let mut last = None;
        for _ in 0..n {
            self.next_bytes(&mut last)?;
            self.dot_set(true, &mut dots)?;
        }
        let vv = self.version_vector()?;
        let mut cloud = Vec::new();
        self.dot_set(false, &mut cloud)?;
        let seen = |r: u128| match vv.binary_search_by(|(p, _)| p.cmp(&r)) {
            Ok(i) => vv[i].1,
            Err(_) => 0,
        };
        // Compact: no cloud dot covered by the vector or extending it.
        if cloud.iter().any(|&(r, c)| c <= seen(r).saturating_add(1)) {
            return None;
        }
        // Every entry's dot names an event the context holds, and belongs
        // to one element only.
        crate::crdt::dots::held_once(&dots, &vv, &cloud).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::{skim_delta, skim_state};
    use crate::causal::{CausalContext, Dot, ReplicaId};
    use crate::codec::{decode_item, encode_state, seal_state_body_into, Delta, Item};
    use crate::crdt::{GCounter, GSet, ORSet, PNCounter, State};
    use proptest::prelude::*;

    /// States of the covered types (and a few others) from a short
    /// history of operations by a few replicas, some with large ids and
    /// counts (multi-byte varints).
    fn state() -> impl Strategy<Value = State> {
        let replica = prop_oneof![
            (1u128..4).boxed(),
            Just(u128::MAX - 1).boxed(),
            (250u128..70_000).boxed()
        ];
        let elem = prop::collection::vec(any::<u8>(), 0..300);
        let ops = prop::collection::vec((replica, elem, 0u64..300, 0u8..4), 0..24);
        (0u8..5, ops).prop_map(|(kind, ops)| {
            let mut g = GCounter::default();
            let mut pn = PNCounter::default();
            let mut s = GSet::default();
            let mut o = ORSet::default();
            for (r, e, n, op) in ops {
                let r = ReplicaId(r);
                let _ = g.increment(r, n.saturating_mul(n).saturating_mul(n));
                let _ = pn.add(r, n as i64 - 150);
                s.add(&e);
                match op {
                    0 | 1 => {
                        o.add(r, &e);
                    }
                    2 => {
                        o.remove(&e, None);
                    }
                    _ => {
                        // A peer's later add of `e`, learnt without its
                        // earlier ones: a context with isolated dots.
                        let mut peer = ORSet::default();
                        for _ in 0..n % 5 {
                            peer.add(r, b"x");
                        }
                        let d = peer.add(r, &e);
                        crate::crdt::Lattice::join(&mut o, &d);
                    }
                }
            }
            match kind {
                0 => State::GCounter(g),
                1 => State::PNCounter(pn),
                2 => State::GSet(s),
                3 => State::ORSet(o),
                _ => State::TwoPSet(Default::default()),
            }
        })
    }

    /// A delta of `st`: without recorded dependencies (`deps` 0), with
    /// empty ones (1), or with a dependency on another replica (2).
    fn delta(st: State, origin: u128, seq: u64, deps: u8) -> Delta {
        Delta {
            origin: ReplicaId(origin),
            seq,
            deps: match deps {
                0 => None,
                1 => Some(CausalContext::new()),
                _ => {
                    let mut c = CausalContext::new();
                    c.insert(Dot::new(ReplicaId(origin.wrapping_add(1)), 3));
                    Some(c)
                }
            },
            state: st,
        }
    }

    /// `sealed` with one byte of its body changed to `byte` (`how` 0),
    /// `byte` inserted (1) or a byte removed (2), at `at`, then sealed
    /// again: the checksum passes and only the body is wrong.
    fn damage(sealed: &[u8], at: prop::sample::Index, byte: u8, how: u8) -> Vec<u8> {
        let mut content = sealed[..sealed.len() - crate::codec::CHECKSUM_LEN].to_vec();
        if content.len() > 2 {
            let i = 2 + at.index(content.len() - 2);
            match how {
                0 => content[i] = byte,
                1 => content.insert(i, byte),
                _ => {
                    content.remove(i);
                }
            }
        }
        crate::codec::seal(content)
    }

    fn decodes_canonical(bytes: &[u8]) -> bool {
        matches!(decode_item(bytes), Ok(Item::State(_)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Every valid state of a covered type is certified, with its type.
        #[test]
        fn valid_states_are_certified(st in state()) {
            let bytes = encode_state(&st);
            let covered = !matches!(st, State::TwoPSet(_));
            prop_assert_eq!(skim_state(&bytes), covered.then(|| st.crdt_type()));
        }

        /// Every valid delta of a covered type without dependencies beyond
        /// its origin's is certified: its dot, its type, and the state's
        /// body, which sealed is the state's encoding. Deltas with other
        /// dependencies, or of other types, are not.
        #[test]
        fn valid_deltas_are_certified(
            st in state(),
            origin in prop_oneof![Just(1u128), Just(u128::MAX), 250u128..70_000],
            seq in prop_oneof![1u64..300, Just(u64::MAX)],
            deps in 0u8..3,
        ) {
            let bytes = delta(st.clone(), origin, seq, deps).encode();
            let covered = !matches!(st, State::TwoPSet(_)) && deps < 2;
            let skimmed = skim_delta(&bytes);
            prop_assert_eq!(skimmed.is_some(), covered);
            if let Some(d) = skimmed {
                prop_assert_eq!(d.dot, Dot::new(ReplicaId(origin), seq));
                prop_assert_eq!(d.deps, deps == 1);
                prop_assert_eq!(d.ty, st.crdt_type());
                let mut sealed = Vec::new();
                seal_state_body_into(d.body, &mut sealed);
                prop_assert_eq!(sealed, encode_state(&st));
            }
        }

        /// Damaged delta encodings are certified only if the decoder
        /// accepts them, as a delta with that dot, those (empty)
        /// dependencies and a state whose encoding is the certified body
        /// sealed.
        #[test]
        fn deltas_never_looser_than_the_decoder(
            st in state(),
            seq in 0u64..4,
            deps in 0u8..3,
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![
                any::<u8>(),
                prop::sample::select(vec![0u8, 1, 2, 250, 251, 252, 253, 254, 255]),
            ],
            how in 0u8..4,
        ) {
            let sealed = delta(st, 7, seq.max(1), deps).encode();
            let damaged = if how < 3 {
                damage(&sealed, at, byte, how)
            } else {
                // The sequence number 0 (origin 7 is one byte).
                let mut content = sealed[..sealed.len() - crate::codec::CHECKSUM_LEN].to_vec();
                if content.len() > 3 {
                    content[3] = 0;
                }
                crate::codec::seal(content)
            };
            if let Some(d) = skim_delta(&damaged) {
                match decode_item(&damaged) {
                    Ok(Item::Delta(decoded)) => {
                        prop_assert_eq!(Dot::new(decoded.origin, decoded.seq), d.dot);
                        prop_assert_eq!(decoded.deps.is_some(), d.deps);
                        prop_assert!(decoded.deps.is_none_or(|c| c.is_empty()));
                        prop_assert_eq!(decoded.state.crdt_type(), d.ty);
                        let mut sealed = Vec::new();
                        seal_state_body_into(d.body, &mut sealed);
                        prop_assert_eq!(sealed, encode_state(&decoded.state));
                    }
                    other => prop_assert!(false, "certified but decodes to {:?}", other),
                }
            }
        }

        /// Damaged encodings (a byte changed, inserted or removed, with
        /// the checksum recomputed so that only the body is wrong) are
        /// certified only if the decoder accepts them as canonical, with
        /// the same type.
        #[test]
        fn never_looser_than_the_decoder(
            st in state(),
            at in any::<prop::sample::Index>(),
            byte in prop_oneof![
                any::<u8>(),
                prop::sample::select(vec![0u8, 1, 2, 250, 251, 252, 253, 254, 255]),
            ],
            how in 0u8..3,
        ) {
            let damaged = damage(&encode_state(&st), at, byte, how);
            if let Some(ty) = skim_state(&damaged) {
                prop_assert!(decodes_canonical(&damaged), "certified but not decodable");
                match decode_item(&damaged) {
                    Ok(Item::State(s)) => prop_assert_eq!(s.crdt_type(), ty),
                    other => prop_assert!(false, "{:?}", other),
                }
            }
        }
    }

    /// A sealed state encoding of `body` (the variant index, then the
    /// fields, as bincode encodes them).
    fn sealed<T: bincode::Encode>(body: &T) -> Vec<u8> {
        crate::codec::encode_with(crate::codec::KIND_STATE, body)
    }

    /// Bodies that decode but are not canonical, or do not decode: each
    /// refused, and refused by the decoder too.
    #[test]
    fn non_canonical_forms_are_refused() {
        type Vv = Vec<(u128, u64)>;
        type Entries = Vec<(Vec<u8>, Vec<(u128, u64)>)>;
        let vv = |v: &[(u128, u64)]| -> Vv { v.to_vec() };
        let orset = |e: Entries, v: Vv, cloud: Vec<(u128, u64)>| sealed(&(4u32, e, v, cloud));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("zero counter entry", sealed(&(0u32, vv(&[(1, 0)])))),
            (
                "replicas out of order",
                sealed(&(0u32, vv(&[(2, 1), (1, 1)]))),
            ),
            ("replica twice", sealed(&(0u32, vv(&[(1, 1), (1, 2)])))),
            (
                "PN half unsorted",
                sealed(&(1u32, vv(&[(1, 1)]), vv(&[(3, 1), (2, 1)]))),
            ),
            (
                "G-Set out of order",
                sealed(&(2u32, vec![b"b".to_vec(), b"a".to_vec()])),
            ),
            (
                "G-Set element twice",
                sealed(&(2u32, vec![b"a".to_vec(), b"a".to_vec()])),
            ),
            (
                "OR-Set element without dots",
                orset(vec![(b"a".to_vec(), vec![])], vv(&[(1, 1)]), vec![]),
            ),
            (
                "OR-Set dot outside the context",
                orset(vec![(b"a".to_vec(), vec![(1, 2)])], vv(&[(1, 1)]), vec![]),
            ),
            (
                "OR-Set dots out of order",
                orset(
                    vec![(b"a".to_vec(), vec![(1, 2), (1, 1)])],
                    vv(&[(1, 2)]),
                    vec![],
                ),
            ),
            (
                "OR-Set elements out of order",
                orset(
                    vec![(b"b".to_vec(), vec![(1, 1)]), (b"a".to_vec(), vec![(1, 2)])],
                    vv(&[(1, 2)]),
                    vec![],
                ),
            ),
            (
                "cloud dot covered",
                orset(vec![], vv(&[(1, 3)]), vec![(1, 2)]),
            ),
            (
                "cloud dot extends the vector",
                orset(vec![], vv(&[(1, 3)]), vec![(1, 4)]),
            ),
            ("variant out of range", sealed(&(17u32, vv(&[])))),
        ];
        for (what, bytes) in cases {
            assert_eq!(skim_state(&bytes), None, "{what}");
            assert!(!decodes_canonical(&bytes), "{what}: the decoder accepts it");
        }
        // A non-minimal varint (the count 1 as 251 + u16), trailing bytes,
        // a truncated body.
        let ok = sealed(&(0u32, vv(&[(1, 1)])));
        let body = &ok[2..ok.len() - crate::codec::CHECKSUM_LEN];
        assert_eq!(body, [0, 1, 1, 1]);
        for (what, body) in [
            ("non-minimal varint", vec![0u8, 251, 1, 0, 1, 1]),
            ("trailing byte", vec![0u8, 1, 1, 1, 0]),
            ("truncated", vec![0u8, 1, 1]),
        ] {
            let mut content = ok[..2].to_vec();
            content.extend_from_slice(&body);
            let bytes = crate::codec::seal(content);
            assert_eq!(skim_state(&bytes), None, "{what}");
            assert!(!decodes_canonical(&bytes), "{what}: the decoder accepts it");
        }
        assert!(skim_state(&ok).is_some() && decodes_canonical(&ok));
    }
}
