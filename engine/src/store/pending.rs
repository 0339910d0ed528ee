//! Causal delivery: the pending area.
//!
//! A delta that carries its dependencies ([`Delta::requires`]) or a page of
//! the changes feed ([`Changes`]) becomes visible only once this replica's
//! causal record holds everything it depends on. Until then it is kept in
//! the `pending` column family (key: a pending id, u64 big-endian; value:
//! the [`Changes`] encoding), written in the same RocksDB batch as the rest
//! of the write that brought it, so an accepted delta is never lost.
//!
//! The index of the pending area lives in memory (rebuilt from the column
//! family at open): for each entry its dots, what it needs and its size,
//! and for each dot some entry waits for, the entries waiting for it. An
//! entry waits for one missing dot at a time. When dots join the record (a
//! write, a drained entry, a sync session's learned record) the entries
//! waiting for them are checked again: still missing something, they wait
//! for the next missing dot; complete, they are *ready*. Draining applies
//! ready entries through the write path — their states joined, their dots
//! added to the record and their pending rows deleted in one RocksDB batch
//! — and repeats with the dots that delivery added, so chains of
//! dependencies drain in causal order.
//!
//! Lock order: the commit lock, then the pending index, then the record
//! (`context`); no path takes them the other way round.
//!
//! An entry that cannot be applied when drained (its state would pass the
//! size limit, or its key holds another type) stays pending and is counted
//! as `stuck`; entries that depend on it keep waiting.
//!
//! [`Delta::requires`]: crate::codec::Delta::requires

use super::{Engine, CF_PENDING};
use crate::causal::{CausalContext, Dot};
use crate::codec::Changes;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};

/// What the pending area holds ([`Engine::pending`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingInfo {
    /// Entries waiting (a delta, or a page of changes).
    pub entries: u64,
    /// Their encoded size in bytes.
    pub bytes: u64,
    /// The join of what they need: hold all of it and every entry becomes
    /// visible (ask a peer for it, or run an anti-entropy session).
    pub needed: CausalContext,
    /// How many dots of `needed` this replica lacks.
    pub missing: u64,
    /// Entries whose dependencies are met but that cannot be applied (their
    /// state would pass the size limit, or their key holds another type).
    pub stuck: u64,
}

/// One pending entry, as the index knows it.
struct Entry {
    dots: CausalContext,
    needs: CausalContext,
    bytes: u64,
    stuck: bool,
}

#[derive(Default)]
pub(crate) struct Index {
    entries: BTreeMap<u64, Entry>,
    /// Missing dot → entries waiting for it.
    waiting: BTreeMap<Dot, Vec<u64>>,
    /// Entries whose needs are met, not yet applied.
    ready: Vec<u64>,
    /// Every dot of every entry (a delta that is already pending is not
    /// kept twice).
    by_dot: HashMap<Dot, u64>,
    pub(crate) next_id: u64,
    bytes: u64,
    /// Rechecks done (tests count them).
    #[cfg(test)]
    rechecks: u64,
}

/// The pending area's index, and the lock that serializes draining.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) index: Mutex<Index>,
    pub(crate) drain: Mutex<()>,
}

impl Pending {
    /// Whether nothing is pending (then a write that adds dots need not
    /// drain).
    pub(crate) fn is_empty(&self) -> bool {
        self.index.lock().entries.is_empty()
    }
}

/// Entries drained per write batch.
const DRAIN_BATCH: usize = 256;

impl Index {
    /// Whether every dot of `dots` is already pending.
    pub(crate) fn holds_all(&self, dots: &CausalContext) -> bool {
        let mut all = true;
        for_each_dot(dots, |d| {
            all &= self.by_dot.contains_key(&d);
            all
        });
        all
    }

    /// Check that `n` more entries of `bytes` in all fit.
    pub(crate) fn check_room(
        &self,
        n: usize,
        bytes: u64,
        max: usize,
        max_bytes: u64,
    ) -> Result<()> {
        let entries = self.entries.len() + n;
        let total = self.bytes.saturating_add(bytes);
        if entries > max || total > max_bytes {
            return Err(Error::PendingFull {
                entries: entries as u64,
                bytes: total,
                max_entries: max as u64,
                max_bytes,
            });
        }
        Ok(())
    }

    /// Add an entry (already written) and find what it waits for.
    pub(crate) fn add(&mut self, id: u64, c: &Changes, bytes: u64, record: &CausalContext) {
        for_each_dot(&c.dots, |d| {
            self.by_dot.insert(d, id);
            true
        });
        self.bytes += bytes;
        self.entries.insert(
            id,
            Entry {
                dots: c.dots.clone(),
                needs: c.deps.clone(),
                bytes,
                stuck: false,
            },
        );
        self.next_id = self.next_id.max(id + 1);
        self.recheck(id, record);
    }

    /// Wait for the entry's last missing dot, or mark it ready. (Not the
    /// first: in a chain of entries of one origin, each needing the one
    /// before, every delivered dot would wake every entry of the chain, and
    /// draining it would recheck entries quadratically often.)
    fn recheck(&mut self, id: u64, record: &CausalContext) {
        let Some(e) = self.entries.get(&id) else {
            return;
        };
        #[cfg(test)]
        {
            self.rechecks += 1;
        }
        match record.last_missing(&e.needs) {
            Some(d) => self.waiting.entry(d).or_default().push(id),
            None => self.ready.push(id),
        }
    }

    /// Entries waiting for a dot of `news` are checked again.
    fn wake(&mut self, news: &CausalContext, record: &CausalContext) {
        let mut woken = Vec::new();
        for (r, n) in news.vv().iter() {
            let hit: Vec<Dot> = self
                .waiting
                .range(Dot::new(r, 1)..=Dot::new(r, n))
                .map(|(d, _)| *d)
                .collect();
            for d in hit {
                woken.extend(self.waiting.remove(&d).unwrap_or_default());
            }
        }
        for d in news.cloud() {
            woken.extend(self.waiting.remove(d).unwrap_or_default());
        }
        for id in woken {
            self.recheck(id, record);
        }
    }

    /// Remove applied entries.
    pub(crate) fn release(&mut self, ids: &[u64]) {
        for id in ids {
            if let Some(e) = self.entries.remove(id) {
                self.bytes -= e.bytes;
                for_each_dot(&e.dots, |d| {
                    if self.by_dot.get(&d) == Some(id) {
                        self.by_dot.remove(&d);
                    }
                    true
                });
            }
        }
    }
}

/// Call `f` on every dot of `c` until it returns false.
fn for_each_dot(c: &CausalContext, mut f: impl FnMut(Dot) -> bool) {
    for (r, n) in c.vv().iter() {
        for k in 1..=n {
            if !f(Dot::new(r, k)) {
                return;
            }
        }
    }
    for d in c.cloud() {
        if !f(*d) {
            return;
        }
    }
}

/// Load the index from the `pending` column family at open.
pub(super) fn load(db: &rocksdb::DB, record: &CausalContext) -> Result<Index> {
    let cf = super::cf(db, CF_PENDING)?;
    let mut index = Index::default();
    for item in db.iterator_cf(cf, rocksdb::IteratorMode::Start) {
        let (k, v) = item?;
        let id = u64::from_be_bytes(
            k.as_ref()
                .try_into()
                .map_err(|_| Error::Corruption("pending entry id is damaged".into()))?,
        );
        let c = Changes::decode(&v)
            .map_err(|e| Error::Corruption(format!("pending entry {id}: {e}")))?;
        index.add(id, &c, v.len() as u64, record);
    }
    Ok(index)
}

impl Engine {
    /// What the pending area holds: deltas and pages received before their
    /// dependencies, invisible until those arrive.
    pub fn pending(&self) -> PendingInfo {
        let index = self.pending.index.lock();
        let mut needed = CausalContext::new();
        let mut stuck = 0;
        for e in index.entries.values() {
            needed.merge(&e.needs);
            stuck += u64::from(e.stuck);
        }
        let (entries, bytes) = (index.entries.len() as u64, index.bytes);
        drop(index);
        let missing = self.context.lock().missing(&needed);
        PendingInfo {
            entries,
            bytes,
            needed,
            missing,
            stuck,
        }
    }

    /// Apply every pending entry whose dependencies the record now holds,
    /// after `news` joined it, and repeat with what that delivered.
    pub(crate) fn drain(&self, news: CausalContext) -> Result<()> {
        let _one = self.pending.drain.lock();
        let mut news = news;
        loop {
            let ids: Vec<u64> = {
                let mut index = self.pending.index.lock();
                if index.entries.is_empty() {
                    return Ok(());
                }
                if !news.is_empty() {
                    let record = self.context.lock();
                    index.wake(&news, &record);
                }
                let n = index.ready.len().min(DRAIN_BATCH);
                let start = index.ready.len() - n;
                index.ready.drain(start..).collect()
            };
            if ids.is_empty() {
                return Ok(());
            }
            news = self.apply_ready(&ids)?;
        }
    }

    /// Apply ready entries in one write; one by one if that fails, marking
    /// the ones that cannot be applied as stuck. Returns the dots applied.
    fn apply_ready(&self, ids: &[u64]) -> Result<CausalContext> {
        let cf = self.cf(CF_PENDING)?;
        let keys: Vec<[u8; 8]> = ids.iter().map(|id| id.to_be_bytes()).collect();
        let mut groups = Vec::with_capacity(ids.len());
        for (id, r) in ids
            .iter()
            .zip(self.db.batched_multi_get_cf(cf, &keys, false))
        {
            if let Some(v) = r? {
                let c = Changes::decode(&v)
                    .map_err(|e| Error::Corruption(format!("pending entry {id}: {e}")))?;
                groups.push((*id, c));
            }
        }
        let mut applied = CausalContext::new();
        match self.apply_groups(&groups) {
            Ok(()) => {
                for (_, c) in &groups {
                    applied.merge(&c.dots);
                }
            }
            Err(Error::Poisoned) => return Err(Error::Poisoned),
            Err(_) if groups.len() > 1 => {
                for g in &groups {
                    match self.apply_groups(std::slice::from_ref(g)) {
                        Ok(()) => applied.merge(&g.1.dots),
                        Err(Error::Poisoned) => return Err(Error::Poisoned),
                        Err(_) => self.mark_stuck(g.0),
                    }
                }
            }
            Err(_) => {
                if let Some((id, _)) = groups.first() {
                    self.mark_stuck(*id);
                }
            }
        }
        let mut index = self.pending.index.lock();
        let done: Vec<u64> = groups
            .iter()
            .filter(|(id, _)| !index.entries.get(id).is_some_and(|e| e.stuck))
            .map(|(id, _)| *id)
            .collect();
        index.release(&done);
        Ok(applied)
    }

    fn mark_stuck(&self, id: u64) {
        if let Some(e) = self.pending.index.lock().entries.get_mut(&id) {
            e.stuck = true;
        }
    }

    /// Join the groups' states, add their dots to the record and delete
    /// their pending rows, in one write.
    fn apply_groups(&self, groups: &[(u64, Changes)]) -> Result<()> {
        let mut dots = CausalContext::new();
        let mut release = Vec::with_capacity(groups.len());
        let mut items = Vec::new();
        for (id, c) in groups {
            dots.merge(&c.dots);
            release.push(*id);
            for (k, st) in &c.entries {
                items.push((k.as_slice(), st.clone()));
            }
        }
        self.commit_states(items, dots, release).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::Index;
    use crate::causal::{CausalContext, Dot, ReplicaId};
    use crate::codec::Changes;

    /// A chain of entries of one origin, each needing every dot before its
    /// own, parked in order while the first dot is missing: once that dot
    /// arrives, draining the chain in order rechecks each entry a bounded
    /// number of times (it rechecked all the entries left at every step
    /// when entries waited for their first missing dot: about n²/2).
    #[test]
    fn a_chain_drains_with_a_linear_number_of_rechecks() {
        let r = ReplicaId(7);
        let n: u64 = 2_000;
        let mut index = Index::default();
        let mut record = CausalContext::new();
        for k in 2..=n {
            let mut deps = CausalContext::new();
            deps.insert_range(r, 1, k - 1);
            let c = Changes {
                dots: CausalContext::from_dots(vec![Dot::new(r, k)]),
                deps,
                entries: Vec::new(),
            };
            index.add(k, &c, 1, &record);
        }
        assert!(index.ready.is_empty());
        let parked = index.rechecks;
        let mut news = CausalContext::from_dots(vec![Dot::new(r, 1)]);
        let mut delivered = Vec::new();
        loop {
            record.merge(&news);
            index.wake(&news, &record);
            let ready = std::mem::take(&mut index.ready);
            if ready.is_empty() {
                break;
            }
            news = CausalContext::new();
            for id in &ready {
                news.insert(Dot::new(r, *id));
            }
            delivered.extend_from_slice(&ready);
            index.release(&ready);
        }
        assert_eq!(delivered, (2..=n).collect::<Vec<_>>());
        assert!(index.entries.is_empty());
        let drained = index.rechecks - parked;
        assert!(drained <= 2 * n, "{drained} rechecks to drain {n} entries");
    }
}
