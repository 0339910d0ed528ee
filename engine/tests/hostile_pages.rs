//! Hostile pages of changes and deltas with dependencies: valid encodings
//! mutated at random and re-sealed with a correct checksum (so mutations
//! reach the decoder instead of stopping at the checksum). Decoding and
//! applying them never panics: the result is a typed error, or a
//! well-formed page applied (or parked) like any other, and the engine
//! stays consistent.

mod common;
use common::engine;
use converge::codec::decode_item;
use converge::{CausalContext, Changes, Engine};
use proptest::prelude::*;

fn reseal(mut v: Vec<u8>) -> Vec<u8> {
    let n = v.len().saturating_sub(4);
    v.truncate(n);
    let sum = (xxhash_rust::xxh3::xxh3_64(&v) as u32).to_le_bytes();
    v.extend_from_slice(&sum);
    v
}

/// A page of every kind of state, with dependencies, and a delta that
/// depends on a merge.
fn samples() -> (Vec<u8>, Vec<u8>) {
    let (a, b) = (engine(1), engine(2));
    let d = b.orset_add(b"set", b"x").unwrap();
    a.merge(b"set", &d.delta.encode()).unwrap();
    let mut batch = converge::Batch::new();
    batch
        .increment(b"c", 3)
        .pn_add(b"pn", -2)
        .gset_add(b"g", b"e")
        .twop_add(b"2p", b"e")
        .orset_add(b"set", b"y")
        .lww_set(b"l", b"v")
        .fww_set(b"f", b"v")
        .mv_write(b"mv", b"v", CausalContext::new());
    let ds = a.write(&batch).unwrap();
    let page = a.changes_since(&CausalContext::new(), 100).unwrap();
    (page.changes.unwrap().encode(), ds[0].delta.encode())
}

fn mutate(mut v: Vec<u8>, edits: &[(usize, u8)], cut: Option<usize>) -> Vec<u8> {
    // Leave the version byte alone half the time less often: mutate the
    // body mostly.
    for (at, byte) in edits {
        let i = 1 + at % (v.len() - 1);
        v[i] = *byte;
    }
    if let Some(c) = cut {
        v.truncate((c % v.len()).max(6));
    }
    reseal(v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn mutated_pages_and_deltas_are_typed_errors_or_applied(
        edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cut in prop::option::weighted(0.2, any::<usize>()),
    ) {
        thread_local! {
            static FIXTURE: (Vec<u8>, Vec<u8>, common::TempEngine) = {
                let (p, d) = samples();
                (p, d, engine(3))
            };
        }
        FIXTURE.with(|(page, delta, sink)| {
            let sink: &Engine = sink;
            let bad = mutate(page.clone(), &edits, cut);
            if let Ok(c) = Changes::decode(&bad) {
                // Well formed: it re-encodes to the same bytes.
                prop_assert_eq!(c.encode(), bad.clone());
            }
            let _ = sink.apply_changes(&bad);
            let bad = mutate(delta.clone(), &edits, cut);
            let _ = decode_item(&bad);
            let _ = sink.merge(b"set", &bad);
            Ok(())
        })?;
    }
}

#[test]
fn after_the_hostile_inputs_the_engine_is_consistent() {
    // The same kind of inputs on a fresh engine, then its tree and record
    // still verify.
    let (page, delta) = samples();
    let sink = engine(4);
    let mut seed = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut pages_ok, mut deltas_ok) = (0, 0);
    for _ in 0..2000 {
        let edits = [(next() as usize, next() as u8)];
        pages_ok += usize::from(
            sink.apply_changes(&mutate(page.clone(), &edits, None))
                .is_ok(),
        );
        deltas_ok += usize::from(
            sink.merge(b"set", &mutate(delta.clone(), &edits, None))
                .is_ok(),
        );
    }
    // Some mutations are well formed (a changed element, count or id):
    // the test reaches the apply path, not only the decoder.
    assert!(pages_ok > 0 && deltas_ok > 0, "{pages_ok} {deltas_ok}");
    eprintln!("of 2000 mutations, {pages_ok} pages and {deltas_ok} deltas were accepted");
    assert!(sink.verify().unwrap().consistent);
    // The genuine page still applies (or was already).
    sink.apply_changes(&page).unwrap();
    let p = sink.pending();
    assert_eq!(p.stuck, 0, "{p:?}");
}
