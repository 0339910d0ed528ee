//! Real engines for the fuzz targets, in a scratch directory of the
//! process (`$TMPDIR/converge-fuzz-<pid>`).
//!
//! Opening RocksDB for every input would cost more than the input, so a
//! target keeps one engine and reopens it, empty and freshly filled, every
//! [`RESET_EVERY`] inputs: what earlier inputs merged stays small, and a
//! crash reproduces from the input that caused it (or from the last few
//! inputs, which libFuzzer keeps). At exit the engines are closed and the
//! directory removed; directories of processes that died without exiting
//! (a crash) are removed by the next run.

use crate::seeds;
use converge::{Durability, Engine, Options, ReplicaId};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// Inputs run against one engine before it is replaced by a fresh one
/// (opening, filling and closing one costs about 0.3 s).
pub const RESET_EVERY: u64 = 1024;

/// Inputs between two [`check_healthy`] calls (`verify` recomputes the
/// whole anti-entropy tree: about 50 ms).
pub const HEALTH_EVERY: u64 = 128;

/// Replica id of the engine under test (the seeds' peers use others).
pub const FIXTURE_REPLICA: u128 = 0xF0;

/// Prefix of the per-process scratch directories.
const PREFIX: &str = "converge-fuzz-";

/// Functions that close the open scratch values, run at exit.
static CLOSERS: Mutex<Vec<fn()>> = Mutex::new(Vec::new());

extern "C" fn close_all() {
    let closers = lock(&CLOSERS).clone();
    for close in closers {
        close();
    }
    if let Some(root) = ROOT.get() {
        // Best effort at exit: a directory left behind is swept by the
        // next run.
        let _ = std::fs::remove_dir_all(root);
    }
}

static ROOT: OnceLock<PathBuf> = OnceLock::new();

/// Lock `m`, ignoring poisoning (a panic aborts the fuzzer anyway).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remove scratch directories of processes that no longer run.
fn sweep(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// This process's scratch directory (created on first use).
fn root() -> &'static Path {
    ROOT.get_or_init(|| {
        let tmp = std::env::temp_dir();
        sweep(&tmp);
        let dir = tmp.join(format!("{PREFIX}{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the fuzz scratch directory");
        dir
    })
}

/// Run `close` at exit, before RocksDB's own exit-time destructors: exit
/// handlers run in the reverse order of their registration, and RocksDB
/// registers the destructor of its default environment (which stops the
/// background threads a flush waits for) when the first engine opens. A
/// hook registered before that open would close the engine after the
/// threads are gone, and the close would wait for a flush forever. So the
/// first hook is registered right after the first open.
fn register_exit_hook(close: fn()) {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    lock(&CLOSERS).push(close);
    REGISTERED.get_or_init(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(close_all) };
    });
}

/// A value (an engine, an FFI engine handle) living in a scratch
/// directory, replaced by a fresh one every [`RESET_EVERY`] uses.
pub struct Scratch<T> {
    name: &'static str,
    open: fn(&Path) -> T,
    on_exit: fn(),
    value: Option<(T, PathBuf)>,
    uses: u64,
    generation: u64,
}

impl<T> Scratch<T> {
    /// A slot named `name` (the directory name) whose values `open` makes
    /// in an empty directory; `on_exit` must close this slot (it locks the
    /// static holding it and calls [`Scratch::close`]).
    pub const fn new(name: &'static str, open: fn(&Path) -> T, on_exit: fn()) -> Self {
        Scratch {
            name,
            open,
            on_exit,
            value: None,
            uses: 0,
            generation: 0,
        }
    }

    /// The value for the next input: the current one, or a fresh one every
    /// [`RESET_EVERY`] calls.
    pub fn get(&mut self) -> &T {
        self.next_input().0
    }

    /// [`Scratch::get`], with the number of this input (1, 2, … over the
    /// process).
    pub fn next_input(&mut self) -> (&T, u64) {
        if self.value.is_some() && self.uses % RESET_EVERY == 0 {
            self.close();
        }
        self.uses += 1;
        if self.value.is_none() {
            self.generation += 1;
            let dir = root().join(format!("{}-{}", self.name, self.generation));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("create a scratch engine directory");
            let v = (self.open)(&dir);
            self.value = Some((v, dir));
            if self.generation == 1 {
                register_exit_hook(self.on_exit);
            }
        }
        match &self.value {
            Some((v, _)) => (v, self.uses),
            None => unreachable!("opened above"),
        }
    }

    /// Drop the value and remove its directory.
    pub fn close(&mut self) {
        if let Some((v, dir)) = self.value.take() {
            drop(v);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Options of the engines under test: small caches, one background job,
/// no WAL (nothing here must survive a crash), the changes feed on.
pub fn options(replica: u128) -> Options {
    Options {
        replica_id: Some(ReplicaId(replica)),
        durability: Durability::None,
        block_cache_bytes: 1 << 20,
        write_buffer_bytes: 4 << 20,
        background_jobs: 1,
        lock_stripes: 16,
        max_pending: 4096,
        max_pending_bytes: 16 << 20,
        ..Options::default()
    }
}

/// Open the engine under test in `dir`, filled with [`seeds::populate`].
pub fn open_fixture(dir: &Path) -> Engine {
    let e = Engine::open(dir, options(FIXTURE_REPLICA)).expect("open the fixture engine");
    seeds::populate(&e).expect("fill the fixture engine");
    e
}

/// What an input that failed must leave unchanged, cheaply: the root of
/// the anti-entropy tree (a 128-bit hash over every key's stored bytes,
/// and the key count), the causal record, and the number of entries in the
/// pending area.
pub fn fingerprint(e: &Engine) -> (converge::Node, converge::CausalContext, u64) {
    (
        e.root().expect("the root reads"),
        e.context(),
        e.pending().entries,
    )
}

/// Assert that the engine is usable and its anti-entropy tree agrees with
/// its data: a local write succeeds, and `verify` after a settle reports a
/// consistent tree.
pub fn check_healthy(e: &Engine) {
    e.increment(b"\xffhealth", 1)
        .expect("a local write after the input");
    e.settle().expect("settle");
    let report = e.verify().expect("verify");
    assert!(
        report.consistent,
        "the anti-entropy tree disagrees with the data: {report:?}"
    );
}

/// Assert that an error an input caused is about the input, not a failure
/// of the engine: bad input must never poison the engine, reach RocksDB
/// as an error, or read back as corruption.
pub fn assert_input_error(e: &converge::Error) {
    use converge::Error as E;
    assert!(
        !matches!(e, E::Poisoned | E::Storage(_) | E::Corruption(_)),
        "an input made the engine fail: {e}"
    );
}

/// The key an input's selector byte names: with the high bit clear one of
/// the fixture's keys (every type is there to be merged into), else a key
/// of this input alone (`0xfe`, the input's number, the selector), which
/// no other input and no fixture key uses.
pub fn key_for(selector: u8, input_number: u64) -> Vec<u8> {
    if selector & 0x80 == 0 {
        let i = usize::from(selector) % (seeds::TYPED_KEYS.len() + 16);
        match seeds::TYPED_KEYS.get(i) {
            Some(k) => k.to_vec(),
            None => format!("k{:02}", i - seeds::TYPED_KEYS.len()).into_bytes(),
        }
    } else {
        let mut k = vec![0xfe];
        k.extend_from_slice(&input_number.to_be_bytes());
        k.push(selector);
        k
    }
}
