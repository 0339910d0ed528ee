//! Peak memory of one side of a sync session against a hostile peer (a
//! program driving the public sans-IO API with forged messages) and in an
//! honest session between a large replica and an empty one.
//!
//! Measured with a counting global allocator (the Rust heap: every buffer
//! a session holds; RocksDB's own C++ allocations — memtables, block
//! cache — are the engine's, not the session's) and with the process's
//! peak resident set (reset through /proc/self/clear_refs before each
//! scenario).
//!
//! `target/release/sync_memory DIR [--keys 300000]`

use converge::sync::{self, Body, Config, Envelope, Session};
use converge::{Batch, Durability, Engine, Options, ReplicaId};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts live and peak heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = LIVE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        // SAFETY: forwarded.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        // SAFETY: forwarded.
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = LIVE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                LIVE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MIB: f64 = (1 << 20) as f64;

/// Start a measurement: (live heap now, after resetting the peaks).
fn start() -> usize {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// A `kB` field of /proc/self/status (`VmHWM`: peak resident set since
/// the last reset; `VmRSS`: now), or 0.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn report(name: &str, base: usize, rss_before: u64, wire: u64, outcome: &str) {
    let heap = PEAK.load(Ordering::Relaxed).saturating_sub(base) as f64 / MIB;
    let rss = status_kib("VmHWM").saturating_sub(rss_before) as f64 / 1024.0;
    println!(
        "{name:<44} wire {:>7.1} MiB  peak heap +{heap:>6.1} MiB  peak RSS +{rss:>6.1} MiB  {outcome}",
        wire as f64 / MIB
    );
}

fn open(dir: &std::path::Path, name: &str, id: u128) -> Res<Engine> {
    Ok(Engine::open(
        dir.join(name),
        Options {
            replica_id: Some(ReplicaId(id)),
            ..Options::default()
        }
        .durability(Durability::None),
    )?)
}

fn fill(e: &Engine, keys: u64) -> Res<()> {
    for chunk in (0..keys).collect::<Vec<_>>().chunks(10_000) {
        let mut b = Batch::with_capacity(chunk.len());
        for i in chunk {
            b.increment(format!("key:{i:010}"), 1 + i % 7);
        }
        e.write(&b)?;
    }
    e.settle()?;
    Ok(())
}

/// xorshift: forged hashes.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn msg(session: u64, seq: u32, body: Body<'_>) -> Vec<u8> {
    sync::encode(&Envelope { session, seq, body })
}

/// Drain a side's output, returning the bytes pulled.
fn drain<S: sync::SyncStore>(s: &mut Session<S>) -> Result<u64, sync::SyncError> {
    let mut n = 0;
    while let Some(m) = s.next_message()? {
        n += m.len() as u64;
    }
    Ok(n)
}

/// The victim responds; the hostile initiator sends a Summary, then
/// `parts` key-list parts of `part_bytes` forged entries each.
fn forged_key_lists(victim: &Engine, parts: u32, part_bytes: usize) -> Res<()> {
    let (_, first) = Session::initiate(victim, Config::default())?;
    let session = sync::decode(&first, usize::MAX, 1024)?.session;
    let rss0 = status_kib("VmRSS");
    let base = start();
    let mut s = Session::respond(victim, Config::default());
    // The victim's own Summary, replayed: roots equal would end it, so
    // change the root.
    let summary = msg(
        session,
        0,
        Body::Summary {
            horizon: Default::default(),
            root: 1,
            count: 1,
            context: Default::default(),
        },
    );
    s.receive(&summary)?;
    drain(&mut s)?;
    let mut wire = summary.len() as u64;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let per_part = part_bytes / sync::ENTRY_LEN;
    let mut kh = 0u64;
    let step = u64::MAX / (per_part as u64 * parts as u64 + 1);
    let mut outcome = String::from("accepted");
    for p in 0..parts {
        let mut blob = Vec::with_capacity(per_part * sync::ENTRY_LEN);
        for _ in 0..per_part {
            kh += step;
            sync::push_entry(&mut blob, kh, next(&mut seed) as u128);
        }
        let m = msg(
            session,
            p + 1,
            Body::KeyList {
                differing: vec![u64::MAX; 16],
                entries: &blob,
                last: p + 1 == parts,
            },
        );
        wire += m.len() as u64;
        drop(blob);
        if let Err(e) = s.receive(&m).and_then(|()| drain(&mut s)) {
            outcome = format!("ended: {e}");
            break;
        }
    }
    if outcome == "accepted" {
        outcome = format!("truncated={}", s.stats().truncated);
    }
    report(
        &format!("forged key list, {parts} parts of {} MiB", part_bytes >> 20),
        base,
        rss0,
        wire,
        &outcome,
    );
    Ok(())
}

/// The victim initiates with key lists; the hostile responder answers
/// with an estimate that differs everywhere, then `parts` Exchange parts
/// of forged wants.
fn forged_wants(victim: &Engine, parts: u32, part_bytes: usize) -> Res<()> {
    let cfg = Config {
        iblt: false,
        ..Config::default()
    };
    let rss0 = status_kib("VmRSS");
    let base = start();
    let (mut s, first) = Session::initiate(victim, cfg)?;
    let session = sync::decode(&first, usize::MAX, 1024)?.session;
    let est = msg(
        session,
        0,
        Body::Estimate {
            horizon: Default::default(),
            hashes: vec![7; 1024],
            context: Default::default(),
        },
    );
    s.receive(&est)?;
    let mut wire = drain(&mut s)?;
    let mut seed = 0x1234_5678u64;
    for p in 0..parts {
        let khs: Vec<u64> = (0..part_bytes / 8).map(|_| next(&mut seed)).collect();
        let want = sync::hashes_blob(&khs);
        drop(khs);
        let m = msg(
            session,
            p + 1,
            Body::Exchange {
                states: &[],
                want: &want,
                last: p + 1 == parts,
            },
        );
        wire += m.len() as u64;
        s.receive(&m)?;
        wire += drain(&mut s)?;
    }
    report(
        &format!("forged wants, {parts} parts of {} MiB", part_bytes >> 20),
        base,
        rss0,
        wire,
        &format!("truncated={}", s.stats().truncated),
    );
    Ok(())
}

/// A forged Summary whose record is as large as a control message may be.
fn forged_context(victim: &Engine) -> Res<()> {
    let mut ctx = converge::CausalContext::new();
    let mut seed = 99u64;
    // About 18 bytes per replica on the wire: fill most of 1 MiB.
    for _ in 0..50_000 {
        ctx.insert_range(
            ReplicaId(((next(&mut seed) as u128) << 64) | next(&mut seed) as u128),
            1,
            1 + next(&mut seed) % 1000,
        );
    }
    let m = msg(
        5,
        0,
        Body::Summary {
            horizon: Default::default(),
            root: 1,
            count: 1,
            context: ctx,
        },
    );
    let rss0 = status_kib("VmRSS");
    let base = start();
    let mut s = Session::respond(victim, Config::default());
    let r = s.receive(&m);
    let wire = m.len() as u64;
    let _ = drain(&mut s);
    report(
        "forged record in a Summary",
        base,
        rss0,
        wire,
        &match r {
            Ok(()) => "accepted".to_string(),
            Err(e) => format!("ended: {e}"),
        },
    );
    Ok(())
}

/// An honest session between `full` and an empty replica, message by
/// message; reports the largest message too.
fn honest(full: &Engine, empty: &Engine) -> Res<()> {
    let rss0 = status_kib("VmRSS");
    let base = start();
    let ((oa, sa), (ob, sb)) = sync::sync_engines(full, empty, Config::default())?;
    report(
        "honest: full replica -> empty, both sides",
        base,
        rss0,
        sa.bytes_sent + sb.bytes_sent,
        &format!("{oa:?}/{ob:?}"),
    );
    Ok(())
}

fn main() -> Res<()> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().ok_or("usage: sync_memory DIR [--keys N]")?);
    let mut keys = 300_000u64;
    while let Some(a) = args.next() {
        if a == "--keys" {
            keys = args.next().ok_or("--keys N")?.parse()?;
        }
    }
    let full = open(&dir, "full", 1)?;
    fill(&full, keys)?;
    println!(
        "sync_memory: {keys} keys, defaults: message_budget {} MiB, stage_bytes {} MiB, max_keys {}",
        Config::default().message_budget >> 20,
        Config::default().stage_bytes >> 20,
        Config::default().max_keys
    );
    forged_key_lists(&full, 12, 4 << 20)?;
    forged_wants(&full, 8, 4 << 20)?;
    forged_context(&full)?;
    let empty = open(&dir, "empty", 2)?;
    honest(&full, &empty)?;
    Ok(())
}
