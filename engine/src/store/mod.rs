//! The RocksDB-backed store: column families, open/recovery, the write path
//! (`write/`), typed reads and iteration (`read.rs`).
//!
//! Column families:
//! - `state`: user key → encoded CRDT state; merge operator = CRDT join.
//! - `types`: user key → one type tag byte, written once by the key's first
//!   write; checked by every later write without reading the state.
//! - `meta`: replica id, format version, the last local sequence number,
//!   the causal record of peers' dots, clock.
//! - `pending`: deltas and pages of changes waiting for their causal
//!   dependencies (`pending.rs`).
//! - `log`: this replica's operations for the changes feed (`feed.rs`).
//!
//! The anti-entropy tree's key index and leaves are in a RocksDB instance
//! of their own, `aae/` in the store's directory (see [`crate::aae`]).

mod batch;
mod commit;
mod exact;
mod feed;
mod gc;
mod locks;
mod merge;
mod options;
mod pending;
mod read;
mod record;
mod stored;
mod types;
mod write;

pub use batch::{token_of, Batch, KeyedDelta, Op};
pub use feed::{Delivery, FeedInfo, FeedPage, MAX_PAGE_BYTES};
pub use gc::CollectReport;
pub use options::{Durability, Options};
pub use pending::PendingInfo;
pub use read::{KeyIter, MvRead, SetRead, Value};
pub use write::timing;

use crate::aae::{Node, Tree, VerifyReport, LEVELS};
use crate::causal::{CausalContext, HybridClock, ReplicaId, VersionVector};
use crate::error::{Error, Result};
use locks::StripedLocks;
use parking_lot::{Condvar, Mutex};
use rocksdb::{ColumnFamilyDescriptor, DB};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The layout of the store's column families (`meta/format_version`),
/// distinct from the encoding version of each value
/// ([`crate::codec::FORMAT_VERSION`]).
/// 2: `types` entries carry a size reservation, `meta/seq` and `meta/ctx`
/// hold the causal record. 3: the `pending` and `log` column families
/// (causal delivery, changes feed). 4: the anti-entropy index in its own
/// RocksDB instance (`aae/` in the store's directory) instead of the
/// `aae_keys` and `aae_leaves` column families. Stores of layouts 1 to 3
/// are upgraded in place at open (1-byte `types` entries and `meta/vv`
/// stay readable; the log starts after the last operation issued; the old
/// index families are dropped and the tree rebuilt); an older build
/// refuses a newer layout.
pub const STORE_FORMAT: u8 = 4;

/// Largest key accepted, in bytes.
pub const MAX_KEY_LEN: usize = 64 << 10;
/// Largest register value or set element accepted, in bytes.
pub const MAX_VALUE_LEN: usize = 16 << 20;

pub(crate) const CF_STATE: &str = "state";
pub(crate) const CF_TYPES: &str = "types";
/// Memtable size of `types` at most (see [`Engine::open`]).
const TYPES_WRITE_BUFFER: usize = 4 << 20;
pub(crate) const CF_META: &str = "meta";
/// The anti-entropy index's column families, in the index's own RocksDB
/// instance (`aae/tree.rs`). Stores written before it moved there hold
/// them in the data's instance too: dropped at open.
pub(crate) const CF_AAE_KEYS: &str = "aae_keys";
pub(crate) const CF_AAE_LEAVES: &str = "aae_leaves";
pub(crate) const CF_PENDING: &str = "pending";
pub(crate) const CF_LOG: &str = "log";
const ALL_CFS: [&str; 5] = [CF_STATE, CF_TYPES, CF_META, CF_PENDING, CF_LOG];

pub(crate) const META_REPLICA: &[u8] = b"replica_id";
pub(crate) const META_FORMAT: &[u8] = b"format_version";
/// Present in stores created by a build that keeps `types` exact: a key
/// has a `types` entry exactly when it has a state (see
/// `Engine::types_exact`).
pub(crate) const META_TYPES_EXACT: &[u8] = b"types_exact";
/// The high-water version vector of stores written before the exact causal
/// record (read once at open, to migrate).
pub(crate) const META_VV: &[u8] = b"vv";
/// The last local sequence number (u64 BE), put by every committing batch
/// with local operations.
pub(crate) const META_SEQ: &[u8] = b"seq";
/// The dots of peers' deltas this replica merged (a kind-2 context; merge
/// operands are joined).
pub(crate) const META_CTX: &[u8] = b"ctx";
pub(crate) const META_HLC: &[u8] = b"hlc";

/// What the commit lock guards.
pub(crate) struct CommitState {
    /// The last local sequence number issued.
    pub(crate) seq: u64,
    /// Replicas whose dots joined the record since the last local
    /// operation: the next one depends on the record's entries for them.
    pub(crate) touched: std::collections::BTreeSet<ReplicaId>,
}

/// A replica's store. Share it between threads (`&Engine` or `Arc<Engine>`):
/// every method takes `&self`.
pub struct Engine {
    pub(crate) db: Arc<DB>,
    pub(crate) replica: ReplicaId,
    pub(crate) clock: HybridClock,
    /// The last local sequence number committed. Held while a batch
    /// commits: it orders commits and allocates their sequence numbers.
    pub(crate) commit: Mutex<CommitState>,
    /// Batches waiting to commit (`commit.rs`).
    pub(crate) group: commit::CommitQueue,
    /// Deltas waiting for their dependencies.
    pub(crate) pending: pending::Pending,
    /// The changes feed.
    pub(crate) feed: feed::Feed,
    /// The collection of tombstones (`gc.rs`).
    pub(crate) gc: gc::Gc,
    /// The causal record: every dot whose effects this replica holds.
    pub(crate) context: Mutex<CausalContext>,
    /// Notified whenever `context` grows (see `Engine::wait_for`), and by
    /// `Engine::interrupt_waits`.
    pub(crate) context_grew: Condvar,
    /// Set by `Engine::interrupt_waits`: waits return `Error::Closed`.
    pub(crate) waits_interrupted: AtomicBool,
    pub(crate) locks: StripedLocks,
    pub(crate) types: types::TypeCache,
    /// Whether a key without a `types` entry is known to hold no state:
    /// true for stores created with `meta/types_exact`, where every write
    /// that creates a key puts both in one batch, a purge deletes both in
    /// one, and without a WAL the families are flushed together. Then a
    /// write looks up `types` for every key no cache knows and reads no
    /// state for the keys it creates (measured: a 10M-key counter ingest
    /// 104k–120k → 123k–138k ops/s). Older stores may hold a state
    /// without its entry (a crash under `Durability::None` before the
    /// flushes were atomic): their first open gives such states their
    /// entries and marks them (`exact.rs`), unless one of those states does
    /// not decode; an unmarked store's writes read the state of keys
    /// `types` lacks.
    pub(crate) types_exact: bool,
    pub(crate) write_opts: rocksdb::WriteOptions,
    pub(crate) poisoned: AtomicBool,
    pub(crate) tree: Arc<Tree>,
    /// Folds dirty keys into the tree in the background (anti-entropy on).
    settler: Mutex<Option<crate::aae::settler::Settler>>,
    closed: AtomicBool,
    path: PathBuf,
    options: Options,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("path", &self.path)
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Open (or create) the store in directory `path`.
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Engine> {
        options.validate()?;
        let path = path.as_ref().to_path_buf();
        let mut db_opts = options.rocksdb_options();
        // The `state` family's memtable is hashed, and RocksDB inserts
        // into such a memtable from one writer at a time.
        db_opts.set_allow_concurrent_memtable_write(false);
        let mut state_opts = options.state_rocksdb_options();
        state_opts.set_merge_operator(
            "converge.crdt_join.v1",
            merge::state_full_merge,
            merge::state_partial_merge,
        );
        state_opts.set_max_successive_merges(options.max_successive_merges);
        // `types` answers "does the store hold this key?" for every key a
        // write finds in no cache (see `types_exact`): a Bloom filter over
        // its memtable's keys makes the usual answer for a key being
        // created ("no") cheap. Only `types` writes (new keys, grown
        // reservations) pay for the filter.
        let mut types_opts = db_opts.clone();
        types_opts.set_memtable_prefix_bloom_ratio(0.02);
        types_opts.set_memtable_whole_key_filtering(true);
        // Every created key inserts its entry at a random place in the
        // family's memtable; a small one stays in the CPU's caches where a
        // 64 MiB one misses at every level of the skip list (1M-key
        // counter ingests 10–25 % faster with 2 or 4 MiB, 10M-key ones
        // within noise or faster with 4; BENCHMARKS.md). Not under atomic
        // flushes (`Durability::None`): each time it filled, every family
        // would be flushed.
        if !options.atomic_flush() {
            types_opts.set_write_buffer_size(options.write_buffer_bytes.min(TYPES_WRITE_BUFFER));
        }
        let mut meta_opts = db_opts.clone();
        meta_opts.set_merge_operator_associative("converge.meta.v1", merge::meta_merge);
        let families = || {
            vec![
                ColumnFamilyDescriptor::new(CF_STATE, state_opts.clone()),
                ColumnFamilyDescriptor::new(CF_TYPES, types_opts.clone()),
                ColumnFamilyDescriptor::new(CF_META, meta_opts.clone()),
                ColumnFamilyDescriptor::new(CF_PENDING, db_opts.clone()),
                ColumnFamilyDescriptor::new(CF_LOG, db_opts.clone()),
            ]
        };
        // A store written before the anti-entropy index had its own
        // instance holds it here: RocksDB opens every family or none, so
        // such a store is opened again with them, and they are dropped
        // once its layout is checked (the tree is rebuilt: its clean mark
        // does not match the new instance's). Told by RocksDB's refusal,
        // not by listing the families first (`DB::list_cf` leaks the names
        // it returns: the C suite's leak checker caught it).
        let legacy = [CF_AAE_KEYS, CF_AAE_LEAVES];
        let (mut db, legacy) = match DB::open_cf_descriptors(&db_opts, &path, families()) {
            Ok(db) => (db, &[][..]),
            Err(e)
                if e.as_ref().contains("Column families not opened")
                    && legacy.iter().any(|n| e.as_ref().contains(n)) =>
            {
                let mut cfs = families();
                cfs.extend(
                    legacy
                        .iter()
                        .map(|n| ColumnFamilyDescriptor::new(*n, db_opts.clone())),
                );
                (DB::open_cf_descriptors(&db_opts, &path, cfs)?, &legacy[..])
            }
            Err(e) => return Err(e.into()),
        };
        let meta = cf(&db, CF_META)?;

        let replica = match db.get_cf(meta, META_REPLICA)? {
            Some(b) => {
                let stored = ReplicaId::from_bytes(b.as_slice().try_into().map_err(|_| {
                    Error::Corruption(format!("stored replica id has {} bytes", b.len()))
                })?);
                let format = db.get_cf(meta, META_FORMAT)?.unwrap_or_default();
                match format.as_slice() {
                    [STORE_FORMAT] => {}
                    [1] | [2] | [3] => {
                        db.put_cf_opt(meta, META_FORMAT, [STORE_FORMAT], &Options::synced())?;
                    }
                    other => {
                        return Err(Error::UnsupportedFormat {
                            found: other.first().copied().unwrap_or(0),
                            supported: STORE_FORMAT,
                        })
                    }
                }
                if let Some(given) = options.replica_id {
                    if given != stored {
                        return Err(Error::ReplicaMismatch { stored, given });
                    }
                }
                stored
            }
            None => {
                let id = options.replica_id.unwrap_or_else(ReplicaId::random);
                let mut wb = rocksdb::WriteBatch::default();
                wb.put_cf(meta, META_REPLICA, id.to_bytes());
                wb.put_cf(meta, META_FORMAT, [STORE_FORMAT]);
                wb.put_cf(meta, META_TYPES_EXACT, [1u8]);
                db.write_opt(wb, &Options::synced())?;
                id
            }
        };
        // Once the layout is known to be one this build reads.
        for name in legacy {
            db.drop_cf(name)?;
        }
        let meta = cf(&db, CF_META)?;
        // An older store is walked once to give every state its `types`
        // entry (`exact.rs`). Damage met on the way leaves it unmarked, to
        // be read as before, not unopenable.
        let types_exact = db.get_cf(meta, META_TYPES_EXACT)?.is_some()
            || match exact::make_exact(&db) {
                Ok(marked) => marked,
                Err(Error::Corruption(_)) => false,
                Err(e) => return Err(e),
            };
        let (mut seq, mut context) = record::load(&db, replica)?;
        // Commits with the changes feed on record their last number in
        // the log only.
        let logged = feed::last_logged(&db)?;
        if logged > seq {
            seq = logged;
            context.insert_range(replica, 1, seq);
        }
        let floor = match db.get_cf(meta, META_HLC)? {
            Some(b) => merge::decode_ts(&b)
                .ok_or_else(|| Error::Corruption("stored clock is damaged".into()))?,
            None => Default::default(),
        };
        let tree = Arc::new(Tree::load(&db, &path, &db_opts, options.anti_entropy)?);
        let pending_index = pending::load(&db, &context)?;
        let feed = feed::Feed::load(&db, seq, options.changes_feed)?;
        let gc = gc::Gc::load(&db)?;
        // The first operation after open depends on everything the record
        // holds of peers (what was merged since the last operation before
        // the restart is not known).
        let mut touched = std::collections::BTreeSet::new();
        commit::add_replicas(&mut touched, &context, replica);
        let engine = Engine {
            commit: Mutex::new(CommitState { seq, touched }),
            pending: pending::Pending {
                index: Mutex::new(pending_index),
                ..Default::default()
            },
            feed,
            gc,
            group: Default::default(),
            context: Mutex::new(context),
            context_grew: Condvar::new(),
            waits_interrupted: AtomicBool::new(false),
            clock: HybridClock::new(floor),
            locks: StripedLocks::new(options.lock_stripes),
            types_exact,
            types: types::TypeCache::new(
                options.type_cache_entries,
                options.state_cache_bytes as u64,
            ),
            write_opts: options.write_options(),
            poisoned: AtomicBool::new(false),
            tree,
            settler: Mutex::new(None),
            closed: AtomicBool::new(false),
            db: Arc::new(db),
            replica,
            path,
            options,
        };
        // Entries whose dependencies arrived just before a crash.
        engine.drain(CausalContext::new())?;
        if engine.options.anti_entropy {
            let settler =
                crate::aae::settler::Settler::start(engine.db.clone(), engine.tree.clone())
                    .map_err(|e| Error::Storage(format!("starting the settle thread: {e}")))?;
            *engine.settler.lock() = Some(settler);
        }
        Ok(engine)
    }

    /// This replica's id.
    pub fn replica_id(&self) -> ReplicaId {
        self.replica
    }

    /// The directory the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the engine was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The contiguous part of [`Engine::context`]: for each origin
    /// replica, the highest `n` such that this replica holds the effects of
    /// all of its operations 1..=n. Never more than it holds.
    pub fn version_vector(&self) -> VersionVector {
        self.context.lock().vv().clone()
    }

    /// Flush, then compact every column family fully, and the
    /// anti-entropy index: reclaims the space of deleted entries (purged
    /// keys, truncated log) now rather than when RocksDB's background
    /// compaction gets to them. Blocks until done.
    pub fn compact(&self) -> Result<()> {
        self.flush()?;
        for name in ALL_CFS {
            self.db
                .compact_range_cf(cf(&self.db, name)?, None::<&[u8]>, None::<&[u8]>);
        }
        self.tree.compact()
    }

    /// Flush memtables to SST files (a checkpoint; not needed for
    /// durability, which the WAL gives).
    /// All column families are flushed in one call: with
    /// `Durability::None` (atomic flushes) that writes them together.
    pub fn flush(&self) -> Result<()> {
        let cfs = ALL_CFS
            .iter()
            .map(|name| cf(&self.db, name))
            .collect::<Result<Vec<_>>>()?;
        self.db
            .flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())?;
        Ok(())
    }

    /// Fsync the WAL (makes earlier `Buffered` writes power-loss safe).
    pub fn sync_wal(&self) -> Result<()> {
        self.db.flush_wal(true)?;
        Ok(())
    }

    pub(crate) fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        cf(&self.db, name)
    }

    /// The column family `name` kept in `slot`, looked up the first time
    /// (for steps that may not need it: a lookup by name searches the
    /// database's map of them).
    pub(crate) fn cf_once<'e>(
        &'e self,
        slot: &mut Option<&'e rocksdb::ColumnFamily>,
        name: &str,
    ) -> Result<&'e rocksdb::ColumnFamily> {
        if let Some(cf) = *slot {
            return Ok(cf);
        }
        let cf = self.cf(name)?;
        *slot = Some(cf);
        Ok(cf)
    }

    /// Write `wb` with the configured durability. A failed write may have
    /// reached the WAL, so the engine's state is unknown: it is poisoned
    /// (no more writes until reopened) rather than retried.
    pub(crate) fn write_or_poison(&self, wb: rocksdb::WriteBatch) -> Result<()> {
        let mut clock = write::timing::Clock::start();
        clock.count_batch(&wb);
        let written = self.db.write_opt(wb, &self.write_opts);
        clock.lap(write::timing::Step::RocksDbWrite);
        written.map_err(|e| {
            self.poisoned.store(true, Ordering::Release);
            e.into()
        })
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::Acquire) {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }
}

impl Engine {
    /// Fold every key written since the last settle into the anti-entropy
    /// tree. Reading the root or running a sync session does this first;
    /// call it to choose when the cost is paid. Returns how many keys were
    /// folded.
    pub fn settle(&self) -> Result<usize> {
        self.check_aae()?;
        self.tree.settle(&self.db)
    }

    fn check_aae(&self) -> Result<()> {
        if self.options.anti_entropy {
            Ok(())
        } else {
            Err(crate::aae::disabled())
        }
    }

    /// Keys written but not yet folded into the anti-entropy tree (the
    /// background settler folds them within about 20 ms of a pause in
    /// writing, during an ingest of new keys from 4,096 on, and at 65,536;
    /// reading the root folds the rest). A key written more than once
    /// since the settler last looked (it looks every 20 ms) counts once
    /// per write until it next looks.
    pub fn unsettled_keys(&self) -> usize {
        self.tree.dirty_keys()
    }

    /// How many times the anti-entropy index was found damaged while the
    /// engine ran (RocksDB reported corruption reading or writing it) and
    /// remade from the data, live: the call that found the damage (a
    /// settle, a root read, a sync session's reads, a verify) remade it
    /// and then succeeded. Damage found at open is remade there and not
    /// counted. A number above zero says the disk under `aae/` lost data:
    /// the data's own instance may be next.
    pub fn aae_index_rebuilds(&self) -> u64 {
        self.tree.heals()
    }

    /// The root of the anti-entropy tree: XOR of every key's entry hash, and
    /// the number of keys. Equal roots mean equal data (with overwhelming
    /// probability: see FORMAT.md).
    pub fn root(&self) -> Result<Node> {
        self.check_aae()?;
        self.tree.settle(&self.db)?;
        Ok(self.tree.node(LEVELS - 1, 0))
    }

    /// Recompute the tree from the data and compare it with the maintained
    /// one.
    pub fn verify(&self) -> Result<VerifyReport> {
        self.check_aae()?;
        self.tree.verify(&self.db)
    }

    /// Every node hash of anti-entropy tree level `level` (0 = the 2^20
    /// leaves, [`LEVELS`]` - 1` = the root), after settling.
    pub fn aae_level_hashes(&self, level: usize) -> Result<Vec<u128>> {
        self.check_aae()?;
        if level >= LEVELS {
            return Err(Error::InvalidArgument(format!(
                "tree level {level} >= {LEVELS}"
            )));
        }
        self.tree.settle(&self.db)?;
        Ok(self.tree.level_hashes(level))
    }

    /// The anti-entropy IBLT folded to `size` cells per sub-table, after
    /// settling.
    pub fn aae_iblt(&self, size: usize) -> Result<crate::aae::iblt::Iblt> {
        self.check_aae()?;
        if !crate::aae::iblt::valid_size(size) {
            return Err(Error::InvalidArgument(format!("IBLT size {size}")));
        }
        self.tree.settle(&self.db)?;
        Ok(self.tree.iblt(size))
    }

    /// (key hash, key, entry hash) of every key whose key hash is in
    /// `lo..=hi`, as of the last settle.
    pub fn aae_entries_in(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Vec<u8>, u128)>> {
        self.check_aae()?;
        self.tree.entries_in(&self.db, lo, hi)
    }

    /// (key hash, key, entry hash) of every key with one of the given key
    /// hashes (in ascending order), as of the last settle.
    pub fn aae_entries_for(&self, khs: &[u64]) -> Result<Vec<(u64, Vec<u8>, u128)>> {
        self.check_aae()?;
        self.tree.entries_for(&self.db, khs)
    }

    /// The encoded full states of several keys, read in one batch: `None`
    /// for absent keys, and for keys that hold more than the state size
    /// limit (written before it was enforced; they cannot be shipped, and
    /// read as [`Error::StateTooLarge`]).
    pub fn states_bytes(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>> {
        let cf = self.cf(CF_STATE)?;
        self.db
            .batched_multi_get_cf(cf, keys, false)
            .into_iter()
            .map(|r| Ok(r?.and_then(|v| stored::is_plain_state(&v).then(|| v.to_vec()))))
            .collect()
    }

    /// Close cleanly: settle and persist the tree so the next open need not
    /// rebuild it. Dropping the engine does the same, ignoring errors.
    pub fn close(self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        self.stop_settler();
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        if !self.options.anti_entropy {
            return Ok(());
        }
        self.persist_tree()
    }

    /// Persist the tree and mark it clean (at close). Without a WAL the
    /// data is flushed first: the mark is logged, the data is not, so a
    /// mark written before the data's close-time flush could survive a
    /// crash during that flush and vouch for an index of lost writes.
    fn persist_tree(&self) -> Result<()> {
        if self.options.durability == Durability::None {
            self.flush()?;
        }
        self.tree.persist_clean(&self.db)
    }
}

impl Engine {
    /// Drop the engine as a crash of the process would leave its directory,
    /// for tests and simulations that crash a replica without leaving the
    /// process: the background settler stops and the clean-close work is
    /// skipped, so the anti-entropy tree is not persisted and the next open
    /// rebuilds it, as after a kill -9. RocksDB is closed without a flush;
    /// what it holds of acknowledged writes is in its WAL, as after a real
    /// crash with `Sync` or `Buffered` durability. Unlike a real crash,
    /// RocksDB flushes the memtables of writes made without a WAL
    /// (`Durability::None`) at close, and the WAL file is closed whole:
    /// lost unlogged writes and torn WAL tails are the kill -9 test's
    /// concern (`engine/tests/crash.rs`).
    #[doc(hidden)]
    pub fn simulate_crash(self) {
        self.closed.store(true, Ordering::Release);
        self.stop_settler();
    }

    /// Stop the background settler (before the tree is persisted).
    fn stop_settler(&self) {
        if let Some(mut s) = self.settler.lock().take() {
            s.stop();
        }
    }

    /// Many keys are dirty: wake the background settler now.
    pub(crate) fn nudge_settler(&self) {
        if let Some(s) = self.settler.lock().as_ref() {
            s.nudge();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop_settler();
        if self.options.anti_entropy
            && !self.closed.load(Ordering::Acquire)
            && !self.poisoned.load(Ordering::Acquire)
        {
            let _ = self.persist_tree();
        }
    }
}

/// Read options for a scan of the `state` family in key order: total
/// order, which its hashed memtable (see
/// [`Options::state_rocksdb_options`]) does not give unless asked.
pub(crate) fn state_scan() -> rocksdb::ReadOptions {
    let mut ro = rocksdb::ReadOptions::default();
    ro.set_total_order_seek(true);
    ro
}

pub(crate) fn cf<'a>(db: &'a DB, name: &str) -> Result<&'a rocksdb::ColumnFamily> {
    db.cf_handle(name)
        .ok_or_else(|| Error::Corruption(format!("column family {name} is missing")))
}

#[cfg(test)]
mod tests {
    use super::{cf, state_scan, CF_STATE};
    use crate::{Engine, Options, ReplicaId};

    /// Every key of `state`, in the order a [`state_scan`] gives them.
    fn scanned(e: &Engine) -> Vec<Vec<u8>> {
        let mut it =
            e.db.raw_iterator_cf_opt(cf(&e.db, CF_STATE).unwrap(), state_scan());
        it.seek_to_first();
        let mut keys = Vec::new();
        while let Some(k) = it.key() {
            keys.push(k.to_vec());
            it.next();
        }
        it.status().unwrap();
        keys
    }

    /// The hashed `state` memtable keeps no key order; a scan with
    /// [`state_scan`] still gives every key once, in order, whether its
    /// entries are in an SST file, in the memtable (written in scrambled
    /// order, several per key), in both, or in a memtable refilled from
    /// the WAL at open; and the tree's verify, which scans the same way,
    /// agrees.
    #[test]
    fn a_state_scan_is_in_key_order_wherever_the_entries_are() {
        let dir = tempfile::tempdir().unwrap();
        let options = Options::with_replica(ReplicaId(1));
        let key = |i: u64| format!("k{:05}", (i * 7_919) % 1_000).into_bytes();
        let mut e = Engine::open(dir.path(), options.clone()).unwrap();
        for i in 0..500 {
            e.increment(&key(i), 1).unwrap();
        }
        e.flush().unwrap();
        for round in 0..3 {
            for i in 250..1_000 {
                e.increment(&key(i), round + 1).unwrap();
            }
        }
        let mut expected: Vec<Vec<u8>> = (0..1_000).map(key).collect();
        expected.sort();
        assert_eq!(scanned(&e), expected);
        assert!(e.verify().unwrap().consistent);
        drop(e);
        e = Engine::open(dir.path(), options).unwrap();
        assert_eq!(scanned(&e), expected);
        assert!(e.verify().unwrap().consistent);
        assert_eq!(e.counter_value(&key(0)).unwrap(), 1);
        assert_eq!(e.counter_value(&key(999)).unwrap(), 6);
    }
}
