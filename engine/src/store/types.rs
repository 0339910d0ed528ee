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
//!
//! The cache also keeps the decoded states of OR-Set and MV-register keys
//! (the types whose writes need the state) that writes left behind, within
//! `Options::state_cache_bytes` of (estimated) memory: the next write of such a key takes the
//! state from memory instead of reading and decoding it.

use crate::codec::MAX_STATE_LEN;
use crate::crdt::{CrdtType, State};
use crate::error::{Error, Result};
use crate::shortkey::ShortKey;
use foldhash::HashMap;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const SHARDS: usize = 16;

/// The cache's default size (`Options::type_cache_entries`): each shard
/// fills 28,672 entries, seven eighths of 32,768 buckets, the load at which
/// its hash table would grow, so the tables are full at their power-of-two
/// size (16 × 32,768 buckets of 64 bytes and a control byte: about 34 MB).
pub(crate) const DEFAULT_ENTRIES: usize = SHARDS * 28_672;

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
    /// Operands written on top of the key's state since the write path
    /// last put it whole (saturating; blind writes count too). Batches of
    /// OR-Set removes that took the cached state pile up to [`PILE`] of
    /// them (`write/slot.rs`), a set changed as its bytes up to
    /// `stage::SET_PILE`; then the state is put whole. Known only in
    /// memory: after a cache miss it is [`PILED_UNKNOWN`] (which blind
    /// writes keep) until the write path puts the state whole.
    pub(crate) piled: u8,
    /// The exact encoded size of the state as the write path last put it
    /// whole (or read it), known only in memory and only while the cache
    /// holds the state (`u64::MAX` otherwise). A big state's changes are
    /// written as operands on top of that state until they add up to three
    /// times its size; then it is put whole again (`write/stage.rs`,
    /// `PILE_OF_WHOLE`).
    pub(crate) whole: u64,
}

/// At most this many remove batches in a row are written as operands on a
/// small cached OR-Set; the next one puts the state whole, so a read that
/// misses the cache joins a bounded pile.
pub(crate) const PILE: u8 = 8;

/// [`KeyMeta::piled`] of a key whose state may lie under any number of
/// operands (its entry came from `types`, not the cache): a pile that
/// bounds operands is full, so the next such write puts the state whole.
pub(crate) const PILED_UNKNOWN: u8 = u8::MAX;

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
            piled: PILED_UNKNOWN,
            whole: u64::MAX,
        }),
        [t, r0, r1, r2, r3, flags @ ..] if matches!(flags, [] | [1]) => {
            let r = u32::from_le_bytes([*r0, *r1, *r2, *r3]) as u64;
            Ok(KeyMeta {
                ty: tag(*t)?,
                used: r,
                reserved: Some(r),
                tomb: !flags.is_empty(),
                own: None,
                piled: PILED_UNKNOWN,
                whole: u64::MAX,
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

/// What the cache holds of one key besides its metadata: a counter's own
/// entries (`KeyMeta::own`) or an OR-Set's or MV register's state (the
/// types whose writes read it; never both).
enum Held {
    Nothing,
    Own([u64; 2]),
    /// The key's exact stored state: a later write of the key takes it
    /// instead of reading and decoding the state again.
    State(Box<Kept>),
}

/// A state the cache holds, with the memory it is counted for
/// ([`heap_estimate`]) and `KeyMeta::whole`, which is known only with it.
struct Kept {
    state: State,
    cost: u64,
    whole: u64,
}

/// What the cache holds of one key: its [`KeyMeta`], packed (sizes fit
/// in 32 bits: a state is at most [`MAX_STATE_LEN`] bytes).
struct Cached {
    /// `KeyMeta::used`; `u32::MAX`: unknown (a bound that does not fit is
    /// kept as unknown, which the write path treats as such: it checks
    /// the exact size).
    used: u32,
    /// `KeyMeta::reserved` when `reserved_known` (clamped to `u32::MAX`:
    /// a lower reservation only makes the write path persist a new one
    /// sooner).
    reserved: u32,
    held: Held,
    ty: CrdtType,
    reserved_known: bool,
    tomb: bool,
    piled: u8,
}

impl Cached {
    /// Pack `meta`, with `state` (whose memory is counted as `cost`) if
    /// one is kept.
    fn pack(meta: KeyMeta, state: Option<(State, u64)>) -> Cached {
        debug_assert!(state.is_none() || meta.own.is_none());
        let held = match (state, meta.own) {
            (Some((state, cost)), _) => Held::State(Box::new(Kept {
                state,
                cost,
                whole: meta.whole,
            })),
            (None, Some(own)) => Held::Own(own),
            (None, None) => Held::Nothing,
        };
        Cached {
            used: u32::try_from(meta.used).unwrap_or(u32::MAX),
            reserved: meta
                .reserved
                .map_or(0, |r| u32::try_from(r).unwrap_or(u32::MAX)),
            held,
            ty: meta.ty,
            reserved_known: meta.reserved.is_some(),
            tomb: meta.tomb,
            piled: meta.piled,
        }
    }

    fn meta(&self) -> KeyMeta {
        KeyMeta {
            ty: self.ty,
            used: match self.used {
                u32::MAX => u64::MAX,
                u => u as u64,
            },
            reserved: self.reserved_known.then_some(self.reserved as u64),
            tomb: self.tomb,
            own: match self.held {
                Held::Own(own) => Some(own),
                _ => None,
            },
            piled: self.piled,
            whole: match &self.held {
                Held::State(k) => k.whole,
                _ => u64::MAX,
            },
        }
    }

    fn state(&self) -> Option<&State> {
        match &self.held {
            Held::State(k) => Some(&k.state),
            _ => None,
        }
    }

    /// Take the state out, with the memory it was counted for.
    fn take_state(&mut self) -> Option<(State, u64)> {
        match std::mem::replace(&mut self.held, Held::Nothing) {
            Held::State(k) => Some((k.state, k.cost)),
            other => {
                self.held = other;
                None
            }
        }
    }
}

/// Whether the cache keeps states of type `ty`: the types whose writes
/// read the state (counters keep only their own entries, `KeyMeta::own`).
pub(crate) fn holds_state(ty: CrdtType) -> bool {
    matches!(ty, CrdtType::ORSet | CrdtType::MvRegister)
}

/// Heap bytes a decoded state takes, estimated from its elements and (a
/// bound of) its encoded size. Measured by `benches/examples/state_memory.rs`
/// (2026-11-28, elements in place since then): an OR-Set takes about 75
/// bytes per element of 11 bytes (the map's node share, the element's bytes
/// and its dot, both in place) — 4.4 to 5.4 times its encoding with small
/// replica ids (150 bytes, 9 times, with each element's bytes on the heap);
/// an MV register of two 100-byte siblings about 4 times its encoding.
/// Rounded up.
pub(crate) fn heap_estimate(state: &State, encoded: u64) -> u64 {
    match state {
        State::ORSet(s) => encoded.saturating_add(80u64.saturating_mul(s.len() as u64)),
        _ => encoded.saturating_mul(8),
    }
}

/// Entries a full state cache looks at for states to drop per insert.
const SHED_SCAN: usize = 64;

/// Count out the memory of a state taken from a shard (`shard`: the
/// shard's count, `total`: all shards').
fn count_out(shard: &mut u64, cost: u64, total: &AtomicU64) {
    *shard -= cost;
    total.fetch_sub(cost, Ordering::Relaxed);
}

/// One shard: its keys, and the memory of the states it holds.
#[derive(Default)]
struct Shard {
    map: HashMap<ShortKey, Cached>,
    state_bytes: u64,
}

impl Shard {
    /// Forget every key, counting the states out.
    fn clear(&mut self, total: &AtomicU64) {
        self.map.clear();
        total.fetch_sub(std::mem::take(&mut self.state_bytes), Ordering::Relaxed);
    }

    /// Drop states of this shard until all caches together hold at most
    /// `target` bytes, looking at the first [`SHED_SCAN`] entries only (so
    /// a full cache costs a bounded walk per insert, not one of the shard).
    fn shed(&mut self, total: &AtomicU64, target: u64) {
        if self.state_bytes == 0 {
            return;
        }
        for c in self.map.values_mut().take(SHED_SCAN) {
            if total.load(Ordering::Relaxed) <= target {
                return;
            }
            if let Some((_, cost)) = c.take_state() {
                count_out(&mut self.state_bytes, cost, total);
            }
        }
    }

    /// Add a key the shard does not hold (emptied first if full).
    fn add(&mut self, key: &[u8], entry: Cached, per_shard: usize, total: &AtomicU64) {
        if self.map.len() >= per_shard {
            self.clear(total);
        }
        self.map.insert(ShortKey::new(key), entry);
    }

    /// Take `key`'s state out, if the shard holds one, counting it out.
    fn take_state(&mut self, key: &[u8], total: &AtomicU64) -> Option<State> {
        let (st, cost) = self.map.get_mut(key)?.take_state()?;
        count_out(&mut self.state_bytes, cost, total);
        Some(st)
    }
}

/// Sharded map with a total capacity of keys, and a budget for the states
/// it holds.
///
/// Every key's entry (and its state) changes under the key's stripe lock
/// only: a write takes the state out before it commits
/// ([`TypeCache::take`]: every write of the key, blind or not), applies its
/// operations to it, and puts back what it wrote once it is committed; a
/// write that does not hold the whole state leaves none. So a state found
/// in the cache is the key's committed state, and readers read it in place
/// ([`TypeCache::view_state`]) instead of reading and decoding it; a
/// key being written has none, and its readers read the store.
pub(crate) struct TypeCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    /// Estimated heap bytes of all cached states at most.
    state_budget: u64,
    state_bytes: AtomicU64,
}

impl TypeCache {
    /// A cache of about `capacity` keys (0: caches nothing), holding
    /// states of about `state_budget` heap bytes in all (estimated).
    pub(crate) fn new(capacity: usize, state_budget: u64) -> TypeCache {
        TypeCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS),
            state_budget,
            state_bytes: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8]) -> &Mutex<Shard> {
        &self.shards[(xxhash_rust::xxh3::xxh3_64(key) >> 60) as usize % SHARDS]
    }

    /// What is cached of `key`, taking its state out (a writer holding the
    /// key's stripe, before it commits): the caller writes the key and puts
    /// back what it wrote, or nothing. One lookup.
    pub(crate) fn take(&self, key: &[u8]) -> Option<(KeyMeta, Option<State>)> {
        if self.per_shard == 0 {
            return None;
        }
        let mut guard = self.shard(key).lock();
        let shard = &mut *guard;
        let c = shard.map.get_mut(key)?;
        let meta = c.meta();
        let taken = c.take_state();
        if let Some((_, cost)) = taken {
            count_out(&mut shard.state_bytes, cost, &self.state_bytes);
        }
        Some((meta, taken.map(|(st, _)| st)))
    }

    /// `f` of `key`'s cached state, its committed state (see the type's
    /// documentation), for a reader, applied in place under the shard's
    /// lock (no copy of the state); `Err(f)` if the cache holds none.
    pub(crate) fn view_state<R, F: FnOnce(&State) -> R>(&self, key: &[u8], f: F) -> Result<R, F> {
        if self.per_shard == 0 || self.state_bytes.load(Ordering::Relaxed) == 0 {
            return Err(f);
        }
        match self.shard(key).lock().map.get(key).and_then(Cached::state) {
            Some(st) => Ok(f(st)),
            None => Err(f),
        }
    }

    /// What is cached of `key`, leaving its state.
    #[cfg(test)]
    pub(crate) fn get(&self, key: &[u8]) -> Option<KeyMeta> {
        self.shard(key).lock().map.get(key).map(Cached::meta)
    }

    /// Whether the cached states fill the budget (to within an eighth; a
    /// cache without a budget is always full): a state added now would
    /// take another's place, if any.
    pub(crate) fn is_full(&self) -> bool {
        self.state_bytes.load(Ordering::Relaxed) >= self.state_budget - self.state_budget / 8
    }

    /// Estimated heap bytes of the cached states.
    #[cfg(test)]
    pub(crate) fn state_bytes(&self) -> u64 {
        self.state_bytes.load(Ordering::Relaxed)
    }

    /// Forget `key` (purged by a collection, holding its stripe).
    pub(crate) fn remove(&self, key: &[u8]) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(key).lock();
        shard.take_state(key, &self.state_bytes);
        shard.map.remove(key);
    }

    /// Remember what a write (holding the key's stripe) left of `key`:
    /// its metadata, and its whole state if the write held it (`None`
    /// forgets a cached one). A state is kept only within the budget:
    /// past it, states among the first entries the shard's map visits are
    /// dropped to make room (down to seven eighths of the budget), and if
    /// that is not enough the new state is not kept.
    pub(crate) fn insert(&self, key: &[u8], meta: KeyMeta, state: Option<State>) {
        if self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(key).lock();
        let Some(state) = state else {
            // The usual case (no state to keep): one lookup.
            let entry = Cached::pack(meta, None);
            let sh = &mut *shard;
            match sh.map.get_mut(key) {
                Some(c) => {
                    if let Some((_, cost)) = std::mem::replace(c, entry).take_state() {
                        count_out(&mut sh.state_bytes, cost, &self.state_bytes);
                    }
                }
                None => sh.add(key, entry, self.per_shard, &self.state_bytes),
            }
            return;
        };
        shard.take_state(key, &self.state_bytes);
        let size = heap_estimate(&state, meta.used.min(meta.whole));
        let total = &self.state_bytes;
        let budget = self.state_budget;
        let state = Some(state).filter(|_| size <= budget).filter(|_| {
            if total.load(Ordering::Relaxed) + size > budget {
                // Make room for this state and an eighth of the budget
                // more, so that shedding is not paid on every insert.
                shard.shed(total, (budget - size).saturating_sub(budget / 8));
            }
            total.load(Ordering::Relaxed) + size <= budget
        });
        let cost = if state.is_some() { size } else { 0 };
        let entry = Cached::pack(meta, state.map(|st| (st, size)));
        match shard.map.get_mut(key) {
            Some(c) => *c = entry,
            None => shard.add(key, entry, self.per_shard, total),
        }
        // Counted once placed (emptying a full shard counts its states out).
        shard.state_bytes += cost;
        total.fetch_add(cost, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use crate::crdt::ORSet;

    /// A shard at the default size fills its hash table: the table that
    /// holds that many entries holds no more (no buckets paid for and
    /// never used, as a power of two of entries would leave about half).
    #[test]
    fn the_default_size_fills_each_shards_table() {
        let per_shard = DEFAULT_ENTRIES.div_ceil(SHARDS);
        let mut map: HashMap<ShortKey, Cached> = HashMap::default();
        for i in 0..per_shard as u64 {
            map.insert(ShortKey::new(&i.to_be_bytes()), Cached::pack(meta(1), None));
        }
        assert_eq!(map.capacity(), per_shard);
    }

    fn meta(used: u64) -> KeyMeta {
        KeyMeta {
            ty: CrdtType::ORSet,
            used,
            reserved: Some(used),
            tomb: false,
            own: None,
            piled: 0,
            whole: u64::MAX,
        }
    }

    fn taken(cache: &TypeCache, key: &[u8]) -> Option<State> {
        cache.take(key).and_then(|(_, st)| st)
    }

    fn set() -> Option<State> {
        Some(State::ORSet(ORSet::default()))
    }

    /// States stay within the budget; taking, forgetting and removing
    /// give their bytes back; metadata outlives a dropped state.
    #[test]
    fn states_stay_within_the_budget() {
        let cache = TypeCache::new(1_000, 8 * 10_000);
        for i in 0..100u32 {
            cache.insert(&i.to_be_bytes(), meta(1_000), set());
            assert!(cache.state_bytes() <= 8 * 10_000);
        }
        assert!(cache.state_bytes() > 0);
        for i in 0..100u32 {
            assert_eq!(cache.get(&i.to_be_bytes()), Some(meta(1_000)));
        }
        // Too big for the budget: kept without its state.
        cache.insert(b"big", meta(80_001), set());
        assert!(taken(&cache, b"big").is_none());
        assert_eq!(cache.get(b"big"), Some(meta(80_001)));
        // Take, forget, remove: the count follows.
        let held: Vec<u32> = (0..100u32)
            .filter(|i| taken(&cache, &i.to_be_bytes()).is_some())
            .collect();
        assert!(!held.is_empty());
        assert_eq!(cache.state_bytes(), 0);
        cache.insert(b"a", meta(500), set());
        cache.insert(b"a", meta(600), None);
        assert_eq!(cache.state_bytes(), 0);
        cache.insert(b"a", meta(700), set());
        assert_eq!(cache.state_bytes(), 700);
        cache.remove(b"a");
        assert_eq!(cache.state_bytes(), 0);
        assert!(taken(&cache, b"a").is_none());
    }

    /// What is cached of a key comes back as it was put: the packed
    /// metadata (unknown bound, no reservation, own entries, flags) and
    /// the state, for short and long keys.
    #[test]
    fn metadata_and_states_come_back_as_put() {
        let cache = TypeCache::new(1_000, 1 << 30);
        let metas = [
            KeyMeta {
                ty: CrdtType::GCounter,
                used: u64::MAX,
                reserved: None,
                tomb: false,
                own: Some([7, 0]),
                piled: 0,
                whole: u64::MAX,
            },
            KeyMeta {
                ty: CrdtType::PNCounter,
                used: 12,
                reserved: Some(MAX_STATE_LEN as u64),
                tomb: true,
                own: Some([u64::MAX, 3]),
                piled: 0,
                whole: u64::MAX,
            },
            KeyMeta {
                piled: PILE - 1,
                ..meta(MAX_STATE_LEN as u64)
            },
        ];
        let long = [b'k'; 100];
        let keys: [&[u8]; 3] = [b"a", b"a-key-of-22-bytes-long", &long];
        for (k, m) in keys.iter().zip(metas) {
            cache.insert(k, m, None);
        }
        for (k, m) in keys.iter().zip(metas) {
            assert_eq!(cache.get(k), Some(m));
        }
        cache.insert(&long, meta(100), set());
        assert_eq!(cache.take(&long), Some((meta(100), set())));
        assert_eq!(cache.take(&long), Some((meta(100), None)));
        // The size of the state last put whole is kept with the state
        // only.
        let put_whole = KeyMeta {
            whole: 90,
            ..meta(100)
        };
        cache.insert(&long, put_whole, set());
        assert_eq!(cache.take(&long), Some((put_whole, set())));
        assert_eq!(cache.take(&long), Some((meta(100), None)));
        cache.insert(&long, put_whole, None);
        assert_eq!(cache.get(&long), Some(meta(100)));
        // A bound that does not fit in 32 bits comes back unknown (the
        // write path then checks the exact size).
        cache.insert(b"huge", meta(1 << 40), None);
        assert_eq!(cache.get(b"huge").map(|m| m.used), Some(u64::MAX));
        // A key's entry, state apart, fits in 64 bytes (`shortkey.rs`).
        assert!(std::mem::size_of::<(ShortKey, Cached)>() <= 64);
    }

    /// A full shard is emptied, and the states it held are counted out.
    #[test]
    fn a_full_shard_counts_its_states_out() {
        let cache = TypeCache::new(SHARDS, 1 << 30);
        for i in 0..1_000u32 {
            cache.insert(&i.to_be_bytes(), meta(100), set());
        }
        let held = (0..1_000u32)
            .filter(|i| taken(&cache, &i.to_be_bytes()).is_some())
            .count() as u64;
        assert!(held <= SHARDS as u64);
        assert_eq!(cache.state_bytes(), 0);
    }
}
