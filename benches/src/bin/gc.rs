//! Deletes and the collection of tombstones (issue #13):
//!
//! 1. **Space**: write N keys (counters) on replica A, sync three replicas
//!    (members of each other) with anti-entropy sessions, delete every key
//!    on A, sync again, collect on all three, compact: disk bytes of each
//!    store after the writes, at the peak (tombstones), and after
//!    collection and compaction, and how long collection takes.
//! 2. **Throughput**: deletes (batches of 100, buffered) against raw
//!    RocksDB deletes of the same keys, same run.
//! 3. **Metadata**: an OR-Set churned by 64 replicas (adds and removes of
//!    their own elements, merged as deltas), its encoded size in steady
//!    state; then the key deleted: the tombstone's size before and after
//!    collection.
//!
//! `target/release/gc [--keys 1000000] [--deletes 200000] [--only metadata,throughput,space]`

use converge::sync::{Config, Session};
use converge::{Batch, Durability, Engine, Options, ReplicaId};
use converge_benches::fixtures::disk_bytes;
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn options(id: u128) -> Options {
    Options {
        replica_id: Some(ReplicaId(id)),
        ..Options::default()
    }
    .durability(Durability::Buffered)
}

/// One anti-entropy session; both sides acknowledge what the other holds.
fn sync_ack(a: &Engine, b: &Engine) -> Res<()> {
    let config = Config {
        max_keys: 1 << 21,
        ..Config::default()
    };
    let (mut sa, first) = Session::initiate(a, config.clone())?;
    let mut sb = Session::respond(b, config);
    sb.receive(&first)?;
    loop {
        if let Some(m) = sb.next_message()? {
            sa.receive(&m)?;
        } else if let Some(m) = sa.next_message()? {
            sb.receive(&m)?;
        } else {
            break;
        }
    }
    if let Some(c) = sa.acknowledged() {
        a.acknowledge(b.replica_id(), &c)?;
    }
    if let Some(c) = sb.acknowledged() {
        b.acknowledge(a.replica_id(), &c)?;
    }
    Ok(())
}

const MIB: f64 = (1 << 20) as f64;

fn space(keys: u64) -> Res<()> {
    let dirs: Vec<tempfile::TempDir> = (0..3)
        .map(|_| tempfile::Builder::new().prefix("converge-gc-").tempdir())
        .collect::<Result<_, _>>()?;
    let reps: Vec<Engine> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| Engine::open(d.path(), options(i as u128 + 1)))
        .collect::<Result<_, _>>()?;
    for a in &reps {
        for b in &reps {
            if a.replica_id() != b.replica_id() {
                a.register_peer(b.replica_id())?;
            }
        }
    }
    let key = |i: u64| format!("key{i:09}").into_bytes();
    let t = Instant::now();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut b = Batch::with_capacity(chunk.len());
        for i in chunk {
            b.increment(key(*i), 1 + i % 7);
        }
        reps[0].write(&b)?;
    }
    eprintln!("wrote {keys} keys in {:.1} s", t.elapsed().as_secs_f64());
    let sync_all = |what: &str| -> Res<()> {
        let t = Instant::now();
        for (i, j) in [(0, 1), (0, 2), (1, 2)] {
            sync_ack(&reps[i], &reps[j])?;
        }
        eprintln!("synced ({what}) in {:.1} s", t.elapsed().as_secs_f64());
        Ok(())
    };
    sync_all("writes")?;
    let measure = |what: &str| -> Res<Vec<u64>> {
        let mut out = Vec::new();
        for (e, d) in reps.iter().zip(&dirs) {
            e.settle()?;
            e.compact()?;
            out.push(disk_bytes(d.path())?);
        }
        println!(
            "| {what} | {} |",
            out.iter()
                .map(|b| format!("{:.1} MiB", *b as f64 / MIB))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        Ok(out)
    };
    println!("\n### Space: {keys} counters, three replicas\n");
    println!("| stage | A | B | C |\n|---|---|---|---|");
    let written = measure("written and synced (compacted)")?;
    let t = Instant::now();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut b = Batch::with_capacity(chunk.len());
        for i in chunk {
            b.delete(key(*i), None);
        }
        reps[0].write(&b)?;
    }
    let del_s = t.elapsed().as_secs_f64();
    sync_all("deletes")?;
    // Acknowledgements of the deletes reach everyone.
    sync_all("acknowledgements")?;
    let peak = measure("deleted, tombstones (compacted)")?;
    let mut collect_s = Vec::new();
    for e in &reps {
        let t = Instant::now();
        let r = e.collect()?;
        collect_s.push(t.elapsed().as_secs_f64());
        assert_eq!(r.purged, keys, "{r:?}");
    }
    let after = measure("collected and compacted")?;
    for e in &reps {
        e.settle()?;
    }
    assert_eq!(reps[0].root()?, reps[1].root()?);
    assert_eq!(reps[0].root()?.count, 0);
    println!();
    for i in 0..3 {
        println!(
            "- replica {}: after collection {:.1} % of the peak, {:.1} % of the written store; \
             collect took {:.1} s ({:.0} keys/s)",
            ["A", "B", "C"][i],
            100.0 * after[i] as f64 / peak[i].max(written[i]) as f64,
            100.0 * after[i] as f64 / written[i] as f64,
            collect_s[i],
            keys as f64 / collect_s[i]
        );
    }
    println!(
        "- deleting {keys} keys on A (batches of 1,000): {:.1} s ({:.0} keys/s)",
        del_s,
        keys as f64 / del_s
    );
    for e in reps {
        e.close()?;
    }
    Ok(())
}

fn throughput(n: u64) -> Res<()> {
    let dir = tempfile::Builder::new().prefix("converge-gc-").tempdir()?;
    let e = Engine::open(dir.path(), options(1))?;
    let key = |i: u64| format!("key{i:09}").into_bytes();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut b = Batch::with_capacity(chunk.len());
        for i in chunk {
            b.increment(key(*i), 1);
        }
        e.write(&b)?;
    }
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut b = Batch::with_capacity(chunk.len());
        for i in chunk {
            b.delete(key(*i), None);
        }
        e.write(&b)?;
    }
    let ours = n as f64 / t.elapsed().as_secs_f64();
    e.close()?;

    let rdir = tempfile::Builder::new()
        .prefix("converge-gc-raw-")
        .tempdir()?;
    let o = Options::default().durability(Durability::Buffered);
    let db = rocksdb::DB::open(&o.rocksdb_options(), rdir.path())?;
    let w = o.write_options();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut wb = rocksdb::WriteBatch::default();
        for i in chunk {
            wb.put(key(*i), 1u64.to_le_bytes());
        }
        db.write_opt(wb, &w)?;
    }
    let t = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut wb = rocksdb::WriteBatch::default();
        for i in chunk {
            wb.delete(key(*i));
        }
        db.write_opt(wb, &w)?;
    }
    let raw = n as f64 / t.elapsed().as_secs_f64();
    println!("\n### Delete throughput ({n} keys, batches of 100, buffered)\n");
    println!("| converge delete | raw RocksDB delete | ratio |\n|---|---|---|");
    println!(
        "| {:.0} ops/s | {:.0} ops/s | {:.2}x |",
        ours,
        raw,
        ours / raw
    );
    Ok(())
}

fn metadata() -> Res<()> {
    use converge::crdt::ORSet;
    let dir = tempfile::Builder::new().prefix("converge-gc-").tempdir()?;
    let e = Engine::open(dir.path(), options(1000))?;
    let mut replicas: Vec<ORSet> = vec![ORSet::default(); 64];
    let mut seqs = [0u64; 64];
    // Each replica keeps about 16 of its own elements live: add one, and
    // remove its element from 16 rounds ago.
    for round in 0..200u64 {
        for (r, set) in replicas.iter_mut().enumerate() {
            let id = ReplicaId(r as u128 + 1);
            let add = set.add(id, format!("r{r}-e{round}").as_bytes());
            let mut deltas = vec![add];
            if round >= 16 {
                let old = format!("r{r}-e{}", round - 16);
                deltas.push(set.remove(old.as_bytes(), None));
            }
            for d in deltas {
                seqs[r] += 1;
                let delta = converge::Delta {
                    origin: id,
                    seq: seqs[r],
                    deps: None,
                    state: converge::State::ORSet(d),
                };
                e.merge(b"cart", &delta.encode())?;
            }
        }
    }
    let steady = e.state_bytes(b"cart")?.map_or(0, |b| b.len());
    let members = e.set_members(b"cart")?.members.len();
    e.delete(b"cart", None)?;
    let tomb = e.state_bytes(b"cart")?.map_or(0, |b| b.len());
    let r = e.collect()?;
    let after = e.state_bytes(b"cart")?.map_or(0, |b| b.len());
    println!("\n### Metadata of an OR-Set churned by 64 replicas\n");
    println!("| stage | encoded state |\n|---|---|");
    let adds = 200 * 64;
    let removes = (200 - 16) * 64;
    println!(
        "| steady state: {members} live elements after {adds} adds and {removes} removes | {steady} B ({:.1} B per live element) |",
        steady as f64 / members as f64
    );
    println!("| deleted: the tombstone | {tomb} B |");
    println!("| collected (purged: {}) | {after} B |", r.purged);
    e.close()?;
    Ok(())
}

fn main() -> Res<()> {
    let keys = arg("--keys", 1_000_000);
    let deletes = arg("--deletes", 200_000);
    println!(
        "gc benchmark, {} (release build)",
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let run = |part: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == part))
    };
    if run("metadata") {
        metadata()?;
    }
    if run("throughput") {
        throughput(deletes)?;
    }
    if run("space") {
        space(keys)?;
    }
    Ok(())
}
