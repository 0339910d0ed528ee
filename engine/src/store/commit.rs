//! Group commit: ordering commits without serializing their RocksDB writes.
//!
//! Every batch that adds dots (local operations, delta merges, parked
//! entries) must take its sequence numbers in commit order, so numbering
//! and the RocksDB write happen under the commit lock. Holding that lock
//! across one RocksDB write per batch would serialize the writers that
//! RocksDB could otherwise group into one WAL write. So writers queue
//! their prepared batches; the writer at the head of the queue is the
//! *leader*: under the commit lock it numbers every queued batch in queue
//! order (each batch's checks, pending ids, dependencies, sequence numbers
//! and log entry, exactly as a lone commit would), writes them all as one
//! RocksDB write batch (atomic: all or none, one WAL write and at most one
//! fsync), marks their keys for the anti-entropy tree, publishes their dots
//! and wakes their writers. A batch that fails its own checks (a dot of
//! this replica never issued, a full pending area) is left out of the group
//! and fails alone, consuming no number. A failed group write poisons the
//! engine, as any failed write does.
//!
//! The queue's head is always the leader; a writer waits on its own
//! condition variable until its batch is done or it reaches the head
//! (LevelDB's writer queue works the same way). The writers nearest the
//! head (one fewer than the machine's cores) first yield for up to
//! [`SPIN`], watching their ticket's flag, as RocksDB's writer queue does:
//! a blocked writer's wake-up cost about as much as the group's write
//! (two writer threads, 2026-11-28: 1.38x the increments per second;
//! four: unchanged).

use super::batch::KeyedDelta;
use super::{CommitState, Engine, CF_LOG, CF_META, META_SEQ};
use crate::causal::CausalContext;
use crate::codec::Changes;
use crate::error::Result;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// How long a queued writer yields, waiting for its batch to be done or
/// to lead, before it blocks.
const SPIN: std::time::Duration = std::time::Duration::from_micros(200);
/// Batches a leader commits at most in one group.
const MAX_GROUP: usize = 64;
/// Bytes of RocksDB write batch a group gathers at most (the leader's own
/// batch always goes).
const MAX_GROUP_BYTES: usize = 4 << 20;

/// A batch ready to commit: everything but its numbering.
pub(super) struct Ready {
    pub(super) wb: rocksdb::WriteBatch,
    /// Its local operations' deltas (numbered and given dependencies by
    /// the commit).
    pub(super) deltas: Vec<KeyedDelta>,
    /// The peers' dots it adds to the record (a superset: it may repeat
    /// dots the record holds, see `Applied::remote`).
    pub(super) remote: CausalContext,
    /// Pages to park in the pending area, with their encodings.
    pub(super) park: Vec<(Changes, Vec<u8>)>,
    /// Its operations for the changes feed's log (`feed::encode_log_ops`).
    pub(super) logged: Option<Vec<u8>>,
    /// Pending rows it applies.
    pub(super) release: Vec<u64>,
    /// The keys it writes, with their hints and whether it creates them
    /// (for the anti-entropy tree: `Tree::mark_dirty_owned`).
    pub(super) keys: Vec<crate::aae::Written>,
    /// `Tree::epoch` when the batch took its keys' stripes.
    pub(super) epoch: u64,
}

/// What the commit of one batch did.
pub(super) struct Done {
    /// Its local operations' deltas, numbered.
    pub(super) deltas: Vec<KeyedDelta>,
    /// The dots it added to the record besides its own operations (a
    /// superset, as `Ready::remote`): pending entries waiting for them may
    /// be ready.
    pub(super) remote: CausalContext,
    /// Whether it parked an entry (which may be ready already).
    pub(super) parked: bool,
    /// Bytes it added to the changes feed's log.
    pub(super) log_bytes: u64,
}

/// One queued batch.
struct Ticket {
    ready: Mutex<Option<Ready>>,
    done: Mutex<Option<Result<Done>>>,
    wake: Condvar,
    /// Set (before `wake` is notified) when the batch is done or has
    /// reached the head of the queue: what a waiter spins on before it
    /// blocks.
    signalled: AtomicBool,
}

/// The queue of batches waiting to commit.
pub(crate) struct CommitQueue {
    queue: Mutex<VecDeque<Arc<Ticket>>>,
    groups: AtomicU64,
    batches: AtomicU64,
    /// Waiters that yield before blocking: those within this many places
    /// of the head (one core fewer than the machine has, at least one).
    spinners: usize,
}

impl Default for CommitQueue {
    fn default() -> CommitQueue {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        CommitQueue {
            queue: Mutex::default(),
            groups: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            spinners: cores.saturating_sub(1).max(1),
        }
    }
}

/// A batch numbered by the leader, before the group write.
struct Numbered {
    base: u64,
    last: u64,
    parked: Vec<(u64, Changes, u64)>,
    log_bytes: u64,
}

impl Engine {
    /// How the group commit has gone since open: (group writes, batches
    /// committed in them). Batches per group above 1 mean concurrent
    /// writers shared RocksDB writes.
    pub fn group_commit_stats(&self) -> (u64, u64) {
        (
            self.group.groups.load(Ordering::Relaxed),
            self.group.batches.load(Ordering::Relaxed),
        )
    }

    /// Commit a prepared batch through the group commit queue.
    pub(super) fn commit_ready(&self, ready: Ready) -> Result<Done> {
        let ticket = Arc::new(Ticket {
            ready: Mutex::new(Some(ready)),
            done: Mutex::new(None),
            wake: Condvar::new(),
            signalled: AtomicBool::new(false),
        });
        let mut q = self.group.queue.lock();
        q.push_back(ticket.clone());
        loop {
            if let Some(r) = ticket.done.lock().take() {
                return r;
            }
            if q.front().is_some_and(|f| Arc::ptr_eq(f, &ticket)) {
                break;
            }
            // A group's write takes about a hundred microseconds: the
            // writers nearest the head wait for it by yielding before they
            // block, which saves a blocked thread's wake-up (the others
            // block at once, leaving the cores to the leader).
            if q.iter().position(|t| Arc::ptr_eq(t, &ticket)) <= Some(self.group.spinners) {
                drop(q);
                let spin = std::time::Instant::now();
                while !ticket.signalled.load(Ordering::Acquire) && spin.elapsed() < SPIN {
                    std::thread::yield_now();
                }
                q = self.group.queue.lock();
                if ticket.signalled.load(Ordering::Acquire) {
                    continue;
                }
            }
            ticket.wake.wait(&mut q);
        }
        // The leader: take the batches at the head of the queue (its own
        // first). Their tickets stay queued until they are done: only the
        // leader pops the queue, so they are still its head then.
        let mut readies: Vec<Ready> = Vec::new();
        let mut bytes = 0;
        for t in q.iter() {
            let mut ready = t.ready.lock();
            let size = ready.as_ref().map_or(0, |r| r.wb.size_in_bytes());
            if !readies.is_empty() && (readies.len() == MAX_GROUP || bytes + size > MAX_GROUP_BYTES)
            {
                break;
            }
            bytes += size;
            readies.push(ready.take().expect("a queued batch is committed once"));
        }
        drop(q);
        self.group.groups.fetch_add(1, Ordering::Relaxed);
        self.group
            .batches
            .fetch_add(readies.len() as u64, Ordering::Relaxed);
        let results = self.commit_group(readies);
        let mut q = self.group.queue.lock();
        let mut own = None;
        for r in results {
            let t = q
                .pop_front()
                .expect("a group's tickets are queued until done");
            if Arc::ptr_eq(&t, &ticket) {
                own = Some(r);
                continue;
            }
            *t.done.lock() = Some(r);
            t.signalled.store(true, Ordering::Release);
            t.wake.notify_one();
        }
        if let Some(next) = q.front() {
            next.signalled.store(true, Ordering::Release);
            next.wake.notify_one();
        }
        drop(q);
        own.expect("the leader's own batch is in its group")
    }

    /// Number, write and publish a group of batches (the leader's work).
    fn commit_group(&self, mut readies: Vec<Ready>) -> Vec<Result<Done>> {
        let mut c = self.commit.lock();
        let mut numbered: Vec<Result<Numbered>> = Vec::with_capacity(readies.len());
        let mut next = c.seq;
        // The peers' dots of the group's earlier batches: dependencies of
        // its later local operations like the record's.
        let mut group_remote = CausalContext::new();
        for r in readies.iter_mut() {
            let n = self
                .check_writable()
                .and_then(|()| self.number(&mut c, r, next, &mut group_remote));
            if let Ok(n) = &n {
                next = n.last;
            }
            numbered.push(n);
        }
        // One RocksDB write for every batch that passed its checks.
        let mut included = readies
            .iter_mut()
            .zip(&numbered)
            .filter(|(_, n)| n.is_ok())
            .map(|(r, _)| &mut r.wb);
        let written = match (included.next(), included.next()) {
            (None, _) => Ok(()),
            (Some(one), None) => self.write_or_poison(std::mem::take(one)),
            (Some(first), Some(second)) => {
                let many: Vec<&mut rocksdb::WriteBatch> =
                    [first, second].into_iter().chain(included).collect();
                let total: usize = many.iter().map(|wb| wb.len()).sum();
                let mut rep = Vec::with_capacity(many.iter().map(|wb| wb.size_in_bytes()).sum());
                // The write batch format: sequence (u64 LE, set by RocksDB),
                // count (u32 LE), then the records.
                rep.extend_from_slice(&0u64.to_le_bytes());
                rep.extend_from_slice(&(total as u32).to_le_bytes());
                for wb in many {
                    rep.extend_from_slice(&wb.data()[12..]);
                }
                self.write_or_poison(rocksdb::WriteBatch::from_data(&rep))
            }
        };
        if let Err(e) = written {
            return numbered
                .into_iter()
                .map(|n| n.and_then(|_| Err(e.shared_copy("group commit failed"))))
                .collect();
        }
        // Published in queue order, after the keys are marked dirty: every
        // dot of the record is in the data and known to the tree.
        let mut published = CausalContext::new();
        for (r, n) in readies.iter_mut().zip(&numbered) {
            let Ok(n) = n else { continue };
            if self.options.anti_entropy {
                self.tree
                    .mark_dirty_owned(std::mem::take(&mut r.keys), r.epoch);
            }
            if n.last > n.base {
                // Its peers' dots counted as merged before its operations.
                c.touched.clear();
            } else {
                add_replicas(&mut c.touched, &r.remote, self.replica);
            }
            published.merge(&r.remote);
        }
        // The log's size grows under the commit lock, so a truncation that
        // reads the last number under it has every entry up to it counted.
        let log_bytes: u64 = numbered.iter().flatten().map(|n| n.log_bytes).sum();
        self.feed.count(log_bytes);
        // The numbers of the written batches are consecutive: failed ones
        // took none.
        let base = c.seq;
        c.seq = next;
        self.publish(base, next, &published);
        {
            let mut index = self.pending.index.lock();
            let ctx = self.context.lock();
            for n in numbered.iter().flatten() {
                for (id, page, bytes) in &n.parked {
                    index.add(*id, page, *bytes, &ctx);
                }
            }
            drop(ctx);
            for (r, n) in readies.iter().zip(&numbered) {
                if n.is_ok() && !r.release.is_empty() {
                    index.release(&r.release);
                }
            }
        }
        drop(c);
        readies
            .into_iter()
            .zip(numbered)
            .map(|(r, n)| {
                n.map(|n| Done {
                    deltas: r.deltas,
                    remote: r.remote,
                    parked: !n.parked.is_empty(),
                    log_bytes: n.log_bytes,
                })
            })
            .collect()
    }

    /// Number one batch of a group after `base`: its checks, pending ids,
    /// dependencies, sequence numbers and log entry (or `meta/seq`).
    fn number(
        &self,
        c: &mut CommitState,
        r: &mut Ready,
        base: u64,
        group_remote: &mut CausalContext,
    ) -> Result<Numbered> {
        for (page, _) in &r.park {
            self.check_own_dots(&page.dots, base)?;
            self.check_own_dots(&page.deps, base)?;
        }
        if !r.remote.is_empty() {
            self.check_own_dots(&r.remote, base)?;
        }
        let parked = self.stage_parked(&mut r.park, &mut r.wb)?;
        let last = base + r.deltas.len() as u64;
        // Everything merged since this replica's previous operation is a
        // dependency of its next one. `touched` itself is updated once the
        // group is written.
        // (Within a group, the earlier batches' peers count too: a larger
        // set than needed at worst, never a smaller one.)
        group_remote.merge(&r.remote);
        // With nothing merged since then (a lone local writer), the first
        // operation depends on none but its origin's, as `apply` left it.
        let merged = !(c.touched.is_empty() && group_remote.is_empty());
        if let Some(first) = r.deltas.first_mut().filter(|_| merged) {
            let mut touched = c.touched.clone();
            add_replicas(&mut touched, group_remote, self.replica);
            let ctx = self.context.lock();
            let mut deps = ctx.project(&touched);
            drop(ctx);
            deps.merge(&group_remote.project(&touched));
            first.delta.deps = Some(deps);
        }
        let mut deletes = false;
        for (i, d) in r.deltas.iter_mut().enumerate() {
            d.delta.seq = base + 1 + i as u64;
            if d.delta.state.is_delete() {
                // A delete is known by its dot from now on (collection
                // waits until every member acknowledged it): in the delta
                // shipped and logged, and, by one more operand, in the
                // key's state.
                let dot = crate::causal::Dot::new(self.replica, d.delta.seq);
                d.delta.state.mark_delete(dot);
                let mut marker = crate::crdt::State::empty(d.delta.state.crdt_type());
                marker.mark_delete(dot);
                r.wb.merge_cf(
                    self.cf(super::CF_STATE)?,
                    &d.key,
                    crate::codec::encode_state(&marker),
                );
                deletes = true;
            }
        }
        if deletes && r.logged.is_some() {
            r.logged = Some(super::feed::encode_log_ops(&r.deltas));
        }
        let mut log_bytes = 0;
        if let (Some(ops), Some(first)) = (&r.logged, r.deltas.first()) {
            // One log entry per commit, keyed by its first number.
            let v = super::feed::encode_log_entry(r.deltas.len(), first.delta.deps.as_ref(), ops);
            log_bytes = 8 + v.len() as u64;
            r.wb.put_cf(self.cf(CF_LOG)?, (base + 1).to_be_bytes(), v);
        }
        if last > base && r.logged.is_none() {
            // With the changes feed on, the log entry records the last
            // number (see `feed::last_logged`): one put less per commit.
            r.wb.put_cf(self.cf(CF_META)?, META_SEQ, last.to_be_bytes());
        }
        Ok(Numbered {
            base,
            last,
            parked,
            log_bytes,
        })
    }
}

/// Add the replicas `c` has dots of, except `me`, to `set` (the
/// replicas touched since the last local operation).
pub(super) fn add_replicas(
    set: &mut std::collections::BTreeSet<crate::causal::ReplicaId>,
    c: &CausalContext,
    me: crate::causal::ReplicaId,
) {
    for (r, _) in c.vv().iter() {
        if r != me {
            set.insert(r);
        }
    }
    for d in c.cloud() {
        if d.replica != me {
            set.insert(d.replica);
        }
    }
}
