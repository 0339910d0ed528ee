//! A bounded cache of key → CRDT type. A key's type never changes once
//! written, so a cached entry is never stale; a full shard is simply
//! emptied (crude, but bounded and cheap).

use crate::crdt::CrdtType;
use parking_lot::Mutex;
use std::collections::HashMap;

const SHARDS: usize = 16;

/// Sharded map with a total capacity.
pub(crate) struct TypeCache {
    shards: Vec<Mutex<HashMap<Vec<u8>, CrdtType>>>,
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

    fn shard(&self, key: &[u8]) -> &Mutex<HashMap<Vec<u8>, CrdtType>> {
        &self.shards[(xxhash_rust::xxh3::xxh3_64(key) >> 60) as usize % SHARDS]
    }

    /// The cached type of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<CrdtType> {
        if self.per_shard == 0 {
            return None;
        }
        self.shard(key).lock().get(key).copied()
    }

    /// Remember the type of a written key.
    pub(crate) fn insert(&self, key: &[u8], ty: CrdtType) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(key).lock();
        if shard.contains_key(key) {
            return;
        }
        if shard.len() >= self.per_shard {
            shard.clear();
        }
        shard.insert(key.to_vec(), ty);
    }
}
