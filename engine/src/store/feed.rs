//! The changes feed: push replication from a causal cursor.
//!
//! Every commit with local operations puts one entry into the `log` column
//! family, in the same RocksDB batch as its data: key = the sequence number
//! of its first operation (u64 big-endian, so the log is in commit order
//! and gap-free), value = the number of operations, the first one's
//! recorded dependencies, and each operation's key and delta state (see
//! FORMAT.md). One entry per commit rather than per operation keeps the
//! log's cost per operation small in batches. The feed ships this replica's own operations: each origin
//! is the authority for its operations, and a peer receives the others'
//! from them or by anti-entropy.
//!
//! A cursor is a causal context — what the peer holds — not an offset:
//! [`Engine::changes_since`] returns the logged operations the cursor
//! lacks, coalesced into one state per key, as a [`Changes`] page the peer
//! applies atomically with [`Engine::apply_changes`], and the next cursor.
//!
//! The log is truncated from its oldest end (`meta/log_floor` = the first
//! sequence number retained): past [`Options::feed_retain_bytes`], and up
//! to what every registered peer has acknowledged. A cursor that lacks an
//! operation older than the floor gets [`Error::CursorTooOld`]; its remedy
//! is an anti-entropy session, after which the peer's record is a cursor
//! the feed can serve again.
//!
//! [`Options::feed_retain_bytes`]: super::Options::feed_retain_bytes

use super::{cf, Engine, CF_LOG, CF_META};
use crate::causal::{CausalContext, Dot, ReplicaId};
use crate::codec::{decode_context, encode_context, Changes};
use crate::crdt::State;
use crate::error::{Error, Result};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// The first sequence number the log retains (u64 BE).
pub(crate) const META_LOG_FLOOR: &[u8] = b"log_floor";
/// Prefix of a registered peer's acknowledged cursor (`peer/` + its id, 16
/// bytes big-endian → a kind-2 context).
pub(crate) const META_PEER: &[u8] = b"peer/";

/// Log bytes a page of changes gathers at most (before coalescing).
pub const MAX_PAGE_BYTES: u64 = 16 << 20;

/// One page of the changes feed ([`Engine::changes_since`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedPage {
    /// The page to ship (`changes.encode()`), `None` when the cursor lacks
    /// nothing.
    pub changes: Option<Changes>,
    /// How many operations the page carries.
    pub operations: u64,
    /// The cursor to ask from next: the given one plus the page's
    /// operations.
    pub next: CausalContext,
    /// Whether the log holds more operations the next cursor lacks.
    pub more: bool,
}

/// What [`Engine::apply_changes`] did with a page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Its effects are visible, its operations in the record.
    Applied,
    /// It waits in the pending area for its dependencies.
    Pending,
    /// This replica already held every operation of the page (nothing
    /// changed).
    Duplicate,
}

/// The state of the changes feed ([`Engine::feed_info`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedInfo {
    /// The oldest sequence number retained (the log holds `floor..=last`).
    pub floor: u64,
    /// The last sequence number issued.
    pub last: u64,
    /// Bytes the log holds (keys and values).
    pub bytes: u64,
    /// Registered peers and the cursors they acknowledged.
    pub peers: Vec<(ReplicaId, CausalContext)>,
}

/// In-memory state of the feed.
pub(crate) struct Feed {
    floor: AtomicU64,
    bytes: AtomicU64,
    pub(super) peers: Mutex<BTreeMap<ReplicaId, CausalContext>>,
    pub(super) truncating: Mutex<()>,
}

/// The operations part of a log entry: for each operation, key length
/// (u32 BE), key, state length (u32 BE), delta state (the bincode body of
/// a kind-0 encoding, without version, kind and checksum: RocksDB's own
/// checksums cover the log).
pub(crate) fn encode_log_ops(deltas: &[crate::KeyedDelta]) -> Vec<u8> {
    encode_log_ops_into(deltas, None)
}

/// [`encode_log_ops`], noting in `bodies` (if given) where each delta's
/// state body lies in the result: the write path seals it as the key's
/// operand instead of encoding the state again.
pub(crate) fn encode_log_ops_into(
    deltas: &[crate::KeyedDelta],
    mut bodies: Option<&mut Vec<std::ops::Range<usize>>>,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(deltas.len() * 48);
    for d in deltas {
        v.extend_from_slice(&(d.key.len() as u32).to_be_bytes());
        v.extend_from_slice(&d.key);
        let at = v.len();
        v.extend_from_slice(&[0; 4]);
        crate::codec::encode_state_body_into(&d.delta.state, &mut v);
        let n = (v.len() - at - 4) as u32;
        v[at..at + 4].copy_from_slice(&n.to_be_bytes());
        if let Some(b) = bodies.as_deref_mut() {
            b.push(at + 4..v.len());
        }
    }
    v
}

/// A log value: operation count (u32 BE), the first operation's
/// dependencies length (u32 BE) and bytes (a kind-2 context; none: 0),
/// then the operations ([`encode_log_ops`]).
pub(crate) fn encode_log_entry(n: usize, deps: Option<&CausalContext>, ops: &[u8]) -> Vec<u8> {
    let deps = deps.filter(|d| !d.is_empty()).map(encode_context);
    let dl = deps.as_ref().map_or(0, Vec::len);
    let mut v = Vec::with_capacity(8 + dl + ops.len());
    v.extend_from_slice(&(n as u32).to_be_bytes());
    v.extend_from_slice(&(dl as u32).to_be_bytes());
    if let Some(d) = deps {
        v.extend_from_slice(&d);
    }
    v.extend_from_slice(ops);
    v
}

/// A decoded log entry: the first operation's dependencies and each
/// operation's key and delta state.
struct LogEntry {
    deps: CausalContext,
    ops: Vec<(Vec<u8>, State)>,
}

fn decode_log_entry(first: u64, v: &[u8]) -> Result<LogEntry> {
    let bad = || Error::Corruption(format!("log entry {first} is damaged"));
    let corrupt = |e: crate::CodecError| Error::Corruption(format!("log entry {first}: {e}"));
    let u32_at = |at: usize| -> Option<usize> {
        Some(u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?) as usize)
    };
    let n = u32_at(0).ok_or_else(bad)?;
    let dl = u32_at(4).ok_or_else(bad)?;
    let mut at = 8 + dl;
    let deps = decode_context(v.get(8..at).ok_or_else(bad)?).map_err(corrupt)?;
    let mut ops = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let kl = u32_at(at).ok_or_else(bad)?;
        let key = v.get(at + 4..at + 4 + kl).ok_or_else(bad)?.to_vec();
        at += 4 + kl;
        let sl = u32_at(at).ok_or_else(bad)?;
        let state = crate::codec::decode_state_body(v.get(at + 4..at + 4 + sl).ok_or_else(bad)?)
            .map_err(corrupt)?;
        at += 4 + sl;
        ops.push((key, state));
    }
    if at != v.len() {
        return Err(bad());
    }
    Ok(LogEntry { deps, ops })
}

/// How many operations the log entry `v` holds (its first four bytes).
fn entry_len(first: u64, v: &[u8]) -> Result<u64> {
    v.get(..4)
        .and_then(|b| b.try_into().ok())
        .map(|b| u64::from(u32::from_be_bytes(b)))
        .ok_or_else(|| Error::Corruption(format!("log entry {first} is damaged")))
}

fn be_u64(b: &[u8], what: &str) -> Result<u64> {
    Ok(u64::from_be_bytes(b.try_into().map_err(|_| {
        Error::Corruption(format!("{what} is damaged"))
    })?))
}

/// The last sequence number the log records: the end of its last entry,
/// or, for an empty log, one before its floor (0 if there is no log). With
/// the feed on, commits record their last number only here, not in
/// `meta/seq`.
pub(super) fn last_logged(db: &rocksdb::DB) -> Result<u64> {
    let log = cf(db, CF_LOG)?;
    if let Some(item) = db.iterator_cf(log, rocksdb::IteratorMode::End).next() {
        let (k, v) = item?;
        let first = be_u64(&k, "log key")?;
        return Ok(first + entry_len(first, &v)? - 1);
    }
    match db.get_cf(cf(db, CF_META)?, META_LOG_FLOOR)? {
        // The feed is off: no log.
        Some(b) if be_u64(&b, "log floor")? == u64::MAX => Ok(0),
        Some(b) => Ok(be_u64(&b, "log floor")?.saturating_sub(1)),
        None => Ok(0),
    }
}

impl Feed {
    /// Load the feed at open. With the feed off, the log is emptied (the
    /// operations written meanwhile are not logged, so a later log must
    /// not pretend to be complete); with it on, a store without a floor
    /// starts its log after the last issued operation.
    pub(super) fn load(db: &rocksdb::DB, seq: u64, enabled: bool) -> Result<Feed> {
        let meta = cf(db, CF_META)?;
        let log = cf(db, CF_LOG)?;
        let stored = match db.get_cf(meta, META_LOG_FLOOR)? {
            Some(b) => Some(be_u64(&b, "log floor")?),
            None => None,
        };
        let mut peers = BTreeMap::new();
        for item in db.prefix_iterator_cf(meta, META_PEER) {
            let (k, v) = item?;
            let Some(id) = k.strip_prefix(META_PEER) else {
                break;
            };
            let id: [u8; 16] = id
                .try_into()
                .map_err(|_| Error::Corruption("peer id is damaged".into()))?;
            let ctx =
                decode_context(&v).map_err(|e| Error::Corruption(format!("peer cursor: {e}")))?;
            peers.insert(ReplicaId::from_bytes(id), ctx);
        }
        let w = super::Options::synced();
        let floor = match (enabled, stored) {
            (false, _) => {
                if stored != Some(u64::MAX) {
                    // The log recorded the last number: `meta/seq` takes
                    // over, in the same batch.
                    let mut wb = rocksdb::WriteBatch::default();
                    wb.put_cf(meta, super::META_SEQ, seq.to_be_bytes());
                    wb.delete_range_cf(log, 0u64.to_be_bytes(), u64::MAX.to_be_bytes());
                    wb.put_cf(meta, META_LOG_FLOOR, u64::MAX.to_be_bytes());
                    db.write_opt(wb, &w)?;
                }
                u64::MAX
            }
            (true, Some(f)) if f != u64::MAX => f,
            (true, _) => {
                db.put_cf_opt(meta, META_LOG_FLOOR, (seq + 1).to_be_bytes(), &w)?;
                seq + 1
            }
        };
        let mut bytes = 0u64;
        if enabled {
            for item in db.iterator_cf(log, rocksdb::IteratorMode::Start) {
                let (k, v) = item?;
                bytes += (k.len() + v.len()) as u64;
            }
        }
        Ok(Feed {
            floor: AtomicU64::new(floor),
            bytes: AtomicU64::new(bytes),
            peers: Mutex::new(peers),
            truncating: Mutex::new(()),
        })
    }

    /// The log was emptied and starts after `last` (operations restored
    /// by a sync session, which it does not hold).
    pub(super) fn restart_after(&self, last: u64) {
        self.floor.store(last + 1, Ordering::Release);
        self.bytes.store(0, Ordering::Relaxed);
    }

    /// Count `n` log bytes just written (under the commit lock).
    pub(super) fn count(&self, n: u64) {
        self.bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// After a write that logged: truncate when past the retention bound
    /// (with some slack, so truncation is batched).
    pub(super) fn grew(&self, engine: &Engine) {
        let bytes = self.bytes.load(Ordering::Relaxed);
        let retain = engine.options.feed_retain_bytes;
        if bytes > retain.saturating_add(retain / 8).saturating_add(64 << 10) {
            // A failed truncation keeps the log longer; the write succeeded.
            let _ = engine.truncate_log();
        }
    }
}

impl Engine {
    fn check_feed(&self) -> Result<()> {
        if self.options.changes_feed {
            Ok(())
        } else {
            Err(Error::InvalidArgument(
                "the changes feed is disabled in this engine's options".into(),
            ))
        }
    }

    /// A cursor claiming operations of this replica it has not issued is
    /// forged (or this replica lost them in a crash): refused.
    fn check_cursor(&self, cursor: &CausalContext) -> Result<()> {
        let issued = self.commit.lock().seq;
        let claimed = cursor.next_dot(self.replica).counter - 1;
        if claimed > issued {
            return Err(Error::InvalidArgument(format!(
                "the cursor claims operations of this replica up to {claimed}, \
                 but it has issued {issued}"
            )));
        }
        Ok(())
    }

    /// The operations of this replica that `cursor` lacks, at most `limit`
    /// of them (and at most [`MAX_PAGE_BYTES`] of log and
    /// [`crate::codec::MAX_PAGE_OPERATIONS`] operations), oldest first,
    /// coalesced into one state per key; and the next cursor. A cursor is
    /// what the peer holds: its [`Engine::context`], the `next` of the
    /// previous page, or what it acknowledged.
    ///
    /// Fails with [`Error::CursorTooOld`] when the cursor lacks an
    /// operation the log no longer holds (run an anti-entropy session with
    /// the peer instead), and with [`Error::InvalidArgument`] when it
    /// claims operations of this replica it has not issued.
    pub fn changes_since(&self, cursor: &CausalContext, limit: usize) -> Result<FeedPage> {
        self.check_feed()?;
        if limit == 0 {
            return Err(Error::InvalidArgument("a page limit of 0".into()));
        }
        let limit = limit.min(crate::codec::MAX_PAGE_OPERATIONS as usize);
        let me = self.replica;
        self.check_cursor(cursor)?;
        // One snapshot for the floor and the log: a concurrent truncation
        // is either wholly before it or wholly after.
        let snap = self.db.snapshot();
        let floor = match snap.get_cf(self.cf(CF_META)?, META_LOG_FLOOR)? {
            Some(b) => be_u64(&b, "log floor")?,
            None => 1,
        };
        let start = cursor.vv().get(me) + 1;
        if start < floor {
            let mut older = CausalContext::new();
            older.insert_range(me, 1, floor - 1);
            if let Some(d) = cursor.first_missing(None, &older) {
                return Err(Error::CursorTooOld {
                    needed: d.counter,
                    oldest: floor,
                });
            }
        }
        let from = start.max(floor);
        let log = self.cf(CF_LOG)?;
        // The entry holding `from` may start before it.
        let mut begin = from;
        if let Some(item) = snap
            .iterator_cf(
                log,
                rocksdb::IteratorMode::From(&from.to_be_bytes(), rocksdb::Direction::Reverse),
            )
            .next()
        {
            let (k, v) = item?;
            let first = be_u64(&k, "log key")?;
            if first + entry_len(first, &v)? > from {
                begin = first;
            }
        }
        let it = snap.iterator_cf(
            log,
            rocksdb::IteratorMode::From(&begin.to_be_bytes(), rocksdb::Direction::Forward),
        );
        let mut entries: BTreeMap<Vec<u8>, State> = BTreeMap::new();
        let mut dots = CausalContext::new();
        let mut deps = CausalContext::new();
        let mut first_shipped = 0;
        let mut operations = 0u64;
        let mut bytes = 0u64;
        let mut more = false;
        'entries: for item in it {
            let (k, v) = item?;
            let first = be_u64(&k, "log key")?;
            let n = entry_len(first, &v)?;
            let wanted = (first..first + n).any(|s| !cursor.contains(&Dot::new(me, s)));
            if !wanted {
                if first_shipped > 0 {
                    // Held by the peer inside the page: later operations
                    // depend on them.
                    deps.insert_range(me, first, first + n - 1);
                }
                continue;
            }
            if operations as usize >= limit || bytes >= MAX_PAGE_BYTES {
                more = true;
                break;
            }
            let entry = decode_log_entry(first, &v)?;
            bytes += v.len() as u64;
            for (i, (key, state)) in entry.ops.into_iter().enumerate() {
                let dot = Dot::new(me, first + i as u64);
                if cursor.contains(&dot) {
                    if first_shipped > 0 {
                        deps.insert(dot);
                    }
                    continue;
                }
                if operations as usize == limit {
                    more = true;
                    break 'entries;
                }
                if first_shipped == 0 {
                    first_shipped = dot.counter;
                }
                if i == 0 {
                    deps.merge(&entry.deps);
                }
                dots.insert(dot);
                match entries.get_mut(&key) {
                    Some(acc) => acc.try_join(&state).map_err(|_| {
                        Error::Corruption(format!("log entry {first}: a key changed type"))
                    })?,
                    None => {
                        entries.insert(key, state);
                    }
                }
                operations += 1;
            }
        }
        let mut next = cursor.clone();
        next.merge(&dots);
        if operations == 0 {
            return Ok(FeedPage {
                changes: None,
                operations: 0,
                next,
                more: false,
            });
        }
        deps.insert_range(me, 1, first_shipped - 1);
        Ok(FeedPage {
            changes: Some(Changes {
                dots,
                deps,
                entries: entries.into_iter().collect(),
            }),
            operations,
            next,
            more,
        })
    }

    /// Apply a page of changes from a peer ([`Changes::encode`] bytes):
    /// atomically, if this replica holds everything it depends on; else
    /// kept in the pending area until it does (or
    /// [`Error::PendingFull`], changing nothing).
    pub fn apply_changes(&self, bytes: &[u8]) -> Result<Delivery> {
        self.check_writable()?;
        let page = Changes::decode(bytes)?;
        let (held, some_held, ready) = {
            let ctx = self.context.lock();
            (
                ctx.includes(&page.dots),
                ctx.includes_any(&page.dots),
                ctx.first_missing(None, &page.deps).is_none(),
            )
        };
        if held {
            return Ok(Delivery::Duplicate);
        }
        if some_held && !self.gc.horizon.lock().is_empty() {
            // Its coalesced states could carry operations applied here
            // before, of a key whose tombstone was collected since.
            return Err(Error::InvalidArgument(
                "the page repeats operations this replica holds and tombstones were collected: \
                 ask the peer again from this replica's context"
                    .into(),
            ));
        }
        let done = if ready {
            // The page is ours: its states move into the write, not copied.
            let (keys, states): (Vec<Vec<u8>>, Vec<State>) = page.entries.into_iter().unzip();
            let states = keys.iter().map(Vec::as_slice).zip(states).collect();
            self.commit_states(states, page.dots, Vec::new())?
        } else {
            let extra = super::write::Extra {
                park: vec![(page, bytes.to_vec())],
                ..Default::default()
            };
            self.commit_items(Vec::new(), extra)?
        };
        self.after_commit(&done)?;
        Ok(if ready {
            Delivery::Applied
        } else {
            Delivery::Pending
        })
    }

    /// The state of the changes feed: what the log retains and the
    /// registered peers.
    pub fn feed_info(&self) -> Result<FeedInfo> {
        self.check_feed()?;
        Ok(FeedInfo {
            floor: self.feed.floor.load(Ordering::Acquire),
            last: self.commit.lock().seq,
            bytes: self.feed.bytes.load(Ordering::Relaxed),
            peers: self
                .feed
                .peers
                .lock()
                .iter()
                .map(|(r, c)| (*r, c.clone()))
                .collect(),
        })
    }

    /// Register a peer: a replica that shares this replica's data (a
    /// member, for the collection of tombstones: see [`Engine::collect`])
    /// and that the log is kept for: operations it has not acknowledged
    /// are not truncated, except past
    /// [`super::Options::feed_retain_bytes`]. Registering a registered
    /// peer changes nothing. Works with the changes feed off too (then
    /// only membership is kept).
    pub fn register_peer(&self, peer: ReplicaId) -> Result<()> {
        self.check_writable()?;
        let mut peers = self.feed.peers.lock();
        if peers.contains_key(&peer) {
            return Ok(());
        }
        self.put_peer(peer, &CausalContext::new())?;
        peers.insert(peer, CausalContext::new());
        Ok(())
    }

    /// Record that `peer` holds `cursor` (joined with what it acknowledged
    /// before), and truncate the log of what every registered peer holds.
    /// A cursor is a causal context the peer holds: the `next` of a page
    /// it applied, its record, or [`crate::sync::Session::acknowledged`]
    /// after a sync session with it.
    pub fn acknowledge(&self, peer: ReplicaId, cursor: &CausalContext) -> Result<()> {
        self.check_writable()?;
        self.check_cursor(cursor)?;
        {
            let mut peers = self.feed.peers.lock();
            let Some(acked) = peers.get(&peer) else {
                return Err(Error::InvalidArgument(format!(
                    "peer {peer} is not registered with the changes feed"
                )));
            };
            let mut joined = acked.clone();
            joined.merge(cursor);
            if joined == *acked {
                return Ok(());
            }
            self.put_peer(peer, &joined)?;
            peers.insert(peer, joined);
        }
        self.truncate_log()
    }

    /// Forget a registered peer (retire a member: the log is no longer
    /// kept for it, and collection no longer waits for it). Removing an
    /// unknown peer changes nothing.
    pub fn remove_peer(&self, peer: ReplicaId) -> Result<()> {
        self.check_writable()?;
        let mut peers = self.feed.peers.lock();
        if peers.remove(&peer).is_some() {
            let mut key = META_PEER.to_vec();
            key.extend_from_slice(&peer.to_bytes());
            self.db
                .delete_cf_opt(self.cf(CF_META)?, key, &self.write_opts)?;
        }
        drop(peers);
        self.truncate_log()
    }

    fn put_peer(&self, peer: ReplicaId, ctx: &CausalContext) -> Result<()> {
        let mut key = META_PEER.to_vec();
        key.extend_from_slice(&peer.to_bytes());
        self.db.put_cf_opt(
            self.cf(CF_META)?,
            key,
            encode_context(ctx),
            &self.write_opts,
        )?;
        Ok(())
    }

    /// Move the log's floor up to what every registered peer acknowledged,
    /// and further if the log holds more than the retention bound.
    pub(crate) fn truncate_log(&self) -> Result<()> {
        if !self.options.changes_feed {
            return Ok(());
        }
        let _one = self.feed.truncating.lock();
        let floor = self.feed.floor.load(Ordering::Acquire);
        let last = self.commit.lock().seq;
        let acked = {
            let peers = self.feed.peers.lock();
            peers
                .values()
                .map(|c| c.vv().get(self.replica))
                .min()
                .unwrap_or(0)
        };
        // Operations below `acked_to` are held by every registered peer.
        let acked_to = acked.saturating_add(1).min(last + 1);
        let log = self.cf(CF_LOG)?;
        let retain = self.options.feed_retain_bytes;
        let total = self.feed.bytes.load(Ordering::Relaxed);
        let mut removed = 0u64;
        let mut target = floor;
        let it = self.db.iterator_cf(
            log,
            rocksdb::IteratorMode::From(&floor.to_be_bytes(), rocksdb::Direction::Forward),
        );
        for item in it {
            let (k, v) = item?;
            let first = be_u64(&k, "log key")?;
            let n = entry_len(first, &v)?;
            // Entries after `last` may not be counted in `total` yet.
            if first > last {
                break;
            }
            // Whole entries go: entries every peer acknowledged, then the
            // oldest while the log is over its size bound.
            if first + n > acked_to && total.saturating_sub(removed) <= retain {
                break;
            }
            removed += (k.len() + v.len()) as u64;
            target = first + n;
        }
        let mut wb = rocksdb::WriteBatch::default();
        wb.delete_range_cf(log, floor.to_be_bytes(), target.to_be_bytes());
        wb.put_cf(self.cf(CF_META)?, META_LOG_FLOOR, target.to_be_bytes());
        self.write_or_poison(wb)?;
        self.feed.floor.store(target, Ordering::Release);
        // Never below zero, whatever the interleaving.
        let _ = self
            .feed
            .bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some(b.saturating_sub(removed))
            });
        Ok(())
    }
}
