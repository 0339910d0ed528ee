//! The exact causal record: gap-free, commit-ordered sequence numbers; a
//! context that lists exactly the dots a replica holds; session tokens
//! (read-your-writes, monotonic reads) with typed "not yet" and waits woken
//! by merges.

mod common;
use common::{engine, small_options};
use converge::codec::{decode_context, encode_context};
use converge::{token_of, Batch, CausalContext, CodecError, Dot, Engine, Error, ReplicaId, Value};
use std::sync::Arc;
use std::time::Duration;

/// The context of `n` local operations of `r`, plus `extra` dots.
fn expected(r: u128, n: u64, extra: &[Dot]) -> CausalContext {
    let mut c = CausalContext::new();
    c.insert_range(ReplicaId(r), 1, n);
    for d in extra {
        c.insert(*d);
    }
    c
}

#[test]
fn failing_batches_consume_no_sequence_number() {
    let a = engine(1);
    let peer = engine(2);
    let mut rng = common::Xorshift(0x2545_f491_4f6c_dd1d);
    let mut seqs: Vec<u64> = Vec::new();
    let mut remote: Vec<Dot> = Vec::new();
    let mut failures = 0;
    for i in 0..10_000u64 {
        let mut b = Batch::new();
        for _ in 0..1 + rng.next() % 4 {
            let k = format!("k{}", rng.next() % 8);
            match rng.next() % 8 {
                // k0..k3 are counters, k4..k7 sets: some ops hit the wrong
                // type and fail the whole batch.
                0 | 1 => b.increment(k.as_str(), 1),
                2 => b.increment(k.as_str(), u64::MAX), // overflows once set
                3 | 4 => b.orset_add(k.as_str(), format!("e{i}")),
                5 => b.merge(k.as_str(), vec![1u8, 0, 0]), // undecodable
                6 => b.lww_set(format!("r{}", i % 3), b"v"),
                _ => {
                    if i % 50 == 0 {
                        let d = peer.increment(b"peer", 1).unwrap();
                        remote.push(d.dot());
                        b.merge(b"peer", d.delta.encode())
                    } else {
                        b.increment(k.as_str(), 1)
                    }
                }
            };
        }
        match a.write(&b) {
            Ok(deltas) => seqs.extend(deltas.iter().map(|d| d.delta.seq)),
            Err(Error::WrongType { .. } | Error::Overflow | Error::Codec(_)) => {
                failures += 1;
                // The peer's deltas of a failed batch were not applied.
                let applied = a.context();
                remote.retain(|d| applied.contains(d));
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    assert!(failures > 1000, "only {failures} batches failed");
    let n = seqs.len() as u64;
    let first_off = seqs.iter().zip(1..).find(|(s, want)| **s != *want);
    assert_eq!(
        first_off, None,
        "sequence numbers are 1..={n} in order, no gap"
    );
    assert_eq!(a.context(), expected(1, n, &remote));
    // Survives a reopen.
    let dir = a.dir.path().to_path_buf();
    drop(a.engine);
    let a = Engine::open(&dir, small_options(1)).unwrap();
    assert_eq!(a.context(), expected(1, n, &remote));
    assert_eq!(a.increment(b"fresh", 1).unwrap().delta.seq, n + 1);
}

#[test]
fn concurrent_writers_get_consecutive_numbers_in_commit_order() {
    let a = Arc::new(engine(1));
    let threads = 4;
    let per = 500;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let a = Arc::clone(&a);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..per {
                    let mut b = Batch::new();
                    b.increment(format!("c{}", i % 7), 1)
                        .gset_add(format!("s{t}"), format!("{i}"));
                    let ds = a.write(&b).unwrap();
                    // Commit order: right after the write, the record holds
                    // every number up to this batch's last, with no gap.
                    let ctx = a.context();
                    let last = ds.last().unwrap().delta.seq;
                    assert!(ctx.vv().get(ReplicaId(1)) >= last);
                    assert!(ctx.cloud().is_empty(), "a gap in the record");
                    mine.extend(ds.iter().map(|d| d.delta.seq));
                }
                mine
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort_unstable();
    let n = (threads * per * 2) as u64;
    let first_off = all.iter().zip(1..).find(|(s, want)| **s != *want);
    assert_eq!(
        (all.len() as u64, first_off),
        (n, None),
        "1..={n}, each once"
    );
    assert_eq!(a.context(), expected(1, n, &[]));
}

#[test]
fn read_your_writes_across_two_replicas() {
    let a = engine(1);
    let b = Arc::new(engine(2));
    let w = a.orset_add(b"cart:alice", b"tv").unwrap();
    let token = w.token();
    // B has not received the write: "not yet", without a wait.
    assert!(matches!(
        b.read_session(b"cart:alice", &token, None),
        Err(Error::NotYetVisible { missing: 1 })
    ));
    assert!(matches!(
        b.wait_for(&token, Some(Duration::from_millis(20))),
        Err(Error::NotYetVisible { missing: 1 })
    ));
    // A reader waiting on B is woken by the merge, not by polling.
    let reader = {
        let b = Arc::clone(&b);
        let token = token.clone();
        std::thread::spawn(move || {
            b.read_session(b"cart:alice", &token, Some(Duration::from_secs(60)))
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    b.merge(&w.key, &w.delta.encode()).unwrap();
    let (value, ctx) = reader.join().unwrap().unwrap();
    match value {
        Some(Value::Set(s)) => assert_eq!(s.members, vec![b"tv".to_vec()]),
        other => panic!("{other:?}"),
    }
    assert!(ctx.includes(&token));
}

#[test]
fn monotonic_reads_across_a_lagging_replica() {
    let a = engine(1);
    let b = engine(2);
    let d1 = a.increment(b"x", 1).unwrap();
    let d2 = a.increment(b"x", 1).unwrap();
    b.merge(b"x", &d1.delta.encode()).unwrap();
    // The client reads X=2 at A and keeps the token.
    let (v, seen) = a.read_session(b"x", &CausalContext::new(), None).unwrap();
    assert_eq!(v, Some(Value::Counter(2)));
    // Lagging B must not show X=1 to this client.
    assert!(matches!(
        b.read_session(b"x", &seen, None),
        Err(Error::NotYetVisible { missing: 1 })
    ));
    b.merge(b"x", &d2.delta.encode()).unwrap();
    let (v, _) = b.read_session(b"x", &seen, None).unwrap();
    assert_eq!(v, Some(Value::Counter(2)));
}

#[test]
fn tokens_join_and_encode() {
    let a = engine(1);
    let b = engine(2);
    let wa = a
        .write(Batch::new().increment(b"k", 1).increment(b"j", 1))
        .unwrap();
    let wb = b.increment(b"k", 1).unwrap();
    let mut t = token_of(&wa);
    t.merge(&wb.token());
    assert_eq!(t.missing(&CausalContext::new()), 0);
    assert_eq!(CausalContext::new().missing(&t), 3);
    let bytes = encode_context(&t);
    assert_eq!(decode_context(&bytes).unwrap(), t);
    // Truncated and damaged tokens are typed errors.
    for cut in 1..bytes.len() {
        assert!(decode_context(&bytes[..cut]).is_err());
    }
    let mut bad = bytes.clone();
    bad[3] ^= 0x10;
    assert!(matches!(
        decode_context(&bad),
        Err(CodecError::Checksum | CodecError::Truncated(_))
    ));
    // Out-of-order dots of deltas without recorded dependencies (kind 1)
    // are held exactly, with the gap.
    let c = engine(3);
    c.merge(b"k", &wb.delta.encode()).unwrap();
    let mut d3 = a.increment(b"k", 1).unwrap();
    d3.delta.deps = None;
    c.merge(b"k", &d3.delta.encode()).unwrap();
    assert_eq!(c.context(), expected(3, 0, &[wb.dot(), d3.dot()]));
    assert!(!c.context().contains(&Dot::new(ReplicaId(1), 1)));
    assert_eq!(
        c.version_vector().get(ReplicaId(1)),
        0,
        "no high-water claim"
    );
}

#[test]
fn a_delta_of_this_replica_it_never_issued_is_refused() {
    let a = engine(1);
    a.increment(b"k", 1).unwrap();
    // Another engine with the same replica id, further ahead.
    let twin = engine(1);
    for _ in 0..5 {
        twin.increment(b"k", 1).unwrap();
    }
    let d = twin.increment(b"k", 1).unwrap();
    let before = a.context();
    assert!(matches!(
        a.merge(b"k", &d.delta.encode()),
        Err(Error::InvalidArgument(_))
    ));
    assert_eq!(a.context(), before);
    assert_eq!(a.counter_value(b"k").unwrap(), 1);
}

#[test]
fn a_converged_sync_session_exchanges_the_records() {
    use converge::sync::{sync_engines, Config, Outcome};
    let a = engine(1);
    let b = engine(2);
    let w = a.orset_add(b"cart", b"tv").unwrap();
    let d = b.increment(b"likes", 1).unwrap();
    // Only anti-entropy carries the write: no delta is shipped.
    assert!(matches!(
        b.wait_for(&w.token(), None),
        Err(Error::NotYetVisible { missing: 1 })
    ));
    let ((oa, _), (ob, _)) = sync_engines(&*a, &*b, Config::default()).unwrap();
    assert_eq!((oa, ob), (Outcome::Converged, Outcome::Converged));
    b.wait_for(&w.token(), None).unwrap();
    a.wait_for(&d.token(), None).unwrap();
    assert_eq!(a.context(), b.context());
    // A second session finds equal roots and keeps the records equal.
    let c = a.increment(b"likes", 1).unwrap();
    b.merge(&c.key, &c.delta.encode()).unwrap();
    let ((oa, _), (ob, _)) = sync_engines(&*b, &*a, Config::default()).unwrap();
    assert_eq!((oa, ob), (Outcome::Equal, Outcome::Equal));
    assert_eq!(a.context(), b.context());
    // The learned record is persisted.
    let expected = b.context();
    let common::TempEngine { engine, dir } = b;
    drop(engine);
    let b = Engine::open(dir.path(), small_options(2)).unwrap();
    assert_eq!(b.context(), expected);
}

#[test]
fn a_replica_that_lost_its_operations_gets_them_and_its_numbering_back_by_sync() {
    use converge::sync::{sync_engines, Config, Outcome};
    let a = engine(1);
    let b = engine(2);
    for _ in 0..3 {
        let d = a.increment(b"k", 1).unwrap();
        b.merge(&d.key, &d.delta.encode()).unwrap();
    }
    // A loses its store (as after a crash without fsync): same id, empty.
    let lost = engine(1);
    let ((oa, _), (ob, _)) = sync_engines(&*lost, &*b, Config::default()).unwrap();
    assert_eq!((oa, ob), (Outcome::Converged, Outcome::Converged));
    assert_eq!(lost.counter_value(b"k").unwrap(), 3);
    assert!(lost.context().includes(&b.context()));
    // Its numbering continues after the operations that came back: no
    // number names two operations.
    assert_eq!(lost.increment(b"k", 1).unwrap().delta.seq, 4);
    // Its changes feed never logged the restored operations: a cursor that
    // lacks them is sent to anti-entropy, one that holds them gets the new
    // operation.
    assert!(matches!(
        lost.changes_since(&CausalContext::new(), 10),
        Err(Error::CursorTooOld {
            needed: 1,
            oldest: 4
        })
    ));
    let page = lost.changes_since(&b.context(), 10).unwrap();
    assert_eq!(page.operations, 1);
    let common::TempEngine { engine, dir } = lost;
    drop(engine);
    let reopened = Engine::open(dir.path(), small_options(1)).unwrap();
    assert_eq!(reopened.increment(b"k", 1).unwrap().delta.seq, 5);
}
