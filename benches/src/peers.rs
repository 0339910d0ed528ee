//! The peers Converge is measured against, opened with the engine's own
//! RocksDB and write options (`converge::Options::rocksdb_options` and
//! `write_options`):
//!
//! - raw puts of values of the size the engine persists (the physical
//!   limit of a local write),
//! - raw merge-operand writes of the same bytes a remote merge carries,
//!   under a trivial associative "keep last" merge operator,
//! - a read-modify-write baseline: get, decode, join in memory with the
//!   `converge::crdt` types, encode, put — what an engine without a merge
//!   operator does.

use crate::measure::{drive, key, Load};
use crate::BenchResult;
use converge::codec::{decode_state, encode_state};
use converge::{CrdtType, Durability, State};
use rocksdb::{MergeOperands, WriteBatch, WriteOptions, DB};
use std::collections::HashMap;
use std::time::Duration;
use tempfile::TempDir;

/// A raw RocksDB database in a temporary directory, removed on drop.
pub struct RawDb {
    db: DB,
    write: WriteOptions,
    _dir: TempDir,
}

/// The trivial merge operator of the merge-operand peer: the last operand
/// wins, nothing is decoded or joined.
fn keep_last(_key: &[u8], existing: Option<&[u8]>, operands: &MergeOperands) -> Option<Vec<u8>> {
    operands.iter().last().or(existing).map(|b| b.to_vec())
}

impl RawDb {
    /// Open an empty database with the engine's options for `durability`
    /// (and the "keep last" merge operator).
    pub fn open(durability: Durability) -> BenchResult<RawDb> {
        Self::open_with(durability, converge::Options::rocksdb_options)
    }

    /// [`RawDb::open`] with the memtable of the engine's `state` family
    /// (a hash table by whole key: `Options::state_rocksdb_options`), where
    /// [`RawDb::open`] has RocksDB's default skip list: what a user who
    /// tuned RocksDB for point writes the same way would get.
    pub fn open_hashed(durability: Durability) -> BenchResult<RawDb> {
        Self::open_with(durability, converge::Options::state_rocksdb_options)
    }

    fn open_with(
        durability: Durability,
        rocksdb_options: fn(&converge::Options) -> rocksdb::Options,
    ) -> BenchResult<RawDb> {
        let dir = tempfile::Builder::new()
            .prefix("converge-bench-raw-")
            .tempdir()?;
        let options = converge::Options::default().durability(durability);
        let mut opts = rocksdb_options(&options);
        opts.set_merge_operator_associative("bench.keep_last", keep_last);
        let db = DB::open(&opts, dir.path())?;
        Ok(RawDb {
            db,
            write: options.write_options(),
            _dir: dir,
        })
    }

    /// The database.
    pub fn db(&self) -> &DB {
        &self.db
    }

    /// Put `value` at the key of every operation of the load.
    pub fn put_load(&self, load: &Load, value: &[u8]) -> BenchResult<Duration> {
        drive(load, |ops| {
            if let [op] = ops {
                self.db.put_opt(key(load.key_of(*op)), value, &self.write)?;
                return Ok(());
            }
            let mut wb = WriteBatch::default();
            for op in ops {
                wb.put(key(load.key_of(*op)), value);
            }
            self.db.write_opt(wb, &self.write)?;
            Ok(())
        })
    }

    /// Write `payloads[op % len]` as a merge operand at the key of every
    /// operation.
    pub fn merge_load(&self, load: &Load, payloads: &[Vec<u8>]) -> BenchResult<Duration> {
        drive(load, |ops| {
            let payload = |op: u64| &payloads[(op % payloads.len() as u64) as usize];
            if let [op] = ops {
                let k = key(load.key_of(*op));
                self.db.merge_opt(k, payload(*op), &self.write)?;
                return Ok(());
            }
            let mut wb = WriteBatch::default();
            for op in ops {
                wb.merge(key(load.key_of(*op)), payload(*op));
            }
            self.db.write_opt(wb, &self.write)?;
            Ok(())
        })
    }

    /// Read-modify-write baseline (single writer: it has no locks): for each
    /// batch, get and decode every key's state (or start from the bottom of
    /// `ty`), apply `op` to it in memory, then put every encoded state in
    /// one write.
    pub fn rmw_load<F>(&self, load: &Load, ty: CrdtType, apply: F) -> BenchResult<Duration>
    where
        F: Fn(u64, &mut State) -> BenchResult<()> + Sync,
    {
        let load = Load {
            threads: 1,
            ..*load
        };
        drive(&load, |ops| {
            let mut overlay: HashMap<u64, State> = HashMap::with_capacity(ops.len());
            for op in ops {
                let idx = load.key_of(*op);
                let state = match overlay.entry(idx) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let s = match self.db.get_pinned(key(idx))? {
                            Some(b) => decode_state(&b)?,
                            None => State::empty(ty),
                        };
                        e.insert(s)
                    }
                };
                apply(*op, state)?;
            }
            let mut wb = WriteBatch::default();
            for (idx, state) in &overlay {
                wb.put(key(*idx), encode_state(state));
            }
            self.db.write_opt(wb, &self.write)?;
            Ok(())
        })
    }
}
