//! The in-memory levels of the tree, their maintenance (mark dirty, settle),
//! persistence (leaves at clean close), rebuild and verification.

use super::hash::{entry_hash, key_hash, segment_of};
use super::iblt::{CellUpdate, Entry, Iblt, MAX_CELLS};
use crate::error::{Error, Result};
use crate::shortkey::ShortKey;
use crate::store::{cf, state_scan, CF_AAE_KEYS, CF_AAE_LEAVES, CF_META, CF_STATE};
use foldhash::{HashMap, HashMapExt};
use parking_lot::{MappedRwLockReadGuard, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use rocksdb::DB;
use std::collections::hash_map::Entry as MarkEntry;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Bits of key hash that pick the segment: 2^20 leaves.
pub const SEGMENT_BITS: u32 = 20;
/// Bits per level step: fan-out 32.
pub const FANOUT_BITS: u32 = 5;
/// Children per inner node.
pub const FANOUT: usize = 1 << FANOUT_BITS;
/// Levels including leaves (level 0) and root (level 4).
pub const LEVELS: usize = (SEGMENT_BITS / FANOUT_BITS) as usize + 1;

const META_AAE_CLEAN: &[u8] = b"aae_clean";
/// The index's own RocksDB instance: this directory inside the store's.
pub(crate) const INDEX_DIR: &str = "aae";
/// In the index's default column family: the token of the clean close
/// that last persisted it (also in `meta/aae_clean`).
const INDEX_CLEAN: &[u8] = b"clean";
const META_AAE_IBLT: &[u8] = b"aae_iblt";
/// Dirty keys (and queued marks) held in memory before a writer settles
/// them itself.
const MAX_DIRTY: usize = 1 << 20;

/// A key written since it was last folded.
#[derive(Clone, Copy, Debug)]
struct Mark {
    /// The entry hash of what its last write left (a state put whole, or
    /// the operand that created the key: what the settle would compute by
    /// reading it back), or 0: the settle reads the state (a blind write
    /// to an existing key, a delete, a collection).
    hint: u128,
    /// `aae_keys` holds no entry for the key, so its fold reads no old
    /// entry hash (see [`Tree::mark_dirty_owned`] for when that is known).
    unindexed: bool,
    /// A collection removed the key's state (and its fold will remove its
    /// index entry): until that fold is done, a write that creates the
    /// key again is not known to leave it unindexed (see
    /// [`Tree::mark_purged`]).
    purged: bool,
}

/// One write's marks, queued until absorbed into the dirty set.
struct Queued {
    keys: Vec<Written>,
    /// No settle ran since the writer's epoch (or no purge is pending and
    /// none ran since it: see [`Tree::mark_dirty_owned`]).
    quiet: bool,
    /// The marks of a collection's purge ([`Tree::mark_purged`]).
    purge: bool,
}

/// A key a write marks dirty: the key, its hint (see [`Mark`]) and
/// whether the write created it (the store held nothing of it).
pub(crate) type Written = (ShortKey, u128, bool);

/// One node: XOR of the entry hashes below it, and how many keys.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Node {
    /// XOR of entry hashes.
    pub hash: u128,
    /// Number of keys.
    pub count: u64,
}

struct Levels {
    hashes: Vec<Vec<u128>>,
    counts: Vec<Vec<u64>>,
    /// Leaves changed since the last persist (bitmap).
    changed: Vec<u64>,
    /// The keyspace's (key hash, entry hash) pairs.
    iblt: Iblt,
}

impl Levels {
    fn empty() -> Levels {
        let sizes: Vec<usize> = (0..LEVELS)
            .map(|l| 1usize << (SEGMENT_BITS - l as u32 * FANOUT_BITS))
            .collect();
        Levels {
            hashes: sizes.iter().map(|n| vec![0u128; *n]).collect(),
            counts: sizes.iter().map(|n| vec![0u64; *n]).collect(),
            changed: vec![0u64; (1usize << SEGMENT_BITS) / 64],
            iblt: Iblt::new(MAX_CELLS),
        }
    }

    /// Replace each key's entry hash `old` by `new` (0 = absent), with the
    /// IBLT's share precomputed by [`iblt_updates`].
    fn replace_all(&mut self, changes: &[(u64, u128, u128)], iblt: Vec<CellUpdate>) {
        self.iblt.apply_updates(iblt);
        for (kh, old, new) in changes {
            self.replace_in_levels(*kh, *old, *new);
        }
    }

    /// Replace a key's entry hash `old` by `new` (0 = absent).
    fn replace(&mut self, kh: u64, old: u128, new: u128) {
        if old == new {
            return;
        }
        if old != 0 {
            self.iblt.update(Entry { kh, eh: old as u32 }, -1);
        }
        if new != 0 {
            self.iblt.update(Entry { kh, eh: new as u32 }, 1);
        }
        self.replace_in_levels(kh, old, new);
    }

    /// The levels' share of [`Levels::replace`]: the leaf and its
    /// ancestors (the IBLT is updated by the caller).
    fn replace_in_levels(&mut self, kh: u64, old: u128, new: u128) {
        let dc = (new != 0) as i64 - (old != 0) as i64;
        self.apply(segment_of(kh), old ^ new, dc);
    }

    /// XOR `delta` into a leaf and its ancestors, add `dc` to counts.
    fn apply(&mut self, seg: u32, delta: u128, dc: i64) {
        let mut i = seg as usize;
        self.changed[i / 64] |= 1 << (i % 64);
        for l in 0..LEVELS {
            self.hashes[l][i] ^= delta;
            self.counts[l][i] = self.counts[l][i].wrapping_add_signed(dc);
            i >>= FANOUT_BITS;
        }
    }

    fn node(&self, level: usize, i: usize) -> Node {
        Node {
            hash: self.hashes[level][i],
            count: self.counts[level][i],
        }
    }
}

/// The anti-entropy tree of one engine. Thread-safe.
///
/// Its key index (`aae_keys`) and persisted leaves (`aae_leaves`) live in a
/// RocksDB instance of their own (`aae/` inside the store's
/// directory), not in the data's: the settler's index writes then never
/// queue in the data's write path with the writers' batches (measured,
/// 2026-11-27: a 100,000-key counter ingest with the tree on went from
/// 0.78–0.88× to 0.98–1.05× of one with the tree off; BENCHMARKS.md). The
/// index is derived data, written without a WAL: rebuilt from the data
/// after a crash.
///
/// The index is derived data in a second sense too: damage found in it at
/// run time (RocksDB reports corruption reading or writing it) does not
/// make the tree unusable until the next open. The call that found it
/// remakes the index from the data, live, and tries once more (see
/// `Tree::heal`): writers go on meanwhile, and only calls that need the
/// index wait for the rebuild.
///
/// Two locks: `settling` serializes the folds (a fold reads a key's old
/// entry hash from `aae_keys` and writes the new one, so two folds of one
/// key must not interleave) and is held across their I/O; `levels` guards
/// the in-memory levels and is held only to read them or to apply a
/// chunk's computed changes, never across I/O. Writers take neither: they
/// only mark keys dirty (unless the dirty set passes its bound, when a
/// writer settles itself: the back-pressure).
pub struct Tree {
    /// The index's RocksDB instance (`None` with the tree off, and in
    /// unit tests of the marking). Read-locked by every use; write-locked
    /// only to remake it ([`Tree::heal`]).
    index: RwLock<Option<DB>>,
    /// Where the index lives and how it is opened (to remake it).
    place: Option<IndexPlace>,
    /// Set when a read or write of the index reported corruption: the
    /// next [`Tree::heal`] remakes it.
    damaged: AtomicBool,
    settling: Mutex<()>,
    levels: Mutex<Levels>,
    /// Keys written since they were last folded, with their marks: the
    /// marks the writers queued (`queue`), once absorbed here (by the
    /// background settler, or by a settle). Writers never take this lock.
    dirty: Mutex<HashMap<ShortKey, Mark>>,
    /// Keys in `dirty`.
    dirty_len: AtomicUsize,
    /// What writers marked, batch by batch in marking order, not yet
    /// absorbed into `dirty`: a writer's marking costs a push, not a
    /// hash-map lookup per key (measured, 2026-11-27: marking keys in the
    /// map took about 9 % of a counter-increment writer's time, mostly
    /// cache misses). Each batch's flag says whether no settle ran since
    /// the writer's epoch (see [`Tree::mark_dirty_owned`]).
    queue: Mutex<Vec<Queued>>,
    /// Marks in `queue`.
    queued: AtomicUsize,
    /// Bumped by every call that marks keys dirty (a write), so the
    /// background settler can tell when writing pauses.
    marks: AtomicUsize,
    /// Keys marked (counting repeats) since the dirty set was last taken.
    marked: AtomicUsize,
    /// Of those marks, how many went to keys new to the store (the write
    /// created them): an ingest when nearly all did.
    fresh: AtomicUsize,
    /// Bumped when a settle takes the dirty set and again when its last
    /// fold is written: odd while a settle runs. A writer reads it before
    /// it looks at its keys and passes it to [`Tree::mark_dirty_owned`],
    /// which tells from it whether a fold could have indexed a key the
    /// write created.
    epoch: AtomicU64,
    /// Times the index was remade while running ([`Tree::heal`]).
    heals: AtomicU64,
    /// Purge marks queued or dirty whose fold is not done yet (one per
    /// key flagged `purged`, counted from when it is queued).
    purges: AtomicUsize,
    /// The settle epoch from which a writer's created keys are known to
    /// be unindexed while no purge is pending: the epoch at the end of the
    /// last settle that folded a purge (or of the last live rebuild);
    /// `u64::MAX` during a live rebuild. See [`Tree::mark_dirty_owned`].
    trusted_from: AtomicU64,
    /// Debug builds read the old entry of every key marked unindexed
    /// anyway, and count here those that had one; [`Tree::verify`]
    /// reports the tree inconsistent when any did.
    #[cfg(debug_assertions)]
    wrongly_unindexed: AtomicUsize,
}

/// Where the index's instance lives, and the options it is opened with.
struct IndexPlace {
    path: std::path::PathBuf,
    options: rocksdb::Options,
}

impl IndexPlace {
    /// Open the index, creating it if missing.
    fn open(&self) -> Result<DB> {
        Ok(DB::open_cf(
            &self.options,
            &self.path,
            [CF_AAE_KEYS, CF_AAE_LEAVES],
        )?)
    }

    /// Destroy the index's files and open it again, empty.
    fn remake(&self) -> Result<DB> {
        DB::destroy(&self.options, &self.path)?;
        self.open()
    }
}

/// Result of [`crate::Engine::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    /// Keys hashed from the data.
    pub keys: u64,
    /// Segments whose maintained leaf differs from the data (first 100).
    pub bad_segments: Vec<u32>,
    /// Keys whose stored entry hash differs from the data (first 100).
    pub bad_keys: Vec<Vec<u8>>,
    /// Whether the maintained tree equals the recomputed one everywhere.
    pub consistent: bool,
}

impl Tree {
    /// Load the tree at open: the persisted leaves after a clean close, or a
    /// rebuild from the data otherwise. The clean mark is removed, so a
    /// crash before the next clean close forces a rebuild.
    /// With `enabled` false nothing is loaded and the clean mark is removed,
    /// so the next open with the tree enabled rebuilds it.
    /// The index's instance is opened (created if missing) in
    /// `store/`[`INDEX_DIR`] with `options`; it counts as clean only if it
    /// holds the token of `meta/aae_clean` (an index directory lost,
    /// replaced, or older than the mark is rebuilt).
    pub(crate) fn load(
        db: &DB,
        store: &std::path::Path,
        options: &rocksdb::Options,
        enabled: bool,
    ) -> Result<Tree> {
        let meta = cf(db, CF_META)?;
        let sync = crate::store::Options::synced();
        if !enabled {
            db.delete_cf_opt(meta, META_AAE_CLEAN, &sync)?;
            return Ok(Tree::with(Levels::empty(), None, None));
        }
        let mut o = options.clone();
        o.create_if_missing(true);
        o.create_missing_column_families(true);
        o.set_atomic_flush(false);
        // Its values are random entry hashes and its keys start with a
        // random key hash: LZ4 failed to shrink its blocks (a 1M-key
        // ingest left 60,614,818 bytes with it, 60,614,733 without) and
        // cost every flush and compaction the attempt (10M-key ingest:
        // 115k ops/s without, 104k–108k with; BENCHMARKS.md).
        o.set_compression_type(rocksdb::DBCompressionType::None);
        let place = IndexPlace {
            path: store.join(INDEX_DIR),
            options: o,
        };
        // Derived data: a damaged index is made again, not a reason to
        // refuse the store (the data's instance is open, so no other
        // engine holds this one).
        let mut index = match place.open() {
            Ok(index) => index,
            Err(Error::Corruption(_)) => place.remake()?,
            Err(e) => return Err(e),
        };
        let persisted_iblt = match db.get_cf(meta, META_AAE_IBLT)? {
            Some(b) => crate::codec::decode_iblt(&b)
                .ok()
                .filter(|t| t.size() == MAX_CELLS),
            None => None,
        };
        let mark = db.get_cf(meta, META_AAE_CLEAN)?;
        // From here until the next clean close the index is not clean,
        // whatever happens during the load.
        db.delete_cf_opt(meta, META_AAE_CLEAN, &sync)?;
        let clean_load = |index: &DB| -> Result<Option<Levels>> {
            if mark.is_none() || mark != index.get(INDEX_CLEAN)? {
                return Ok(None);
            }
            match persisted_iblt {
                Some(iblt) => load_leaves(index, iblt).map(Some),
                None => Ok(None),
            }
        };
        let loaded = match clean_load(&index) {
            Ok(levels) => levels,
            Err(Error::Corruption(_)) => {
                // Damaged tables: start the index again.
                drop(index);
                index = place.remake()?;
                None
            }
            Err(e) => return Err(e),
        };
        let levels = match loaded {
            Some(levels) => levels,
            None => rebuild(db, &index)?,
        };
        Ok(Tree::with(levels, Some(index), Some(place)))
    }

    /// The index's instance, read-locked (it is remade only under the
    /// write lock).
    ///
    /// With the tree on and no instance, a remake of a damaged index
    /// failed: the call that finds it so tries again (the index is still
    /// marked damaged).
    fn index(&self) -> Result<MappedRwLockReadGuard<'_, DB>> {
        RwLockReadGuard::try_map(self.index.read(), Option::as_ref).map_err(|_| match self.place {
            Some(_) => Error::Storage(
                "the damaged anti-entropy index could not be remade; the next call tries again"
                    .into(),
            ),
            None => disabled(),
        })
    }

    /// `e`, an error of a read or write of the index: corruption there
    /// marks the index damaged, for [`Tree::heal`] to remake.
    fn index_error(&self, e: impl Into<Error>) -> Error {
        let e = e.into();
        if matches!(e, Error::Corruption(_)) {
            self.damaged.store(true, Ordering::SeqCst);
        }
        e
    }

    /// Run `f` (which needs the index), and if it failed because the index
    /// is damaged, remake the index from the data and run `f` once more.
    /// The caller holds the settling lock (no fold runs meanwhile).
    fn healing<T>(
        &self,
        db: &DB,
        settling: &MutexGuard<'_, ()>,
        f: impl Fn() -> Result<T>,
    ) -> Result<T> {
        match f() {
            Err(e) if self.damaged.load(Ordering::SeqCst) => {
                self.heal(db, settling)
                    .map_err(|h| h.shared_copy(&format!("remaking the damaged index ({e})")))?;
                f()
            }
            r => r,
        }
    }

    /// Remake a damaged index from the data, live: the index's files are
    /// destroyed and every key's entry hash is written again from a scan of
    /// `state`, and the levels are replaced by the ones the scan computes.
    /// Writers go on marking keys meanwhile; the keys already dirty stay
    /// dirty (the next settle folds them against the new index), and no
    /// mark may say a key has no index entry any more: the epoch is bumped
    /// as a settle's is, and the flags already absorbed are cleared.
    /// Calls that need the index wait (its write lock is held throughout).
    fn heal(&self, db: &DB, _settling: &MutexGuard<'_, ()>) -> Result<()> {
        let place = self.place.as_ref().ok_or_else(disabled)?;
        // The rescan may index a key created while it runs: no created key
        // is trusted unindexed until it is done.
        self.trusted_from.store(u64::MAX, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for m in self.absorbed().values_mut() {
            m.unindexed = false;
        }
        let mut slot = self.index.write();
        // Closed before its files are destroyed.
        drop(slot.take());
        let remade = place.remake().and_then(|index| {
            let levels = rebuild(db, &index);
            *slot = Some(index);
            levels
        });
        // On failure it stays marked damaged: the next call tries again.
        let healed = remade.map(|levels| {
            *self.levels.lock() = levels;
            self.damaged.store(false, Ordering::SeqCst);
            self.heals.fetch_add(1, Ordering::Relaxed);
        });
        let end = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.trusted_from.store(end, Ordering::SeqCst);
        healed
    }

    /// How many times the index was remade while the engine ran.
    pub(crate) fn heals(&self) -> u64 {
        self.heals.load(Ordering::Relaxed)
    }

    /// Compact the index (after [`Engine::compact`](crate::Engine::compact)
    /// compacted the data): reclaims the space of deleted entries. Nothing
    /// to do with the tree off.
    pub(crate) fn compact(&self) -> Result<()> {
        if let Some(index) = &*self.index.read() {
            for name in [CF_AAE_KEYS, CF_AAE_LEAVES] {
                index.compact_range_cf(cf(index, name)?, None::<&[u8]>, None::<&[u8]>);
            }
        }
        Ok(())
    }

    fn with(levels: Levels, index: Option<DB>, place: Option<IndexPlace>) -> Tree {
        Tree {
            index: RwLock::new(index),
            place,
            damaged: AtomicBool::new(false),
            heals: AtomicU64::new(0),
            purges: AtomicUsize::new(0),
            trusted_from: AtomicU64::new(0),
            settling: Mutex::new(()),
            levels: Mutex::new(levels),
            dirty: Mutex::new(HashMap::new()),
            dirty_len: AtomicUsize::new(0),
            queue: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
            marks: AtomicUsize::new(0),
            marked: AtomicUsize::new(0),
            fresh: AtomicUsize::new(0),
            epoch: AtomicU64::new(0),
            #[cfg(debug_assertions)]
            wrongly_unindexed: AtomicUsize::new(0),
        }
    }

    /// The dirty set, locked, with every queued mark absorbed into it:
    /// what was marked before this call (writers queue under `queue`'s
    /// lock, taken here under the dirty set's, so no mark is in between).
    /// Marks come in marking order: a key's first mark since it was last
    /// taken sets its `unindexed` flag, its last one its hint.
    fn absorbed(&self) -> MutexGuard<'_, HashMap<ShortKey, Mark>> {
        let mut dirty = self.dirty.lock();
        let queue = std::mem::take(&mut *self.queue.lock());
        for Queued { keys, quiet, purge } in queue {
            self.queued.fetch_sub(keys.len(), Ordering::Relaxed);
            for (k, hint, created) in keys {
                let mark = Mark {
                    hint,
                    unindexed: created && quiet,
                    purged: purge,
                };
                self.put_mark(&mut dirty, k, mark);
            }
        }
        dirty
    }

    /// Add a mark to the dirty set: a key already dirty keeps its
    /// `unindexed` flag (the index is what it was at its first mark) and
    /// takes the new hint; a second purge flag of one key is counted out.
    fn put_mark(&self, dirty: &mut HashMap<ShortKey, Mark>, k: ShortKey, mark: Mark) {
        match dirty.entry(k) {
            MarkEntry::Occupied(mut e) => {
                let m = e.get_mut();
                m.hint = mark.hint;
                if mark.purged {
                    if m.purged {
                        self.purges.fetch_sub(1, Ordering::SeqCst);
                    }
                    m.purged = true;
                }
            }
            MarkEntry::Vacant(e) => {
                e.insert(mark);
                self.dirty_len.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Absorb the queued marks into the dirty set (the background
    /// settler, each time it looks, so that [`Tree::dirty_keys`] counts
    /// distinct keys and the writers' marks are hashed on its core).
    pub(crate) fn absorb(&self) {
        drop(self.absorbed());
    }

    /// Keys to fold again after a failed settle: the state is read (a hint
    /// they carried may be older than a mark made meanwhile, which wins),
    /// and so is their old index entry (nothing is assumed of it).
    /// A purge flag stays (its fold is still to be done).
    fn mark_again(&self, keys: &[(ShortKey, Mark)]) {
        let mut d = self.absorbed();
        for (k, m) in keys {
            let mark = Mark {
                hint: 0,
                unindexed: false,
                purged: m.purged,
            };
            // A later mark's hint wins; its flag stays as set (a purge flag
            // is put back on it).
            if m.purged || !d.contains_key(k) {
                self.put_mark(&mut d, k.clone(), mark);
            }
        }
    }

    /// The settle epoch, for [`Tree::mark_dirty_owned`]: a writer reads it
    /// once it holds its keys' stripes, before it looks at them.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Record that these keys were written (after the write is durable,
    /// under the keys' stripes, so a key's marks come in commit order),
    /// each with its hint (see [`Mark`]; the last mark of a key wins) and
    /// whether the write created it. `epoch` is [`Tree::epoch`] as the
    /// writer read it before it looked at its keys.
    ///
    /// A created key needs no old index entry read at its fold when it is
    /// not dirty already and either
    /// - no settle ran since `epoch` (nor at it): the last settle before
    ///   then took every earlier mark of the key and folded it from a state
    ///   read after those writes, which is the state the writer found
    ///   absent, so `aae_keys` holds no entry for it (a collection that
    ///   removes a key marks it too); or
    /// - no purge is pending (queued, dirty or being folded) and the last
    ///   settle that folded one ended at or before `epoch`: an index entry
    ///   is only ever written by a fold (or a rebuild) from a state the
    ///   store held, and a key the store holds nothing of either never had
    ///   one or lost its state by a purge, whose fold — done before the
    ///   writer looked — removed the entry. So settles that run meanwhile,
    ///   as they do all through a long ingest, do not cost every created
    ///   key a read of the index (measured at 10M keys: the settler's
    ///   reads of old entries were most of its time).
    ///
    /// A key still dirty keeps the flag its first mark since its last fold
    /// set: the index is what it was then.
    pub(crate) fn mark_dirty_owned(&self, keys: Vec<Written>, epoch: u64) {
        self.enqueue(keys, false, || {
            // Read under the queue's lock: a settle that took the queue
            // bumped the epoch before it did. `purges` is raised under it
            // too; a fold lowers it after it moved `trusted_from`.
            (epoch % 2 == 0 && self.epoch.load(Ordering::SeqCst) == epoch)
                || (self.purges.load(Ordering::SeqCst) == 0
                    && epoch >= self.trusted_from.load(Ordering::SeqCst))
        });
    }

    /// Record that a collection purged `key` (removed its state and its
    /// `types` entry; after the write, under the key's stripe). Until the
    /// fold of this mark is done, created keys are not trusted to be
    /// unindexed by the second rule of [`Tree::mark_dirty_owned`]: a fold
    /// of the purge that runs after the key is created again reads the
    /// new state and indexes it.
    pub(crate) fn mark_purged(&self, key: ShortKey) {
        self.enqueue(vec![(key, 0, false)], true, || false);
    }

    /// Queue one write's marks (`purge`: a collection's, counted in
    /// `purges`), with the flag `quiet` computes under the queue's lock.
    fn enqueue(&self, keys: Vec<Written>, purge: bool, quiet: impl FnOnce() -> bool) {
        let n = keys.len();
        self.marks.fetch_add(1, Ordering::Relaxed);
        self.marked.fetch_add(n, Ordering::Relaxed);
        let fresh = keys.iter().filter(|k| k.2).count();
        self.fresh.fetch_add(fresh, Ordering::Relaxed);
        let mut queue = self.queue.lock();
        if purge {
            self.purges.fetch_add(1, Ordering::SeqCst);
        }
        let quiet = quiet();
        queue.push(Queued { keys, quiet, purge });
        self.queued.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether `key` is dirty, and if so whether its mark says it has no
    /// index entry.
    #[cfg(test)]
    fn unindexed(&self, key: &[u8]) -> Option<bool> {
        self.absorbed().get(key).map(|m| m.unindexed)
    }

    /// Whether so many keys are dirty (or marks queued) that a writer
    /// should settle them.
    pub(crate) fn over_budget(&self) -> bool {
        self.dirty_keys() >= MAX_DIRTY
    }

    /// How many times keys were marked dirty (writes) since open.
    pub(crate) fn marks(&self) -> usize {
        self.marks.load(Ordering::Relaxed)
    }

    /// Number of keys written since the last settle: the distinct keys of
    /// the dirty set, plus the marks queued since it last absorbed them
    /// (one per write of a key, until absorbed).
    pub fn dirty_keys(&self) -> usize {
        self.dirty_len.load(Ordering::Relaxed) + self.queued.load(Ordering::Relaxed)
    }

    /// Keys marked dirty, counting repeats, since the dirty set was last
    /// taken (at least [`Tree::dirty_keys`]).
    pub(crate) fn marked_keys(&self) -> usize {
        self.marked.load(Ordering::Relaxed)
    }

    /// Of [`Tree::marked_keys`], the marks of keys the marking write
    /// created.
    pub(crate) fn fresh_keys(&self) -> usize {
        self.fresh.load(Ordering::Relaxed)
    }

    /// Fold every dirty key into the tree once: read its merged state, hash
    /// it, replace its old entry hash. Returns how many keys were folded.
    /// A damaged index is remade first ([`Tree::heal`]).
    pub(crate) fn settle(&self, db: &DB) -> Result<usize> {
        let guard = self.settling.lock();
        self.healing(db, &guard, || self.settle_locked(db, &guard))
    }

    /// [`Tree::settle`] with the settling lock held by the caller.
    fn settle_locked(&self, db: &DB, _settling: &MutexGuard<'_, ()>) -> Result<usize> {
        // Odd from before the dirty set is taken until the last fold is
        // written (see `mark_dirty_owned`).
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let keys = self.take_dirty();
        let folded = self.fold_keys(db, keys);
        self.epoch.fetch_add(1, Ordering::SeqCst);
        folded
    }

    /// Take the dirty set, in key order (the state lookups then walk the
    /// memtable and SSTs in order: much better locality than hash order).
    fn take_dirty(&self) -> Vec<(ShortKey, Mark)> {
        let mut dirty = self.absorbed();
        self.marked.store(0, Ordering::Relaxed);
        self.fresh.store(0, Ordering::Relaxed);
        let mut keys: Vec<(ShortKey, Mark)> = std::mem::take(&mut *dirty).into_iter().collect();
        self.dirty_len.fetch_sub(keys.len(), Ordering::Relaxed);
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        keys
    }

    /// Fold taken keys, chunk by chunk.
    /// The purges folded are counted out once they all are, after
    /// `trusted_from` moved to the epoch this settle ends at (see
    /// [`Tree::mark_dirty_owned`]).
    fn fold_keys(&self, db: &DB, keys: Vec<(ShortKey, Mark)>) -> Result<usize> {
        let n = keys.len();
        let mut purged = 0;
        let mut result = Ok(n);
        for (i, chunk) in keys.chunks(4096).enumerate() {
            // The chunk's I/O runs without the levels' lock; its changes
            // are applied under it in one short step.
            match self.fold_chunk(db, chunk) {
                Ok(changes) => {
                    let iblt = iblt_updates(&changes);
                    self.levels.lock().replace_all(&changes, iblt);
                    purged += chunk.iter().filter(|(_, m)| m.purged).count();
                }
                Err(e) => {
                    // Nothing folded from here on: keep those keys dirty.
                    self.mark_again(&keys[i * 4096..]);
                    result = Err(e);
                    break;
                }
            }
        }
        if purged > 0 {
            // The epoch this settle ends at (it is odd while it runs).
            let end = (self.epoch.load(Ordering::SeqCst) + 1) & !1;
            self.trusted_from.fetch_max(end, Ordering::SeqCst);
            self.purges.fetch_sub(purged, Ordering::SeqCst);
        }
        result
    }

    /// A node (after settling). `level` 0 is the leaves, `LEVELS - 1` the root.
    pub(crate) fn node(&self, level: usize, i: usize) -> Node {
        self.levels.lock().node(level, i)
    }

    /// Every node hash of a level.
    pub(crate) fn level_hashes(&self, level: usize) -> Vec<u128> {
        self.levels.lock().hashes[level].clone()
    }

    /// The maintained IBLT folded to `size` cells per sub-table.
    pub(crate) fn iblt(&self, size: usize) -> Iblt {
        self.levels.lock().iblt.fold(size)
    }

    /// Persist changed leaves and mark the tree clean (at close): the
    /// index's instance is flushed with the leaves and a fresh token, then
    /// the data's `meta` gets the IBLT and the same token (synced).
    pub(crate) fn persist_clean(&self, db: &DB) -> Result<()> {
        let settling = self.settling.lock();
        self.healing(db, &settling, || self.settle_locked(db, &settling))?;
        let index = &*self.index()?;
        let mut levels = self.levels.lock();
        let leaves = cf(index, CF_AAE_LEAVES)?;
        let mut wb = rocksdb::WriteBatch::default();
        for (w, bits) in levels.changed.iter().enumerate() {
            let mut b = *bits;
            while b != 0 {
                let seg = (w * 64 + b.trailing_zeros() as usize) as u32;
                b &= b - 1;
                let node = levels.node(0, seg as usize);
                if node.count == 0 && node.hash == 0 {
                    wb.delete_cf(leaves, seg.to_be_bytes());
                } else {
                    wb.put_cf(leaves, seg.to_be_bytes(), encode_leaf(node));
                }
            }
        }
        let mut token = [0u8; 16];
        getrandom::fill(&mut token)
            .map_err(|e| Error::Io(format!("no random token for the clean mark: {e}")))?;
        wb.put(INDEX_CLEAN, token);
        index.write_opt(wb, &no_wal())?;
        // Written without the WAL: durable once flushed, before the data
        // says the index is clean.
        let keys = cf(index, CF_AAE_KEYS)?;
        let default = cf(index, rocksdb::DEFAULT_COLUMN_FAMILY_NAME)?;
        index.flush_cfs_opt(&[keys, leaves, default], &rocksdb::FlushOptions::default())?;
        let meta = cf(db, CF_META)?;
        let mut wb = rocksdb::WriteBatch::default();
        wb.put_cf(meta, META_AAE_IBLT, crate::codec::encode_iblt(&levels.iblt));
        wb.put_cf(meta, META_AAE_CLEAN, token);
        db.write_opt(wb, &crate::store::Options::synced())?;
        levels.changed.fill(0);
        Ok(())
    }

    /// Recompute the tree from the data and compare it with the maintained
    /// one (after settling). Holds the settling lock (no fold runs
    /// meanwhile), not the levels' lock: writers go on marking keys dirty,
    /// and only past the dirty set's bound would a writer wait for it.
    /// The data is read at a snapshot taken after the settle; a write
    /// landing between the two shows as a difference (verify a quiet
    /// replica).
    pub(crate) fn verify(&self, db: &DB) -> Result<VerifyReport> {
        let settling = self.settling.lock();
        self.healing(db, &settling, || {
            self.settle_locked(db, &settling)?;
            self.verify_settled(db)
        })
    }

    /// [`Tree::verify`] once settled, with the settling lock held.
    fn verify_settled(&self, db: &DB) -> Result<VerifyReport> {
        let snap = db.snapshot();
        let mut fresh = Levels::empty();
        let mut keys = 0u64;
        let mut bad_keys = Vec::new();
        // The index changes only by folds, and none runs meanwhile.
        let index = &*self.index()?;
        let aae_keys = cf(index, CF_AAE_KEYS)?;
        let mut it = snap.raw_iterator_cf_opt(cf(db, CF_STATE)?, state_scan());
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let kh = key_hash(k);
            let eh = entry_hash(k, v);
            fresh.replace(kh, 0, eh);
            keys += 1;
            let stored = index
                .get_pinned_cf(aae_keys, aae_key(kh, k))
                .map_err(|e| self.index_error(e))?;
            if stored.as_deref() != Some(&eh.to_be_bytes()[..]) && bad_keys.len() < 100 {
                bad_keys.push(k.to_vec());
            }
            it.next();
        }
        it.status()?;
        let levels = self.levels.lock();
        let mut bad_segments = Vec::new();
        let mut consistent = bad_keys.is_empty() && levels.iblt == fresh.iblt;
        #[cfg(debug_assertions)]
        if self.wrongly_unindexed.load(Ordering::Relaxed) > 0 {
            consistent = false;
        }
        for l in 0..LEVELS {
            for i in 0..levels.hashes[l].len() {
                if levels.node(l, i) != fresh.node(l, i) {
                    consistent = false;
                    if l == 0 && bad_segments.len() < 100 {
                        bad_segments.push(i as u32);
                    }
                }
            }
        }
        Ok(VerifyReport {
            keys,
            bad_segments,
            bad_keys,
            consistent,
        })
    }

    /// Run `f`, a read of the index only, without the settling lock; if it
    /// found the index damaged, take the lock and heal ([`Tree::healing`]).
    fn reading<T>(&self, db: &DB, f: impl Fn() -> Result<T>) -> Result<T> {
        let f = || f().map_err(|e| self.index_error(e));
        match f() {
            Err(_) if self.damaged.load(Ordering::SeqCst) => {
                let settling = self.settling.lock();
                self.healing(db, &settling, f)
            }
            r => r,
        }
    }

    /// Keys whose key hash is in `lo..=hi`, with key and entry hashes,
    /// from `aae_keys`, in key-hash order. Call after settling.
    pub(crate) fn entries_in(
        &self,
        db: &DB,
        lo: u64,
        hi: u64,
    ) -> Result<Vec<(u64, Vec<u8>, u128)>> {
        self.reading(db, || self.read_entries_in(lo, hi))
    }

    /// [`Tree::entries_in`], once.
    fn read_entries_in(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Vec<u8>, u128)>> {
        let index = &*self.index()?;
        let mut it = index.raw_iterator_cf(cf(index, CF_AAE_KEYS)?);
        it.seek(lo.to_be_bytes());
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let (kh, key) = split_aae_key(k)?;
            if kh > hi {
                break;
            }
            out.push((kh, key.to_vec(), decode_eh(v)?));
            it.next();
        }
        it.status()?;
        Ok(out)
    }
}

impl Tree {
    /// Keys with each of the given key hashes (sorted ascending), with key
    /// and entry hashes: one iterator, one seek per hash.
    pub(crate) fn entries_for(&self, db: &DB, khs: &[u64]) -> Result<Vec<(u64, Vec<u8>, u128)>> {
        self.reading(db, || self.read_entries_for(khs))
    }

    /// [`Tree::entries_for`], once.
    fn read_entries_for(&self, khs: &[u64]) -> Result<Vec<(u64, Vec<u8>, u128)>> {
        let index = &*self.index()?;
        let mut it = index.raw_iterator_cf(cf(index, CF_AAE_KEYS)?);
        let mut out = Vec::with_capacity(khs.len());
        for kh in khs {
            it.seek(kh.to_be_bytes());
            while let (Some(k), Some(v)) = (it.key(), it.value()) {
                let (h, key) = split_aae_key(k)?;
                if h != *kh {
                    break;
                }
                out.push((h, key.to_vec(), decode_eh(v)?));
                it.next();
            }
        }
        it.status()?;
        Ok(out)
    }

    /// Fold a chunk of keys (in key order): read their states and old
    /// entry hashes, write the new ones to `aae_keys`, and return the
    /// changes `(key hash, old, new)` for the levels.
    fn fold_chunk(&self, db: &DB, chunk: &[(ShortKey, Mark)]) -> Result<Vec<(u64, u128, u128)>> {
        let state = cf(db, CF_STATE)?;
        let index = &*self.index()?;
        let aae_keys = cf(index, CF_AAE_KEYS)?;
        // `chunk` is in key order (for the state lookups); the index is
        // read and written in key-hash order. A key whose last write left
        // a hint (its state put whole, or the operand that created it)
        // comes with that entry hash: it is not read back.
        let mut news: Vec<u128> = chunk.iter().map(|(_, m)| m.hint).collect();
        let unknown: Vec<usize> = (0..chunk.len()).filter(|i| news[*i] == 0).collect();
        if !unknown.is_empty() {
            let ks: Vec<&[u8]> = unknown.iter().map(|i| chunk[*i].0.bytes()).collect();
            for (i, st) in unknown
                .iter()
                .zip(db.batched_multi_get_cf(state, &ks, true))
            {
                news[*i] = st?.map(|b| entry_hash(&chunk[*i].0, &b)).unwrap_or(0);
            }
        }
        let mut order: Vec<(u64, usize)> = chunk
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (key_hash(k), i))
            .collect();
        order.sort_unstable();
        let index_keys: Vec<Vec<u8>> = order
            .iter()
            .map(|(kh, i)| aae_key(*kh, &chunk[*i].0))
            .collect();
        // The old entries of keys known to have none are not read (an
        // ingest: every key is new). Debug builds read them all, to catch
        // a wrong flag.
        let read_all = cfg!(debug_assertions);
        let read: Vec<usize> = (0..order.len())
            .filter(|j| read_all || !chunk[order[*j].1].1.unindexed)
            .collect();
        let ks: Vec<&[u8]> = read.iter().map(|j| index_keys[*j].as_slice()).collect();
        let mut olds = vec![0u128; order.len()];
        for (j, old) in read
            .iter()
            .zip(index.batched_multi_get_cf(aae_keys, &ks, true))
        {
            if let Some(b) = old.map_err(|e| self.index_error(e))? {
                olds[*j] = decode_eh(&b).map_err(|e| self.index_error(e))?;
            }
        }
        let mut wb = rocksdb::WriteBatch::default();
        let mut changes = Vec::with_capacity(chunk.len());
        for (((kh, i), ak), old) in order.iter().zip(&index_keys).zip(olds) {
            let new = news[*i];
            let unindexed = chunk[*i].1.unindexed;
            #[cfg(debug_assertions)]
            if unindexed && old != 0 {
                self.wrongly_unindexed.fetch_add(1, Ordering::Relaxed);
            }
            let old = if unindexed { 0 } else { old };
            if new != old {
                if new == 0 {
                    wb.delete_cf(aae_keys, ak);
                } else {
                    wb.put_cf(aae_keys, ak, new.to_be_bytes());
                }
                changes.push((*kh, old, new));
            }
        }
        index
            .write_opt(wb, &no_wal())
            .map_err(|e| self.index_error(e))?;
        Ok(changes)
    }
}

/// The IBLT cell updates of a chunk's changes (`fold_chunk`): hashed
/// without the levels' lock, applied under it in cell order.
fn iblt_updates(changes: &[(u64, u128, u128)]) -> Vec<CellUpdate> {
    let elements = changes.iter().flat_map(|(kh, old, new)| {
        let out = |eh: u128, sign: i32| {
            (eh != 0).then_some((
                Entry {
                    kh: *kh,
                    eh: eh as u32,
                },
                sign,
            ))
        };
        [out(*old, -1), out(*new, 1)].into_iter().flatten()
    });
    Iblt::updates_for(MAX_CELLS, elements)
}

/// What asking a disabled tree for anything is.
pub(crate) fn disabled() -> Error {
    Error::InvalidArgument("anti-entropy is disabled in this engine's options".into())
}

/// Writes to `aae_keys` skip the WAL: after a crash the whole index is
/// rebuilt anyway, and a clean close flushes it before marking it clean.
fn no_wal() -> rocksdb::WriteOptions {
    let mut w = rocksdb::WriteOptions::default();
    w.disable_wal(true);
    w
}

/// The levels from the persisted leaves and IBLT (a clean index).
fn load_leaves(index: &DB, iblt: Iblt) -> Result<Levels> {
    let mut levels = Levels::empty();
    levels.iblt = iblt;
    let mut it = index.raw_iterator_cf(cf(index, CF_AAE_LEAVES)?);
    it.seek_to_first();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let (seg, node) = decode_leaf(k, v)?;
        levels.apply(seg, node.hash, node.count as i64);
        it.next();
    }
    it.status()?;
    levels.changed.fill(0);
    Ok(levels)
}

/// Rebuild the tree and the index's `aae_keys` from the data's state
/// column family.
fn rebuild(db: &DB, index: &DB) -> Result<Levels> {
    let aae_keys = cf(index, CF_AAE_KEYS)?;
    let mut levels = Levels::empty();
    // Past every possible entry: 8 bytes of key hash plus the longest key.
    let end = vec![0xffu8; 8 + crate::MAX_KEY_LEN + 1];
    index.delete_range_cf(aae_keys, &[][..], &end[..])?;
    index.delete_range_cf(cf(index, CF_AAE_LEAVES)?, &[][..], &[0xffu8; 5][..])?;
    let mut it = db.raw_iterator_cf_opt(cf(db, CF_STATE)?, state_scan());
    it.seek_to_first();
    let mut wb = rocksdb::WriteBatch::default();
    while let (Some(k), Some(v)) = (it.key(), it.value()) {
        let kh = key_hash(k);
        let eh = entry_hash(k, v);
        wb.put_cf(aae_keys, aae_key(kh, k), eh.to_be_bytes());
        levels.replace(kh, 0, eh);
        if wb.len() >= 10_000 {
            index.write_opt(std::mem::take(&mut wb), &no_wal())?;
        }
        it.next();
    }
    it.status()?;
    index.write_opt(wb, &no_wal())?;
    // Every non-empty leaf must be persisted at the next clean close.
    Ok(levels)
}

/// `aae_keys` key: key hash (8 bytes, big-endian) then the user key.
fn aae_key(kh: u64, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + key.len());
    v.extend_from_slice(&kh.to_be_bytes());
    v.extend_from_slice(key);
    v
}

fn split_aae_key(k: &[u8]) -> Result<(u64, &[u8])> {
    match k.split_first_chunk::<8>() {
        Some((h, rest)) => Ok((u64::from_be_bytes(*h), rest)),
        None => Err(Error::Corruption(
            "anti-entropy key index entry is damaged".into(),
        )),
    }
}

fn decode_eh(v: &[u8]) -> Result<u128> {
    let b: [u8; 16] = v
        .try_into()
        .map_err(|_| Error::Corruption("stored entry hash is damaged".into()))?;
    Ok(u128::from_be_bytes(b))
}

fn encode_leaf(n: Node) -> [u8; 24] {
    let mut b = [0u8; 24];
    b[..16].copy_from_slice(&n.hash.to_be_bytes());
    b[16..].copy_from_slice(&n.count.to_be_bytes());
    b
}

fn decode_leaf(k: &[u8], v: &[u8]) -> Result<(u32, Node)> {
    let bad = || Error::Corruption("persisted anti-entropy leaf is damaged".into());
    let seg = u32::from_be_bytes(k.try_into().map_err(|_| bad())?);
    if seg >= 1 << SEGMENT_BITS || v.len() != 24 {
        return Err(bad());
    }
    let hash = u128::from_be_bytes(v[..16].try_into().map_err(|_| bad())?);
    let count = u64::from_be_bytes(v[16..].try_into().map_err(|_| bad())?);
    Ok((seg, Node { hash, count }))
}

#[cfg(test)]
mod tests {
    use crate::causal::ReplicaId;
    use crate::shortkey::ShortKey;
    use crate::{Batch, Engine, Options};
    use std::sync::atomic::Ordering;

    /// The settler's ingest rule counts marks of keys the write created:
    /// new keys (local or merged) count, keys that exist do not.
    #[test]
    fn marks_count_the_keys_a_write_creates() {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = Engine::open(da.path(), Options::with_replica(ReplicaId(1))).unwrap();
        let b = Engine::open(db.path(), Options::with_replica(ReplicaId(2))).unwrap();
        let peer_new = b.increment(b"r", 1).unwrap().delta.encode();
        let peer_old = b.increment(b"k0", 1).unwrap().delta.encode();
        // Held, the settling lock keeps the settler from taking the marks.
        let settling = a.tree.settling.lock();
        let counts = || (a.tree.marked_keys(), a.tree.fresh_keys());
        let mut batch = Batch::new();
        for i in 0..10 {
            batch.increment(format!("k{i}"), 1);
        }
        a.write(&batch).unwrap();
        assert_eq!(counts(), (10, 10), "ten new keys");
        let mut batch = Batch::new();
        for i in 0..5 {
            batch.increment(format!("k{i}"), 1);
        }
        batch.orset_add("s", "x");
        a.write(&batch).unwrap();
        assert_eq!(counts(), (16, 11), "five that exist, one new");
        a.orset_add(b"s", b"y").unwrap();
        assert_eq!(counts(), (17, 11), "a set that exists, its state read");
        a.merge(b"r", &peer_new).unwrap();
        a.merge(b"k0", &peer_old).unwrap();
        assert_eq!(
            counts(),
            (19, 12),
            "a peer's delta to a new key, one to a key that exists"
        );
        assert_eq!(a.delete(b"nothing", None).unwrap(), None);
        assert_eq!(counts(), (19, 12), "a delete of nothing marks nothing");
        drop(settling);
        a.settle().unwrap();
        assert_eq!(counts(), (0, 0), "a settle takes the marks");
    }

    /// A key the write creates is folded without reading its old index
    /// entry, unless the index may hold one: the key was marked since its
    /// last fold (a collection removed it), or a settle ran between the
    /// writer's look at its keys and its mark.
    #[test]
    fn created_keys_are_folded_without_reading_an_old_index_entry() {
        ten_created(|a, settling| {
            let tree = &a.tree;
            a.increment(b"k3", 1).unwrap();
            assert_eq!(tree.unindexed(b"k3"), Some(true), "kept: not folded since");
            tree.settle_locked(&a.db, settling).unwrap();
            a.increment(b"k3", 1).unwrap();
            assert_eq!(tree.unindexed(b"k3"), Some(false), "folded since: indexed");
            // Deleted, folded, then collected: the collection marks the key,
            // and a write creating it again before the next fold keeps that
            // mark's flag (the index still holds the key's entry).
            a.delete(b"k4", None).unwrap();
            tree.settle_locked(&a.db, settling).unwrap();
            assert_eq!(a.collect().unwrap().purged, 1);
            assert_eq!(tree.unindexed(b"k4"), Some(false), "collected");
            a.increment(b"k4", 5).unwrap();
            assert_eq!(
                tree.unindexed(b"k4"),
                Some(false),
                "created again, unfolded"
            );
            // The same for a key created again blind: its operand's hint
            // replaces the collection's, and its old entry is read (`verify`
            // below holds the fold to the data).
            a.lww_set(b"w6", b"first").unwrap();
            a.delete(b"w6", None).unwrap();
            tree.settle_locked(&a.db, settling).unwrap();
            assert_eq!(a.collect().unwrap().purged, 1);
            a.lww_set(b"w6", b"again").unwrap();
            assert_eq!(tree.unindexed(b"w6"), Some(false), "created again blind");
            // The same, with a settle taking the collection's mark before the
            // key is created again and folding it after: the fold reads the
            // new state and indexes it, so the writer's mark, made while the
            // settle runs, must not say unindexed.
            a.delete(b"k5", None).unwrap();
            tree.settle_locked(&a.db, settling).unwrap();
            assert_eq!(a.collect().unwrap().purged, 1);
            tree.epoch.fetch_add(1, Ordering::SeqCst);
            let taken = tree.take_dirty();
            assert!(taken.iter().any(|(k, _)| k.bytes() == b"k5"));
            a.increment(b"k5", 6).unwrap();
            assert_eq!(
                tree.unindexed(b"k5"),
                Some(false),
                "created during a settle"
            );
            tree.fold_keys(&a.db, taken).unwrap();
            tree.epoch.fetch_add(1, Ordering::SeqCst);
            tree.settle_locked(&a.db, settling).unwrap();
            // A settle between the writer's look (the epoch it read) and its
            // mark, with no purge pending: it folded no mark of the key (the
            // store held nothing of it, and no purge of it waits), so it
            // indexed nothing of it.
            let before = tree.epoch();
            tree.settle_locked(&a.db, settling).unwrap();
            tree.mark_dirty_owned(vec![(ShortKey::new(b"x"), 0, true)], before);
            assert_eq!(tree.unindexed(b"x"), Some(true), "a settle ran, no purge");
            tree.mark_dirty_owned(vec![(ShortKey::new(b"y"), 0, true)], tree.epoch() + 1);
            assert_eq!(
                tree.unindexed(b"y"),
                Some(true),
                "one was running, no purge"
            );
            // With a purge pending, only the first rule holds: no settle since
            // the writer looked.
            a.lww_set(b"p7", b"first").unwrap();
            a.delete(b"p7", None).unwrap();
            tree.settle_locked(&a.db, settling).unwrap();
            let before = tree.epoch();
            assert_eq!(a.collect().unwrap().purged, 1);
            assert_eq!(tree.purges.load(Ordering::SeqCst), 1);
            tree.mark_dirty_owned(vec![(ShortKey::new(b"z"), 0, true)], tree.epoch());
            assert_eq!(tree.unindexed(b"z"), Some(true), "none ran");
            let folding = tree.epoch();
            tree.settle_locked(&a.db, settling).unwrap();
            assert_eq!(tree.purges.load(Ordering::SeqCst), 0, "the purge folded");
            tree.mark_dirty_owned(vec![(ShortKey::new(b"u"), 0, true)], before);
            assert_eq!(tree.unindexed(b"u"), Some(false), "looked before the purge");
            tree.mark_dirty_owned(vec![(ShortKey::new(b"v"), 0, true)], folding + 1);
            assert_eq!(tree.unindexed(b"v"), Some(false), "looked while it folded");
            tree.mark_dirty_owned(vec![(ShortKey::new(b"w"), 0, true)], tree.epoch());
            assert_eq!(tree.unindexed(b"w"), Some(true), "looked after it");
            // A second purge of a key already dirty with one counts once.
            tree.mark_purged(ShortKey::new(b"q"));
            tree.mark_purged(ShortKey::new(b"q"));
            tree.absorb();
            assert_eq!(tree.purges.load(Ordering::SeqCst), 1);
            tree.settle_locked(&a.db, settling).unwrap();
            assert_eq!(tree.purges.load(Ordering::SeqCst), 0);
            // (x, y, z, u, v, w and q have no state: read, none is found.)
        });
    }

    /// Run `f` on an engine holding ten counters `k0`..`k9` just created
    /// (unindexed), with the settling lock held (it keeps the settler out;
    /// settles in `f` run under it); then, the lock released, the tree must
    /// be exact with 11 keys (`f` creates one more).
    fn ten_created(f: impl FnOnce(&Engine, &parking_lot::MutexGuard<'_, ()>)) {
        let dir = tempfile::tempdir().unwrap();
        let a = Engine::open(dir.path(), Options::with_replica(ReplicaId(1))).unwrap();
        {
            let settling = a.tree.settling.lock();
            let mut batch = Batch::new();
            for i in 0..10 {
                batch.increment(format!("k{i}"), 1);
            }
            a.write(&batch).unwrap();
            assert_eq!(a.tree.unindexed(b"k3"), Some(true), "created");
            f(&a, &settling);
        }
        assert_exact(&a, 11);
    }

    /// The maintained tree equals the one recomputed from the data, which
    /// holds `keys` keys, and no key was wrongly taken for unindexed.
    fn assert_exact(a: &Engine, keys: u64) {
        let report = a.verify().unwrap();
        assert!(report.consistent, "{report:?}");
        assert_eq!(report.keys, keys);
        #[cfg(debug_assertions)]
        assert_eq!(a.tree.wrongly_unindexed.load(Ordering::Relaxed), 0);
    }

    /// A live rebuild of the index (`Tree::heal`) indexes every key the
    /// data holds, so the keys dirty at that point, and those a writer
    /// marks while it runs, must not keep or get the flag that says they
    /// have no index entry.
    #[test]
    fn a_live_rebuild_leaves_no_key_unindexed() {
        ten_created(|a, settling| {
            let tree = &a.tree;
            // A writer that looked at its keys before the rebuild and marks
            // them after it.
            let before = tree.epoch();
            tree.damaged.store(true, Ordering::SeqCst);
            tree.heal(&a.db, settling).unwrap();
            assert!(!tree.damaged.load(Ordering::SeqCst));
            assert_eq!(tree.heals(), 1);
            assert_eq!(tree.unindexed(b"k3"), Some(false), "rebuilt: indexed");
            tree.mark_dirty_owned(vec![(ShortKey::new(b"k9"), 0, true)], before);
            assert_eq!(tree.unindexed(b"k9"), Some(false), "a rebuild ran");
            a.increment(b"k10", 1).unwrap();
            assert_eq!(tree.unindexed(b"k10"), Some(true), "created after it");
            tree.settle_locked(&a.db, settling).unwrap();
        });
    }

    /// A blind write that creates a key leaves its operand's entry hash
    /// as the hint and the key unindexed, with a WAL or without (where the
    /// column families are flushed together, so a crash leaves no state
    /// without its `types` entry: `tests/crash.rs`).
    #[test]
    fn created_blind_keys_are_hinted() {
        for durability in [crate::Durability::Buffered, crate::Durability::None] {
            let dir = tempfile::tempdir().unwrap();
            let options = Options::with_replica(ReplicaId(1)).durability(durability);
            let a = Engine::open(dir.path(), options).unwrap();
            let settling = a.tree.settling.lock();
            a.lww_set(b"k", b"v").unwrap();
            let mark = a.tree.absorbed().get(&b"k"[..]).copied().unwrap();
            assert_ne!(mark.hint, 0, "{durability:?}");
            assert!(mark.unindexed, "{durability:?}");
            drop(settling);
            assert!(a.verify().unwrap().consistent);
        }
    }

    /// Writers' marks queue until absorbed, then count as distinct keys;
    /// absorbed in marking order, a key keeps the flag of its first mark
    /// since it was last taken and the hint of its last one.
    #[test]
    fn queued_marks_absorb_in_marking_order() {
        let tree = super::Tree::with(super::Levels::empty(), None, None);
        let mark = |k: &[u8], hint: u128, created: bool| (ShortKey::new(k), hint, created);
        let e = tree.epoch();
        tree.mark_dirty_owned(vec![mark(b"a", 1, true), mark(b"b", 2, false)], e);
        tree.mark_dirty_owned(vec![mark(b"a", 3, false)], e);
        assert_eq!(tree.dirty_keys(), 3, "queued: each mark counts");
        tree.absorb();
        assert_eq!(tree.dirty_keys(), 2, "absorbed: distinct keys");
        tree.mark_dirty_owned(vec![mark(b"b", 4, true), mark(b"c", 0, true)], e);
        assert_eq!(tree.dirty_keys(), 4);
        let taken = tree.take_dirty();
        assert_eq!(tree.dirty_keys(), 0);
        let got: Vec<(&[u8], u128, bool)> = taken
            .iter()
            .map(|(k, m)| (k.bytes(), m.hint, m.unindexed))
            .collect();
        assert_eq!(
            got,
            [
                (&b"a"[..], 3, true),
                (&b"b"[..], 4, false),
                (&b"c"[..], 0, true)
            ]
        );
    }
}
