//! Regression tests for what fuzzing found (docs/RELIABILITY.md,
//! "Fuzzing"): each test is the minimal form of a finding.

mod common;
use common::{dump, engine};
use converge::codec::{decode_item, seal, FORMAT_VERSION, KIND_STATE};
use converge::{CodecError, Error};

/// A G-Set state (bincode variant 2) with a body of `elems` as given:
/// the length byte(s) of the set, then each element as written.
fn gset_bytes(len: &[u8], elems: &[&[u8]]) -> Vec<u8> {
    let mut b = vec![FORMAT_VERSION, KIND_STATE, 2];
    b.extend_from_slice(len);
    for e in elems {
        b.push(e.len() as u8);
        b.extend_from_slice(e);
    }
    seal(b)
}

/// Finding 1 (`codec` target): a full state whose bytes decode to a
/// canonical value but are not its encoding — a set out of order, an
/// element repeated (bincode collapses it), a length in a longer varint
/// form — was accepted by `merge` and stored as it came, so two replicas
/// holding equal states held different bytes and different anti-entropy
/// roots (every sync session between them ended `Diverged` until some
/// other write re-encoded the key).
#[test]
fn a_state_in_a_non_canonical_encoding_is_refused_and_changes_nothing() {
    let canonical = gset_bytes(&[2], &[b"a", b"b"]);
    let source = engine(2);
    source.gset_add(b"s", b"a").unwrap();
    source.gset_add(b"s", b"b").unwrap();
    assert_eq!(
        source.state_bytes(b"s").unwrap().as_deref(),
        Some(&canonical[..]),
        "the hand-made encoding is the engine's"
    );

    let replica = engine(1);
    let record = replica.context();
    for (what, bytes) in [
        ("out of order", gset_bytes(&[2], &[b"b", b"a"])),
        ("repeated element", gset_bytes(&[3], &[b"a", b"a", b"b"])),
        (
            "long varint length",
            gset_bytes(&[251, 2, 0], &[b"a", b"b"]),
        ),
    ] {
        assert_eq!(decode_item(&bytes), Err(CodecError::NotCanonical), "{what}");
        let err = replica.merge(b"s", &bytes).unwrap_err();
        assert!(
            matches!(err, Error::Codec(CodecError::NotCanonical)),
            "{what}: {err}"
        );
        assert!(dump(&replica).is_empty(), "{what}: the key was written");
        assert_eq!(replica.context(), record, "{what}: the record changed");
    }

    replica.merge(b"s", &canonical).unwrap();
    assert_eq!(
        replica.state_bytes(b"s").unwrap().as_deref(),
        Some(&canonical[..])
    );
    assert_eq!(replica.root().unwrap(), source.root().unwrap());
}

/// Found reviewing what the decoders reserve (not by a fuzzer run: a
/// libFuzzer malloc limit of 2 GiB sits just above the old reservation):
/// bincode reserves a collection's claimed length before reading it, and
/// the claim limit was the same for every input (32 times the 64 MiB state
/// limit), so a 10-byte state claiming a version vector of 50 million
/// entries made the decoder reserve 1.6 GB before it found the input
/// short. Claims now scale with the input's size: refused as too large,
/// without the reservation.
#[test]
fn a_few_bytes_cannot_claim_gigabytes() {
    // G-Counter (variant 0) whose version vector claims 50,000,000 entries
    // (varint: 0xFC then a u32).
    let mut b = vec![FORMAT_VERSION, KIND_STATE, 0, 0xFC];
    b.extend_from_slice(&50_000_000u32.to_le_bytes());
    let bytes = seal(b);
    assert!(bytes.len() < 16);
    assert!(
        matches!(
            converge::codec::decode_state(&bytes),
            Err(CodecError::TooLarge { .. })
        ),
        "{:?}",
        converge::codec::decode_state(&bytes)
    );
    // A legitimate state of the same shape still decodes.
    let e = engine(1);
    e.increment(b"c", 3).unwrap();
    let ok = e.state_bytes(b"c").unwrap().unwrap();
    assert!(converge::codec::decode_state(&ok).is_ok());
}
