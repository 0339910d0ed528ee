//! Every decoder of encoded values: states and deltas (`decode_item`,
//! what `Engine::merge` takes), full states, causal contexts (tokens,
//! cursors, read contexts), version vectors, persisted IBLTs and pages of
//! the changes feed. Input: a mode byte ([`RESEAL`]: repair the checksum),
//! then the encoding.
//!
//! Checked: no decoder panics; what one accepts is well formed (canonical)
//! and survives a round trip (encode, decode: the same value); a full state
//! accepted by `decode_item` is byte for byte the encoding of its value
//! (the write path stores such bytes as they came, and the anti-entropy
//! hashes are over stored bytes, so equal states must be equal bytes);
//! what the write path's skimmer (`skim_state`) certifies without
//! decoding, `decode_item` accepts as a full state of the same type; an
//! OR-Set state joined from its encoding (`join_orset_states`, what the
//! merge operator does) with itself, and with a copy changed by an add
//! and a remove, gives byte for byte the encoding of the decoded join,
//! for every plain (never deleted) set.
#![no_main]

use converge::codec::{
    decode_context, decode_iblt, decode_item, decode_state, decode_vv, encode_context, encode_iblt,
    encode_state, encode_vv, join_orset_states, skim_state,
};
use converge::crdt::{Lattice, ORSet};
use converge::{Changes, Item, ReplicaId, State};
use converge_fuzz::{framed, Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut input = Input::new(data);
    let mode = input.byte();
    let bytes = framed(mode, input.rest());

    match decode_item(&bytes) {
        Ok(Item::State(s)) => {
            assert!(s.is_canonical());
            assert_eq!(
                encode_state(&s),
                bytes,
                "a full state accepted in a non-canonical encoding"
            );
        }
        Ok(Item::Delta(d)) => {
            assert!(d.state.is_canonical());
            assert_eq!(decode_item(&d.encode()), Ok(Item::Delta(d)));
        }
        Err(_) => {}
    }
    if let Some(ty) = skim_state(&bytes) {
        match decode_item(&bytes) {
            Ok(Item::State(s)) => assert_eq!(s.crdt_type(), ty),
            other => panic!("skimmed as {ty:?} but decodes as {other:?}"),
        }
    }
    if let Ok(s) = decode_state(&bytes) {
        assert!(s.is_canonical());
        if let State::ORSet(set) = &s {
            // The merge operator joins stored values, which are canonical
            // encodings (`decode_state` also takes a few others, such as
            // a plain set under the tombstone variant).
            check_byte_join(set, &encode_state(&s));
        }
        assert_eq!(decode_state(&encode_state(&s)), Ok(s));
    }
    if let Ok(c) = decode_context(&bytes) {
        assert_eq!(decode_context(&encode_context(&c)), Ok(c));
    }
    if let Ok(v) = decode_vv(&bytes) {
        assert_eq!(decode_vv(&encode_vv(&v)), Ok(v));
    }
    if let Ok(t) = decode_iblt(&bytes) {
        assert!(t.is_well_formed());
        assert_eq!(decode_iblt(&encode_iblt(&t)).ok(), Some(t));
    }
    if let Ok(page) = Changes::decode(&bytes) {
        assert!(!page.dots.is_empty());
        assert!(page.entries.iter().all(|(_, s)| s.is_canonical()));
        assert_eq!(Changes::decode(&page.encode()), Ok(page));
    }
});

/// The merge operator's join of OR-Set encodings against the decoded
/// join: `set` (its canonical encoding `bytes`) with itself, and with a copy that
/// another replica added to and removed the first element from.
fn check_byte_join(set: &ORSet, bytes: &[u8]) {
    let mut other = set.clone();
    other.add(ReplicaId(u128::MAX - 3), b"fuzz");
    if let Some(first) = set.members().next().map(<[u8]>::to_vec) {
        other.remove(&first, None);
    }
    let other_bytes = encode_state(&State::ORSet(other.clone()));
    let mut joined = set.clone();
    joined.join(&other);
    let plain = !State::ORSet(set.clone()).has_tomb();
    for (values, expected) in [
        ([bytes, bytes], bytes.to_vec()),
        (
            [bytes, &other_bytes[..]],
            encode_state(&State::ORSet(joined)),
        ),
    ] {
        match join_orset_states(&values) {
            Some(j) => assert_eq!(j, expected, "the byte join differs from the decoded join"),
            None => assert!(!plain, "a plain OR-Set was not joined from its encoding"),
        }
    }
}
