//! Remote merges: peers' deltas and full states applied with
//! `Engine::merge` (one per write) or `Batch::merge`, against raw RocksDB
//! merge-operand writes of the same bytes. Payloads are encoded before the
//! timed region.

use crate::fixtures::{counter_deltas, counter_states, open_engine, orset_deltas, orset_states};
use crate::local::short;
use crate::measure::{drive, key, paired, rate, Load};
use crate::peers::RawDb;
use crate::record::{Record, OPS_PER_S};
use crate::suite::Sizes;
use crate::BenchResult;
use converge::{Batch, Durability, Engine};

/// Goal: remote merges at least this fraction of raw merge-operand writes.
pub const GOAL_VS_MERGE: f64 = 0.8;
/// Goal for merges of full 1,000-element OR-Set states (issue #12): each
/// is a join with a state of its size, where the peer copies bytes.
pub const GOAL_BIG_STATE_VS_MERGE: f64 = 0.5;
/// Peers whose counter entries the payloads carry.
pub const ACTORS: u64 = 64;
/// Members of each OR-Set full state.
pub const ORSET_ELEMENTS: u64 = 1_000;

/// Merge `payloads[op % len]` into the key of every operation.
pub fn engine_rate(engine: &Engine, load: &Load, payloads: &[Vec<u8>]) -> BenchResult<f64> {
    let payload = |op: u64| &payloads[(op % payloads.len() as u64) as usize];
    let elapsed = drive(load, |ops| {
        if let [op] = ops {
            engine.merge(&key(load.key_of(*op)), payload(*op))?;
            return Ok(());
        }
        let mut b = Batch::with_capacity(ops.len());
        for op in ops {
            b.merge(key(load.key_of(*op)), payload(*op).as_slice());
        }
        engine.write(&b)?;
        Ok(())
    })?;
    Ok(rate(load.ops, elapsed))
}

/// One remote-merge workload against merge-operand writes.
fn versus_merge(
    runs: usize,
    what: &str,
    load: Load,
    payloads: &[Vec<u8>],
    goal: f64,
) -> BenchResult<Record> {
    let (ours, peer) = paired(
        runs,
        || {
            let (engine, _dir) = open_engine(Durability::Buffered)?;
            engine_rate(&engine, &load, payloads)
        },
        || {
            let raw = RawDb::open(Durability::Buffered)?;
            Ok(rate(load.ops, raw.merge_load(&load, payloads)?))
        },
    )?;
    let name = format!("remote/{what}/b{}/k{}", load.batch, short(load.keys));
    let peer_name = "rocksdb merge operand";
    Ok(Record::versus(name, ours, OPS_PER_S, peer_name, peer).goal(goal))
}

/// Every remote-merge record of a suite; `progress` sees each one.
pub fn records(sizes: &Sizes, progress: &mut dyn FnMut(&Record)) -> BenchResult<Vec<Record>> {
    let keys = sizes.keyspaces.first().copied().unwrap_or(10_000);
    let set_keys = keys.min(1_000);
    // One delta per operation: a delta is one operation of its origin (a
    // dot), and a replica applies it once (a second copy is skipped).
    let unique = sizes.merge_ops.max(sizes.ops_batch1);
    let counter_deltas = counter_deltas(ACTORS, unique)?;
    let counter_states = counter_states(ACTORS, 16)?;
    let set_deltas = orset_deltas(ACTORS, ORSET_ELEMENTS, unique);
    // Four states: 4 divides the keyspace (1,000 keys), so each key is
    // sent one of them again and again (a shipment delivered more than
    // once). Three: each key is sent the three in turn, so every merge
    // changes the key's state.
    let set_states = orset_states(ORSET_ELEMENTS, 4);
    let distinct_states = orset_states(ORSET_ELEMENTS, 3);
    let n = sizes.merge_ops;
    let plan: Vec<(String, Load, &[Vec<u8>], f64)> = vec![
        (
            format!("counter-delta{ACTORS}"),
            Load::new(sizes.ops_batch1, keys, 1),
            &counter_deltas,
            GOAL_VS_MERGE,
        ),
        (
            format!("counter-delta{ACTORS}"),
            Load::new(n, keys, 100),
            &counter_deltas,
            GOAL_VS_MERGE,
        ),
        (
            format!("counter-state{ACTORS}"),
            Load::new(n, keys, 100),
            &counter_states,
            GOAL_VS_MERGE,
        ),
        (
            "orset-delta".into(),
            Load::new(n, keys, 100),
            &set_deltas,
            GOAL_VS_MERGE,
        ),
        (
            format!("orset-state{ORSET_ELEMENTS}"),
            Load::new(sizes.orset_state_ops, set_keys, 10),
            &set_states,
            GOAL_BIG_STATE_VS_MERGE,
        ),
        (
            format!("orset-state{ORSET_ELEMENTS}-distinct"),
            Load::new(sizes.orset_state_ops, set_keys, 10),
            &distinct_states,
            GOAL_BIG_STATE_VS_MERGE,
        ),
    ];
    let mut out = Vec::new();
    for (what, load, payloads, goal) in plan {
        let r = versus_merge(sizes.runs, &what, load, payloads, goal)?;
        progress(&r);
        out.push(r);
    }
    Ok(out)
}
