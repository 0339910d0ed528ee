//! Anti-entropy diff benchmark: two replicas of N keys differing in d keys
//! (half changed on each side) run one sync session; reports bytes each way,
//! round trips, CPU per side, states shipped and metadata per differing key.
//!
//! `cargo run --release -p converge-benches --bin sync_diff -- --keys 1000000`

use clap::Parser;
use converge::codec::encode_state;
use converge::crdt::GCounter;
use converge::sync::{Config, Outcome, Session};
use converge::{Batch, Durability, Engine, Options, ReplicaId, State};
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(Parser)]
struct Args {
    /// Keys per replica.
    #[arg(long, default_value_t = 1_000_000)]
    keys: u64,
    /// Differences to measure, comma-separated.
    #[arg(long, default_value = "0,1,100,1000,10000")]
    diffs: String,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn counter(writer: u128, n: u64) -> Vec<u8> {
    let mut g = GCounter::default();
    let _ = g.increment(ReplicaId(writer), n);
    encode_state(&State::GCounter(g))
}

fn key(i: u64) -> Vec<u8> {
    format!("key:{i:010}").into_bytes()
}

/// Copy a closed store, subdirectories included (the anti-entropy index
/// has its own, `aae/`).
fn copy_dir(from: &Path, to: &Path) -> Res<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()))?;
        } else {
            std::fs::copy(e.path(), to.join(e.file_name()))?;
        }
    }
    Ok(())
}

struct Row {
    d: u64,
    bytes_ab: u64,
    bytes_ba: u64,
    meta: u64,
    round_trips: u64,
    cpu_a: Duration,
    cpu_b: Duration,
    diff_a: f64,
    diff_b: f64,
    states: u64,
    outcome: Outcome,
}

/// One session, timing each side's work separately.
fn session(
    a: &Engine,
    b: &Engine,
) -> Res<(
    Duration,
    Duration,
    converge::sync::Stats,
    converge::sync::Stats,
    Outcome,
)> {
    let t = Instant::now();
    let (mut sa, first) = Session::initiate(a, Config::default())?;
    let mut cpu_a = t.elapsed();
    let mut cpu_b = Duration::ZERO;
    let mut sb = Session::respond(b, Config::default());
    let mut to_b = vec![first];
    let mut to_a = Vec::new();
    while !to_b.is_empty() || !to_a.is_empty() {
        for m in std::mem::take(&mut to_b) {
            let t = Instant::now();
            to_a.extend(sb.handle(&m)?);
            cpu_b += t.elapsed();
        }
        for m in std::mem::take(&mut to_a) {
            let t = Instant::now();
            to_b.extend(sa.handle(&m)?);
            cpu_a += t.elapsed();
        }
    }
    let outcome = sb.outcome().ok_or("session did not finish")?;
    Ok((cpu_a, cpu_b, *sa.stats(), *sb.stats(), outcome))
}

fn main() -> Res<()> {
    let args = Args::parse();
    let diffs: Vec<u64> = args
        .diffs
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let base = tempfile::tempdir()?;
    let (da, db) = (base.path().join("a"), base.path().join("b"));
    let t = Instant::now();
    {
        let opts = Options {
            durability: Durability::None,
            ..Options::with_replica(ReplicaId(1))
        };
        let a = Engine::open(&da, opts)?;
        let v = counter(99, 1);
        let mut batch = Batch::with_capacity(10_000);
        for i in 0..args.keys {
            batch.merge(key(i), v.clone());
            if batch.len() == 10_000 {
                a.write(&batch)?;
                batch.clear();
            }
        }
        a.write(&batch)?;
        let ingest = t.elapsed();
        let ts = Instant::now();
        a.settle()?;
        eprintln!(
            "ingested {} keys in {:.1} s, settled in {:.1} s",
            args.keys,
            ingest.as_secs_f64(),
            ts.elapsed().as_secs_f64()
        );
        a.flush()?;
        a.close()?;
    }
    {
        // Time a rebuild: open once with the tree off (drops the clean mark,
        // as a crash would), then open with it on.
        let off = Options {
            anti_entropy: false,
            ..Options::default()
        };
        drop(Engine::open(&da, off)?);
        let t = Instant::now();
        let a = Engine::open(&da, Options::default())?;
        eprintln!(
            "rebuilt the tree of {} keys at open in {:.1} s",
            a.root()?.count,
            t.elapsed().as_secs_f64()
        );
        a.close()?;
    }
    copy_dir(&da, &db)?;
    let t = Instant::now();
    let a = Engine::open(&da, Options::default())?;
    let b = Engine::open(&db, Options::default())?;
    eprintln!(
        "reopened both (clean) in {:.2} s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(a.root()?, b.root()?);

    let mut rows = Vec::new();
    let mut next = 0u64;
    for (round, d) in diffs.iter().copied().enumerate() {
        let v = counter(1000 + round as u128, 1);
        for j in 0..d {
            let k = key((next * 7919) % args.keys);
            next += 1;
            let side = if j % 2 == 0 { &a } else { &b };
            side.merge(&k, &v)?;
        }
        a.settle()?;
        b.settle()?;
        let (cpu_a, cpu_b, sa, sb, outcome) = session(&a, &b)?;
        let states = sa.states_sent + sb.states_sent;
        rows.push(Row {
            d,
            bytes_ab: sa.bytes_sent,
            bytes_ba: sb.bytes_sent,
            meta: sa.metadata_sent() + sb.metadata_sent(),
            round_trips: (sa.flights + sb.flights).div_ceil(2),
            cpu_a,
            cpu_b,
            diff_a: sa.diff_micros as f64 / 1e3,
            diff_b: sb.diff_micros as f64 / 1e3,
            states,
            outcome,
        });
        assert_eq!(a.root()?, b.root()?, "d = {d}: not converged");
    }
    println!(
        "{:>7} {:>11} {:>11} {:>11} {:>9} {:>4} {:>9} {:>9} {:>9} {:>9} {:>7}  outcome",
        "d",
        "bytes A→B",
        "bytes B→A",
        "metadata",
        "meta/key",
        "RTs",
        "diff A ms",
        "diff B ms",
        "all A ms",
        "all B ms",
        "states"
    );
    let mut json = Vec::new();
    for r in &rows {
        let per_key = if r.d > 0 {
            r.meta as f64 / r.d as f64
        } else {
            r.meta as f64
        };
        println!(
            "{:>7} {:>11} {:>11} {:>11} {:>9.1} {:>4} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>7}  {:?}",
            r.d,
            r.bytes_ab,
            r.bytes_ba,
            r.meta,
            per_key,
            r.round_trips,
            r.diff_a,
            r.diff_b,
            r.cpu_a.as_secs_f64() * 1e3,
            r.cpu_b.as_secs_f64() * 1e3,
            r.states,
            r.outcome
        );
        json.push(serde_json::json!({
            "name": format!("sync/n{}/d{}", args.keys, r.d),
            "keys": args.keys, "d": r.d,
            "bytes_a_to_b": r.bytes_ab, "bytes_b_to_a": r.bytes_ba,
            "metadata_bytes": r.meta, "metadata_per_key": per_key,
            "round_trips": r.round_trips,
            "cpu_ms_a": r.cpu_a.as_secs_f64() * 1e3, "cpu_ms_b": r.cpu_b.as_secs_f64() * 1e3,
            "diff_cpu_ms_a": r.diff_a, "diff_cpu_ms_b": r.diff_b,
            "states_shipped": r.states, "outcome": format!("{:?}", r.outcome),
        }));
    }
    if let Some(p) = args.json {
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(p, serde_json::to_string_pretty(&json)?)?;
    }
    Ok(())
}
