//! The write path's bookkeeping of big states, seen from inside (the
//! state cache's entry of a key): what the scenario tests of
//! `tests/state_cache.rs` cannot observe.

use crate::codec::encode_state;
use crate::{Batch, Engine, Options, ReplicaId, State};
use std::collections::BTreeSet;

const KEY: &[u8] = b"big";

/// Elements long enough that 2,000 make a big state (about 126 KB).
fn elem(i: u64) -> Vec<u8> {
    format!("element-{i:08}-{}", "x".repeat(40)).into_bytes()
}

/// The key's members, and the exact size of its encoded state.
fn members_and_size(e: &Engine) -> (BTreeSet<Vec<u8>>, u64) {
    match e.state(KEY).unwrap() {
        Some(st @ State::ORSet(_)) => {
            let State::ORSet(s) = &st else { unreachable!() };
            let members = s.members().map(<[u8]>::to_vec).collect();
            (members, encode_state(&st).len() as u64)
        }
        other => panic!("not an OR-Set: {other:?}"),
    }
}

/// A big OR-Set under a long run of adds and removes: its changes are
/// written as operands, but the pile under them (and the size bound the
/// cache keeps, which its memory estimate uses) stays within a few times
/// the state, so the state stays in the cache; a big state read from the
/// store (its pile unknown) is put whole. Each step matches a model.
#[test]
fn a_big_states_pile_of_operands_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        state_cache_bytes: 4 << 20,
        write_buffer_bytes: 4 << 20,
        ..Options::with_replica(ReplicaId(1))
    };
    let mut e = Engine::open(dir.path(), options.clone()).unwrap();
    let mut model = BTreeSet::new();
    let mut b = Batch::new();
    for i in 0..2_000u64 {
        b.orset_add(KEY, elem(i));
        model.insert(elem(i));
    }
    e.write(&b).unwrap();
    let (mut oldest, mut next) = (0u64, 2_000u64);
    // Each batch's operand is a few KB: without a bound on the pile, the
    // bound passed five times the state at round 139.
    for round in 0..250 {
        let mut b = Batch::new();
        for _ in 0..50 {
            b.orset_add(KEY, elem(next));
            model.insert(elem(next));
            b.orset_remove(KEY, elem(oldest));
            model.remove(&elem(oldest));
            next += 1;
            oldest += 1;
        }
        e.write(&b).unwrap();
        let m = e.types.get(KEY).expect("cached");
        let (members, exact) = members_and_size(&e);
        assert!(
            m.used <= 5 * exact,
            "round {round}: bound {} for a state of {exact} bytes",
            m.used
        );
        if round % 25 == 0 {
            assert_eq!(members, model, "round {round}");
        }
    }
    assert!(e.types.state_bytes() > 0, "the state left the cache");
    // Reopened, the cache is empty: the next write reads the state from
    // the store (with whatever pile lies under it) and puts it whole.
    drop(e);
    e = Engine::open(dir.path(), options).unwrap();
    e.orset_add(KEY, &elem(next)).unwrap();
    model.insert(elem(next));
    let m = e.types.get(KEY).expect("cached");
    let (members, exact) = members_and_size(&e);
    assert_eq!((m.used, m.whole), (exact, exact));
    assert_eq!(members, model);
    let report = e.verify().unwrap();
    assert!(report.consistent, "{report:?}");
}

/// With the state cache full (here: no room at all), a batch of only
/// OR-Set adds and removes (with an observed context or not) reads a
/// stored set as its bytes instead of decoding it; a batch with any other
/// operation on the key (a delete), or a cache
/// with room (which keeps the decoded state for the next write), decodes
/// it. (That both give the same deltas and bytes is
/// `tests/state_cache.rs`' `sets_changed_as_their_bytes_match_decoded_sets`.)
#[test]
fn a_full_cache_changes_sets_as_their_bytes() {
    for (budget, other, as_bytes) in [
        (0, None, true),
        (0, Some(false), true),
        (0, Some(true), false),
        (64 << 20, None, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            state_cache_bytes: budget,
            ..Options::with_replica(ReplicaId(1))
        };
        let e = Engine::open(dir.path(), options.clone()).unwrap();
        e.orset_add(KEY, &elem(1)).unwrap();
        e.orset_add(KEY, &elem(3)).unwrap();
        // Reopened: the cache holds nothing, the state is read.
        drop(e);
        let e = Engine::open(dir.path(), options).unwrap();
        let mut b = Batch::new();
        b.orset_add(KEY, elem(2));
        match other {
            None => b.orset_remove(KEY, elem(1)),
            Some(false) => b.orset_remove_observed(KEY, elem(1), crate::CausalContext::new()),
            Some(true) => b.delete(KEY, None),
        };
        let items = super::validate(&b).unwrap();
        let (_, mut slots) = super::slot::slots_of(&items);
        e.know_keys(&mut slots).unwrap();
        let s = &slots[0];
        assert_eq!(s.set.is_some(), as_bytes, "budget {budget}, {other:?}");
        assert_eq!(s.state.is_none(), as_bytes);
    }
}

/// A set changed as its bytes takes its changes as operands on its last
/// whole put, at most `SET_PILE` of them: the next write puts it whole
/// again (so a read joins a short pile). The store holds what a model
/// says after each write.
#[test]
fn a_set_changed_as_its_bytes_piles_a_few_operands() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        state_cache_bytes: 0,
        ..Options::with_replica(ReplicaId(1))
    };
    let e = Engine::open(dir.path(), options).unwrap();
    let mut model = BTreeSet::new();
    for i in 0..20u64 {
        e.orset_add(KEY, &elem(i)).unwrap();
        model.insert(elem(i));
    }
    let mut piles = Vec::new();
    for i in 20..30u64 {
        e.orset_add(KEY, &elem(i)).unwrap();
        model.insert(elem(i));
        piles.push(e.types.get(KEY).expect("cached").piled);
        assert_eq!(members_and_size(&e).0, model);
    }
    let max = super::stage::SET_PILE;
    assert!(piles.iter().all(|p| *p <= max), "{piles:?}");
    assert!(piles.contains(&max) && piles.contains(&0), "{piles:?}");
}

/// A set whose pile of operands the cache does not know (after a reopen
/// its entry comes from `types`) is put whole by the next write that
/// changes it as its bytes, even when a blind write (a peer's state,
/// merged) has since given it a cache entry: that write added to a pile of
/// unknown length, so the pile a read joins stays short.
#[test]
fn a_set_whose_pile_is_unknown_is_put_whole_next() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        state_cache_bytes: 0,
        ..Options::with_replica(ReplicaId(1))
    };
    let e = Engine::open(dir.path(), options.clone()).unwrap();
    let mut model = BTreeSet::new();
    for i in 0..3u64 {
        e.orset_add(KEY, &elem(i)).unwrap();
        model.insert(elem(i));
    }
    // Created whole, then two operands on it.
    assert_eq!(e.types.get(KEY).expect("cached").piled, 2);
    drop(e);
    let e = Engine::open(dir.path(), options).unwrap();
    let peer_dir = tempfile::tempdir().unwrap();
    let peer = Engine::open(peer_dir.path(), Options::with_replica(ReplicaId(2))).unwrap();
    let delta = peer.orset_add(KEY, &elem(100)).unwrap();
    model.insert(elem(100));
    let mut b = Batch::new();
    b.merge(KEY, encode_state(&delta.delta.state));
    e.write(&b).unwrap();
    let piled = e.types.get(KEY).expect("cached").piled;
    assert_eq!(piled, super::super::types::PILED_UNKNOWN);
    e.orset_add(KEY, &elem(3)).unwrap();
    model.insert(elem(3));
    assert_eq!(e.types.get(KEY).expect("cached").piled, 0, "put whole");
    assert_eq!(members_and_size(&e).0, model);
}
