//! Engine options: identity, durability and the RocksDB knobs a user tunes.

use crate::causal::ReplicaId;

/// Write buffer bytes per bucket of the `state` memtable's hash table
/// ([`Options::state_rocksdb_options`]). A bucket holds every entry of the
/// keys hashed to it in one sorted list (a skip list past 256 entries), so
/// a write to a key that shares its bucket walks the other key's entries.
/// With 10,000 keys, runs of 3M counter increments went 0.58-0.60M ops/s
/// with 65,536 buckets, 0.70-0.80M with 262,144, 0.87M with 524,288 and
/// 0.86-0.94M with 1,048,576 (2026-11-28). 128 gives a 64 MiB memtable
/// 524,288 buckets (4 MiB).
const STATE_BYTES_PER_BUCKET: usize = 128;

/// When an acknowledged write is safe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// The WAL is fsynced before a write returns: an acknowledged write
    /// survives power loss and OS crashes.
    Sync,
    /// The WAL is written (to the OS page cache) but not fsynced: an
    /// acknowledged write survives a crash of the process, not of the
    /// machine.
    #[default]
    Buffered,
    /// No WAL: writes live in the memtable until flushed. A crash loses
    /// what was not flushed; what survives of the data is the store as it
    /// was at one moment (the column families are flushed together,
    /// atomically; the engine's own bookkeeping at open and close is
    /// logged). For bulk loads that can be redone.
    None,
}

/// Options for [`crate::Engine::open`].
#[derive(Clone, Debug)]
pub struct Options {
    /// This replica's id. `None`: use the stored one, or generate one at
    /// first open. `Some`: must equal the stored one if there is one.
    pub replica_id: Option<ReplicaId>,
    /// Durability of every write.
    pub durability: Durability,
    /// Create the store if the directory holds none (default true).
    pub create_if_missing: bool,
    /// Shared block cache size in bytes (default 64 MiB).
    pub block_cache_bytes: usize,
    /// Memtable size per column family in bytes (default 64 MiB). The
    /// small family of key types uses at most 4 MiB (unless durability is
    /// `None`): its inserts, one per created key, stay in the CPU's caches.
    pub write_buffer_bytes: usize,
    /// Background flush and compaction threads (default 2).
    pub background_jobs: i32,
    /// LZ4-compress SST blocks (default true).
    pub compression: bool,
    /// Bloom filter bits per key for point reads (default 10).
    pub bloom_bits_per_key: f64,
    /// Number of striped locks that serialize read-modify-write operations
    /// on the same key (rounded up to a power of two; default 65,536, one
    /// byte each). A batch holds the stripes of all its keys until it has
    /// committed, so two concurrent batches of 100 keys almost surely
    /// shared a stripe at 1,024 and ran one after the other; at 65,536
    /// they mostly share one only when they share a key (measured:
    /// 2 and 4 writer threads 1.4–1.6× faster, BENCHMARKS.md).
    pub lock_stripes: usize,
    /// Maintain the anti-entropy tree (default true). Off: writes skip the
    /// tree, and root, verify and sync sessions fail; turning it on again
    /// later rebuilds the tree at open.
    pub anti_entropy: bool,
    /// Merge operands of one key allowed to pile up in the memtable before
    /// a write joins them into a full value. 0 (the default) disables the
    /// check, which otherwise costs a memtable seek on every blind write;
    /// set it (e.g. 32) when single keys receive many blind writes between
    /// reads. Read-modify-write operations put full states and never pile
    /// up operands.
    pub max_successive_merges: usize,
    /// Keys whose CRDT type (and size bound, and for OR-Sets and MV
    /// registers the decoded state, within `state_cache_bytes`) is cached
    /// in memory, saving the `types` lookup of blind writes and the state
    /// read of read-modify-writes (default 458,752, about 34 MB when full
    /// with keys of at most 22 bytes; 0 disables). Past it the cache
    /// forgets keys, so a working set of more keys reads them from the
    /// store again (OR-Set removes over 300,000 keys: 2.4× faster than
    /// with 65,536, BENCHMARKS.md).
    pub type_cache_entries: usize,
    /// Memory for the OR-Set and MV-register states the write path keeps
    /// decoded (default 64 MiB; 0 disables): a write of such a key takes
    /// the state the previous write left instead of reading and decoding
    /// it again (so do reads, in place), and a state over 1 KiB encoded
    /// is then written as the join of the batch's changes (and put whole
    /// again once those add up to three times its size), so an add or
    /// remove on a set of 100,000 elements costs about what it costs on a
    /// small set. Once the budget is full, a batch of only OR-Set adds and
    /// removes on a set the cache lacks changes the set as its encoded
    /// bytes instead of decoding it (a decoded set would not be kept). The
    /// memory is estimated: an OR-Set's encoded size plus 160 bytes per
    /// element (measured: about 150 in all for elements of 11 bytes), 8
    /// times the encoded size for an MV register. So the default holds
    /// about 380,000 OR-Set elements. Only keys cached for their type
    /// (`type_cache_entries`) keep a state.
    pub state_cache_bytes: usize,
    /// Keep the changes feed's log of local operations (default true).
    /// Off: local writes skip the log, and `changes_since` fails; turning
    /// it on again starts a new log after the last operation.
    pub changes_feed: bool,
    /// Log bytes the changes feed retains before it truncates its oldest
    /// operations even if a registered peer has not acknowledged them
    /// (default 64 MiB; such a peer then gets `CursorTooOld`).
    pub feed_retain_bytes: u64,
    /// Entries the pending area holds at most (deltas and pages waiting for
    /// their dependencies; default 100,000). Past it, a merge that would
    /// add one fails with `PendingFull` and changes nothing.
    pub max_pending: usize,
    /// Encoded bytes the pending area holds at most (default 256 MiB).
    pub max_pending_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            replica_id: None,
            durability: Durability::Buffered,
            create_if_missing: true,
            block_cache_bytes: 64 << 20,
            write_buffer_bytes: 64 << 20,
            background_jobs: 2,
            compression: true,
            bloom_bits_per_key: 10.0,
            lock_stripes: 1 << 16,
            max_successive_merges: 0,
            type_cache_entries: super::types::DEFAULT_ENTRIES,
            state_cache_bytes: 64 << 20,
            anti_entropy: true,
            changes_feed: true,
            feed_retain_bytes: 64 << 20,
            max_pending: 100_000,
            max_pending_bytes: 256 << 20,
        }
    }
}

impl Options {
    /// Default options with this replica id.
    pub fn with_replica(id: ReplicaId) -> Options {
        Options {
            replica_id: Some(id),
            ..Options::default()
        }
    }

    /// These options with another durability.
    pub fn durability(mut self, d: Durability) -> Options {
        self.durability = d;
        self
    }

    /// Check every knob is in its documented range: background jobs
    /// 1..=256, bloom bits 0..=64 (finite), lock stripes 1..=2^20, cache
    /// and memtable sizes at least 1 MiB.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: String| Err(crate::Error::InvalidArgument(m));
        if !(1..=256).contains(&self.background_jobs) {
            return bad(format!(
                "background_jobs {} not in 1..=256",
                self.background_jobs
            ));
        }
        if !self.bloom_bits_per_key.is_finite() || !(0.0..=64.0).contains(&self.bloom_bits_per_key)
        {
            return bad(format!(
                "bloom_bits_per_key {} not in 0..=64",
                self.bloom_bits_per_key
            ));
        }
        if !(1..=1 << 20).contains(&self.lock_stripes) {
            return bad(format!(
                "lock_stripes {} not in 1..=1048576",
                self.lock_stripes
            ));
        }
        if self.block_cache_bytes < 1 << 20 || self.write_buffer_bytes < 1 << 20 {
            return bad("block_cache_bytes and write_buffer_bytes must be at least 1 MiB".into());
        }
        Ok(())
    }

    /// Whether memtable flushes write every column family together: only
    /// without a WAL (see [`Options::rocksdb_options`]).
    pub(crate) fn atomic_flush(&self) -> bool {
        self.durability == Durability::None
    }

    /// The RocksDB options these knobs stand for (shared by every column
    /// family). Benchmarks open their raw-RocksDB peers with the same.
    pub fn rocksdb_options(&self) -> rocksdb::Options {
        let mut o = rocksdb::Options::default();
        o.create_if_missing(self.create_if_missing);
        o.create_missing_column_families(true);
        o.set_max_background_jobs(self.background_jobs);
        o.set_write_buffer_size(self.write_buffer_bytes);
        o.set_level_compaction_dynamic_level_bytes(true);
        // Without a WAL, what survives a crash is what the memtable
        // flushes wrote: they must write the column families together, or
        // a key's state could survive without its `types` entry (and its
        // record, clock and log entry), and a write would then take the key
        // for new. With a WAL, recovery replays the batches whole.
        o.set_atomic_flush(self.atomic_flush());
        o.set_compression_type(if self.compression {
            rocksdb::DBCompressionType::Lz4
        } else {
            rocksdb::DBCompressionType::None
        });
        let mut t = rocksdb::BlockBasedOptions::default();
        let cache = rocksdb::Cache::new_lru_cache(self.block_cache_bytes);
        t.set_block_cache(&cache);
        t.set_bloom_filter(self.bloom_bits_per_key, false);
        // Index and filter blocks stay with each open table, outside the
        // block cache: a table's full filter (about 1.2 MiB per million
        // keys) is larger than one shard of a 64 MiB cache, so cached it
        // would be evicted at once and re-read and re-checksummed on every
        // point lookup (measured: ingest fell from 150k to 9k ops/s past 1M
        // keys).
        o.set_block_based_table_factory(&t);
        o
    }

    /// The RocksDB options of the `state` column family, where the
    /// engine keeps every key's state (without its merge operator): the
    /// shared ones ([`Options::rocksdb_options`]), with a memtable that is a
    /// hash table keyed by the whole user key (RocksDB's "hash link list",
    /// and the no-op prefix extractor, so a key's prefix is the key)
    /// instead of the default skip list over all keys. Benchmarks open
    /// their hashed raw-RocksDB peer with the same.
    ///
    /// Every access to `state` but a full scan is a point lookup or a
    /// write to one key. In a skip list, each write walks about log2(n)
    /// nodes scattered in memory (a cache miss each) to find its place
    /// among all the memtable's entries; in the hash table it finds its
    /// key's bucket and puts the newest entry first, and a read finds the
    /// key's entries the same way. Measured (BENCHMARKS.md, 2026-11-28):
    /// counter increments at batch 100 1.2-1.6x faster over 100,000
    /// operations and 2.2-2.6x over 3M; remote deltas 1.4-1.8x.
    ///
    /// What it costs:
    /// - a scan of the family in key order (verify, the tree's rebuild,
    ///   the exactness pass at open) must ask for total order, and RocksDB
    ///   then first sorts a copy of each memtable; a flush sorts its
    ///   memtable the same way, on the flush's thread;
    /// - the bucket array (8 bytes per bucket, one per 128 bytes of write
    ///   buffer: 4 MiB of a 64 MiB memtable) comes out of each memtable's
    ///   budget;
    /// - RocksDB inserts into such a memtable from one writer at a time:
    ///   the database's `allow_concurrent_memtable_write` must be off (set
    ///   here, and by the engine for its whole instance). The engine's
    ///   group commit hands RocksDB one batch at a time in any case.
    ///
    /// RocksDB records the prefix extractor's name in each SST file and
    /// uses prefix filters only from files written under the same one, so
    /// a store written before this memtable opens as before.
    pub fn state_rocksdb_options(&self) -> rocksdb::Options {
        let mut o = self.rocksdb_options();
        o.set_allow_concurrent_memtable_write(false);
        o.set_prefix_extractor(rocksdb::SliceTransform::create_noop());
        o.set_memtable_factory(rocksdb::MemtableFactory::HashLinkList {
            bucket_count: (self.write_buffer_bytes / STATE_BYTES_PER_BUCKET).max(1024),
        });
        o
    }

    /// The RocksDB write options of the engine's own bookkeeping at open
    /// and close (layout, replica id, the tree's clean mark): fsynced,
    /// whatever the durability of the data's writes.
    pub(crate) fn synced() -> rocksdb::WriteOptions {
        let mut w = rocksdb::WriteOptions::default();
        w.set_sync(true);
        w
    }

    /// The RocksDB write options for the durability mode.
    pub fn write_options(&self) -> rocksdb::WriteOptions {
        let mut w = rocksdb::WriteOptions::default();
        match self.durability {
            Durability::Sync => w.set_sync(true),
            Durability::Buffered => w.set_sync(false),
            Durability::None => w.disable_wal(true),
        }
        w
    }
}
