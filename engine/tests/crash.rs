//! Child processes are killed with SIGKILL at random moments; after each
//! reopen no acknowledged write is lost, the store opens, and the rebuilt
//! anti-entropy tree verifies.
//!
//! - A writer with `Sync` durability: every acknowledged write is there,
//!   the changes feed's log holds every operation, and every peer delta
//!   that was waiting for its dependencies is still pending — and applied
//!   once they arrive.
//! - A process running sync sessions between two replicas it writes to
//!   (both engines in the child, so the kill lands in either side's
//!   handling of a message, including the atomic join of received
//!   states): each replica keeps its own acknowledged writes and those a
//!   converged session brought it, and the two converge afterwards.
//! - A loader without a WAL (`Durability::None`): every key that survives
//!   the kill survives with its type.
//!
//! `cargo test` runs a short slice with a fixed seed; `make soak`
//! (`CONVERGE_KILLS=N`, `CONVERGE_CRASH_KEYS=K` keys loaded first, to
//! measure the tree rebuild at reopen) runs the soak and prints what it
//! measured.

mod common;
#[path = "crash/soak.rs"]
mod soak;
use common::small_options;
use converge::crdt::GCounter;
use converge::sync::{sync_engines, Config, Outcome};
use converge::{Batch, CausalContext, Delta, Durability, Engine, ReplicaId, State};
use soak::{env_u64, kill_child_after, Report, Rng};
use std::time::Instant;

const DIR_ENV: &str = "CONVERGE_CRASH_DIR";
const START_ENV: &str = "CONVERGE_CRASH_START";

/// `Sync` durability, and a changes feed that keeps every operation (the
/// test counts them; a soak preloads many).
fn sync_options(id: u128) -> converge::Options {
    converge::Options {
        feed_retain_bytes: 1 << 30,
        ..small_options(id).durability(Durability::Sync)
    }
}

/// Child: write forever, printing the number of each acknowledged write.
#[test]
#[ignore = "child process of sigkill_loses_no_acknowledged_write"]
fn crash_child() {
    let (Ok(dir), Ok(start)) = (std::env::var(DIR_ENV), std::env::var(START_ENV)) else {
        panic!("run by the crash test only");
    };
    let start: u64 = start.parse().unwrap();
    let e = Engine::open(dir, sync_options(42)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in start.. {
        let mut b = Batch::new();
        b.increment(b"count", 1)
            .gset_add(format!("g{}", i % 16), i.to_be_bytes().to_vec())
            .orset_add(b"or", i.to_be_bytes().to_vec())
            .merge(b"peer", peer_delta(i + 2));
        e.write(&b).unwrap();
        use std::io::Write;
        writeln!(out, "{i}").unwrap();
        out.flush().unwrap();
    }
}

/// Operation `seq` of peer 7 on a G-Counter: it depends on the peer's
/// operation 1, which only arrives at the end.
fn peer_delta(seq: u64) -> Vec<u8> {
    let mut g = GCounter::default();
    g.increment(ReplicaId(7), seq).unwrap();
    Delta {
        origin: ReplicaId(7),
        seq,
        deps: Some(CausalContext::new()),
        state: State::GCounter(g),
    }
    .encode()
}

#[test]
fn sigkill_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let kills = env_u64("CONVERGE_KILLS").unwrap_or(12);
    let mut rng = Rng::from_env();
    let keys = soak::preload(dir.path(), sync_options(42));
    let mut report = Report::new("writer with Sync durability", keys);
    let mut acked: u64 = 0; // writes 0..acked are acknowledged
    for round in 0..kills {
        let lines = kill_child_after(
            "crash_child",
            &[(DIR_ENV, dir.path().display().to_string())],
            &[(START_ENV, acked.to_string())],
            rng.lifetime() + report.last_reopen(),
        );
        if let Some(last) = lines.iter().rev().find_map(|l| l.parse::<u64>().ok()) {
            acked = last + 1;
        }
        let t = Instant::now();
        let e = match Engine::open(dir.path(), sync_options(42)) {
            Ok(e) => e,
            Err(err) => {
                report.reopen_failures += 1;
                report.finish();
                panic!("round {round}: reopen failed: {err}");
            }
        };
        report.reopened(t.elapsed());
        let count = e.counter_value(b"count").unwrap();
        let or = e.set_members(b"or").unwrap().members;
        let g: Vec<Vec<Vec<u8>>> = (0..16)
            .map(|k| e.set_members(format!("g{k}").as_bytes()).unwrap().members)
            .collect();
        for i in 0..acked {
            let elem = i.to_be_bytes().to_vec();
            report.checked += 1;
            let g = &g[(i % 16) as usize];
            if or.binary_search(&elem).is_err() || g.binary_search(&elem).is_err() {
                report.lost += 1;
                eprintln!("round {round}: acknowledged write {i} lost");
            }
        }
        // Writes past the last acknowledgement may or may not be there, but
        // the counter and the set agree on how many landed.
        acked = acked.max(or.len() as u64);
        assert_eq!(
            count,
            or.len() as i128,
            "round {round}: batch was not atomic"
        );
        report.verified(e.verify().unwrap().consistent);
        // Three local operations per batch (after one per preloaded key):
        // the persisted sequence number landed with the data, with no gap.
        let ctx = e.context();
        assert_eq!(
            ctx.vv().get(ReplicaId(42)),
            keys + 3 * or.len() as u64,
            "round {round}: sequence numbers and data disagree"
        );
        assert!(ctx.cloud().is_empty(), "round {round}: a gap in the record");
        // Every landed batch parked one peer delta, and logged its three
        // operations.
        assert_eq!(
            e.pending().entries,
            or.len() as u64,
            "round {round}: pending entries lost"
        );
        assert_eq!(e.counter_value(b"peer").unwrap(), 0);
        assert_eq!(
            logged(&e),
            keys + 3 * or.len() as u64,
            "round {round}: the log lost operations"
        );
        if round == kills - 1 {
            // The missing dependency arrives: everything pending applies.
            e.merge(b"peer", &peer_delta(1)).unwrap();
            assert_eq!(e.pending().entries, 0);
            assert_eq!(e.counter_value(b"peer").unwrap(), or.len() as i128 + 1);
        }
    }
    report.acknowledged = acked;
    // For comparison, a reopen after the clean close (drop) of the last
    // round's engine: the tree is loaded, not rebuilt.
    let t = Instant::now();
    drop(Engine::open(dir.path(), sync_options(42)).unwrap());
    println!(
        "reopen after a clean close over {keys}+ keys: {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    report.finish();
    assert!(acked > 0, "the child never acknowledged a write");
}

/// The operations the changes feed's log holds, page by page (a page
/// carries at most 16 MiB of log).
fn logged(e: &Engine) -> u64 {
    let mut cursor = CausalContext::new();
    let mut operations = 0;
    loop {
        let page = e.changes_since(&cursor, usize::MAX).unwrap();
        operations += page.operations;
        if !page.more {
            return operations;
        }
        cursor = page.next;
    }
}

/// One write of replica `side` (`a` or `b`): a unique element in one of
/// 32 G-Sets, and its counter of writes.
fn side_write(e: &Engine, side: char, i: u64) {
    let mut b = Batch::new();
    b.gset_add(format!("{side}{}", i % 32), i.to_be_bytes().to_vec())
        .increment(format!("n{side}"), 1);
    e.write(&b).unwrap();
}

/// Child: two replicas write, and sync after every other write pair,
/// printing `A i` / `B i` for acknowledged writes, `s` when a session
/// starts and `S i j` after a session that converged both sides once
/// `A i` and `B j` were acknowledged.
#[test]
#[ignore = "child process of sigkill_during_sync_sessions"]
fn crash_sync_child() {
    let (Ok(dir), Ok(start)) = (std::env::var(DIR_ENV), std::env::var(START_ENV)) else {
        panic!("run by the crash test only");
    };
    let (sa, sb) = start.split_once(',').unwrap();
    let (sa, sb): (u64, u64) = (sa.parse().unwrap(), sb.parse().unwrap());
    let dir = std::path::Path::new(&dir);
    let a = Engine::open(dir.join("a"), sync_options(1)).unwrap();
    let b = Engine::open(dir.join("b"), sync_options(2)).unwrap();
    let config = Config {
        message_budget: 512,
        ..Config::default()
    };
    let mut out = std::io::stdout().lock();
    use std::io::Write;
    for i in 0.. {
        side_write(&a, 'a', sa + i);
        writeln!(out, "A {}", sa + i).unwrap();
        side_write(&b, 'b', sb + i);
        writeln!(out, "B {}", sb + i).unwrap();
        out.flush().unwrap();
        if i % 2 == 1 {
            writeln!(out, "s").unwrap();
            out.flush().unwrap();
            let ((oa, _), (ob, _)) = sync_engines(&a, &b, config.clone()).unwrap();
            if matches!(oa, Outcome::Converged | Outcome::Equal)
                && matches!(ob, Outcome::Converged | Outcome::Equal)
            {
                writeln!(out, "S {} {}", sa + i, sb + i).unwrap();
                out.flush().unwrap();
            }
        }
    }
}

/// The writes `side` made that `e` holds, out of `0..upto`; counts the
/// missing ones into `report`.
fn check_side(e: &Engine, side: char, upto: u64, report: &mut Report, what: &str) {
    let sets: Vec<Vec<Vec<u8>>> = (0..32)
        .map(|k| {
            e.set_members(format!("{side}{k}").as_bytes())
                .unwrap()
                .members
        })
        .collect();
    for i in 0..upto {
        let members = &sets[(i % 32) as usize];
        report.checked += 1;
        if members.binary_search(&i.to_be_bytes().to_vec()).is_err() {
            report.lost += 1;
            eprintln!("{what}: acknowledged write {side}{i} lost");
        }
    }
}

fn last_of(lines: &[String], tag: &str) -> Option<Vec<u64>> {
    lines
        .iter()
        .rev()
        .filter_map(|l| l.strip_prefix(tag))
        .find_map(|rest| rest.split(' ').map(|n| n.parse().ok()).collect())
}

#[test]
fn sigkill_during_sync_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let kills = env_u64("CONVERGE_KILLS").unwrap_or(4);
    let mut rng = Rng::from_env();
    let mut report = Report::new("two replicas in sync sessions, Sync durability", 0);
    let (mut na, mut nb) = (0u64, 0u64); // writes landed on each side
    let mut mid_session = 0; // kills that landed inside a session
    for round in 0..kills {
        let lines = kill_child_after(
            "crash_sync_child",
            &[(DIR_ENV, dir.path().display().to_string())],
            &[(START_ENV, format!("{na},{nb}"))],
            rng.lifetime() + report.last_reopen(),
        );
        let acked_a = last_of(&lines, "A ").map_or(na, |v| v[0] + 1);
        let acked_b = last_of(&lines, "B ").map_or(nb, |v| v[0] + 1);
        let synced = last_of(&lines, "S ");
        if lines.last().is_some_and(|l| l == "s") {
            mid_session += 1;
        }
        let t = Instant::now();
        let opened = (
            Engine::open(dir.path().join("a"), sync_options(1)),
            Engine::open(dir.path().join("b"), sync_options(2)),
        );
        let (a, b) = match opened {
            (Ok(a), Ok(b)) => (a, b),
            (a, b) => {
                report.reopen_failures += 1;
                report.finish();
                panic!("round {round}: reopen failed: {:?} {:?}", a.err(), b.err());
            }
        };
        report.reopened(t.elapsed() / 2);
        let what = format!("round {round}");
        check_side(&a, 'a', acked_a, &mut report, &what);
        check_side(&b, 'b', acked_b, &mut report, &what);
        if let Some(s) = synced {
            // A converged session brought each side the other's writes.
            check_side(&a, 'b', s[1] + 1, &mut report, &what);
            check_side(&b, 'a', s[0] + 1, &mut report, &what);
        }
        report.verified(a.verify().unwrap().consistent);
        report.verified(b.verify().unwrap().consistent);
        // The counters, the sets and the records agree on what landed.
        na = a.counter_value(b"na").unwrap() as u64;
        nb = b.counter_value(b"nb").unwrap() as u64;
        assert!(na >= acked_a && nb >= acked_b, "round {round}: counters");
        assert_eq!(
            a.context().vv().get(ReplicaId(1)),
            2 * na,
            "{what}: a's record"
        );
        assert_eq!(
            b.context().vv().get(ReplicaId(2)),
            2 * nb,
            "{what}: b's record"
        );
        // And they converge.
        let ((oa, _), (ob, _)) = sync_engines(&a, &b, Config::default()).unwrap();
        assert!(matches!(oa, Outcome::Converged | Outcome::Equal), "{oa:?}");
        assert!(matches!(ob, Outcome::Converged | Outcome::Equal), "{ob:?}");
        assert_eq!(a.root().unwrap(), b.root().unwrap(), "{what}: roots");
        check_side(&a, 'b', nb, &mut report, &what);
        check_side(&b, 'a', na, &mut report, &what);
        assert_eq!(
            a.context(),
            b.context(),
            "{what}: records after the session"
        );
    }
    println!("kills that landed inside a sync session: {mid_session} of {kills}");
    report.acknowledged = na + nb;
    report.finish();
    assert!(na > 0 && nb > 0, "the child never acknowledged a write");
}

/// Child: write, delete and collect forever (a replica with no other
/// member, so every tombstone is stable at once): batch `i` counts in one
/// of 50 live counters and fills the set `gone{i}`, then `gone{i}` is
/// deleted (prints `i` once the delete is acknowledged); every fifth
/// round collects.
#[test]
#[ignore = "child process of sigkill_during_collection_keeps_the_store_consistent"]
fn collect_child() {
    let (Ok(dir), Ok(start)) = (std::env::var(DIR_ENV), std::env::var(START_ENV)) else {
        panic!("run by the crash test only");
    };
    let start: u64 = start.parse().unwrap();
    let e = Engine::open(dir, sync_options(43)).unwrap();
    let mut out = std::io::stdout().lock();
    for i in start.. {
        let gone = format!("gone{i}");
        let mut b = Batch::new();
        b.increment(format!("live{}", i % 50), 1)
            .orset_add(gone.clone(), b"x".to_vec())
            .orset_add(gone.clone(), b"y".to_vec());
        e.write(&b).unwrap();
        e.delete(gone.as_bytes(), None).unwrap();
        use std::io::Write;
        writeln!(out, "{i}").unwrap();
        out.flush().unwrap();
        if i % 5 == 4 {
            e.collect().unwrap();
        }
    }
}

#[test]
fn sigkill_during_collection_keeps_the_store_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let kills = env_u64("CONVERGE_KILLS").unwrap_or(4);
    let mut rng = Rng::from_env();
    let mut acked: u64 = 0;
    // Batches that landed without their delete being acknowledged: the
    // next child writes them again, counting once more.
    let mut redone: i128 = 0;
    for round in 0..kills {
        let lines = kill_child_after(
            "collect_child",
            &[(DIR_ENV, dir.path().display().to_string())],
            &[(START_ENV, acked.to_string())],
            rng.lifetime(),
        );
        if let Some(last) = lines.iter().rev().find_map(|l| l.parse::<u64>().ok()) {
            acked = last + 1;
        }
        let e = Engine::open(dir.path(), sync_options(43)).unwrap();
        // No deleted set comes back, collected or not.
        for i in 0..acked {
            let gone = format!("gone{i}");
            assert_eq!(
                e.read(gone.as_bytes()).unwrap(),
                None,
                "round {round}: gone{i} is back"
            );
        }
        // The live counters count every acknowledged batch (and perhaps
        // the one in flight, and the ones written again).
        let total: i128 = (0..50)
            .map(|k| e.counter_value(format!("live{k}").as_bytes()).unwrap())
            .sum();
        let least = acked as i128 + redone;
        assert!(
            total >= least && total <= least + 1,
            "round {round}: {total} counted, {acked} acknowledged, {redone} redone"
        );
        redone = total - acked as i128;
        assert!(e.verify().unwrap().consistent, "round {round}");
        // Collection finishes what the kill interrupted.
        e.collect().unwrap();
        let left = e.tombstones().unwrap();
        assert_eq!(left.waiting, 0, "round {round}: {left:?}");
        let stored = e.stored_keys(b"gone").unwrap().count();
        assert!(
            stored <= 1,
            "round {round}: {stored} deleted sets still stored"
        );
        e.settle().unwrap();
        assert!(e.verify().unwrap().consistent, "round {round}");
    }
    assert!(acked > 0, "the child never acknowledged a delete");
}

/// Keys the no-WAL child writes (see [`nowal_child`]).
const NOWAL_KEYS: u64 = 40_000;

/// `Durability::None` with the smallest memtables, so that the column
/// families fill (and, without atomic flushes, flush) at different points
/// of the load. No anti-entropy tree: its settles write after the load and
/// would trigger a last flush of everything (the tree is rebuilt after a
/// crash anyway).
fn nowal_options() -> converge::Options {
    converge::Options {
        write_buffer_bytes: 1 << 20,
        anti_entropy: false,
        ..small_options(44).durability(Durability::None)
    }
}

/// Child: create `NOWAL_KEYS` OR-Sets of one 64-byte element without a WAL
/// (their states' memtable fills several times faster than their types'),
/// let the background flushes finish, print `flushed` and wait to be
/// killed.
#[test]
#[ignore = "child process of sigkill_without_a_wal_keeps_each_key_with_its_type"]
fn nowal_child() {
    let Ok(dir) = std::env::var(DIR_ENV) else {
        panic!("run by the crash test only");
    };
    let e = Engine::open(dir, nowal_options()).unwrap();
    let mut b = Batch::new();
    for i in 0..NOWAL_KEYS {
        b.orset_add(format!("n{i:06}"), vec![i as u8; 64]);
        if b.len() == 100 {
            e.write(&b).unwrap();
            b.clear();
        }
    }
    std::thread::sleep(std::time::Duration::from_secs(1));
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "flushed").unwrap();
    out.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_secs(120));
    panic!("not killed");
}

/// Without a WAL, what survives a crash is what the memtable flushes
/// wrote. They must flush the column families together: a key whose state
/// survived without its `types` entry would take any operation as its
/// first (fails without atomic flushes: the states' memtable fills before
/// the types', so a kill after its flush leaves sets with no type, and an
/// LWW write to one of them is accepted).
#[test]
fn sigkill_without_a_wal_keeps_each_key_with_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let lines = soak::kill_child_on(
        "nowal_child",
        &[(DIR_ENV, dir.path().display().to_string())],
        "flushed",
    );
    let e = Engine::open(dir.path(), nowal_options()).unwrap();
    let mut survived = 0;
    for i in 0..NOWAL_KEYS {
        let key = format!("n{i:06}");
        if e.read(key.as_bytes()).unwrap().is_none() {
            continue;
        }
        survived += 1;
        match e.lww_set(key.as_bytes(), b"x") {
            Err(converge::Error::WrongType { .. }) => {}
            other => panic!("{key}: an OR-Set took an LWW write: {other:?}"),
        }
    }
    // The load filled every memtable at least once, and the kill lost
    // what the last flush did not write.
    println!("{survived} of {NOWAL_KEYS} keys survived");
    assert!(survived > 0, "nothing was flushed");
    assert!(survived < NOWAL_KEYS, "nothing was lost: {lines:?}");
}
