//! The changes feed: push replication from a causal cursor.
//!
//! Every local operation is logged in the `log` column family, in the same
//! RocksDB batch as its data: key = its sequence number (u64 big-endian,
//! so the log is in commit order and gap-free), value = the key operated
//! on, the operation's recorded dependencies and its delta state (see
//! FORMAT.md). The feed ships this replica's own operations: each origin
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
use crate::codec::{decode_context, decode_state, encode_context, Changes};
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
    peers: Mutex<BTreeMap<ReplicaId, CausalContext>>,
    truncating: Mutex<()>,
}

/// A log value: key length (u32 BE), key, dependencies length (u32 BE),
/// dependencies (a kind-2 context), delta state (kind 0).
pub(crate) fn encode_log_entry(key: &[u8], deps: Option<&CausalContext>, state: &[u8]) -> Vec<u8> {
    let deps = deps.filter(|d| !d.is_empty()).map(encode_context);
    let dl = deps.as_ref().map_or(0, Vec::len);
    let mut v = Vec::with_capacity(8 + key.len() + dl + state.len());
    v.extend_from_slice(&(key.len() as u32).to_be_bytes());
    v.extend_from_slice(key);
    v.extend_from_slice(&(dl as u32).to_be_bytes());
    if let Some(d) = deps {
        v.extend_from_slice(&d);
    }
    v.extend_from_slice(state);
    v
}

fn decode_log_entry(seq: u64, v: &[u8]) -> Result<(Vec<u8>, CausalContext, State)> {
    let bad = || Error::Corruption(format!("log entry {seq} is damaged"));
    let take = |v: &[u8], at: usize| -> Option<(usize, usize)> {
        let n = u32::from_be_bytes(v.get(at..at + 4)?.try_into().ok()?) as usize;
        (v.len() >= at + 4 + n).then_some((at + 4, at + 4 + n))
    };
    let (ks, ke) = take(v, 0).ok_or_else(bad)?;
    let (ds, de) = take(v, ke).ok_or_else(bad)?;
    let deps = decode_context(&v[ds..de])
        .map_err(|e| Error::Corruption(format!("log entry {seq}: {e}")))?;
    let state =
        decode_state(&v[de..]).map_err(|e| Error::Corruption(format!("log entry {seq}: {e}")))?;
    Ok((v[ks..ke].to_vec(), deps, state))
}

fn be_u64(b: &[u8], what: &str) -> Result<u64> {
    Ok(u64::from_be_bytes(b.try_into().map_err(|_| {
        Error::Corruption(format!("{what} is damaged"))
    })?))
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
        let mut w = rocksdb::WriteOptions::default();
        w.set_sync(true);
        let floor = match (enabled, stored) {
            (false, _) => {
                if stored != Some(u64::MAX) {
                    let mut wb = rocksdb::WriteBatch::default();
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

    /// `n` log bytes were written: truncate when past the retention bound
    /// (with some slack, so truncation is batched).
    pub(super) fn grew(&self, engine: &Engine, n: u64) {
        let bytes = self.bytes.fetch_add(n, Ordering::Relaxed) + n;
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
    /// of them (and at most [`MAX_PAGE_BYTES`] of log), oldest first,
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
        let mut it = snap.iterator_cf(
            log,
            rocksdb::IteratorMode::From(&from.to_be_bytes(), rocksdb::Direction::Forward),
        );
        let mut entries: BTreeMap<Vec<u8>, State> = BTreeMap::new();
        let mut dots = CausalContext::new();
        let mut deps = CausalContext::new();
        let mut first = 0;
        let mut operations = 0u64;
        let mut bytes = 0u64;
        let mut more = false;
        for item in &mut it {
            let (k, v) = item?;
            let seq = be_u64(&k, "log key")?;
            let dot = Dot::new(me, seq);
            if cursor.contains(&dot) {
                if first > 0 {
                    // Skipped inside the page: the peer holds it, and the
                    // page's later operations depend on it.
                    deps.insert(dot);
                }
                continue;
            }
            if operations as usize == limit || bytes >= MAX_PAGE_BYTES {
                more = true;
                break;
            }
            let (key, d, state) = decode_log_entry(seq, &v)?;
            if first == 0 {
                first = seq;
            }
            deps.merge(&d);
            dots.insert(dot);
            match entries.get_mut(&key) {
                Some(acc) => acc
                    .try_join(&state)
                    .map_err(|_| Error::Corruption(format!("log entry {seq}: type differs")))?,
                None => {
                    entries.insert(key, state);
                }
            }
            operations += 1;
            bytes += v.len() as u64;
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
        deps.insert_range(me, 1, first - 1);
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
        let (held, ready) = {
            let ctx = self.context.lock();
            (
                ctx.includes(&page.dots),
                ctx.first_missing(None, &page.deps).is_none(),
            )
        };
        if held {
            return Ok(Delivery::Duplicate);
        }
        let done = if ready {
            let states = page
                .entries
                .iter()
                .map(|(k, st)| (k.as_slice(), st.clone()))
                .collect();
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

    /// Register a peer the log is kept for: operations it has not
    /// acknowledged are not truncated, except past
    /// [`super::Options::feed_retain_bytes`]. Registering a registered
    /// peer changes nothing.
    pub fn register_peer(&self, peer: ReplicaId) -> Result<()> {
        self.check_feed()?;
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
    pub fn acknowledge(&self, peer: ReplicaId, cursor: &CausalContext) -> Result<()> {
        self.check_feed()?;
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

    /// Forget a registered peer (the log is no longer kept for it).
    /// Removing an unknown peer changes nothing.
    pub fn remove_peer(&self, peer: ReplicaId) -> Result<()> {
        self.check_feed()?;
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
        let mut target = floor.max(acked.saturating_add(1)).min(last + 1);
        let log = self.cf(CF_LOG)?;
        let retain = self.options.feed_retain_bytes;
        let total = self.feed.bytes.load(Ordering::Relaxed);
        let mut removed = 0u64;
        let it = self.db.iterator_cf(
            log,
            rocksdb::IteratorMode::From(&floor.to_be_bytes(), rocksdb::Direction::Forward),
        );
        for item in it {
            let (k, v) = item?;
            let seq = be_u64(&k, "log key")?;
            if seq >= target && total - removed <= retain {
                break;
            }
            removed += (k.len() + v.len()) as u64;
            target = target.max(seq + 1);
        }
        if target <= floor {
            return Ok(());
        }
        let mut wb = rocksdb::WriteBatch::default();
        wb.delete_range_cf(log, floor.to_be_bytes(), target.to_be_bytes());
        wb.put_cf(self.cf(CF_META)?, META_LOG_FLOOR, target.to_be_bytes());
        self.write_or_poison(wb)?;
        self.feed.floor.store(target, Ordering::Release);
        self.feed.bytes.fetch_sub(removed, Ordering::Relaxed);
        Ok(())
    }
}
