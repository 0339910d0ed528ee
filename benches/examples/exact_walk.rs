//! What the one-time walk that marks an older store's `types` exact costs
//! at open (`engine/src/store/exact.rs`). Writes KEYS counters, closes,
//! makes the store look older (removes `meta/types_exact`, and the `types`
//! entries of one key in MISSING_EVERY), then times three opens: the one
//! that walks the store, and two that find it marked.
//!
//! `exact_walk [KEYS] [MISSING_EVERY]` (defaults 1,000,000 and 1,000), from
//! `target/release/examples/` after `make bench-build`.

use converge::{Batch, Engine, Options};
use converge_benches::measure::key;
use std::time::Instant;

fn main() -> converge_benches::BenchResult<()> {
    let a: Vec<String> = std::env::args().collect();
    let keys: u64 = a.get(1).map_or(Ok(1_000_000), |s| s.parse())?;
    let every: u64 = a.get(2).map_or(Ok(1_000), |s| s.parse())?;
    let dir = tempfile::Builder::new()
        .prefix("converge-exact-walk-")
        .tempdir()?;
    let e = Engine::open(dir.path(), Options::default())?;
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1_000) {
        let mut b = Batch::with_capacity(chunk.len());
        for i in chunk {
            b.increment(key(*i).to_vec(), 1);
        }
        e.write(&b)?;
    }
    e.close()?;
    let removed = {
        let db = open_raw(dir.path())?;
        let meta = db.cf_handle("meta").ok_or("no meta family")?;
        let types = db.cf_handle("types").ok_or("no types family")?;
        db.delete_cf(meta, b"types_exact")?;
        let mut removed = 0;
        for i in (0..keys).step_by(every.max(1) as usize) {
            db.delete_cf(types, key(i))?;
            removed += 1;
        }
        db.flush_cfs_opt(&[meta, types], &rocksdb::FlushOptions::default())?;
        removed
    };
    for what in ["walks", "marked", "marked"] {
        let t = Instant::now();
        let e = Engine::open(dir.path(), Options::default())?;
        let opened = t.elapsed();
        e.close()?;
        println!(
            "{keys} keys, {removed} without their types entry: open ({what}) {:.1} ms",
            opened.as_secs_f64() * 1e3
        );
    }
    Ok(())
}

/// The store's instance opened with plain RocksDB (merge operators that
/// keep the last operand, which this program never needs).
fn open_raw(dir: &std::path::Path) -> converge_benches::BenchResult<rocksdb::DB> {
    let keep_last = |_: &[u8], _: Option<&[u8]>, ops: &rocksdb::MergeOperands| {
        ops.iter().last().map(|v| v.to_vec())
    };
    let opts = rocksdb::Options::default();
    let cfs = rocksdb::DB::list_cf(&opts, dir)?;
    let descriptors = cfs.iter().map(|name| {
        let mut o = rocksdb::Options::default();
        if name == "state" || name == "meta" {
            o.set_merge_operator_associative("bench.keep_last", keep_last);
        }
        rocksdb::ColumnFamilyDescriptor::new(name, o)
    });
    Ok(rocksdb::DB::open_cf_descriptors(&opts, dir, descriptors)?)
}
