//! The write path keeps the decoded states of OR-Set and MV-register keys
//! it wrote (`Options::state_cache_bytes`, store/types.rs) and writes big
//! states (over 1 KiB) as the join of a batch's changes. These tests
//! check, against an in-memory model fed the same operations, that the
//! stored state is exactly what the operations make of it whatever
//! interleaves with the cached writes: a peer's deltas and full states
//! (blind writes, which must make the cache forget), deletes, a reopen,
//! and a cache too small to hold the state. With the cache full, a batch
//! of OR-Set adds and removes changes a set it reads as its bytes, without
//! decoding it: it must give the deltas and stored bytes the decoded path
//! gives.

mod common;
use common::small_options;
use converge::crdt::ORSet;
use converge::{Batch, Engine, Options, ReplicaId, State};

const KEY: &[u8] = b"set";

/// Elements long enough that a few thousand make a big state.
fn elem(i: u64) -> Vec<u8> {
    format!("element-{i:08}-{}", "x".repeat(40)).into_bytes()
}

/// The engine's state of `KEY` as an OR-Set.
fn stored(e: &Engine) -> ORSet {
    match e.state(KEY).unwrap() {
        Some(State::ORSet(s)) => s,
        other => panic!("not an OR-Set: {other:?}"),
    }
}

/// Apply `adds` and `removes` in one batch to the engine and the model.
fn step(e: &Engine, model: &mut ORSet, me: ReplicaId, adds: &[u64], removes: &[u64]) {
    let mut b = Batch::new();
    for i in adds {
        b.orset_add(KEY, elem(*i));
        model.add(me, &elem(*i));
    }
    for i in removes {
        b.orset_remove(KEY, elem(*i));
        model.remove(&elem(*i), None);
    }
    e.write(&b).unwrap();
}

fn run(options: Options) {
    let me = options.replica_id.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::open(dir.path(), options.clone()).unwrap();
    let peer = common::engine(99);
    let mut model = ORSet::default();
    // Grow past the big-state threshold (each element ~90 bytes encoded).
    for chunk in 0..4u64 {
        let adds: Vec<u64> = (chunk * 500..(chunk + 1) * 500).collect();
        step(&e, &mut model, me, &adds, &[]);
    }
    assert_eq!(stored(&e), model);
    let mut next = 2_000u64;
    for round in 0..12u64 {
        // Local adds and removes (the cached path for a big state).
        let removes: Vec<u64> = (round * 30..round * 30 + 20).collect();
        // Adds of new elements, of one removed earlier and of one present
        // (whose older dot the add retires).
        step(
            &e,
            &mut model,
            me,
            &[next, next + 1, 5 + round, 1_000 + round],
            &removes,
        );
        next += 2;
        assert_eq!(stored(&e), model, "round {round}: after local operations");
        match round % 4 {
            0 => {
                // A peer's delta: a blind write the cache must not outlive.
                let d = peer.orset_add(KEY, &elem(1_000_000 + round)).unwrap();
                e.merge(KEY, &d.delta.encode()).unwrap();
                if let State::ORSet(s) = &d.delta.state {
                    use converge::crdt::Lattice;
                    model.join(s);
                }
                // A read right after sees it (reads copy a cached state).
                assert_eq!(stored(&e), model, "round {round}: after a peer's delta");
            }
            1 => {
                // A peer's full state (it has seen none of ours).
                let s = peer.state(KEY).unwrap().unwrap();
                e.merge(KEY, &converge::codec::encode_state(&s)).unwrap();
                if let State::ORSet(s) = &s {
                    use converge::crdt::Lattice;
                    model.join(s);
                }
                assert_eq!(stored(&e), model, "round {round}: after a peer's state");
            }
            2 => {
                // Reopen: the cache starts empty.
                drop(e);
                e = Engine::open(dir.path(), options.clone()).unwrap();
            }
            _ => {}
        }
        // The next local operation must see what happened meanwhile: it
        // removes what the peer added (a no-op on a stale state).
        let theirs: Vec<u64> = (0..=round).map(|r| 1_000_000 + r).collect();
        step(&e, &mut model, me, &[next], &theirs);
        next += 1;
        assert_eq!(stored(&e), model, "round {round}: after the interleaving");
    }
    // A delete (not cached: its marker joins at commit), then a re-add.
    let observed = e.state(KEY).unwrap();
    e.delete(KEY, observed.as_ref()).unwrap();
    assert!(e.state(KEY).unwrap().is_none_or(|s| s.is_absent()));
    e.orset_add(KEY, &elem(7)).unwrap();
    match e.state(KEY).unwrap() {
        Some(State::ORSet(s)) => assert_eq!(s.members().collect::<Vec<_>>(), vec![&elem(7)[..]]),
        other => panic!("not an OR-Set: {other:?}"),
    }
    let report = e.verify().unwrap();
    assert!(report.consistent, "{report:?}");
}

#[test]
fn cached_big_set_matches_the_model() {
    run(small_options(1));
}

#[test]
fn uncached_big_set_matches_the_model() {
    run(Options {
        state_cache_bytes: 0,
        ..small_options(2)
    });
}

#[test]
fn a_cache_smaller_than_the_state_matches_the_model() {
    // The state passes the budget partway (an OR-Set of these elements is
    // counted at about 400 bytes per element, so after about 1,900 of
    // them): it is then read each time.
    run(Options {
        state_cache_bytes: 750 << 10,
        ..small_options(3)
    });
}

/// The values of the MV register `r`'s siblings, sorted.
fn values(e: &Engine) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = e
        .mv_read(b"r")
        .unwrap()
        .siblings
        .into_iter()
        .map(|s| s.value)
        .collect();
    v.sort();
    v
}

/// MV-register writes take the cached state too: a peer's concurrent write
/// merged in between must survive a local write that did not observe it.
#[test]
fn mv_register_sees_a_peer_write_merged_between_local_writes() {
    let a = common::engine(1);
    let b = common::engine(2);
    let ctx = a.mv_read(b"r").unwrap().context;
    a.mv_write(b"r", b"one", &ctx).unwrap();
    // What `a` observed before the peer's write arrives.
    let before = a.mv_read(b"r").unwrap().context;
    let d = b
        .mv_write(b"r", b"two", &converge::CausalContext::new())
        .unwrap();
    a.merge(b"r", &d.delta.encode()).unwrap();
    assert_eq!(values(&a), vec![b"one".to_vec(), b"two".to_vec()]);
    a.mv_write(b"r", b"three", &before).unwrap();
    assert_eq!(values(&a), vec![b"three".to_vec(), b"two".to_vec()]);
}

/// Reads copy a cached state only while it is the committed one: a reader
/// racing a writer that alternates cached local adds with a peer's deltas
/// (blind writes) never reads less through `state` (or `set_members`)
/// than it read through `state_bytes` (which reads the store) just before.
#[test]
fn reads_never_see_a_cached_state_older_than_the_store() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let e = common::engine(1);
    let peer = common::engine(2);
    let deltas: Vec<Vec<u8>> = (0..300u64)
        .map(|i| {
            let d = peer.orset_add(KEY, &elem(1_000_000 + i)).unwrap();
            d.delta.encode()
        })
        .collect();
    let done = AtomicBool::new(false);
    let len = |s: State| match s {
        State::ORSet(s) => s.len(),
        other => panic!("not an OR-Set: {other:?}"),
    };
    std::thread::scope(|t| {
        t.spawn(|| {
            for (i, d) in deltas.iter().enumerate() {
                e.orset_add(KEY, &elem(i as u64)).unwrap();
                e.merge(KEY, d).unwrap();
            }
            done.store(true, Ordering::Release);
        });
        let mut reads = 0;
        while !done.load(Ordering::Acquire) || reads == 0 {
            let Some(bytes) = e.state_bytes(KEY).unwrap() else {
                continue;
            };
            let before = len(converge::codec::decode_state(&bytes).unwrap());
            let after = len(e.state(KEY).unwrap().unwrap());
            assert!(after >= before, "read {after} elements after {before}");
            // The typed read takes its members from the cached state in
            // place.
            let members = e.set_members(KEY).unwrap().members.len();
            assert!(members >= after, "{members} members after {after} elements");
            reads += 1;
        }
    });
    assert_eq!(e.state(KEY).unwrap().map(len), Some(600));
    assert_eq!(e.set_members(KEY).unwrap().members.len(), 600);
}

/// Batches of only removes on a small cached OR-Set are written as the
/// join of their changes (an operand), at most `PILE` (8) batches in a
/// row: the state read through the cache, after the cache is gone (a
/// reopen: the pile is joined on read) and by the tree stays exactly the
/// model's, across adds in between, a peer's delta, and more than a pile's
/// worth of remove batches.
#[test]
fn remove_batches_on_a_small_cached_set_match_the_model() {
    let options = small_options(4);
    let me = options.replica_id.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut e = Engine::open(dir.path(), options.clone()).unwrap();
    let peer = common::engine(98);
    let mut model = ORSet::default();
    step(&e, &mut model, me, &(0..120).collect::<Vec<_>>(), &[]);
    let mut next = 120u64;
    for round in 0..30u64 {
        // Two removes per batch, twelve batches in a row, then an add.
        let removes = [round * 4, round * 4 + 1];
        step(&e, &mut model, me, &[], &removes);
        assert_eq!(stored(&e), model, "round {round}: after removes");
        if round % 12 == 11 {
            step(&e, &mut model, me, &[next], &[]);
            next += 1;
        }
        if round == 17 {
            let d = peer.orset_add(KEY, &elem(5_000)).unwrap();
            e.merge(KEY, &d.delta.encode()).unwrap();
            if let State::ORSet(s) = &d.delta.state {
                use converge::crdt::Lattice;
                model.join(s);
            }
        }
        if round % 10 == 9 {
            drop(e);
            e = Engine::open(dir.path(), options.clone()).unwrap();
            assert_eq!(stored(&e), model, "round {round}: after a reopen");
        }
    }
    let report = e.verify().unwrap();
    assert!(report.consistent, "{report:?}");
}

/// The same history on two replicas with the same id: one keeps decoded
/// states in its cache, the other has no room for them (so every batch of
/// adds and removes changes a set as its bytes, `SetBytes` in
/// store/write/slot.rs). Batches over a few keys mix adds of new and
/// present elements, removes of present and absent ones (some based on
/// an older read, removing only the adds it observed), several
/// operations on one element, and a peer's deltas merged in between
/// (dots of another replica, some isolated in the context); and an MV
/// register of values over 1 KiB, written and merged. Every
/// returned delta, every stored value and the reads after a reopen must
/// be byte for byte the same.
#[test]
fn sets_changed_as_their_bytes_match_decoded_sets() {
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let options = [
        small_options(7),
        Options {
            state_cache_bytes: 0,
            ..small_options(7)
        },
    ];
    let open = |i: usize| Engine::open(dirs[i].path(), options[i].clone()).unwrap();
    let mut engines = vec![open(0), open(1)];
    let peer = common::engine(97);
    let keys: Vec<Vec<u8>> = (0..4).map(|k| format!("set-{k}").into_bytes()).collect();
    let mut rng = common::Xorshift(0x9e37_79b9_7f4a_7c15);
    // A read some rounds old, for removes based on it (they remove only
    // the adds it observed).
    let mut read = converge::CausalContext::new();
    for round in 0..300u64 {
        let mut b = Batch::new();
        for _ in 0..1 + rng.below(12) {
            let key = &keys[rng.below(keys.len() as u64) as usize];
            let e = elem(rng.below(40));
            if rng.below(6) == 0 {
                b.orset_remove_observed(key.clone(), e, read.clone());
            } else if rng.below(3) == 0 {
                b.orset_remove(key.clone(), e);
            } else {
                b.orset_add(key.clone(), e);
            }
        }
        let deltas: Vec<Vec<Vec<u8>>> = engines
            .iter()
            .map(|e| {
                let ds = e.write(&b).unwrap();
                ds.iter().map(|d| d.delta.encode()).collect()
            })
            .collect();
        assert_eq!(deltas[0], deltas[1], "round {round}: deltas");
        if rng.below(8) == 0 {
            let key = &keys[rng.below(keys.len() as u64) as usize];
            read = engines[0].set_members(key).unwrap().context;
        }
        if rng.below(4) == 0 {
            // An MV register of values over 1 KiB (a big state for the
            // cached replica: written as the join of its changes).
            let v = vec![b'a' + rng.below(26) as u8; 1_500];
            let written: Vec<Vec<u8>> = engines
                .iter()
                .map(|e| {
                    let ctx = e.mv_read(b"mv").unwrap().context;
                    e.mv_write(b"mv", &v, &ctx).unwrap().delta.encode()
                })
                .collect();
            assert_eq!(written[0], written[1], "round {round}: MV deltas");
            if rng.below(3) == 0 {
                let d = peer
                    .mv_write(b"mv", &v[..1_200], &Default::default())
                    .unwrap();
                for e in &engines {
                    e.merge(b"mv", &d.delta.encode()).unwrap();
                }
            }
        }
        if rng.below(5) == 0 {
            // A peer's add, delivered to both; every other one skipped,
            // so the next leaves an isolated dot in the contexts.
            let key = &keys[rng.below(keys.len() as u64) as usize];
            let d = peer.orset_add(key, &elem(rng.below(40))).unwrap();
            if rng.below(2) == 0 {
                let mut m = d.delta.clone();
                m.deps = None;
                for e in &engines {
                    e.merge(key, &m.encode()).unwrap();
                }
            }
        }
        for key in keys.iter().map(Vec::as_slice).chain([&b"mv"[..]]) {
            assert_eq!(
                engines[0].state_bytes(key).unwrap(),
                engines[1].state_bytes(key).unwrap(),
                "round {round}: stored bytes of {key:?}"
            );
        }
        if round % 100 == 99 {
            engines.clear();
            engines.extend([open(0), open(1)]);
        }
    }
    for e in &engines {
        let report = e.verify().unwrap();
        assert!(report.consistent, "{report:?}");
    }
}
