//! What the write path knows of a key without reading its state: its CRDT
//! type and a bound on its encoded size (the `types` column family, and a
//! bounded in-memory cache of it).
//!
//! The size bound lets blind writes respect [`MAX_STATE_LEN`] without
//! reading the state. The `types` entry of a key holds its type tag and a
//! *reservation*: an upper bound of the key's encoded state size, written in
//! the same RocksDB batch as every write that could take the state past it.
//! The cache also tracks `used`, a tighter upper bound (≤ the reservation)
//! kept only in memory; after a cache miss `used` restarts at the
//! reservation. A blind write of an operand of `n` bytes adds
//! `n + JOIN_SLACK` to `used` (the encoded join of two states is never
//! larger than the sum of their encodings: property-tested); past the
//! reservation it writes a larger one, and past the limit it reads the
//! state and checks the exact size. Every writer of a key holds the key's
//! stripe lock, so the bound of a key changes under that lock only.
//!
//! A sixth byte, present once a delete reached the key, flags that the
//! key may read as absent: key listing reads the state of flagged keys
//! only (see `read.rs`).
//!
//! A full cache shard is simply emptied (crude, but bounded and cheap).

use crate::codec::MAX_STATE_LEN;
use crate::crdt::CrdtType;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use foldhash::HashMap;
use foldhash::HashMapExt;

const SHARDS: usize = 16;

/// Bytes added to a size bound per joined operand, on top of the operand's
/// length: room for collection lengths whose varint grows.
pub(crate) const JOIN_SLACK: u64 = 64;

/// The smallest step by which a reservation grows.
const RESERVE_STEP: u64 = 64 << 10;

/// What the write path knows of a stored key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct KeyMeta {
    /// The key's CRDT type (never changes once written).
    pub(crate) ty: CrdtType,
    /// Upper bound of the key's encoded state size.
    pub(crate) used: u64,
    /// The bound persisted in `types` (≥ `used`); `None` for an entry
    /// written before reservations existed: the size is then unknown.
    pub(crate) reserved: Option<u64>,
    /// Whether a delete reached the key (its state holds a tombstone).
    pub(crate) tomb: bool,
    /// For a counter without a tombstone: this replica's own entries
    /// (increments, decrements; a G-Counter has no decrements), exactly.
    /// Known only in memory, from a write that read the state or a
    /// previous one like it: a local increment then needs no state read
    /// (its delta is this replica's next entry). Any other write to the
    /// key forgets them, unless it read the state.
    pub(crate) own: Option<[u64; 2]>,
}

impl KeyMeta {
    /// The reservation to persist for a state of (at most) `size` bytes:
    /// room to grow, so that most writes need not persist a new one.
    pub(crate) fn reservation_for(size: u64) -> u64 {
        (size.saturating_mul(2))
            .max(size.saturating_add(RESERVE_STEP))
            .min(MAX_STATE_LEN as u64)
            .max(size)
    }
}

/// Decode a `types` entry: the type tag, then (since reservations exist)
/// the reservation as 4 bytes little-endian, then (once a delete reached
/// the key) a flags byte, `1`.
pub(crate) fn parse_entry(b: &[u8]) -> Result<KeyMeta> {
    let tag = |t: u8| {
        CrdtType::from_tag(t)
            .ok_or_else(|| Error::Corruption(format!("unknown stored type tag {t}")))
    };
    match b {
        [t] => Ok(KeyMeta {
            ty: tag(*t)?,
            used: u64::MAX,
            reserved: None,
            tomb: false,
            own: None,
        }),
        [t, r0, r1, r2, r3, flags @ ..] if matches!(flags, [] | [1]) => {
            let r = u32::from_le_bytes([*r0, *r1, *r2, *r3]) as u64;
            Ok(KeyMeta {
                ty: tag(*t)?,
                used: r,
                reserved: Some(r),
                tomb: !flags.is_empty(),
                own: None,
            })
        }
        _ => Err(Error::Corruption("stored type entry is damaged".into())),
    }
}

/// Encode a `types` entry.
pub(crate) fn encode_entry(ty: CrdtType, reserved: u64, tomb: bool) -> Vec<u8> {
    let r = (reserved.min(MAX_STATE_LEN as u64) as u32).to_le_bytes();
    let mut v = vec![ty.tag(), r[0], r[1], r[2], r[3]];
    if tomb {
        v.push(1);
    }
    v
}

/// Sharded map with a total capacity.
pub(crate) struct TypeCache {
    shards: Vec<Mutex<HashMap<Vec<u8>, KeyMeta>>>,
    per_shard: usize,
}

impl TypeCache {
    /// A cache of about `capacity` keys (0: caches nothing).
    pub(crate) fn new(capacity: usize) -> TypeCache {
        TypeCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<HashMap<Vec<u8>, KeyMeta>> {
        &self.shards[(xxhash_rust::xxh3::xxh3_64(key) >> 60) as usize % SHARDS]
    }

    /// What is cached of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<KeyMeta> {
        if self.per_shard == 0 {
            return None;
        }
        self.shard(key).lock().get(key).copied()
    }

    /// Forget `key` (purged by a collection, holding its stripe).
    pub(crate) fn remove(&self, key: &[u8]) {
        if self.per_shard == 0 {
            return;
        }
        self.shard(key).lock().remove(key);
    }

    /// Remember what a write (holding the key's stripe) left of `key`.
    pub(crate) fn insert(&self, key: &[u8], meta: KeyMeta) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(key).lock();
        if let Some(m) = shard.get_mut(key) {
            *m = meta;
            return;
        }
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(key.to_vec(), meta);
    }
}
