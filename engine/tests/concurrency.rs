//! Many threads hammering the same keys lose nothing.

mod common;
use common::engine;
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
                        e.orset_remove(b"set", elem.as_bytes(), None).unwrap();
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
