//! Tombstones and their collection by causal stability.
//!
//! A delete leaves a tombstone in the key's state (`crate::crdt`): what the
//! delete removed, and the deletes applied (`State::deletes`: per origin,
//! the largest sequence number). The write path indexes every key whose
//! state holds a tombstone (`meta/tomb/<key>`, in the same RocksDB batch).
//!
//! **Membership.** The replicas that share this replica's data are the
//! registered peers (`register_peer` / `remove_peer`, shared with the
//! changes feed), each with the causal context it acknowledged
//! (`acknowledge`: from feed acknowledgements, and from sync sessions,
//! [`crate::sync::Session::acknowledged`]).
//!
//! **The collection rule.** [`Engine::collect`] forgets a key's tombstone
//! once its deletes are *stable*: this replica's record and every
//! member's acknowledged context hold every delete up to its sequence
//! number (a prefix check, so causal gaps only delay collection). Then
//! every replica holds the tombstone, so nothing any of them holds can
//! bring back what it removed: the tombstone goes with what it removed
//! (`State::collect`), and a key that reads as absent is purged (its
//! state, type, index and anti-entropy entries deleted; compaction
//! reclaims the space). A member that never acknowledges holds collection
//! back, visibly ([`CollectReport::waiting_on`]).
//!
//! **No resurrection.** The deletes collected so far form the *horizon*
//! (`meta/gc/horizon`, a version vector). What could bring a purged key
//! back is refused:
//! - a peer's delta already in the record is skipped (it was applied
//!   before, so its effect is here or was collected);
//! - a received state whose tombstone lies within the horizon is collected
//!   on arrival (what it removed is dropped with it);
//! - a page of changes that partly repeats the record is refused once
//!   anything was collected (its coalesced states could carry old
//!   operations of a purged key): ask again from this replica's context;
//! - a sync session with a peer whose record lacks the horizon and that
//!   holds data (restored from an old copy of its directory, or a replica
//!   that missed deletes everyone else acknowledged) fails with
//!   [`crate::sync::SyncError::BehindHorizon`]: rebuild that replica from
//!   a live one.
//!
//! Dots are never reused: the *floor* (`meta/gc/floor`) is the largest
//! dot this replica ever issued on a purged key, and an OR-Set or MV
//! register this replica holds no state of starts its dots above it.

use super::{Engine, CF_META, CF_STATE, CF_TYPES};
use crate::causal::{CausalContext, ReplicaId, VersionVector};
use crate::codec::{decode_vv, encode_state, encode_vv};
use crate::crdt::State;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of the index of keys whose state holds a tombstone.
pub(crate) const META_TOMB: &[u8] = b"tomb/";
/// The deletes collected so far (a kind-3 version vector).
pub(crate) const META_GC_HORIZON: &[u8] = b"gc/horizon";
/// The largest dot issued on a purged key (u64 big-endian).
pub(crate) const META_GC_FLOOR: &[u8] = b"gc/floor";
/// The deletes peers collected (a kind-3 version vector): stable.
pub(crate) const META_GC_LEARNED: &[u8] = b"gc/learned";

/// Keys [`Engine::collect`] examines per pass of its index scan before
/// writing what it collected.
const COLLECT_CHUNK: usize = 1024;

/// In-memory state of the collector.
pub(crate) struct Gc {
    pub(crate) horizon: Mutex<VersionVector>,
    /// The horizons peers reported in sync sessions: deletes they
    /// collected, so stable.
    learned: Mutex<VersionVector>,
    pub(crate) floor: AtomicU64,
    /// One collection at a time.
    running: Mutex<()>,
}

/// What [`Engine::collect`] did (or, from [`Engine::tombstones`], would
/// do now).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CollectReport {
    /// Tombstones forgotten (their keys kept what outlived the deletes).
    pub collected: u64,
    /// Of those, keys removed entirely (they read as absent).
    pub purged: u64,
    /// Tombstones whose deletes are not stable yet (or whose key's state
    /// cannot be read: over the size limit or damaged).
    pub waiting: u64,
    /// For each replica holding collection back (a member whose
    /// acknowledged context, or this replica's own record, lacks a
    /// delete): how many tombstones wait for it.
    pub waiting_on: Vec<(ReplicaId, u64)>,
    /// The deletes collected so far, on this replica (the horizon).
    pub horizon: VersionVector,
}

impl Gc {
    pub(super) fn load(db: &rocksdb::DB) -> Result<Gc> {
        let meta = super::cf(db, CF_META)?;
        let vv = |key: &[u8], what: &str| -> Result<VersionVector> {
            match db.get_cf(meta, key)? {
                Some(b) => decode_vv(&b).map_err(|e| Error::Corruption(format!("gc {what}: {e}"))),
                None => Ok(VersionVector::new()),
            }
        };
        let horizon = vv(META_GC_HORIZON, "horizon")?;
        let learned = vv(META_GC_LEARNED, "learned")?;
        let floor = match db.get_cf(meta, META_GC_FLOOR)? {
            Some(b) => u64::from_be_bytes(
                b.as_slice()
                    .try_into()
                    .map_err(|_| Error::Corruption("gc floor is damaged".into()))?,
            ),
            None => 0,
        };
        Ok(Gc {
            horizon: Mutex::new(horizon),
            learned: Mutex::new(learned),
            floor: AtomicU64::new(floor),
            running: Mutex::new(()),
        })
    }

    /// Whether every delete of `dels` was collected here.
    pub(crate) fn covers(&self, dels: &VersionVector) -> bool {
        let h = self.horizon.lock();
        !h.is_empty() && h.descends(dels)
    }
}

/// The index key of `key`'s tombstone.
pub(crate) fn tomb_key(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(META_TOMB.len() + key.len());
    k.extend_from_slice(META_TOMB);
    k.extend_from_slice(key);
    k
}

impl Engine {
    /// Collect the tombstones whose deletes every member has acknowledged
    /// (ARCHITECTURE.md, "Deletes and garbage collection"): each such key
    /// forgets its tombstone, and keys that read as absent are removed
    /// entirely (call [`Engine::compact`] to reclaim the space at once).
    /// The members are the registered peers ([`Engine::register_peer`]);
    /// a replica with none collects as soon as its own record holds the
    /// deletes, so register every replica that shares the data before it
    /// deletes. Keys are collected one atomic write at a time; a crash in
    /// the middle leaves every key either collected or not. Safe to run at
    /// any time, concurrently with writes; one collection runs at a time.
    pub fn collect(&self) -> Result<CollectReport> {
        self.check_writable()?;
        self.scan_tombstones(true)
    }

    /// What [`Engine::collect`] would collect now, and what waits on whom,
    /// without collecting anything.
    pub fn tombstones(&self) -> Result<CollectReport> {
        self.scan_tombstones(false)
    }

    /// The replicas registered as sharing this replica's data, with the
    /// causal contexts they acknowledged.
    pub fn members(&self) -> Vec<(ReplicaId, CausalContext)> {
        self.feed
            .peers
            .lock()
            .iter()
            .map(|(r, c)| (*r, c.clone()))
            .collect()
    }

    fn scan_tombstones(&self, act: bool) -> Result<CollectReport> {
        let _one = self.gc.running.lock();
        let meta = self.cf(CF_META)?;
        let mut report = CollectReport::default();
        let mut blockers: BTreeMap<ReplicaId, u64> = BTreeMap::new();
        let mut from = META_TOMB.to_vec();
        loop {
            // A chunk of the index, read without holding any key.
            let mut keys = Vec::with_capacity(COLLECT_CHUNK);
            let mut it = self.db.raw_iterator_cf(meta);
            it.seek(&from);
            while it.valid() && keys.len() < COLLECT_CHUNK {
                let Some(k) = it.key() else { break };
                let Some(key) = k.strip_prefix(META_TOMB) else {
                    break;
                };
                keys.push(key.to_vec());
                it.next();
            }
            it.status()?;
            let Some(last) = keys.last() else { break };
            from = tomb_key(last);
            from.push(0);
            // The members' acknowledgements and the record, read once per
            // chunk: they only grow, so a stale copy is merely cautious.
            let members = self.members();
            let record = self.context();
            for key in &keys {
                self.collect_key(key, act, &members, &record, &mut report, &mut blockers)?;
            }
        }
        report.waiting_on = blockers.into_iter().collect();
        report.horizon = self.gc.horizon.lock().clone();
        Ok(report)
    }

    /// Examine one indexed key under its stripe lock; collect it if its
    /// deletes are stable and `act`.
    fn collect_key(
        &self,
        key: &[u8],
        act: bool,
        members: &[(ReplicaId, CausalContext)],
        record: &CausalContext,
        report: &mut CollectReport,
        blockers: &mut BTreeMap<ReplicaId, u64>,
    ) -> Result<()> {
        let _guard = self.locks.lock_all(vec![self.locks.stripe(key)]);
        let meta = self.cf(CF_META)?;
        let state = match self.state(key) {
            Ok(s) => s,
            // A key whose state cannot be read (over the size limit, or
            // damaged) concerns that key only: it stays as it is.
            Err(Error::StateTooLarge { .. } | Error::Corruption(_)) => {
                report.waiting += 1;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let dels = state
            .as_ref()
            .map(|s| s.deletes().clone())
            .unwrap_or_default();
        if dels.is_empty() {
            // Nothing to wait for (no state, or what remains of a
            // tombstone is part of the value): unindex.
            if act {
                let mut wb = rocksdb::WriteBatch::default();
                wb.delete_cf(meta, tomb_key(key));
                self.write_or_poison(wb)?;
            }
            return Ok(());
        }
        // A peer collected these deletes: they are stable. Otherwise the
        // record and every member must hold each delete up to its number.
        let learned = self.gc.learned.lock().descends(&dels);
        let mut stable = true;
        if !learned && !record.vv().descends(&dels) {
            stable = false;
            *blockers.entry(self.replica).or_default() += 1;
        }
        for (m, acked) in members.iter().filter(|_| !learned) {
            if !acked.vv().descends(&dels) {
                stable = false;
                *blockers.entry(*m).or_default() += 1;
            }
        }
        if !stable {
            report.waiting += 1;
            return Ok(());
        }
        report.collected += 1;
        let Some(mut state) = state else {
            return Ok(());
        };
        let ty = state.crdt_type();
        let own_max = state.own_dot_max(self.replica);
        let keeps = state.collect();
        if !keeps {
            report.purged += 1;
        }
        if !act {
            return Ok(());
        }
        // A cached state stops being the stored one at this write: out
        // with it first (see `TypeCache`).
        self.types.take(key);
        let mut wb = rocksdb::WriteBatch::default();
        wb.delete_cf(meta, tomb_key(key));
        let types_cf = self.cf(CF_TYPES)?;
        // What the key's cache entry becomes (`None`: purged).
        let kept = if keeps {
            let bytes = encode_state(&state);
            let used = bytes.len() as u64;
            let reserved = super::types::KeyMeta::reservation_for(used);
            let m = super::types::KeyMeta {
                ty,
                used,
                reserved: Some(reserved),
                tomb: state.has_tomb(),
                own: None,
                piled: 0,
                whole: used,
            };
            wb.put_cf(self.cf(CF_STATE)?, key, bytes);
            wb.put_cf(
                types_cf,
                key,
                super::types::encode_entry(ty, reserved, m.tomb),
            );
            Some(m)
        } else {
            wb.delete_cf(self.cf(CF_STATE)?, key);
            wb.delete_cf(types_cf, key);
            None
        };
        // The horizon and floor in the same write: a crash leaves both or
        // neither. (One collection runs at a time: nothing else moves them.)
        let mut horizon = self.gc.horizon.lock().clone();
        horizon.merge(&dels);
        wb.put_cf(meta, META_GC_HORIZON, encode_vv(&horizon));
        let floor = self.gc.floor.load(Ordering::Acquire).max(own_max);
        wb.put_cf(meta, META_GC_FLOOR, floor.to_be_bytes());
        self.write_or_poison(wb)?;
        *self.gc.horizon.lock() = horizon;
        self.gc.floor.store(floor, Ordering::Release);
        match kept {
            Some(m) => self.types.insert(key, m, None),
            None => self.types.remove(key),
        }
        if self.options.anti_entropy {
            // Not created: its fold reads the old index entry.
            let k = crate::shortkey::ShortKey::new(key);
            if keeps {
                self.tree.mark_dirty_owned(vec![(k, 0, false)], 0);
            } else {
                self.tree.mark_purged(k);
            }
        }
        Ok(())
    }

    /// Learn a peer's collection horizon (from a sync session): the
    /// tombstones of those deletes are stable, since the peer collected
    /// them only once every member had acknowledged them, and the next
    /// [`Engine::collect`] collects them here too without waiting for
    /// acknowledgements. This assumes every replica registers the same
    /// members (ARCHITECTURE.md).
    pub fn learn_horizon(&self, horizon: &VersionVector) -> Result<()> {
        let mut l = self.gc.learned.lock();
        let mut joined = l.clone();
        joined.merge(horizon);
        if joined == *l {
            return Ok(());
        }
        self.check_writable()?;
        self.db.put_cf_opt(
            self.cf(CF_META)?,
            META_GC_LEARNED,
            encode_vv(&joined),
            &self.write_opts,
        )?;
        *l = joined;
        Ok(())
    }

    /// The collection horizon: every delete whose tombstone this replica
    /// collected (per origin, up to the sequence number).
    pub fn collection_horizon(&self) -> VersionVector {
        self.gc.horizon.lock().clone()
    }

    /// A received state whose tombstone lies within the horizon, with that
    /// tombstone collected (`None`: nothing of it outlived the deletes).
    pub(crate) fn strip_collected(&self, mut state: State) -> Option<State> {
        if !state.has_tomb() || state.deletes().is_empty() || !self.gc.covers(state.deletes()) {
            return Some(state);
        }
        state.collect().then_some(state)
    }
}
