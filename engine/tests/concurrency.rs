//! Many threads hammering the same keys lose nothing.

mod common;
use common::{assert_tree_holds, engine};
use converge::{Batch, Engine};
use std::sync::Arc;

#[test]
fn eight_threads_on_the_same_keys_lose_nothing() {
    let t = engine(1);
    let e: Arc<&Engine> = Arc::new(&t.engine);
    const THREADS: u64 = 8;
    const OPS: u64 = 240; // divisible by 3, 4 and 10
    std::thread::scope(|s| {
        for th in 0..THREADS {
            let e = Arc::clone(&e);
            s.spawn(move || {
                for i in 0..OPS {
                    let key = format!("c{}", i % 4);
                    e.increment(key.as_bytes(), 1).unwrap();
                    e.pn_add(b"pn", if i % 2 == 0 { 3 } else { -1 }).unwrap();
                    let elem = format!("t{th}-{i}");
                    e.orset_add(b"set", elem.as_bytes()).unwrap();
                    if i % 3 == 0 {
                        let d = e.orset_remove(b"set", elem.as_bytes(), None).unwrap();
                        assert!(d.is_some(), "removes the add above");
                    }
                    if i % 10 == 0 {
                        let mut b = Batch::new();
                        b.increment(b"c0", 1)
                            .increment(b"c1", 1)
                            .gset_add(b"g", elem.clone());
                        e.write(&b).unwrap();
                    }
                }
            });
        }
    });
    let per_key = THREADS * OPS / 4;
    let batches = THREADS * OPS / 10;
    assert_eq!(t.counter_value(b"c0").unwrap(), (per_key + batches) as i128);
    assert_eq!(t.counter_value(b"c1").unwrap(), (per_key + batches) as i128);
    assert_eq!(t.counter_value(b"c2").unwrap(), per_key as i128);
    assert_eq!(t.counter_value(b"pn").unwrap(), (THREADS * OPS) as i128);
    let members = t.set_members(b"set").unwrap().members;
    let expected = THREADS * (OPS - OPS.div_ceil(3));
    assert_eq!(members.len() as u64, expected);
    assert_eq!(t.set_members(b"g").unwrap().members.len() as u64, batches);
    // Every operation got its own sequence number.
    let ops = THREADS * (OPS * 3 + OPS.div_ceil(3) + 3 * OPS.div_ceil(10));
    assert_eq!(t.version_vector().get(t.replica_id()), ops);
    assert!(t.verify().unwrap().consistent);
}

/// Writers (spread keys, which the background settler folds while writing
/// continues, and hot keys), root reads, explicit settles and verifies all
/// at once: no deadlock, and once writing stops the maintained tree equals
/// the one recomputed from the data.
#[test]
fn folds_run_beside_writers_roots_and_verifies() {
    let t = engine(2);
    let e: &Engine = &t.engine;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..2u64)
            .map(|w| {
                s.spawn(move || {
                    for i in 0..60u64 {
                        let mut b = Batch::with_capacity(200);
                        for j in 0..100 {
                            b.increment(format!("spread-{w}-{i}-{j}"), 1);
                            b.increment(format!("hot-{}", j % 7), 1);
                        }
                        e.write(&b).unwrap();
                    }
                })
            })
            .collect();
        let stop = &stop;
        let readers = [
            s.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    e.root().unwrap();
                    e.settle().unwrap();
                }
            }),
            s.spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Writes land during the scan: only no error is asked.
                    e.verify().unwrap();
                }
            }),
        ];
        for w in writers {
            w.join().unwrap();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
    });
    assert_tree_holds(&t, 2 * 60 * 100 + 7);
    assert_eq!(t.unsettled_keys(), 0);
}

/// Keys created, deleted, collected and created again while settles run
/// beside the writer, round after round: the maintained tree stays exact.
/// A key the write creates is folded without reading its old index entry
/// only when it can have none; debug builds read the entry anyway and
/// `verify` reports any key wrongly taken for unindexed. A stress test: the
/// harmful interleaving (a settle taking the collection's mark and folding
/// the key after it is created again) is timing-dependent here (with the
/// epoch rule removed this failed 1 run in 3, with the purge rule of
/// `Tree::mark_dirty_owned` ignored 1 run in 4); the unit test in
/// `aae/tree.rs` makes it deterministically.
#[test]
fn keys_collected_and_created_again_while_folds_run() {
    let t = engine(3);
    let e: &Engine = &t.engine;
    const ROUNDS: u64 = 30;
    const KEYS: usize = 1_000;
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &stop;
        let folds = s.spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                e.settle().unwrap();
            }
        });
        for round in 0..ROUNDS {
            let mut b = Batch::with_capacity(KEYS);
            for j in 0..KEYS {
                b.increment(format!("k{j}"), round + 1);
            }
            e.write(&b).unwrap();
            if round % 3 == 1 {
                // Sometimes the keys are folded before they go.
                e.settle().unwrap();
            }
            let mut b = Batch::with_capacity(KEYS);
            for j in 0..KEYS {
                b.delete(format!("k{j}"), None);
            }
            e.write(&b).unwrap();
            assert_eq!(e.collect().unwrap().purged, KEYS as u64, "round {round}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        folds.join().unwrap();
    });
    assert_tree_holds(&t, 0);
}
