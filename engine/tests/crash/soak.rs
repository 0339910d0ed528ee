//! The kill -9 harness shared by the crash tests: run one of this test
//! binary's ignored child tests as a process, kill it with SIGKILL after a
//! random time, and tally what the reopens found.

use converge::{Batch, Durability, Engine, Options};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

/// An unsigned number from the environment, if set.
pub fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
    })
}

/// Xorshift64 for the kill times: seeded by `CONVERGE_CRASH_SEED`, or a
/// fixed seed (the `cargo test` slice is the same every run; the timing of
/// the processes still varies).
pub struct Rng(crate::common::Xorshift);

impl Rng {
    /// The generator for this run (its seed is printed).
    pub fn from_env() -> Rng {
        let seed = env_u64("CONVERGE_CRASH_SEED").unwrap_or(0x9e37_79b9_7f4a_7c15);
        println!("kill times from CONVERGE_CRASH_SEED={seed}");
        Rng(crate::common::Xorshift(seed.max(1)))
    }

    /// How long a child lives: 50 to 450 ms of work.
    pub fn lifetime(&mut self) -> Duration {
        Duration::from_millis(50 + self.0.next() % 400)
    }
}

/// Run the ignored test `child` of this binary as a process with the given
/// environment, SIGKILL it after `lifetime`, and return the lines it
/// printed.
pub fn kill_child_after(
    child: &str,
    env: &[(&str, String)],
    more_env: &[(&str, String)],
    lifetime: Duration,
) -> Vec<String> {
    let mut proc = spawn(child, env.iter().chain(more_env));
    let stdout = proc.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .map(|l| l.trim().to_string())
            .collect::<Vec<_>>()
    });
    std::thread::sleep(lifetime);
    proc.kill().expect("SIGKILL"); // SIGKILL
    proc.wait().expect("wait");
    reader.join().expect("reader")
}

/// Run the ignored test `child` of this binary as a process with the given
/// environment, SIGKILL it as soon as it prints a line ending in `cue`
/// (the test harness may print the test's name before the child's first
/// line), and return the lines it printed before.
pub fn kill_child_on(child: &str, env: &[(&str, String)], cue: &str) -> Vec<String> {
    let mut proc = spawn(child, env);
    let mut lines = Vec::new();
    for line in BufReader::new(proc.stdout.take().expect("stdout")).lines() {
        let line = line.expect("child output");
        if line.trim().ends_with(cue) {
            break;
        }
        lines.push(line.trim().to_string());
    }
    proc.kill().expect("SIGKILL"); // SIGKILL
    proc.wait().expect("wait");
    lines
}

/// Start the ignored test `child` of this binary as a process with the
/// given environment, its standard output piped.
fn spawn<'a>(child: &str, env: impl IntoIterator<Item = &'a (&'a str, String)>) -> Child {
    let mut cmd = crate::common::child_test(child);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn child")
}

/// Load `CONVERGE_CRASH_KEYS` keys (default none) into the store first, so
/// each reopen after a kill rebuilds the tree over that many keys. Returns
/// how many (each was one local operation of `options`' replica).
pub fn preload(dir: &Path, options: Options) -> u64 {
    let keys = env_u64("CONVERGE_CRASH_KEYS").unwrap_or(0);
    if keys == 0 {
        return 0;
    }
    let e = Engine::open(dir, options.durability(Durability::Buffered)).expect("open");
    let mut b = Batch::new();
    for i in 0..keys {
        b.increment(format!("preloaded/{i:09}"), 1);
        if b.len() == 1000 || i + 1 == keys {
            e.write(&b).expect("preload");
            b.clear();
        }
    }
    e.close().expect("close");
    keys
}

/// What a soak found.
pub struct Report {
    name: &'static str,
    keys: u64,
    /// Acknowledged writes looked for after reopens (each reopen looks
    /// for all acknowledged so far).
    pub checked: u64,
    /// Distinct writes made in the whole soak (acknowledged, or landed
    /// before a kill without their acknowledgement).
    pub acknowledged: u64,
    /// Acknowledged writes not found.
    pub lost: u64,
    /// Reopens that failed.
    pub reopen_failures: u64,
    verify_failures: u64,
    reopens: Vec<Duration>,
}

impl Report {
    /// An empty report for the soak `name`, over `keys` preloaded keys.
    pub fn new(name: &'static str, keys: u64) -> Report {
        Report {
            name,
            keys,
            checked: 0,
            acknowledged: 0,
            lost: 0,
            reopen_failures: 0,
            verify_failures: 0,
            reopens: Vec::new(),
        }
    }

    /// A reopen after a kill took `t` (per engine).
    pub fn reopened(&mut self, t: Duration) {
        self.reopens.push(t);
    }

    /// How long the last reopen took (a child's own open takes about as
    /// long: add it to its lifetime).
    pub fn last_reopen(&self) -> Duration {
        self.reopens.last().copied().unwrap_or_default()
    }

    /// A `verify()` after a reopen.
    pub fn verified(&mut self, consistent: bool) {
        if !consistent {
            self.verify_failures += 1;
        }
    }

    /// Print the figures; fail if a write was lost or a tree did not
    /// verify.
    pub fn finish(&mut self) {
        self.reopens.sort();
        let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
        println!(
            "soak ({}): {} kills, {} writes made, acknowledged ones looked for {} times after reopens, \
             {} lost, {} reopen failures, {} verify failures; reopen with tree rebuild over \
             {}+ keys: median {:.0} ms, max {:.0} ms",
            self.name,
            self.reopens.len() + self.reopen_failures as usize,
            self.acknowledged,
            self.checked,
            self.lost,
            self.reopen_failures,
            self.verify_failures,
            self.keys,
            ms(self.reopens.get(self.reopens.len() / 2)),
            ms(self.reopens.last()),
        );
        assert_eq!(self.lost, 0, "acknowledged writes lost");
        assert_eq!(self.verify_failures, 0, "trees that did not verify");
    }
}
