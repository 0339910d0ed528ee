//! Big sets: adds and removes on one OR-Set key holding many elements,
//! against the same operations on a key holding ten. Each batch of 100
//! operations adds a new element and removes the oldest one, in turn, so
//! the set keeps its size. The goal (issue #12) is a cost proportional to
//! the change, not to the set: the big set at least half as fast as the
//! small one.

use crate::fixtures::{elem, open_engine};
use crate::local::short;
use crate::measure::{median, rate};
use crate::record::{Record, OPS_PER_S};
use crate::suite::Sizes;
use crate::BenchResult;
use converge::{Batch, Durability, Engine};
use std::time::Instant;

/// Goal: the big set at least this fraction of the small set's throughput.
pub const GOAL_VS_SMALL: f64 = 0.5;
/// Elements of the small set compared with.
pub const SMALL: u64 = 10;
/// Operations per write.
const BATCH: u64 = 100;
/// The key every operation goes to.
const KEY: &[u8] = b"bigset";

/// Fill the set with `elements` elements (untimed).
fn fill(engine: &Engine, elements: u64) -> BenchResult<()> {
    let mut b = Batch::with_capacity(10_000);
    for i in 0..elements {
        b.orset_add(KEY, elem(i));
        if b.len() == 10_000 {
            engine.write(&b)?;
            b.clear();
        }
    }
    engine.write(&b)?;
    Ok(())
}

/// Throughput of `ops` alternating adds and removes on a set of
/// `elements` elements, in steady state: a fresh engine is filled, its
/// one-time costs paid (the anti-entropy tree reads the new state once,
/// the memtable is flushed), then `ops` operations run untimed (warm-up)
/// and `ops` more are timed. The warm-up matters for the big set: right
/// after a fill, the first tens of thousands of operations run about a
/// quarter slower than later ones (BENCHMARKS.md, "big OR-Sets"). So does
/// the length of the timed run: the write path puts a big set whole again
/// once the operands written on top of it add up to three times its size
/// (about 260,000 operations here), and the suites time enough operations
/// to include that cost more than once.
pub fn run(elements: u64, ops: u64) -> BenchResult<f64> {
    let (engine, _dir) = open_engine(Durability::Buffered)?;
    fill(&engine, elements)?;
    engine.settle()?;
    engine.flush()?;
    let mut b = Batch::with_capacity(BATCH as usize);
    let mut op = 0;
    let mut start = Instant::now();
    while op < 2 * ops {
        if op == ops {
            // The warm-up's write steps are not counted (`hot`'s
            // `HOT_STEPS=1`, in a build with the step-timing feature).
            converge::store::timing::take_write_steps();
            start = Instant::now();
        }
        // Pair k adds element `elements + k` and removes element k: the
        // set always holds `elements` elements.
        let k = op / 2;
        if op % 2 == 0 {
            b.orset_add(KEY, elem(elements + k));
        } else {
            b.orset_remove(KEY, elem(k));
        }
        op += 1;
        if b.len() as u64 == BATCH {
            engine.write(&b)?;
            b.clear();
        }
    }
    engine.write(&b)?;
    Ok(rate(ops, start.elapsed()))
}

/// Throughput of `ops` adds of new elements spread over `keys` OR-Set
/// keys that hold `elements` elements each (batches of 100 operations,
/// each to a different key): many mid-size sets, whose states together
/// may exceed the engine's state cache. The sets are filled untimed, as
/// full states merged from a peer (so the fill is fast whatever the write
/// path does with adds), then settled and flushed. With `shift`, the adds
/// go to the first half of the sets first (untimed), then the timed ones
/// to the other half: a working set that moves on, past a cache the first
/// half filled.
pub fn many(keys: u64, elements: u64, ops: u64, shift: bool) -> BenchResult<f64> {
    use crate::measure::{drive, key, Load};
    let (engine, _dir) = open_engine(Durability::Buffered)?;
    let peer = converge::ReplicaId(0x5eed);
    let mut b = Batch::with_capacity(1_000);
    for k in 0..keys {
        let mut set = converge::crdt::ORSet::default();
        for i in 0..elements {
            set.add(peer, &elem(k * elements + i));
        }
        b.merge(
            key(k),
            converge::codec::encode_state(&converge::State::ORSet(set)),
        );
        if b.len() == 1_000 {
            engine.write(&b)?;
            b.clear();
        }
    }
    engine.write(&b)?;
    engine.settle()?;
    engine.flush()?;
    let half = if shift { keys / 2 } else { keys };
    let adds = |first: u64| {
        let load = Load::new(ops, half, BATCH as usize);
        drive(&load, |chunk| {
            let mut b = Batch::with_capacity(chunk.len());
            for op in chunk {
                let k = key(first + load.key_of(*op));
                b.orset_add(k, format!("new-{first}-{op}").into_bytes());
            }
            engine.write(&b)?;
            Ok(())
        })
    };
    if shift {
        adds(0)?;
    }
    let elapsed = adds(keys - half)?;
    Ok(rate(ops, elapsed))
}

/// The big-set records of a suite; `progress` sees each one.
pub fn records(sizes: &Sizes, progress: &mut dyn FnMut(&Record)) -> BenchResult<Vec<Record>> {
    let (elements, ops) = sizes.bigset;
    let (mut big, mut small) = (vec![], vec![]);
    for _ in 0..sizes.runs.max(1) {
        big.push(run(elements, ops)?);
        small.push(run(SMALL, ops)?);
    }
    let r = Record::versus(
        format!("bigset/orset-add+remove/b{BATCH}/e{}", short(elements)),
        median(&big),
        OPS_PER_S,
        format!("same on {SMALL} elements"),
        median(&small),
    )
    .goal(GOAL_VS_SMALL);
    progress(&r);
    Ok(vec![r])
}
