//! Local operations persisted through the engine (counter increments,
//! OR-Set add and remove, LWW writes, MV-register writes), against raw
//! RocksDB puts of values of the size the engine persists, and against the
//! read-modify-write baseline.

use crate::fixtures::{elem, increment, local_replica, open_engine};
use crate::measure::{drive, key, paired, rate, Load};
use crate::peers::RawDb;
use crate::record::{Record, OPS_PER_S};
use crate::suite::Sizes;
use crate::BenchResult;
use converge::causal::{CausalContext, HybridClock, Timestamp};
use converge::codec::encode_state;
use converge::crdt::{GCounter, LwwRegister, MvRegister, ORSet};
use converge::{Batch, CrdtType, Durability, Engine, State};

/// Goal: persisted local operations at least this fraction of raw puts.
pub const GOAL_VS_PUT: f64 = 0.8;
/// Goal: 10M-key ingest at least this fraction of the 1M-key ingest.
pub const GOAL_SCALE: f64 = 0.7;
/// Elements an OR-Set add workload cycles through per key.
const ADD_ELEMENTS: u64 = 8;

/// A kind of local operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// G-Counter increment by 1.
    Counter,
    /// OR-Set add of one of a few elements.
    OrSetAdd,
    /// OR-Set remove of an element added before the timed region.
    OrSetRemove,
    /// LWW register write (a blind write).
    Lww,
    /// MV register write based on a read of the key's context (the read is
    /// part of the operation, as it is for a user).
    MvWrite,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Counter,
        Kind::OrSetAdd,
        Kind::OrSetRemove,
        Kind::Lww,
        Kind::MvWrite,
    ];

    /// Name in record names.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::OrSetAdd => "orset-add",
            Kind::OrSetRemove => "orset-remove",
            Kind::Lww => "lww",
            Kind::MvWrite => "mvreg",
        }
    }

    /// Bytes of the encoded delta one operation persists: the raw-put peer
    /// writes values of this size.
    pub fn value_len(self) -> BenchResult<usize> {
        let me = local_replica();
        let state = match self {
            Kind::Counter => State::GCounter(increment(&mut GCounter::default(), me, 1)?),
            Kind::OrSetAdd => State::ORSet(ORSet::default().add(me, &elem(0))),
            Kind::OrSetRemove => {
                let mut s = ORSet::default();
                s.add(me, &elem(0));
                State::ORSet(s.remove(&elem(0), None))
            }
            Kind::Lww => {
                let ts = HybridClock::new(Timestamp::default()).tick();
                State::LwwRegister(LwwRegister::default().set(ts, me, &elem(0)))
            }
            Kind::MvWrite => {
                State::MvRegister(MvRegister::default().write(me, &elem(0), &CausalContext::new()))
            }
        };
        Ok(encode_state(&state).len())
    }
}

/// The element operation `op` adds or removes.
fn elem_of(kind: Kind, load: &Load, op: u64) -> Vec<u8> {
    match kind {
        Kind::OrSetRemove => elem(op / load.keys.max(1)),
        _ => elem(op % ADD_ELEMENTS),
    }
}

/// Untimed set-up: for removes, add every element the load will remove,
/// then flush the memtables. The adds put each key's growing set once per
/// batch of 10,000, ten times more records than the raw peer's fill of
/// one put per key (`put_run`, which flushes too); unflushed, the timed
/// removes inserted into a memtable ten times fuller than the peer's, and
/// their RocksDB write cost about twice the counter row's for the same
/// bytes and records (BENCHMARKS.md, 2026-11-28, "where each row's time
/// goes").
pub fn prepare(engine: &Engine, kind: Kind, load: &Load) -> BenchResult<()> {
    if kind != Kind::OrSetRemove {
        return Ok(());
    }
    let mut b = Batch::with_capacity(10_000);
    for op in 0..load.ops {
        b.orset_add(key(load.key_of(op)), elem_of(kind, load, op));
        if b.len() == 10_000 {
            engine.write(&b)?;
            b.clear();
        }
    }
    engine.write(&b)?;
    engine.flush()?;
    Ok(())
}

/// One operation through the single-operation API.
fn single(engine: &Engine, kind: Kind, load: &Load, op: u64) -> BenchResult<()> {
    let k = key(load.key_of(op));
    match kind {
        Kind::Counter => engine.increment(&k, 1)?,
        Kind::OrSetAdd => engine.orset_add(&k, &elem_of(kind, load, op))?,
        Kind::OrSetRemove => engine
            .orset_remove(&k, &elem_of(kind, load, op), None)?
            .ok_or("the benchmark removes elements it added: this one removed nothing")?,
        Kind::Lww => engine.lww_set(&k, &elem(op))?,
        Kind::MvWrite => {
            let ctx = engine.mv_read(&k)?.context;
            engine.mv_write(&k, &elem(op), &ctx)?
        }
    };
    Ok(())
}

/// Run the load through `engine` and return its throughput.
pub fn engine_rate(engine: &Engine, kind: Kind, load: &Load) -> BenchResult<f64> {
    let elapsed = drive(load, |ops| {
        if let [op] = ops {
            return single(engine, kind, load, *op);
        }
        let mut b = Batch::with_capacity(ops.len());
        for op in ops {
            let k = key(load.key_of(*op));
            match kind {
                Kind::Counter => b.increment(k, 1),
                Kind::OrSetAdd => b.orset_add(k, elem_of(kind, load, *op)),
                Kind::OrSetRemove => b.orset_remove(k, elem_of(kind, load, *op)),
                Kind::Lww => b.lww_set(k, elem(*op)),
                Kind::MvWrite => {
                    let ctx = engine.mv_read(&k)?.context;
                    b.mv_write(k, elem(*op), ctx)
                }
            };
        }
        engine.write(&b)?;
        Ok(())
    })?;
    Ok(rate(load.ops, elapsed))
}

/// A fresh engine, prepared, then the timed load.
pub fn converge_run(kind: Kind, durability: Durability, load: &Load) -> BenchResult<f64> {
    let (engine, _dir) = open_engine(durability)?;
    prepare(&engine, kind, load)?;
    engine_rate(&engine, kind, load)
}

/// A fresh raw database (with every key put once first and flushed, for
/// the remove workload whose engine is prepared too), then the timed puts.
pub fn put_run(kind: Kind, durability: Durability, load: &Load) -> BenchResult<f64> {
    put_run_on(RawDb::open(durability)?, kind, load)
}

/// [`put_run`] into a database whose memtable is the engine's `state`
/// family's (hashed by key), not RocksDB's default skip list.
pub fn put_run_hashed(kind: Kind, durability: Durability, load: &Load) -> BenchResult<f64> {
    put_run_on(RawDb::open_hashed(durability)?, kind, load)
}

fn put_run_on(raw: RawDb, kind: Kind, load: &Load) -> BenchResult<f64> {
    let value = vec![0x5a; kind.value_len()?];
    if kind == Kind::OrSetRemove {
        let fill = Load::new(load.keys, load.keys, 10_000);
        raw.put_load(&fill, &value)?;
        raw.db().flush()?;
    }
    Ok(rate(load.ops, raw.put_load(load, &value)?))
}

/// The read-modify-write baseline for counters and OR-Set adds.
pub fn rmw_run(kind: Kind, load: &Load) -> BenchResult<f64> {
    let raw = RawDb::open(Durability::Buffered)?;
    let me = local_replica();
    let elapsed = match kind {
        Kind::Counter => raw.rmw_load(load, CrdtType::GCounter, |_, s| match s {
            State::GCounter(g) => increment(g, me, 1).map(|_| ()),
            _ => Err("stored state is not a counter".into()),
        })?,
        Kind::OrSetAdd => raw.rmw_load(load, CrdtType::ORSet, |op, s| match s {
            State::ORSet(set) => {
                set.add(me, &elem(op % ADD_ELEMENTS));
                Ok(())
            }
            _ => Err("stored state is not an OR-Set".into()),
        })?,
        other => return Err(format!("no read-modify-write baseline for {other:?}").into()),
    };
    Ok(rate(load.ops, elapsed))
}

/// Short form of a count: 10k, 1M.
pub fn short(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn durability_name(d: Durability) -> &'static str {
    match d {
        Durability::Sync => "sync",
        Durability::Buffered => "buffered",
        Durability::None => "nowal",
    }
}

/// Measure one local workload against raw puts.
fn versus_put(runs: usize, kind: Kind, durability: Durability, load: Load) -> BenchResult<Record> {
    let (ours, peer) = paired(
        runs,
        || converge_run(kind, durability, &load),
        || put_run(kind, durability, &load),
    )?;
    let name = format!(
        "local/{}/{}/b{}/k{}/t{}",
        kind.name(),
        durability_name(durability),
        load.batch,
        short(load.keys),
        load.threads
    );
    Ok(Record::versus(name, ours, OPS_PER_S, "rocksdb put", peer).goal(GOAL_VS_PUT))
}

/// Every local-operation record of a suite; `progress` sees each one.
pub fn records(sizes: &Sizes, progress: &mut dyn FnMut(&Record)) -> BenchResult<Vec<Record>> {
    let mut out = Vec::new();
    let mut push = |r: Record, out: &mut Vec<Record>| {
        progress(&r);
        out.push(r);
    };
    let buffered = Durability::Buffered;
    for (i, &keys) in sizes.keyspaces.iter().enumerate() {
        let ops = sizes.ops.max(keys);
        for kind in Kind::ALL {
            let r = versus_put(sizes.runs, kind, buffered, Load::new(ops, keys, 100))?;
            push(r, &mut out);
        }
        for &batch in sizes.batches.iter().filter(|b| **b != 100) {
            let n = if batch == 1 { sizes.ops_batch1 } else { ops };
            let r = versus_put(
                sizes.runs,
                Kind::Counter,
                buffered,
                Load::new(n, keys, batch),
            )?;
            push(r, &mut out);
        }
        for &threads in sizes.threads.iter().filter(|t| **t != 1) {
            let load = Load::new(ops, keys, 100).threads(threads);
            push(
                versus_put(sizes.runs, Kind::Counter, buffered, load)?,
                &mut out,
            );
        }
        if i == 0 {
            // The same as the first row, against raw puts into the engine's
            // own kind of memtable (not a goal: the goals are against
            // RocksDB as a user opens it).
            let load = Load::new(ops, keys, 100);
            let (ours, peer) = paired(
                sizes.runs,
                || converge_run(Kind::Counter, buffered, &load),
                || put_run_hashed(Kind::Counter, buffered, &load),
            )?;
            let name = format!("local/counter/buffered/b100/k{}/t1/hashed", short(keys));
            let peer_name = "rocksdb put, hashed memtable";
            push(
                Record::versus(name, ours, OPS_PER_S, peer_name, peer),
                &mut out,
            );
            // Hot keys: ten times the operations per key. Operations that
            // read the state pay for every merge operand not yet compacted.
            let hot = Load::new(ops, (keys / 10).max(1), 100);
            push(
                versus_put(sizes.runs, Kind::Counter, buffered, hot)?,
                &mut out,
            );
            for (kind, batch) in [(Kind::Counter, 1), (Kind::Counter, 100), (Kind::Lww, 1)] {
                let load = Load::new(sizes.sync_writes * batch as u64, keys, batch);
                push(
                    versus_put(sizes.runs, kind, Durability::Sync, load)?,
                    &mut out,
                );
            }
            for (kind, batch) in [
                (Kind::Counter, 1),
                (Kind::Counter, 100),
                (Kind::OrSetAdd, 100),
            ] {
                let n = if batch == 1 { sizes.ops_batch1 } else { ops };
                let load = Load::new(n, keys, batch);
                let (ours, peer) = paired(
                    sizes.runs,
                    || converge_run(kind, buffered, &load),
                    || rmw_run(kind, &load),
                )?;
                let name = format!("rmw/{}/b{batch}/k{}", kind.name(), short(keys));
                let r = Record::versus(name, ours, OPS_PER_S, "read-modify-write", peer);
                push(r, &mut out);
            }
        }
    }
    Ok(out)
}

/// The ingest scale point (area `scale`): every key written once, batch
/// 100, at the suite's small and large key counts, against raw puts, and
/// the large rate against the small one.
pub fn scale_records(sizes: &Sizes, progress: &mut dyn FnMut(&Record)) -> BenchResult<Vec<Record>> {
    let mut out = Vec::new();
    let mut push = |r: Record, out: &mut Vec<Record>| {
        progress(&r);
        out.push(r);
    };
    let buffered = Durability::Buffered;
    if let Some((small, large)) = sizes.scale {
        let runs = sizes.runs.min(3);
        let mut rates = Vec::new();
        for keys in [small, large] {
            let load = Load::new(keys, keys, 100);
            let (ours, peer) = paired(
                runs,
                || converge_run(Kind::Counter, buffered, &load),
                || put_run(Kind::Counter, buffered, &load),
            )?;
            let name = format!("scale/counter-ingest/k{}", short(keys));
            let r = Record::versus(name, ours, OPS_PER_S, "rocksdb put", peer).goal(GOAL_VS_PUT);
            push(r, &mut out);
            rates.push(ours);
        }
        let name = format!(
            "scale/counter-ingest/k{}-vs-k{}",
            short(large),
            short(small)
        );
        let peer = format!("converge k{}", short(small));
        let r = Record::versus(name, rates[1], OPS_PER_S, peer, rates[0]).goal(GOAL_SCALE);
        push(r, &mut out);
    }
    Ok(out)
}
