//! Point reads: p50 and p99 latency of `Engine::counter_value` on a loaded
//! and flushed store, against raw RocksDB gets of values of the same size.
//! Both stores are loaded once; the timed reads of the two alternate run by
//! run.

use crate::fixtures::open_engine;
use crate::local::{short, Kind};
use crate::measure::{key, key_index, median, percentile, Load};
use crate::peers::RawDb;
use crate::record::{Record, MICROS};
use crate::suite::Sizes;
use crate::BenchResult;
use converge::{Batch, Durability, Engine};
use std::time::Instant;

/// Spreads read order away from the load order.
const READ_STRIDE: u64 = 7_919;

/// Sorted per-read latencies in microseconds of `read` over `reads` keys.
fn latencies<F>(reads: u64, keys: u64, mut read: F) -> BenchResult<Vec<f64>>
where
    F: FnMut(&[u8]) -> BenchResult<()>,
{
    let mut out = Vec::with_capacity(reads as usize);
    for j in 0..reads {
        let k = key(key_index(j.wrapping_mul(READ_STRIDE), keys));
        let t = Instant::now();
        read(&k)?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    out.sort_by(f64::total_cmp);
    Ok(out)
}

/// Load `keys` counters through the engine, then flush.
fn load_engine(engine: &Engine, keys: u64) -> BenchResult<()> {
    let mut b = Batch::with_capacity(10_000);
    for i in 0..keys {
        b.increment(key(i), 1 + i % 7);
        if b.len() == 10_000 {
            engine.write(&b)?;
            b.clear();
        }
    }
    engine.write(&b)?;
    engine.flush()?;
    Ok(())
}

/// The p50 and p99 point-read records of a suite; `progress` sees each.
pub fn records(sizes: &Sizes, progress: &mut dyn FnMut(&Record)) -> BenchResult<Vec<Record>> {
    let keys = sizes.read_keys;
    let (engine, _dir) = open_engine(Durability::Buffered)?;
    load_engine(&engine, keys)?;
    let raw = RawDb::open(Durability::Buffered)?;
    raw.put_load(
        &Load::new(keys, keys, 10_000),
        &vec![0x5a; Kind::Counter.value_len()?],
    )?;
    raw.db().flush()?;

    let (mut ours, mut peer) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for _ in 0..sizes.runs.max(1) {
        let lat = latencies(sizes.reads, keys, |k| {
            engine.counter_value(k)?;
            Ok(())
        })?;
        ours[0].push(percentile(&lat, 50.0));
        ours[1].push(percentile(&lat, 99.0));
        let lat = latencies(sizes.reads, keys, |k| {
            raw.db().get_pinned(k)?.ok_or("a loaded key is missing")?;
            Ok(())
        })?;
        peer[0].push(percentile(&lat, 50.0));
        peer[1].push(percentile(&lat, 99.0));
    }
    let mut out = Vec::new();
    for (i, p) in ["p50", "p99"].iter().enumerate() {
        let name = format!("read/counter/{p}/k{}", short(keys));
        let r = Record::versus(
            name,
            median(&ours[i]),
            MICROS,
            "rocksdb get",
            median(&peer[i]),
        );
        progress(&r);
        out.push(r);
    }
    Ok(out)
}
