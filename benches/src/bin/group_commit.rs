//! Concurrent writers with `Sync` durability (every acknowledged write
//! fsynced): Converge's group commit against raw RocksDB puts from the same
//! number of threads (RocksDB groups concurrent writers' WAL writes
//! itself). One increment per batch, 10,000 keys, 2 seconds per point.
//!
//! `group_commit DIR` prints one JSON line per thread count.

use converge::{Durability, Engine, Options, ReplicaId};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const RUN: Duration = Duration::from_secs(2);

fn run(threads: usize, op: impl Fn(u64) + Sync) -> f64 {
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let t0 = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, done, op) = (&stop, &done, &op);
            s.spawn(move || {
                let mut i = t as u64 * 1_000_003;
                while !stop.load(Ordering::Relaxed) {
                    op(i);
                    i += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        std::thread::sleep(RUN);
        stop.store(true, Ordering::Relaxed);
    });
    done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, dir] = args.as_slice() else {
        return Err("usage: group_commit DIR".into());
    };
    let root = std::path::Path::new(dir);
    for threads in [1usize, 2, 4, 8] {
        let path = root.join(format!("c{threads}"));
        let e = Arc::new(Engine::open(
            &path,
            Options::with_replica(ReplicaId::random()).durability(Durability::Sync),
        )?);
        let ours = run(threads, |i| {
            e.increment(format!("key{:05}", i % 10_000).as_bytes(), 1)
                .expect("increment");
        });
        let (groups, batches) = e.group_commit_stats();
        drop(e);
        let raw_path = root.join(format!("r{threads}"));
        let mut o = rocksdb::Options::default();
        o.create_if_missing(true);
        let db = rocksdb::DB::open(&o, &raw_path)?;
        let mut w = rocksdb::WriteOptions::default();
        w.set_sync(true);
        let raw = run(threads, |i| {
            db.put_opt(format!("key{:05}", i % 10_000), i.to_le_bytes(), &w)
                .expect("put");
        });
        drop(db);
        println!(
            "{{\"threads\": {threads}, \"converge_ops_per_s\": {ours:.0}, \"rocksdb_put_ops_per_s\": {raw:.0}, \"ratio\": {:.2}, \"batches_per_group_write\": {:.2}}}",
            ours / raw,
            batches as f64 / groups.max(1) as f64
        );
        std::fs::remove_dir_all(&path)?;
        std::fs::remove_dir_all(&raw_path)?;
    }
    Ok(())
}
