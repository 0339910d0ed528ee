//! Causal delivery and the changes feed: a delta is never visible before
//! its causes; the pending area is persisted and bounded; the feed ships
//! what a causal cursor lacks, coalesced, and sends a peer that fell behind
//! its log to anti-entropy.

mod common;
use common::{engine, small_options};
use converge::sync::sync_engines;
use converge::{CausalContext, Delivery, Dot, Engine, Error, Options, ReplicaId};

fn members(e: &Engine, key: &[u8]) -> Vec<Vec<u8>> {
    e.set_members(key).unwrap().members
}

#[test]
fn a_comment_is_never_visible_before_its_post() {
    let (a, b, c) = (engine(1), engine(2), engine(3));
    // Alice posts on A.
    let post = a.orset_add(b"post:1", b"Hello from Alice").unwrap();
    // Bob, on B, reads it and comments.
    b.merge(b"post:1", &post.delta.encode()).unwrap();
    assert_eq!(members(&b, b"post:1").len(), 1);
    let comment = b.orset_add(b"comment:1", b"Welcome, Alice").unwrap();
    assert!(comment.delta.deps.as_ref().unwrap().contains(&post.dot()));
    // C receives the comment first: it is kept, not shown.
    c.merge(b"comment:1", &comment.delta.encode()).unwrap();
    assert!(members(&c, b"comment:1").is_empty(), "comment before post");
    assert!(!c.context().contains(&comment.dot()));
    let p = c.pending();
    assert_eq!((p.entries, p.missing, p.stuck), (1, 1, 0));
    assert!(p.needed.contains(&post.dot()));
    // The post arrives: both are visible, the comment's dot recorded.
    c.merge(b"post:1", &post.delta.encode()).unwrap();
    assert_eq!(members(&c, b"post:1"), vec![b"Hello from Alice".to_vec()]);
    assert_eq!(members(&c, b"comment:1"), vec![b"Welcome, Alice".to_vec()]);
    assert!(c.context().contains(&comment.dot()));
    assert_eq!(c.pending().entries, 0);
}

#[test]
fn deltas_of_one_origin_apply_in_order_and_duplicates_are_kept_once() {
    let (a, c) = (engine(1), engine(3));
    let ds: Vec<_> = (0..5).map(|_| a.increment(b"n", 1).unwrap()).collect();
    for d in ds.iter().rev() {
        c.merge(b"n", &d.delta.encode()).unwrap();
        c.merge(b"n", &d.delta.encode()).unwrap();
        if d.delta.seq > 1 {
            assert_eq!(c.counter_value(b"n").unwrap(), 0);
        }
    }
    assert_eq!(c.counter_value(b"n").unwrap(), 5);
    assert_eq!(c.version_vector().get(ReplicaId(1)), 5);
    assert_eq!(c.pending().entries, 0);
}

/// A replica's own deltas coming back (a peer forwarding them) are applied
/// already: alone or in a batch, certified from their bytes or decoded,
/// they change nothing — not even after a delete of their key was
/// collected, where applying an add again would bring the key back.
#[test]
fn a_replicas_own_deltas_coming_back_change_nothing() {
    let a = engine(1);
    let add = a.orset_add(b"s", b"e").unwrap();
    let inc = a.increment(b"n", 4).unwrap();
    a.delete(b"s", None).unwrap();
    let report = a.collect().unwrap();
    assert_eq!(report.purged, 1);
    let vv = a.version_vector();
    let echo = |b: &mut converge::Batch| {
        b.merge(&b"s"[..], add.delta.encode())
            .merge(&b"n"[..], inc.delta.encode());
    };
    let mut alone = converge::Batch::new();
    echo(&mut alone);
    a.write(&alone).unwrap();
    // With a local operation on each key: the deltas are decoded.
    let mut mixed = converge::Batch::new();
    echo(&mut mixed);
    mixed.increment(&b"n"[..], 1).gset_add(&b"g"[..], &b"x"[..]);
    a.write(&mixed).unwrap();
    assert_eq!(a.read(b"s").unwrap(), None, "the collected key stays gone");
    assert_eq!(a.counter_value(b"n").unwrap(), 5);
    assert_eq!(a.pending().entries, 0);
    // The two local operations of `mixed`, and nothing else.
    assert_eq!(
        a.version_vector().get(ReplicaId(1)),
        vv.get(ReplicaId(1)) + 2
    );
}

#[test]
fn pending_entries_survive_a_restart_and_apply_after_it() {
    let (a, b) = (engine(1), engine(2));
    let post = a.orset_add(b"post", b"p").unwrap();
    b.merge(b"post", &post.delta.encode()).unwrap();
    let comment = b.orset_add(b"comment", b"c").unwrap();
    let dir = tempfile::tempdir().unwrap();
    {
        let c = Engine::open(dir.path(), small_options(3)).unwrap();
        c.merge(b"comment", &comment.delta.encode()).unwrap();
        assert_eq!(c.pending().entries, 1);
    }
    let c = Engine::open(dir.path(), small_options(3)).unwrap();
    assert_eq!(c.pending().entries, 1);
    assert!(members(&c, b"comment").is_empty());
    c.merge(b"post", &post.delta.encode()).unwrap();
    assert_eq!(members(&c, b"comment").len(), 1);
    assert_eq!(c.pending().entries, 0);
}

#[test]
fn a_full_pending_area_refuses_and_changes_nothing() {
    let a = engine(1);
    let dir = tempfile::tempdir().unwrap();
    let c = Engine::open(
        dir.path(),
        Options {
            max_pending: 3,
            ..small_options(3)
        },
    )
    .unwrap();
    let ds: Vec<_> = (0..6).map(|_| a.increment(b"n", 1).unwrap()).collect();
    for d in &ds[1..4] {
        c.merge(b"n", &d.delta.encode()).unwrap();
    }
    let before = c.context();
    match c.merge(b"n", &ds[4].delta.encode()) {
        Err(Error::PendingFull {
            entries: 4,
            max_entries: 3,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(c.pending().entries, 3);
    assert_eq!(c.context(), before);
    // The missing first delta drains the area; the refused one can come
    // again.
    c.merge(b"n", &ds[0].delta.encode()).unwrap();
    assert_eq!(c.counter_value(b"n").unwrap(), 4);
    c.merge(b"n", &ds[4].delta.encode()).unwrap();
    c.merge(b"n", &ds[5].delta.encode()).unwrap();
    assert_eq!(c.counter_value(b"n").unwrap(), 6);
}

#[test]
fn absurd_dependency_claims_are_typed_errors() {
    let a = engine(1);
    let c = engine(3);
    let mut d = a.increment(b"n", 1).unwrap();
    // A dependency on its own origin's operations is malformed.
    let mut deps = CausalContext::new();
    deps.insert(Dot::new(ReplicaId(1), 9));
    d.delta.deps = Some(deps);
    assert!(matches!(
        c.merge(b"n", &d.delta.encode()),
        Err(Error::Codec(_))
    ));
    // A dependency on operations of the receiver it never issued.
    let mut deps = CausalContext::new();
    deps.insert(Dot::new(ReplicaId(3), 1_000_000));
    d.delta.deps = Some(deps);
    d.delta.seq = 2;
    assert!(matches!(
        c.merge(b"n", &d.delta.encode()),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(c.pending().entries, 0);
    assert!(c.context().is_empty());
}

#[test]
fn sync_delivers_what_pending_entries_wait_for() {
    let (a, b, c) = (engine(1), engine(2), engine(3));
    let post = a.orset_add(b"post", b"p").unwrap();
    b.merge(b"post", &post.delta.encode()).unwrap();
    let comment = b.orset_add(b"comment", b"c").unwrap();
    c.merge(b"comment", &comment.delta.encode()).unwrap();
    assert_eq!(c.pending().entries, 1);
    // Anti-entropy with A brings the post and A's record: the comment
    // drains.
    sync_engines(&*a, &*c, Default::default()).unwrap();
    assert_eq!(members(&c, b"comment").len(), 1);
    assert_eq!(c.pending().entries, 0);
    assert!(c.context().contains(&comment.dot()));
}

#[test]
fn the_feed_ships_what_the_cursor_lacks_coalesced() {
    let (a, b) = (engine(1), engine(2));
    for _ in 0..100 {
        a.increment(b"hot", 1).unwrap();
    }
    a.orset_add(b"set", b"x").unwrap();
    let page = a.changes_since(&b.context(), 1000).unwrap();
    assert_eq!(page.operations, 101);
    assert!(!page.more);
    let changes = page.changes.unwrap();
    assert_eq!(changes.entries.len(), 2, "one state per key");
    assert_eq!(
        b.apply_changes(&changes.encode()).unwrap(),
        Delivery::Applied
    );
    assert_eq!(b.counter_value(b"hot").unwrap(), 100);
    assert_eq!(b.context(), page.next);
    assert_eq!(
        b.apply_changes(&changes.encode()).unwrap(),
        Delivery::Duplicate
    );
    // Nothing new: an empty page.
    let empty = a.changes_since(&b.context(), 10).unwrap();
    assert!(empty.changes.is_none());
    // Pages of a limit, in order; a later page before an earlier one
    // waits.
    for _ in 0..10 {
        a.increment(b"hot", 1).unwrap();
    }
    let p1 = a.changes_since(&b.context(), 4).unwrap();
    assert!(p1.more);
    let p2 = a.changes_since(&p1.next, 4).unwrap();
    let p3 = a.changes_since(&p2.next, 4).unwrap();
    assert!(!p3.more);
    let bytes = |p: &converge::FeedPage| p.changes.as_ref().unwrap().encode();
    assert_eq!(b.apply_changes(&bytes(&p3)).unwrap(), Delivery::Pending);
    assert_eq!(b.apply_changes(&bytes(&p2)).unwrap(), Delivery::Pending);
    assert_eq!(b.counter_value(b"hot").unwrap(), 100);
    assert_eq!(b.apply_changes(&bytes(&p1)).unwrap(), Delivery::Applied);
    assert_eq!(b.counter_value(b"hot").unwrap(), 110);
    assert_eq!(b.pending().entries, 0);
}

#[test]
fn a_cursor_older_than_the_log_falls_back_to_anti_entropy() {
    let dir = tempfile::tempdir().unwrap();
    let a = Engine::open(
        dir.path(),
        Options {
            feed_retain_bytes: 16 << 10,
            ..small_options(1)
        },
    )
    .unwrap();
    let b = engine(2);
    a.register_peer(ReplicaId(2)).unwrap();
    for i in 0..2000u32 {
        a.lww_set(format!("k{}", i % 50).as_bytes(), &[7u8; 64])
            .unwrap();
    }
    let info = a.feed_info().unwrap();
    assert!(info.floor > 1, "{info:?}");
    assert!(info.bytes < 200 << 10, "{info:?}");
    match a.changes_since(&b.context(), 100) {
        Err(Error::CursorTooOld { needed: 1, oldest }) => assert_eq!(oldest, info.floor),
        other => panic!("{other:?}"),
    }
    // The remedy: an anti-entropy session, then the feed continues from
    // the peer's record.
    sync_engines(&a, &*b, Default::default()).unwrap();
    a.acknowledge(ReplicaId(2), &b.context()).unwrap();
    a.lww_set(b"k0", b"new").unwrap();
    let page = a.changes_since(&b.context(), 100).unwrap();
    assert_eq!(page.operations, 1);
    b.apply_changes(&page.changes.unwrap().encode()).unwrap();
    assert_eq!(b.register(b"k0").unwrap().unwrap().value, b"new".to_vec());
    // Everything was acknowledged but the last: the log keeps only it.
    a.acknowledge(ReplicaId(2), &b.context()).unwrap();
    let info = a.feed_info().unwrap();
    assert_eq!(info.floor, info.last + 1);
}

#[test]
fn forged_cursors_and_pages_are_typed_errors() {
    let (a, b) = (engine(1), engine(2));
    a.increment(b"n", 1).unwrap();
    let mut forged = CausalContext::new();
    forged.insert(Dot::new(ReplicaId(1), 50));
    assert!(matches!(
        a.changes_since(&forged, 10),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        a.acknowledge(ReplicaId(2), &CausalContext::new()),
        Err(Error::InvalidArgument(_))
    ));
    let page = a.changes_since(&CausalContext::new(), 10).unwrap();
    let bytes = page.changes.unwrap().encode();
    for cut in 0..bytes.len() {
        assert!(matches!(
            b.apply_changes(&bytes[..cut]),
            Err(Error::Codec(_))
        ));
    }
    let mut bad = bytes.clone();
    bad[4] ^= 1;
    assert!(b.apply_changes(&bad).is_err());
    assert!(b.context().is_empty());
    assert_eq!(b.counter_value(b"n").unwrap(), 0);
}

#[test]
fn the_log_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let a = Engine::open(dir.path(), small_options(1)).unwrap();
        for _ in 0..3 {
            a.increment(b"n", 2).unwrap();
        }
    }
    let a = Engine::open(dir.path(), small_options(1)).unwrap();
    let page = a.changes_since(&CausalContext::new(), 10).unwrap();
    assert_eq!(page.operations, 3);
    let b = engine(2);
    b.apply_changes(&page.changes.unwrap().encode()).unwrap();
    assert_eq!(b.counter_value(b"n").unwrap(), 6);
}

#[test]
fn a_cursor_inside_a_batch_gets_the_rest_of_it() {
    let (a, b) = (engine(1), engine(2));
    let mut batch = converge::Batch::new();
    for i in 0..10u32 {
        batch.increment(format!("k{i}"), 1);
    }
    a.write(&batch).unwrap();
    // The peer holds operations 1..=5 and 7 of the batch.
    let mut cursor = CausalContext::new();
    cursor.insert_range(ReplicaId(1), 1, 5);
    cursor.insert(Dot::new(ReplicaId(1), 7));
    let page = a.changes_since(&cursor, 100).unwrap();
    assert_eq!(page.operations, 4);
    let c = page.changes.unwrap();
    let shipped: Vec<u64> = (1..=10)
        .filter(|n| c.dots.contains(&Dot::new(ReplicaId(1), *n)))
        .collect();
    assert_eq!(shipped, vec![6, 8, 9, 10]);
    assert!(c.deps.contains(&Dot::new(ReplicaId(1), 7)));
    assert!(c.deps.contains(&Dot::new(ReplicaId(1), 5)));
    // A limit cuts inside an entry, and the next page continues there.
    let p1 = a.changes_since(&CausalContext::new(), 3).unwrap();
    assert_eq!((p1.operations, p1.more), (3, true));
    let p2 = a.changes_since(&p1.next, 100).unwrap();
    assert_eq!((p2.operations, p2.more), (7, false));
    for p in [&p1, &p2] {
        b.apply_changes(&p.changes.as_ref().unwrap().encode())
            .unwrap();
    }
    assert_eq!(b.context(), a.context());
    for i in 0..10u32 {
        assert_eq!(b.counter_value(format!("k{i}").as_bytes()).unwrap(), 1);
    }
}

#[test]
fn truncation_keeps_what_a_peer_has_not_acknowledged() {
    let (a, b) = (engine(1), engine(2));
    a.register_peer(ReplicaId(2)).unwrap();
    let mut batch = converge::Batch::new();
    for i in 0..10u32 {
        batch.increment(format!("k{i}"), 1);
    }
    a.write(&batch).unwrap(); // operations 1..=10, one log entry
    a.increment(b"x", 1).unwrap(); // 11
                                   // Acknowledging part of an entry keeps the whole entry.
    let mut part = CausalContext::new();
    part.insert_range(ReplicaId(1), 1, 4);
    a.acknowledge(ReplicaId(2), &part).unwrap();
    assert_eq!(a.feed_info().unwrap().floor, 1);
    assert_eq!(a.changes_since(&part, 100).unwrap().operations, 7);
    // The whole entry acknowledged: it goes, the last one stays.
    let mut ten = CausalContext::new();
    ten.insert_range(ReplicaId(1), 1, 10);
    a.acknowledge(ReplicaId(2), &ten).unwrap();
    assert_eq!(a.feed_info().unwrap().floor, 11);
    assert!(matches!(
        a.changes_since(&part, 100),
        Err(Error::CursorTooOld {
            needed: 5,
            oldest: 11
        })
    ));
    let page = a.changes_since(&ten, 100).unwrap();
    assert_eq!(page.operations, 1);
    // Removing the only peer leaves truncation to the size bound.
    a.remove_peer(ReplicaId(2)).unwrap();
    assert!(a.feed_info().unwrap().peers.is_empty());
    drop(b);
}

#[test]
fn numbering_survives_turning_the_feed_off_and_on() {
    let dir = tempfile::tempdir().unwrap();
    let open = |feed: bool| {
        Engine::open(
            dir.path(),
            Options {
                changes_feed: feed,
                ..small_options(1)
            },
        )
        .unwrap()
    };
    {
        let a = open(true);
        for _ in 0..5 {
            a.increment(b"n", 1).unwrap();
        }
        a.increment(b"big", 1).unwrap();
        // A peer acknowledges everything: the whole log goes, and its floor
        // keeps the numbering.
        a.register_peer(ReplicaId(2)).unwrap();
        a.acknowledge(ReplicaId(2), &a.context()).unwrap();
        let info = a.feed_info().unwrap();
        assert_eq!((info.floor, info.last, info.bytes), (7, 6, 0));
    }
    {
        let a = open(true);
        assert_eq!(a.increment(b"n", 1).unwrap().delta.seq, 7);
    }
    {
        let a = open(false);
        assert!(matches!(
            a.changes_since(&CausalContext::new(), 1),
            Err(Error::InvalidArgument(_))
        ));
        assert_eq!(a.increment(b"n", 1).unwrap().delta.seq, 8);
    }
    let a = open(false);
    assert_eq!(a.increment(b"n", 1).unwrap().delta.seq, 9);
    drop(a);
    let a = open(true);
    assert_eq!(a.increment(b"n", 1).unwrap().delta.seq, 10);
    assert_eq!(a.context().vv().get(ReplicaId(1)), 10);
    // The new log starts after the operations made with the feed off.
    assert!(matches!(
        a.changes_since(&CausalContext::new(), 100),
        Err(Error::CursorTooOld {
            needed: 1,
            oldest: 10
        })
    ));
}

#[test]
fn concurrent_out_of_order_merges_neither_deadlock_nor_lose_anything() {
    // Four origins' deltas merged into one engine by four threads, each in
    // reversed chunks of 8 (7 park, the 8th drains them): parking and
    // draining race on the pending index and the record.
    let origins: Vec<_> = (1..=4).map(engine).collect();
    let n = 2000;
    let deltas: Vec<Vec<Vec<u8>>> = origins
        .iter()
        .map(|o| {
            (0..n)
                .map(|_| o.increment(b"k", 1).unwrap().delta.encode())
                .collect()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let sink = std::sync::Arc::new(
        Engine::open(
            dir.path(),
            small_options(99).durability(converge::Durability::None),
        )
        .unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    for ds in deltas {
        let (sink, tx) = (sink.clone(), tx.clone());
        std::thread::spawn(move || {
            for chunk in ds.chunks(8) {
                for d in chunk.iter().rev() {
                    sink.merge(b"k", d).unwrap();
                }
            }
            tx.send(()).unwrap();
        });
    }
    for _ in 0..4 {
        rx.recv_timeout(std::time::Duration::from_secs(120))
            .expect("a merging thread is stuck (deadlock?)");
    }
    assert_eq!(sink.counter_value(b"k").unwrap(), 4 * n as i128);
    assert_eq!(sink.pending().entries, 0);
}

/// Drive a session between `a` (initiator) and `b` message by message,
/// calling `after` with the receiving engine after every message.
fn drive(
    a: &Engine,
    b: &Engine,
    config: converge::sync::Config,
    mut after: impl FnMut(&Engine, bool),
) -> (converge::sync::Stats, converge::sync::Stats) {
    use converge::sync::Session;
    let (mut sa, first) = Session::initiate(a, config.clone()).unwrap();
    let mut sb = Session::respond(b, config);
    let mut to_b = vec![first];
    let mut to_a: Vec<Vec<u8>> = Vec::new();
    while !(to_b.is_empty() && to_a.is_empty()) {
        if let Some(m) = (!to_b.is_empty()).then(|| to_b.remove(0)) {
            to_a.extend(sb.handle(&m).unwrap());
            after(b, to_b.is_empty());
        } else {
            let m = to_a.remove(0);
            to_b.extend(sa.handle(&m).unwrap());
            after(a, to_a.is_empty());
        }
    }
    (*sa.stats(), *sb.stats())
}

#[test]
fn a_sessions_states_become_visible_together_at_their_last_part() {
    // B holds a post and many comments that depend on it, keyed so that
    // the post sorts last; A has none of it. With a message budget of 2 KiB
    // the states travel in many parts.
    let (a, b) = (engine(1), engine(2));
    b.orset_add(b"zz-post", b"the post").unwrap();
    for i in 0..200u32 {
        b.orset_add(format!("comment:{i:03}").as_bytes(), &[7u8; 32])
            .unwrap();
    }
    let config = converge::sync::Config {
        message_budget: 2 << 10,
        ..Default::default()
    };
    let mut parts_seen = 0;
    let (sa, _) = drive(&a, &b, config.clone(), |e, _| {
        if e.replica_id() == a.replica_id() {
            let comments = (0..200u32)
                .filter(|i| !members(e, format!("comment:{i:03}").as_bytes()).is_empty())
                .count();
            let post = !members(e, b"zz-post").is_empty();
            // All or nothing: never a comment without the post.
            assert!(
                (comments == 0 && !post) || (comments == 200 && post),
                "{comments} comments visible, post {post}"
            );
            parts_seen += 1;
        }
    });
    assert!(parts_seen > 3, "the states did not travel in parts");
    assert!(!sa.staging_overflowed);
    assert_eq!(members(&a, b"zz-post").len(), 1);
    // With a staging bound smaller than the exchange, states are joined
    // part by part, and the session says so.
    let c = engine(3);
    let small = converge::sync::Config {
        message_budget: 2 << 10,
        stage_bytes: 4 << 10,
        ..Default::default()
    };
    let (sc, _) = drive(&c, &b, small, |_, _| {});
    assert!(sc.staging_overflowed);
    assert_eq!(members(&c, b"zz-post").len(), 1);
}

/// A peer's delta that is its key's only operation in a batch and
/// deliverable at once is applied from its bytes (not decoded); with
/// other operations on its key it is decoded. Both give the same states
/// and the same causal record; one applied before, or one that must wait,
/// takes the decoding path whatever the batch.
#[test]
fn deltas_applied_from_their_bytes_or_decoded_agree() {
    let a = engine(1);
    let mut ds = Vec::new();
    for i in 0..40u64 {
        let key = format!("k{}", i % 8).into_bytes();
        let d = match i % 4 {
            0 => a.increment(&[b"c", &key[..]].concat(), i + 1).unwrap(),
            1 => a.pn_add(&[b"p", &key[..]].concat(), 3 - i as i64).unwrap(),
            2 => a.orset_add(&[b"o", &key[..]].concat(), &key).unwrap(),
            _ => a
                .gset_add(&[b"g", &key[..]].concat(), &i.to_be_bytes())
                .unwrap(),
        };
        ds.push((d.key.clone(), d.delta.encode()));
    }
    // B: one delta per batch (each its key's only operation).
    let b = engine(2);
    for (k, bytes) in &ds {
        let mut batch = converge::Batch::new();
        batch.merge(k.clone(), bytes.clone());
        b.write(&batch).unwrap();
    }
    // C: all at once, most keys with several deltas (decoded).
    let c = engine(3);
    let mut batch = converge::Batch::new();
    for (k, bytes) in &ds {
        batch.merge(k.clone(), bytes.clone());
    }
    c.write(&batch).unwrap();
    assert_eq!(common::dump(&b), common::dump(&a));
    assert_eq!(common::dump(&c), common::dump(&a));
    assert_eq!(b.context(), c.context());
    assert_eq!(b.version_vector().get(ReplicaId(1)), 40);
    // Applied again, alone in their batches: nothing changes.
    let before = common::dump(&b);
    for (k, bytes) in &ds {
        b.merge(k, bytes).unwrap();
    }
    assert_eq!(common::dump(&b), before);
    assert_eq!(b.pending().entries, 0);
    // A delete B collected: the adds it removed, arriving again alone in
    // their batches, stay removed (their dots are in the record).
    let okeys: Vec<_> = ds.iter().filter(|(k, _)| k.starts_with(b"o")).collect();
    b.delete(&okeys[0].0, None).unwrap();
    assert_eq!(b.collect().unwrap().purged, 1);
    for (k, bytes) in &okeys {
        b.merge(k, bytes).unwrap();
    }
    assert!(b.state(&okeys[0].0).unwrap().is_none(), "brought back");
    // In batches holding each key once: runs of the origin's operations
    // that start past the record's, each deliverable.
    let e = engine(5);
    for chunk in ds.chunks(8) {
        let mut batch = converge::Batch::new();
        for (k, bytes) in chunk {
            batch.merge(k.clone(), bytes.clone());
        }
        e.write(&batch).unwrap();
        assert_eq!(e.pending().entries, 0);
    }
    assert_eq!(common::dump(&e), common::dump(&a));
    assert_eq!(e.context(), c.context());
    // With a local operation in each batch: its dependencies are the same
    // whether the batch's deltas are applied from their bytes (G) or
    // decoded (H: each delta twice in its batch).
    let (g, h) = (engine(6), engine(7));
    for chunk in ds.chunks(8) {
        let mut deps = Vec::new();
        for (e, times) in [(&g, 1), (&h, 2)] {
            let mut batch = converge::Batch::new();
            for (k, bytes) in chunk {
                for _ in 0..times {
                    batch.merge(k.clone(), bytes.clone());
                }
            }
            batch.increment(b"local".to_vec(), 1);
            let local = e.write(&batch).unwrap();
            deps.push(local[0].delta.deps.clone());
        }
        assert_eq!(deps[0], deps[1]);
    }
    for e in [&g, &h] {
        assert_eq!(e.version_vector().get(ReplicaId(1)), 40);
        assert_eq!(e.pending().entries, 0);
    }
    // Out of order, alone in their batches: each waits for the one before.
    let d = engine(4);
    let (k, bytes) = &ds[39];
    d.merge(k, bytes).unwrap();
    assert_eq!(d.pending().entries, 1);
    assert!(d.state(k).unwrap().is_none(), "visible before its causes");
    for (k, bytes) in ds.iter().rev().skip(1) {
        d.merge(k, bytes).unwrap();
    }
    assert_eq!(common::dump(&d), common::dump(&a));
    assert_eq!(d.context(), c.context());
    assert_eq!(d.pending().entries, 0);
}
