//! Run one workload of the report in a loop on fresh engines, for
//! profiling (`perf record`), and print the median throughput:
//! `hot KIND SECONDS [BATCH] [FEED 0|1] [AAE 0|1] [DURABILITY buffered|sync]` with KIND one of the
//! local kinds (counter, orset-add, orset-remove, lww, mvreg) or a remote
//! merge (r-counter-delta, r-counter-state, r-orset-delta, r-orset-state),
//! or `put`: the raw RocksDB peer of the local rows, or `merge-counter-delta`,
//! `merge-counter-state`, `merge-orset-delta`: the raw peers of the remote
//! rows (the same payloads as merge operands). KIND `put-hashed` is `put`
//! into a database whose memtable is the engine's `state` family's (a hash
//! table by key, `Options::state_rocksdb_options`).
//! `HOT_RUNS=N` runs exactly N engines instead of SECONDS (for `perf stat`);
//! `HOT_OPS` sets the operations per run (remote kinds: merges, default
//! 2,000 for `r-orset-state`, 100,000 for the others; `HOT_VARIANTS`: how
//! many distinct states `r-orset-state` sends, default 4); `HOT_OPS` and
//! `HOT_KEYS` set the local kinds' (and `put`'s) operations per run and
//! keyspace (default 100,000 over 10,000 keys; with both equal,
//! an ingest: every key written once); `HOT_THREADS` their writer threads
//! (default 1); `HOT_SIZES=1` closes each engine after its run and prints
//! the store's size on disk and the anti-entropy index's share (and, with
//! the changes feed on, the log bytes per operation the run wrote);
//! `HOT_WRITE_BUFFER_MB` sets the engine's `write_buffer_bytes`,
//! `HOT_STATE_CACHE_MB` its `state_cache_bytes`, `HOT_TYPE_CACHE` its
//! `type_cache_entries`.
//! `HOT_STEPS=1`, in a build with the `step-timing` feature
//! (`cargo build --release -p converge-benches --features step-timing
//! --example hot`), prints where the timed writes' time went, step by
//! step of the engine's write path (`converge::store::timing`), per
//! operation, after the runs.
//! KIND `put-log` is `put` plus, per batch, one put into a second column
//! family of `HOT_LOG_BYTES` (default 40) bytes per operation: a raw write
//! of what the engine's blind local batch persists (the key's operand and
//! the changes feed's log entry).
//! KIND `put-deferred` models a write path that persists only a log
//! record per batch (`HOT_LOG_BYTES` per operation, default the key's and
//! value's lengths and bytes) with the configured durability, and leaves
//! the per-key puts to a second thread that writes them without the WAL
//! (RocksDB's memtables only), through a queue of `HOT_DEFER_QUEUE`
//! batches (default 64): timed until that thread has written every batch.
//! It is a raw RocksDB model of a design the engine does not have (see
//! BENCHMARKS.md, "A log-first write path, modelled"); it recovers
//! nothing after a crash.
//! KIND `bigset` is the report's big-set row (`bigset::run`): alternating
//! adds and removes on one OR-Set key of `HOT_ELEMENTS` elements (default
//! 100,000; 10 is the row's small set), `HOT_OPS` timed (default 100,000).
//! KIND `manysets` is `bigset::many`: `HOT_OPS` adds of new elements over
//! `HOT_KEYS` OR-Set keys (default 10,000) filled with `HOT_ELEMENTS`
//! elements each (default 300); `shiftsets` the same with the adds going
//! to half the keys first (untimed), then to the other half.
use converge::store::timing;
use converge::{Durability, Engine, Options};
use converge_benches::fixtures::{
    counter_deltas, counter_states, disk_bytes, local_replica, orset_deltas, orset_states,
};
use converge_benches::local::{engine_rate, prepare, Kind};
use converge_benches::measure::{rate, Load, KEY_LEN};
use converge_benches::peers::RawDb;
use converge_benches::remote;

fn main() -> converge_benches::BenchResult<()> {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let what = arg(1, "counter");
    let secs: u64 = arg(2, "5").parse()?;
    let batch: usize = arg(3, "100").parse()?;
    let feed = arg(4, "1") == "1";
    let aae = arg(5, "1") == "1";
    let durability = match arg(6, "buffered").as_str() {
        "buffered" => Durability::Buffered,
        "sync" => Durability::Sync,
        other => return Err(format!("unknown durability {other}").into()),
    };
    let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    // Distinct 1,000-element states of `r-orset-state` (the report's 4
    // divide its 1,000 keys, so each key is sent one state again and
    // again; 3 sends each key the states in turn).
    let variants = env("HOT_VARIANTS").unwrap_or(4);
    let payloads: Option<(Vec<Vec<u8>>, u64)> = match what.as_str() {
        "r-counter-delta" => Some((counter_deltas(64, 100_000)?, 10_000)),
        "r-counter-state" => Some((counter_states(64, 16)?, 10_000)),
        "r-orset-delta" => Some((orset_deltas(64, 1_000, 100_000), 10_000)),
        "r-orset-state" => Some((orset_states(1_000, variants), 1_000)),
        _ => None,
    };
    let kind = Kind::ALL.into_iter().find(|k| k.name() == what);
    let raw_put =
        what == "put" || what == "put-hashed" || what == "put-log" || what == "put-deferred";
    // The raw peer of the remote rows: the payloads as merge operands.
    let raw_merge = what.strip_prefix("merge-").map(|rest| format!("r-{rest}"));
    let payloads = match &raw_merge {
        Some(r) => match r.as_str() {
            "r-counter-delta" => Some((counter_deltas(64, 100_000)?, 10_000)),
            "r-counter-state" => Some((counter_states(64, 16)?, 10_000)),
            "r-orset-delta" => Some((orset_deltas(64, 1_000, 100_000), 10_000)),
            _ => None,
        },
        None => payloads,
    };
    let bigset = what == "bigset";
    let manysets = what == "manysets" || what == "shiftsets";
    if payloads.is_none() && kind.is_none() && !raw_put && !bigset && !manysets {
        return Err(format!("unknown workload {what}").into());
    }
    let t = std::time::Instant::now();
    let mut rs = Vec::new();
    let runs = env("HOT_RUNS").map(|n| n as usize);
    // fsync-bound: fewer operations per run.
    let local_ops = env("HOT_OPS").unwrap_or(if durability == Durability::Sync {
        2_000
    } else {
        100_000
    });
    let local_keys = env("HOT_KEYS").unwrap_or(10_000);
    let threads = env("HOT_THREADS").unwrap_or(1) as usize;
    let steps = env("HOT_STEPS") == Some(1);
    if steps && !timing::ENABLED {
        return Err("HOT_STEPS=1 needs a build with the step-timing feature".into());
    }
    // Per step of the write path: its time and laps over the timed runs,
    // and the operations they wrote.
    let mut step_totals: Vec<timing::StepTime> = Vec::new();
    let mut timed_ops = 0u64;
    while match runs {
        Some(n) => rs.len() < n,
        None => t.elapsed().as_secs() < secs,
    } {
        if manysets {
            let elements = env("HOT_ELEMENTS").unwrap_or(300);
            rs.push(converge_benches::bigset::many(
                local_keys,
                elements,
                local_ops,
                what == "shiftsets",
            )?);
            continue;
        }
        if bigset {
            let elements = env("HOT_ELEMENTS").unwrap_or(100_000);
            rs.push(converge_benches::bigset::run(elements, local_ops)?);
            timed_ops += local_ops;
            add_steps(&mut step_totals, timing::take_write_steps());
            continue;
        }
        if raw_put {
            // The raw RocksDB peer of the local rows (counter-sized values).
            let value = vec![0x5a; Kind::Counter.value_len()?];
            let load = Load::new(local_ops, local_keys, batch).threads(threads);
            if what == "put-log" {
                let per_op = env("HOT_LOG_BYTES").unwrap_or(40) as usize;
                rs.push(put_log_model(durability, &load, &value, per_op, false)?);
                continue;
            }
            if what == "put-deferred" {
                // A log record holds each operation's key and value, with
                // their lengths.
                let per_op = env("HOT_LOG_BYTES").map_or(KEY_LEN + value.len() + 8, |b| b as usize);
                rs.push(put_log_model(durability, &load, &value, per_op, true)?);
                continue;
            }
            let raw = if what == "put-hashed" {
                RawDb::open_hashed(durability)?
            } else {
                RawDb::open(durability)?
            };
            rs.push(rate(load.ops, raw.put_load(&load, &value)?));
            continue;
        }
        if let (true, Some((p, keys))) = (raw_merge.is_some(), &payloads) {
            let raw = RawDb::open(durability)?;
            let load = Load::new(100_000, *keys, batch);
            rs.push(rate(load.ops, raw.merge_load(&load, p)?));
            continue;
        }
        let dir = tempfile::tempdir()?;
        let mut o = Options::with_replica(local_replica()).durability(durability);
        o.changes_feed = feed;
        o.anti_entropy = aae;
        if let Some(mib) = env("HOT_WRITE_BUFFER_MB") {
            o.write_buffer_bytes = (mib as usize) << 20;
        }
        if let Some(mib) = env("HOT_STATE_CACHE_MB") {
            o.state_cache_bytes = (mib as usize) << 20;
        }
        if let Some(n) = env("HOT_TYPE_CACHE") {
            o.type_cache_entries = n as usize;
        }
        let engine = Engine::open(dir.path(), o)?;
        rs.push(match (&payloads, kind) {
            (Some((p, keys)), _) => {
                let ops = env("HOT_OPS").unwrap_or(if *keys == 1_000 { 2_000 } else { 100_000 });
                // What earlier runs' engines did after their timed writes
                // (closing) is not counted.
                timing::take_write_steps();
                timed_ops += ops;
                remote::engine_rate(&engine, &Load::new(ops, *keys, batch), p)?
            }
            (None, Some(k)) => {
                let load = Load::new(local_ops, local_keys, batch).threads(threads);
                prepare(&engine, k, &load)?;
                // The prepare step's writes are not counted.
                timing::take_write_steps();
                timed_ops += load.ops;
                engine_rate(&engine, k, &load)?
            }
            (None, None) => unreachable!(),
        });
        add_steps(&mut step_totals, timing::take_write_steps());
        if env("HOT_SIZES") == Some(1) {
            if feed {
                let info = engine.feed_info()?;
                println!("log {} bytes per operation", info.bytes / info.last.max(1));
            }
            // Closed (the tree settled and its index flushed), then the
            // files' sizes: the whole store, and the index's share.
            engine.close()?;
            println!(
                "store {} bytes, of which the anti-entropy index (aae/) {} bytes",
                disk_bytes(dir.path())?,
                disk_bytes(&dir.path().join("aae"))?
            );
        }
    }
    rs.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{what} batch={batch} feed={feed} aae={aae}: median {:.0} ops/s over {} runs",
        rs[rs.len() / 2],
        rs.len()
    );
    if steps {
        print_steps(&step_totals, timed_ops);
    }
    Ok(())
}

/// Add one run's step times to the totals.
fn add_steps(totals: &mut Vec<timing::StepTime>, run: Vec<timing::StepTime>) {
    if totals.is_empty() {
        *totals = run;
        return;
    }
    for (t, r) in totals.iter_mut().zip(run) {
        t.total += r.total;
        t.laps += r.laps;
        t.bytes += r.bytes;
        t.records += r.records;
    }
}

/// Each step's time per operation (microseconds), and its share of the
/// writers' time (the steps but `rocksdb-write`, which `commit` includes).
fn print_steps(totals: &[timing::StepTime], ops: u64) {
    let per_op = |d: std::time::Duration| d.as_secs_f64() * 1e6 / ops.max(1) as f64;
    let writer: f64 = totals
        .iter()
        .filter(|t| t.step != timing::Step::RocksDbWrite)
        .map(|t| per_op(t.total))
        .sum();
    println!("write path steps over {ops} timed operations (wall time per writer thread):");
    println!(
        "  {:<14} {:>10} {:>7} {:>10}",
        "step", "us/op", "share", "laps"
    );
    for t in totals {
        let us = per_op(t.total);
        println!(
            "  {:<14} {:>10.3} {:>6.1}% {:>10}",
            t.step.name(),
            us,
            100.0 * us / writer.max(f64::MIN_POSITIVE),
            t.laps
        );
    }
    println!("  {:<14} {writer:>10.3}", "all steps");
    if let Some(w) = totals.iter().find(|t| t.step == timing::Step::RocksDbWrite) {
        println!(
            "  RocksDB writes: {:.1} bytes and {:.2} records per operation",
            w.bytes as f64 / ops.max(1) as f64,
            w.records as f64 / ops.max(1) as f64
        );
    }
}

/// The `put-log` peer (`deferred` false): raw puts, and one put per batch
/// of `per_op` bytes per operation into a second column family (keyed by
/// the batch's number, as the engine's log is), with the engine's RocksDB
/// options. The `put-deferred` model (`deferred` true; module
/// documentation): the writers put only the log record, with
/// `durability`, and a second thread puts the batch's keys without the
/// WAL; the rate counts until that thread is done.
fn put_log_model(
    durability: Durability,
    load: &Load,
    value: &[u8],
    per_op: usize,
    deferred: bool,
) -> converge_benches::BenchResult<f64> {
    let dir = tempfile::tempdir()?;
    let options = Options::default().durability(durability);
    let db = rocksdb::DB::open_cf(&options.rocksdb_options(), dir.path(), ["log"])?;
    let log = db.cf_handle("log").ok_or("no log column family")?;
    let write = options.write_options();
    let mut memtable_only = rocksdb::WriteOptions::default();
    memtable_only.disable_wal(true);
    let puts = |ops: &[u64], wb: &mut rocksdb::WriteBatch| {
        for op in ops {
            wb.put(converge_benches::measure::key(load.key_of(*op)), value);
        }
    };
    let next = std::sync::atomic::AtomicU64::new(0);
    let depth = std::env::var("HOT_DEFER_QUEUE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u64>>(depth);
    let start = std::time::Instant::now();
    std::thread::scope(|s| -> converge_benches::BenchResult<()> {
        let (db, memtable_only, puts) = (&db, &memtable_only, &puts);
        // The second thread exists only in the model (`put-log` puts the
        // keys itself).
        let applier = deferred.then(|| {
            s.spawn(move || -> Result<(), rocksdb::Error> {
                for ops in rx {
                    let mut wb = rocksdb::WriteBatch::default();
                    puts(&ops, &mut wb);
                    db.write_opt(wb, memtable_only)?;
                }
                Ok(())
            })
        });
        let written = converge_benches::measure::drive(load, |ops| {
            let mut wb = rocksdb::WriteBatch::default();
            if !deferred {
                puts(ops, &mut wb);
            }
            let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            wb.put_cf(&log, n.to_be_bytes(), vec![0x5a; per_op * ops.len()]);
            db.write_opt(wb, &write)?;
            if deferred {
                tx.send(ops.to_vec())?;
            }
            Ok(())
        });
        drop(tx);
        if let Some(applier) = applier {
            applier.join().map_err(|_| "the applier panicked")??;
        }
        written?;
        Ok(())
    })?;
    Ok(rate(load.ops, start.elapsed()))
}
