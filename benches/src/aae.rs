//! Anti-entropy tree maintenance. With the tree on (the default), every
//! write marks its keys dirty and a background thread folds them in
//! (reading each key's state, hashing it, updating its entry hash);
//! `Engine::settle` (and reading the root) folds what is left. Measured:
//! ingest N keys then settle (the tree current), and ingest alone, each
//! against an engine opened with `anti_entropy: false`; how long the final
//! settle after the last write takes (what a root read right after it
//! waits); and the latency of `Engine::root` once settled.

use crate::fixtures::{local_replica, open_engine};
use crate::local::{engine_rate, short, Kind};
use crate::measure::{median, rate, Load};
use crate::record::{Record, MICROS, OPS_PER_S};
use crate::suite::Sizes;
use crate::BenchResult;
use converge::{Durability, Engine, Options};
use std::time::Instant;

/// `Engine::root` calls timed per run.
const ROOT_CALLS: usize = 1_000;

/// Ingest-and-settle throughput, the final settle's duration (µs) and root
/// latency (µs) of one run.
fn settled_run(load: &Load) -> BenchResult<(f64, f64, f64)> {
    let (engine, _dir) = open_engine(Durability::Buffered)?;
    let start = Instant::now();
    engine_rate(&engine, Kind::Counter, load)?;
    let settle_start = Instant::now();
    engine.settle()?;
    let settle = settle_start.elapsed();
    let total = start.elapsed();
    let mut roots = Vec::with_capacity(ROOT_CALLS);
    for _ in 0..ROOT_CALLS {
        let t = Instant::now();
        std::hint::black_box(engine.root()?);
        roots.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((
        rate(load.ops, total),
        settle.as_secs_f64() * 1e6,
        median(&roots),
    ))
}

/// Ingest-only throughput of one run (the background settler runs; the
/// rest is settled when the engine is dropped, outside the timed region).
fn unsettled_run(load: &Load) -> BenchResult<f64> {
    let (engine, _dir) = open_engine(Durability::Buffered)?;
    engine_rate(&engine, Kind::Counter, load)
}

/// Ingest-only throughput of an engine without the anti-entropy tree.
fn tree_off_run(load: &Load) -> BenchResult<f64> {
    let dir = tempfile::Builder::new()
        .prefix("converge-bench-engine-")
        .tempdir()?;
    let options = Options {
        anti_entropy: false,
        ..Options::with_replica(local_replica())
    };
    let engine = Engine::open(dir.path(), options)?;
    engine_rate(&engine, Kind::Counter, load)
}

/// The anti-entropy records of a suite; `progress` sees each one.
pub fn records(sizes: &Sizes, progress: &mut dyn FnMut(&Record)) -> BenchResult<Vec<Record>> {
    let keys = sizes.aae_keys;
    let load = Load::new(keys, keys, 100);
    let (mut with, mut without, mut off) = (vec![], vec![], vec![]);
    let (mut settle, mut root) = (vec![], vec![]);
    for _ in 0..sizes.runs.max(1) {
        let (w, s, r) = settled_run(&load)?;
        with.push(w);
        settle.push(s);
        root.push(r);
        without.push(unsettled_run(&load)?);
        off.push(tree_off_run(&load)?);
    }
    let k = short(keys);
    let out = vec![
        Record::versus(
            format!("aae/ingest+settle/k{k}"),
            median(&with),
            OPS_PER_S,
            "anti_entropy off",
            median(&off),
        ),
        Record::versus(
            format!("aae/ingest/k{k}"),
            median(&without),
            OPS_PER_S,
            "anti_entropy off",
            median(&off),
        ),
        Record::alone(format!("aae/final-settle/k{k}"), median(&settle), MICROS),
        Record::alone(format!("aae/root-after-settle/k{k}"), median(&root), MICROS),
    ];
    for r in &out {
        progress(r);
    }
    Ok(out)
}
