//! What the `state` column family holds for a key, and the merge operator's
//! join, which never fails.
//!
//! A stored value is one of:
//! - a **state** (`KIND_STATE`, at most [`MAX_STATE_LEN`] bytes): every
//!   value the write path puts or merges, and every successful join;
//! - **parts** (`KIND_PARTS`): values the merge operator could not join into
//!   one state within the limit (or could not decode), kept side by side,
//!   unjoined. The write path checks sizes so that it does not create them
//!   (see `write/stage.rs`); they exist so that the merge operator is total: a
//!   failing merge operator makes RocksDB report corruption for the whole
//!   store (open fails), while parts keep every acknowledged byte and
//!   confine the problem to one key, which reads as
//!   [`Error::StateTooLarge`] (or `Corruption` if a part is damaged).
//!
//! Parts encoding: `FORMAT_VERSION`, `KIND_PARTS`, then for each part a
//! 4-byte little-endian length and the part's bytes (FORMAT.md).

use crate::codec::{decode_state, encode_state, FORMAT_VERSION, KIND_PARTS, MAX_STATE_LEN};
use crate::crdt::State;
use crate::error::{Error, Result};

/// Whether stored bytes are parts rather than one state.
pub(crate) fn is_parts(bytes: &[u8]) -> bool {
    matches!(bytes, [FORMAT_VERSION, KIND_PARTS, ..])
}

/// Whether stored bytes are one state within the limit (what can be shipped
/// to a peer as is), not parts or a state written before the limit.
pub(crate) fn is_plain_state(bytes: &[u8]) -> bool {
    !is_parts(bytes) && bytes.len() <= MAX_STATE_LEN
}

/// The parts of a parts value, or `None` if its framing is damaged.
fn parts_of(bytes: &[u8]) -> Option<Vec<&[u8]>> {
    let mut rest = bytes.get(2..)?;
    let mut out = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len {
            return None;
        }
        let (part, tail) = tail.split_at(len);
        out.push(part);
        rest = tail;
    }
    Some(out)
}

/// The stored value of `key` as a state: `StateTooLarge` if it is (or its
/// parts join to) more than the limit, `Corruption` if it is damaged.
pub(crate) fn decode_stored(key: &[u8], bytes: &[u8]) -> Result<State> {
    let too_large = |size: usize| Error::StateTooLarge {
        key: key.to_vec(),
        size: size as u64,
        max: MAX_STATE_LEN as u64,
    };
    let corrupt = |what: String| Error::Corruption(format!("stored state: {what}"));
    if !is_parts(bytes) {
        if bytes.len() > MAX_STATE_LEN {
            return Err(too_large(bytes.len()));
        }
        return decode_state(bytes).map_err(|e| corrupt(e.to_string()));
    }
    let parts = parts_of(bytes).ok_or_else(|| corrupt("damaged parts framing".into()))?;
    if parts.iter().any(|p| p.len() > MAX_STATE_LEN) {
        return Err(too_large(bytes.len()));
    }
    let mut acc: Option<State> = None;
    for p in parts {
        let s = decode_state(p).map_err(|e| corrupt(e.to_string()))?;
        match acc.as_mut() {
            None => acc = Some(s),
            Some(a) => a
                .try_join(&s)
                .map_err(|m| corrupt(format!("parts of types {} and {}", m.expected, m.found)))?,
        }
    }
    let state = acc.ok_or_else(|| corrupt("no parts".into()))?;
    let len = encode_state(&state).len();
    if len > MAX_STATE_LEN {
        return Err(too_large(len));
    }
    Ok(state)
}

/// Join an optional stored value with merge operands. Never fails: if the
/// join cannot be made within the limit (or a value does not decode), the
/// values are kept as parts.
pub(crate) fn join_total(existing: Option<&[u8]>, operands: &[&[u8]]) -> Vec<u8> {
    if let Some(joined) = try_join_all(existing.into_iter().chain(operands.iter().copied())) {
        return joined;
    }
    let mut out = vec![FORMAT_VERSION, KIND_PARTS];
    for value in existing.into_iter().chain(operands.iter().copied()) {
        match is_parts(value).then(|| parts_of(value)).flatten() {
            Some(parts) => parts.into_iter().for_each(|p| push_part(&mut out, p)),
            None => push_part(&mut out, value),
        }
    }
    out
}

fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    // A part is a stored value or an operand: RocksDB values are < 4 GiB.
    out.extend_from_slice(&(part.len() as u32).to_le_bytes());
    out.extend_from_slice(part);
}

/// The join of states, encoded, if every value decodes, the types agree
/// and the result is within the limit.
///
/// Byte-equal values are one state (encodings are canonical) and the join
/// is idempotent, so each is decoded and joined once: the same full state
/// delivered again (a retried or fanned-in shipment) costs its bytes
/// compared, not a decode and a join, wherever its operands are folded
/// (reads, flushes, compactions).
///
/// The values are joined pairwise, as a balanced tree: a join costs about
/// the size of its two sides, so joining many operands (some large, some
/// small) into a large stored state costs their total size times the
/// tree's depth, not the accumulated size once per operand. The join is
/// associative and commutative: the order does not change the result.
pub(crate) fn try_join_all<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Vec<u8>> {
    let mut values: Vec<&[u8]> = values.collect();
    if values.len() > 1 {
        values.sort_unstable();
        values.dedup();
    }
    let first = *values.first()?;
    if values.len() == 1 {
        // One value: its own join. It is not decoded: a value that does
        // not decode (damaged on disk, or parts) comes back as it was, and
        // reads of the key report it as they would have (`decode_stored`);
        // joined with another value later, it is kept as a part.
        return Some(first.to_vec());
    }
    // Plain OR-Set states (full states from peers, the big values) are
    // joined from their encodings (`codec/join.rs`): no decode.
    if let Some(out) = crate::codec::join_orset_states(&values) {
        return (out.len() <= MAX_STATE_LEN).then_some(out);
    }
    let mut level: Vec<State> = values
        .into_iter()
        .map(|v| decode_state(v).ok())
        .collect::<Option<_>>()?;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len().div_ceil(2));
        let mut it = level.into_iter();
        while let Some(a) = it.next() {
            let Some(b) = it.next() else {
                next.push(a);
                break;
            };
            // The larger side takes the smaller one in.
            let (mut into, from) = if b.weight() > a.weight() {
                (b, a)
            } else {
                (a, b)
            };
            into.try_join(&from).ok()?;
            next.push(into);
        }
        level = next;
    }
    let out = encode_state(&level.pop()?);
    (out.len() <= MAX_STATE_LEN).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::causal::ReplicaId;
    use crate::crdt::{GCounter, GSet};

    /// Joining a big stored set with many operands (adds, removes, a
    /// peer's adds) as a balanced tree gives the sequential join.
    #[test]
    fn tree_join_equals_sequential_join() {
        use crate::crdt::{Lattice, ORSet};
        let (me, peer) = (ReplicaId(1), ReplicaId(2));
        let mut base = ORSet::default();
        for i in 0..500u32 {
            base.add(me, &i.to_be_bytes());
        }
        let mut live = base.clone();
        let mut other = ORSet::default();
        let mut operands = Vec::new();
        for i in 0..37u32 {
            operands.push(match i % 3 {
                0 => live.add(me, &(1_000 + i).to_be_bytes()),
                1 => live.remove(&(i * 7).to_be_bytes(), None),
                _ => other.add(peer, &i.to_be_bytes()),
            });
        }
        let mut expected = State::ORSet(base.clone());
        for o in &operands {
            expected.try_join(&State::ORSet(o.clone())).unwrap();
        }
        let values: Vec<Vec<u8>> = std::iter::once(&base)
            .chain(&operands)
            .map(|s| encode_state(&State::ORSet(s.clone())))
            .collect();
        let joined = try_join_all(values.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(joined, encode_state(&expected));
        let mut check = live;
        check.join(&other);
        assert_eq!(decode_state(&joined).unwrap(), State::ORSet(check));
    }

    fn gset(elems: &[&[u8]]) -> Vec<u8> {
        let mut s = GSet::default();
        for e in elems {
            s.add(e);
        }
        encode_state(&State::GSet(s))
    }

    /// Byte-equal values are joined once: the result is the join of the
    /// distinct ones, and a lone distinct value comes back as it was, even
    /// a damaged one (reads report it; joined with another value, it is
    /// kept as a part).
    #[test]
    fn equal_values_are_joined_once() {
        let (a, b) = (gset(&[b"a"]), gset(&[b"b"]));
        let joined = |vs: &[&Vec<u8>]| try_join_all(vs.iter().map(|v| v.as_slice()));
        assert_eq!(joined(&[&a, &a, &a]), Some(a.clone()));
        assert_eq!(joined(&[&b, &a, &b, &a, &a]), Some(gset(&[b"a", b"b"])));
        let damaged = vec![1u8, 0, 9, 9];
        assert_eq!(joined(&[&damaged, &damaged]), Some(damaged.clone()));
        assert!(decode_stored(b"k", &damaged).is_err());
        assert!(is_parts(&join_total(
            Some(&a),
            &[&damaged[..], &damaged[..]]
        )));
    }

    #[test]
    fn joins_within_the_limit() {
        let a = gset(&[b"a"]);
        let b = gset(&[b"b"]);
        let out = join_total(Some(&a), &[&b[..]]);
        assert_eq!(out, gset(&[b"a", b"b"]));
        assert_eq!(
            decode_stored(b"k", &out).unwrap(),
            decode_state(&out).unwrap()
        );
    }

    #[test]
    fn keeps_parts_when_types_differ_or_bytes_are_damaged() {
        let a = gset(&[b"a"]);
        let mut g = GCounter::default();
        let c = encode_state(&State::GCounter(g.increment(ReplicaId(1), 1).unwrap()));
        let out = join_total(Some(&a), &[&c[..]]);
        assert!(is_parts(&out));
        assert_eq!(parts_of(&out).unwrap(), vec![&a[..], &c[..]]);
        assert!(matches!(
            decode_stored(b"k", &out),
            Err(Error::Corruption(_))
        ));
        // Parts merged again are flattened, not nested.
        let again = join_total(Some(&out), &[&a[..]]);
        assert_eq!(parts_of(&again).unwrap().len(), 3);
        let damaged = [1u8, 0, 9, 9];
        let out = join_total(None, &[&a[..], &damaged[..]]);
        assert!(is_parts(&out));
        assert!(matches!(
            decode_stored(b"k", &out),
            Err(Error::Corruption(_))
        ));
    }

    #[test]
    fn oversize_join_becomes_parts_and_reads_as_too_large() {
        let big = vec![7u8; 30 << 20];
        let mut big2 = big.clone();
        big2[0] = 8;
        let mut big3 = big.clone();
        big3[0] = 9;
        let a = gset(&[&big, &big2]);
        let b = gset(&[&big3]);
        let out = join_total(Some(&a), &[&b[..]]);
        assert!(is_parts(&out));
        match decode_stored(b"k", &out) {
            Err(Error::StateTooLarge { key, size, max }) => {
                assert_eq!(key, b"k");
                assert!(size > max && size < (91 << 20), "{size}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damaged_framing_is_corruption() {
        let out = [FORMAT_VERSION, KIND_PARTS, 200, 0, 0, 0, 1];
        assert!(matches!(
            decode_stored(b"k", &out),
            Err(Error::Corruption(_))
        ));
    }
}
