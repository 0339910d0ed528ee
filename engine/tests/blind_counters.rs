//! Counter increments skip the state read when the write path knows this
//! replica's own entries (`KeyMeta::own`, store/types.rs). These tests
//! check that what it knows is forgotten whenever another write could
//! have moved them, so that no increment is ever swallowed.

mod common;
use common::engine;
use converge::codec::encode_state;
use converge::Batch;

/// A copy of this replica's state with a larger own entry (what a peer
/// holds of a replica restored from an old backup) arrives after
/// increments were made blind: the next increment counts on top of it.
#[test]
fn a_larger_own_entry_merged_from_a_peer_is_not_swallowed() {
    let a = engine(1);
    let old = engine(1);
    for _ in 0..3 {
        a.increment(b"k", 1).unwrap();
        a.pn_add(b"p", -1).unwrap();
    }
    old.increment(b"k", 100).unwrap();
    old.pn_add(b"p", -100).unwrap();
    for key in [&b"k"[..], b"p"] {
        let st = old.state(key).unwrap().unwrap();
        a.merge(key, &encode_state(&st)).unwrap();
    }
    assert_eq!(a.counter_value(b"k").unwrap(), 100);
    assert_eq!(a.counter_value(b"p").unwrap(), -100);
    let d = a.increment(b"k", 1).unwrap();
    assert_eq!(a.counter_value(b"k").unwrap(), 101);
    match d.delta.state {
        converge::State::GCounter(g) => assert_eq!(g.entry(a.replica_id()), 101),
        other => panic!("not a counter delta: {other:?}"),
    }
    a.pn_add(b"p", -1).unwrap();
    a.pn_add(b"p", 3).unwrap();
    assert_eq!(a.counter_value(b"p").unwrap(), -98);
}

/// Increments in the same batch as a merge of the key, and after a
/// delete: exact values, and exact deltas for a peer.
#[test]
fn increments_mixed_with_merges_and_deletes_stay_exact() {
    let a = engine(1);
    let b = engine(2);
    let old = engine(1);
    old.increment(b"k", 50).unwrap();
    let big = encode_state(&old.state(b"k").unwrap().unwrap());
    a.increment(b"k", 2).unwrap();
    a.increment(b"k", 2).unwrap();
    let mut batch = Batch::with_capacity(3);
    batch.increment(b"k".to_vec(), 1);
    batch.merge(b"k".to_vec(), big);
    batch.increment(b"k".to_vec(), 1);
    a.write(&batch).unwrap();
    assert_eq!(a.counter_value(b"k").unwrap(), 51);
    a.delete(b"k", None).unwrap();
    assert!(a.read(b"k").unwrap().is_none());
    a.increment(b"k", 7).unwrap();
    a.increment(b"k", 1).unwrap();
    assert_eq!(a.counter_value(b"k").unwrap(), 8);
    // A peer that receives everything agrees.
    common::push_all(&a, &b);
    assert_eq!(b.counter_value(b"k").unwrap(), 8);
}

/// The known entries do not survive a restart (they live in memory), and
/// increments after it still count from the stored state.
#[test]
fn increments_count_from_the_stored_state_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let open = || converge::Engine::open(dir.path(), common::small_options(1)).unwrap();
    let a = open();
    for _ in 0..10 {
        a.increment(b"k", 1).unwrap();
    }
    drop(a);
    let a = open();
    a.increment(b"k", 1).unwrap();
    a.increment(b"k", 1).unwrap();
    assert_eq!(a.counter_value(b"k").unwrap(), 12);
}
