//! Causal delivery of a chain: replica 1 makes N counter increments;
//! replica 3 receives every delta but the first (each waits in the pending
//! area for the one before), then the first, and the whole chain drains.
//! Prints the time to park the N-1 deltas and to drain them, for N = 2,000,
//! 4,000 and 8,000 (release build):
//! `cargo run --release -p converge-benches --example pending_chain`.
//! Draining time linear in N means each entry was rechecked a bounded
//! number of times (ARCHITECTURE.md, "Causal delivery").

use converge::{Engine, Options, ReplicaId};
use std::time::Instant;

fn main() {
    for n in [2_000u64, 4_000, 8_000] {
        let (da, dc) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Engine::open(da.path(), Options::with_replica(ReplicaId(1))).unwrap();
        let mut o = Options::with_replica(ReplicaId(3));
        o.max_pending = 1 << 20;
        let c = Engine::open(dc.path(), o).unwrap();
        let ds: Vec<_> = (0..n)
            .map(|_| a.increment(b"n", 1).unwrap().delta.encode())
            .collect();
        let t = Instant::now();
        for d in &ds[1..] {
            c.merge(b"n", d).unwrap();
        }
        let parked = t.elapsed();
        let t = Instant::now();
        c.merge(b"n", &ds[0]).unwrap();
        println!(
            "n={n}: parked in {:?}, drained in {:?}, value {}",
            parked,
            t.elapsed(),
            c.counter_value(b"n").unwrap()
        );
    }
}
