//! The causal record: the exact set of dots `(origin, seq)` whose effects
//! this replica holds, and waiting for it to grow.
//!
//! What it holds after each kind of input:
//! - a **local operation** committed with sequence number `n`: the dot
//!   `(this replica, n)`. Local numbers are consecutive and in commit order
//!   (the write path, `commit.rs`, allocates them under the commit lock and persists the last
//!   one — in the log entry of the changes feed, or `meta/seq` with the
//!   feed off — in the same RocksDB batch as the data);
//! - a **peer's delta** `(origin, seq)` applied: that dot, persisted with the
//!   data as a merge operand of `meta/ctx` (the join of every such dot). A
//!   delta with recorded dependencies is applied once the record holds them
//!   (`pending.rs`); one without (kind 1) at once;
//! - a **page of changes** applied: its dots, the same way;
//! - a **full state** merged (`merge` of state bytes, or a sync session's
//!   states): nothing. A state carries no dots, so the record does not
//!   claim its effects; it may then hold effects it does not list, never
//!   the reverse.
//!
//! It is published (and waiters woken) after the data is written and the
//! keys are marked for the anti-entropy tree, so a read that follows
//! [`Engine::context`] or a successful [`Engine::wait_for`] sees every
//! effect the context lists.

use super::feed::META_LOG_FLOOR;
use super::{cf, Engine, CF_LOG, CF_META, META_CTX, META_SEQ, META_VV};
use crate::causal::{CausalContext, ReplicaId};
use crate::codec::{decode_context, decode_vv, encode_context};
use crate::error::{Error, Result};
use rocksdb::DB;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Load the last local sequence number and the record at open. A store
/// written before the exact record existed has only its high-water
/// version vector (`meta/vv`): the record starts from it.
pub(super) fn load(db: &DB, replica: ReplicaId) -> Result<(u64, CausalContext)> {
    let meta = cf(db, CF_META)?;
    let mut context = match db.get_cf(meta, META_CTX)? {
        Some(b) => decode_context(&b)
            .map_err(|e| Error::Corruption(format!("stored causal record: {e}")))?,
        None => CausalContext::new(),
    };
    if let Some(b) = db.get_cf(meta, META_VV)? {
        let vv = decode_vv(&b).map_err(|e| Error::Corruption(format!("version vector: {e}")))?;
        context.merge(&CausalContext::from_vv(vv));
    }
    let seq = match db.get_cf(meta, META_SEQ)? {
        Some(b) => u64::from_be_bytes(
            b.as_slice()
                .try_into()
                .map_err(|_| Error::Corruption("stored sequence number is damaged".into()))?,
        ),
        None => context.vv().get(replica),
    };
    context.insert_range(replica, 1, seq);
    Ok((seq, context))
}

impl Engine {
    /// The causal record: every dot `(origin, seq)` whose effects this
    /// replica holds (its own operations and the peers' deltas it merged),
    /// as a version vector plus the dots above it. Use it as a session
    /// token: pass it to [`Engine::wait_for`] on another replica to read
    /// there at least what could be read here.
    pub fn context(&self) -> CausalContext {
        self.context.lock().clone()
    }

    /// Wait until this replica holds every dot of `token` (a context, or the
    /// join of the dots of [`crate::KeyedDelta`]s of writes). `None`, or a
    /// timeout that passes first: [`Error::NotYetVisible`] saying how many
    /// dots are missing. Woken by the writes and merges that grow the
    /// record, never by polling. Afterwards every read on this replica sees
    /// the token's effects (read-your-writes, monotonic reads). A wait
    /// interrupted by [`Engine::interrupt_waits`] (or one asked for after
    /// it) returns [`Error::Closed`].
    pub fn wait_for(&self, token: &CausalContext, timeout: Option<Duration>) -> Result<()> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut ctx = self.context.lock();
        loop {
            let missing = ctx.missing(token);
            if missing == 0 {
                return Ok(());
            }
            // Read under the lock `interrupt_waits` sets it under: no
            // wake-up is lost.
            if timeout.is_some() && self.waits_interrupted.load(Ordering::Acquire) {
                return Err(Error::Closed);
            }
            let timed_out = match (timeout, deadline) {
                (None, _) => true,
                // A timeout too large for the clock waits without limit.
                (Some(_), None) => {
                    self.context_grew.wait(&mut ctx);
                    false
                }
                (Some(_), Some(d)) => self.context_grew.wait_until(&mut ctx, d).timed_out(),
            };
            if timed_out {
                let missing = ctx.missing(token);
                if missing == 0 {
                    return Ok(());
                }
                return Err(Error::NotYetVisible { missing });
            }
        }
    }

    /// Wake every [`Engine::wait_for`] in progress and make every later one
    /// that would wait return [`Error::Closed`] at once (one that needs no
    /// wait still succeeds). For an engine shared with threads that may be
    /// waiting, before it is closed: the C ABI's `cvg_engine_close` calls
    /// it, so a wait does not keep a closed engine open until its timeout.
    /// It cannot be undone.
    pub fn interrupt_waits(&self) {
        let _ctx = self.context.lock();
        self.waits_interrupted.store(true, Ordering::Release);
        self.context_grew.notify_all();
    }

    /// Add a converged sync peer's record to this replica's (the session
    /// established that this replica holds the effects of those dots):
    /// persisted as a `meta/ctx` operand, then published. If the record
    /// lists operations of this replica beyond the last it issued, this
    /// replica lost them (a crash with `Buffered` or `None` durability
    /// after they were shipped) and the session brought their effects
    /// back: its numbering continues after the highest, so no number is
    /// used twice.
    pub(crate) fn learn_context(&self, learned: &CausalContext) -> Result<()> {
        if self.context.lock().includes(learned) {
            return Ok(());
        }
        self.check_writable()?;
        let meta = self.cf(CF_META)?;
        let mut wb = rocksdb::WriteBatch::default();
        wb.merge_cf(meta, META_CTX, encode_context(learned));
        let highest_own = learned.next_dot(self.replica).counter - 1;
        // Truncation takes this lock before the commit lock too.
        let _truncating = self.feed.truncating.lock();
        let mut committed = self.commit.lock();
        self.check_writable()?;
        let base = committed.seq;
        let restored = highest_own > base;
        if restored {
            wb.put_cf(meta, META_SEQ, highest_own.to_be_bytes());
            if self.options.changes_feed {
                // The restored operations are not in the changes feed's
                // log: a cursor that lacks them must go to anti-entropy, so
                // the log starts after them.
                let floor = highest_own + 1;
                wb.delete_range_cf(self.cf(CF_LOG)?, 0u64.to_be_bytes(), floor.to_be_bytes());
                wb.put_cf(meta, META_LOG_FLOOR, floor.to_be_bytes());
            }
        }
        self.write_or_poison(wb)?;
        if restored && self.options.changes_feed {
            self.feed.restart_after(highest_own);
        }
        committed.seq = base.max(highest_own);
        super::commit::add_replicas(&mut committed.touched, learned, self.replica);
        self.publish(base, base, learned);
        drop(committed);
        // Pending entries waiting for the learned dots become visible.
        self.drain(learned.clone())
    }

    /// Add the dots of a committed batch to the record and wake waiters:
    /// local sequence numbers `base+1..=last` and the peers' `remote` dots.
    /// Called under the commit lock, after the data is written.
    pub(crate) fn publish(&self, base: u64, last: u64, remote: &CausalContext) {
        if last == base && remote.is_empty() {
            return;
        }
        let mut ctx = self.context.lock();
        ctx.insert_range(self.replica, base + 1, last);
        ctx.merge(remote);
        drop(ctx);
        self.context_grew.notify_all();
    }

    /// A delta of this replica that it has not issued means two engines
    /// share one replica id, or this replica lost operations it had
    /// shipped (a crash with `Buffered` or `None` durability): refuse it
    /// rather than claim its dot. An anti-entropy session with a peer that
    /// holds them restores them and the numbering (`learn_context`).
    /// `issued` is the last local sequence number, read under the commit
    /// lock.
    pub(crate) fn check_own_dots(&self, remote: &CausalContext, issued: u64) -> Result<()> {
        let highest = remote.next_dot(self.replica).counter - 1;
        if highest > issued {
            return Err(Error::InvalidArgument(format!(
                "a delta of this replica ({}) with a sequence number it has not issued \
                 (last issued: {issued}): another engine uses the same replica id, or \
                 this replica lost operations it had shipped (run an anti-entropy \
                 session with a peer that holds them)",
                self.replica
            )));
        }
        Ok(())
    }
}
