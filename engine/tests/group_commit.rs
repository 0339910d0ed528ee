//! Group commit under contention: many writers, whose batches the queue's
//! leader numbers and writes together. Numbers stay gap-free and in commit
//! order, each batch's numbers are consecutive, a batch that fails its own
//! checks inside a group fails alone, and the log and the record agree
//! with the data.

mod common;
use common::engine;
use converge::{Batch, CausalContext, Dot, Error, ReplicaId};
use std::sync::Arc;

#[test]
fn contended_batches_are_numbered_gap_free_and_fail_alone() {
    // Sync durability: each group write waits for an fsync, so writers
    // queue up behind it and groups form.
    let dir = tempfile::tempdir().unwrap();
    let a = Arc::new(
        converge::Engine::open(
            dir.path(),
            common::small_options(1).durability(converge::Durability::Sync),
        )
        .unwrap(),
    );
    let twin = engine(1); // same id, further ahead: its deltas are refused
    for _ in 0..10_000 {
        twin.increment(b"t", 1).unwrap();
    }
    let foreign = twin.increment(b"t", 1).unwrap().delta.encode();
    let threads = 4;
    let per = 300;
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (a, foreign) = (a.clone(), foreign.clone());
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                let mut refused = 0;
                for i in 0..per {
                    let mut b = Batch::new();
                    let n = 1 + (i % 5);
                    for j in 0..n {
                        b.increment(format!("k{}", (t * 7 + j) % 11), 1);
                    }
                    if i % 17 == 0 {
                        b.merge(b"t", foreign.clone());
                    }
                    match a.write(&b) {
                        Ok(ds) => {
                            let s: Vec<u64> = ds.iter().map(|d| d.delta.seq).collect();
                            assert!(s.windows(2).all(|w| w[1] == w[0] + 1), "{s:?}");
                            assert_eq!(s.len(), n);
                            seqs.extend(s);
                        }
                        Err(Error::InvalidArgument(_)) => refused += 1,
                        Err(e) => panic!("{e}"),
                    }
                }
                (seqs, refused)
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut refused = 0;
    for h in handles {
        let (s, r) = h.join().unwrap();
        all.extend(s);
        refused += r;
    }
    all.sort_unstable();
    let n = all.len() as u64;
    assert_eq!(
        all,
        (1..=n).collect::<Vec<_>>(),
        "numbers have a gap or repeat"
    );
    assert_eq!(refused, threads * (per / 17 + 1));
    let mut expected = CausalContext::new();
    expected.insert_range(ReplicaId(1), 1, n);
    assert_eq!(a.context(), expected);
    assert!(!a.context().contains(&Dot::new(ReplicaId(1), n + 1)));
    // The log holds every operation; replayed on a peer it gives the same
    // counters.
    let page = a.changes_since(&CausalContext::new(), usize::MAX).unwrap();
    assert_eq!(page.operations, n);
    let b = engine(2);
    b.apply_changes(&page.changes.unwrap().encode()).unwrap();
    let mut total = 0;
    for k in 0..11 {
        let key = format!("k{k}");
        let v = a.counter_value(key.as_bytes()).unwrap();
        assert_eq!(b.counter_value(key.as_bytes()).unwrap(), v);
        total += v;
    }
    assert_eq!(total, n as i128);
    assert!(a.verify().unwrap().consistent);
    let (groups, batches) = a.group_commit_stats();
    assert_eq!(batches, (threads * per) as u64);
    eprintln!("{batches} batches in {groups} group writes");
    assert!(
        groups < batches,
        "no group formed: the test did not test grouping"
    );
}
