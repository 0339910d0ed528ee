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
//! decoding, `decode_item` accepts as a full state of the same type.
#![no_main]

use converge::codec::{
    decode_context, decode_iblt, decode_item, decode_state, decode_vv, encode_context, encode_iblt,
    encode_state, encode_vv, skim_state,
};
use converge::{Changes, Item};
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
