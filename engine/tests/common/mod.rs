//! Helpers shared by the scenario tests.
#![allow(dead_code)]

use converge::{Engine, Options, ReplicaId};
use tempfile::TempDir;

/// An engine in a temporary directory that lives as long as the value.
pub struct TempEngine {
    pub engine: Engine,
    pub dir: TempDir,
}

impl std::ops::Deref for TempEngine {
    type Target = Engine;
    fn deref(&self) -> &Engine {
        &self.engine
    }
}

/// A command that runs the ignored test `child` of the running test binary
/// alone, its output shown: how a test runs a child process it can kill or
/// break.
pub fn child_test(child: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        child,
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    cmd
}

/// Check the anti-entropy tree against the data (`verify`) and that both
/// hold exactly `keys` keys.
pub fn assert_tree_holds(e: &Engine, keys: u64) {
    let report = e.verify().expect("verify");
    assert!(report.consistent, "{report:?}");
    assert_eq!(report.keys, keys);
    assert_eq!(e.root().expect("root").count, keys);
}

/// Xorshift64: a small deterministic generator for the randomized
/// histories of the tests; a nonzero seed gives the whole sequence.
pub struct Xorshift(pub u64);

impl Xorshift {
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// In `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Open a fresh engine with replica id `id`.
pub fn engine(id: u128) -> TempEngine {
    let dir = tempfile::tempdir().expect("temp dir");
    let engine = Engine::open(dir.path(), small_options(id)).expect("open");
    TempEngine { engine, dir }
}

/// Options with small caches so many engines fit in one test.
pub fn small_options(id: u128) -> Options {
    Options {
        replica_id: Some(ReplicaId(id)),
        block_cache_bytes: 4 << 20,
        write_buffer_bytes: 4 << 20,
        background_jobs: 1,
        ..Options::default()
    }
}

/// Copy every key's full state (tombstones included) from `from` into `to`.
pub fn push_all(from: &Engine, to: &Engine) {
    for item in from.stored_keys(b"").expect("keys") {
        let (k, _) = item.expect("key");
        let bytes = from.state_bytes(&k).expect("state").expect("present");
        to.merge(&k, &bytes).expect("merge");
    }
}

/// Every stored key (tombstones included) with its encoded state.
pub fn dump(e: &Engine) -> Vec<(Vec<u8>, Vec<u8>)> {
    e.stored_keys(b"")
        .expect("keys")
        .map(|r| {
            let (k, _) = r.expect("key");
            let v = e.state_bytes(&k).expect("state").expect("present");
            (k, v)
        })
        .collect()
}
