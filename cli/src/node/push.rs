//! Push replication and periodic anti-entropy.
//!
//! Per live peer, one task streams this node's changes feed: it asks the
//! engine for the operations the peer's cursor lacks (at most
//! `NodeConfig::push_page` of them), sends them in one `Push`, and waits
//! for the reply before the next page (one page in flight per peer: the
//! back-pressure bound). The reply says what the peer holds of this
//! node's operations; the engine persists it (`acknowledge`), which also
//! lets the log be truncated. A peer the feed has no record of, or whose
//! cursor the log no longer serves (`CursorTooOld`), first gets an
//! anti-entropy session; the cursor is then what this node held when the
//! session began. Any failure restarts from the persisted cursor after a
//! backoff (200 ms doubling to 5 s).

use super::{blocking, peer, PeerHealth, Shared};
use crate::proto::replication_client::ReplicationClient;
use crate::proto::{self, PushRequest};
use converge::sync::Outcome;
use converge::{CausalContext, ReplicaId};
use rand::RngExt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Start a push task for `peer` unless one runs.
pub fn ensure_pushing(shared: &Arc<Shared>, peer: ReplicaId) {
    // The partitioned layout has no changes feed: quorum writes ship
    // their deltas, anti-entropy per partition repairs the rest.
    if shared.parts.partitioned() {
        return;
    }
    {
        let mut peers = shared.peers();
        match peers.get_mut(&peer) {
            Some(p) if !p.pushing => p.pushing = true,
            _ => return,
        }
    }
    tokio::spawn(push_loop(shared.clone(), peer));
}

/// Wait (at most 5 s) until every push task has ended.
pub async fn wait_stopped(shared: &Shared) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while shared.peers().values().any(|p| p.pushing) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether the push task of `peer` should keep going; clears its flag if
/// not.
fn keep_going(shared: &Shared, peer: ReplicaId) -> bool {
    let mut peers = shared.peers();
    let Some(p) = peers.get_mut(&peer) else {
        return false;
    };
    if shared.is_stopping() || p.health == PeerHealth::Down {
        p.pushing = false;
        return false;
    }
    true
}

async fn push_loop(shared: Arc<Shared>, peer: ReplicaId) {
    tracing::info!(%peer, "push replication starting");
    let mut backoff = BACKOFF_MIN;
    let mut wrote = shared.wrote.subscribe();
    let mut stopping = shared.stopping.subscribe();
    // (Re)start from the persisted cursor, registering the peer first.
    let mut cursor: Option<CausalContext> = None;
    let mut need_sync = false;
    let mut conn: Option<(SocketAddr, ReplicationClient<Channel>)> = None;
    while keep_going(&shared, peer) {
        if cursor.is_none() {
            match blocking(&shared.engine, move |e| {
                let info = e.feed_info()?;
                let known = info.peers.into_iter().find(|(r, _)| *r == peer);
                if known.is_none() {
                    e.register_peer(peer)?;
                }
                Ok(known.map(|(_, c)| c))
            })
            .await
            {
                Ok(Some(c)) => {
                    shared.record_ack(peer, &c);
                    cursor = Some(c);
                }
                Ok(None) => {
                    need_sync = true;
                    cursor = Some(CausalContext::new());
                }
                Err(s) => {
                    tracing::warn!(%peer, error = %s, "cannot read the feed's record");
                    pause(&mut backoff, &mut stopping).await;
                    continue;
                }
            }
        }
        if need_sync {
            match catch_up(&shared, peer).await {
                Some(c) => {
                    cursor = Some(c);
                    need_sync = false;
                    backoff = BACKOFF_MIN;
                }
                None => pause(&mut backoff, &mut stopping).await,
            }
            continue;
        }
        let from = cursor.clone().unwrap_or_default();
        let limit = shared.config.push_page;
        let page = blocking(&shared.engine, move |e| e.changes_since(&from, limit)).await;
        let page = match page {
            Ok(p) => p,
            Err(s) if s.code() == tonic::Code::OutOfRange => {
                tracing::info!(%peer, "cursor too old for the log: anti-entropy first");
                shared.metrics.fallback();
                need_sync = true;
                continue;
            }
            Err(s) => {
                tracing::warn!(%peer, error = %s, "reading the changes feed failed");
                pause(&mut backoff, &mut stopping).await;
                continue;
            }
        };
        let Some(changes) = page.changes else {
            // Nothing to send: wait for a write (or a periodic look).
            tokio::select! {
                _ = wrote.changed() => {}
                _ = stopping.changed() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        };
        match send_page(&shared, peer, &mut conn, changes.encode()).await {
            Ok(()) => {
                shared.metrics.pushed_out(page.operations);
                cursor = Some(page.next);
                backoff = BACKOFF_MIN;
            }
            Err(s) => {
                tracing::debug!(%peer, error = %s, "push failed");
                shared.metrics.push_failed();
                // Restart from what the peer acknowledged, on a new
                // connection.
                cursor = None;
                conn = None;
                pause(&mut backoff, &mut stopping).await;
            }
        }
    }
    tracing::info!(%peer, "push replication stopped");
}

/// Send one page and record what the peer holds. The connection is kept
/// between pages (and remade when the peer's address changes).
async fn send_page(
    shared: &Arc<Shared>,
    peer: ReplicaId,
    conn: &mut Option<(SocketAddr, ReplicationClient<Channel>)>,
    changes: Vec<u8>,
) -> Result<(), String> {
    let addr = shared
        .peers()
        .get(&peer)
        .map(|p| p.addr)
        .ok_or("peer forgotten")?;
    if conn.as_ref().is_none_or(|(a, _)| *a != addr) {
        *conn = Some((addr, peer::client(shared, addr).map_err(|s| s.to_string())?));
    }
    let Some((_, client)) = conn.as_mut() else {
        return Err("no connection".into());
    };
    let req = PushRequest {
        protocol_version: crate::PROTOCOL_VERSION,
        sender: shared.me.to_bytes().to_vec(),
        changes,
    };
    let reply = tokio::time::timeout(shared.config.rpc_timeout, client.push(req))
        .await
        .map_err(|_| "push timed out".to_string())?
        .map_err(|s| s.to_string())?
        .into_inner();
    let held = crate::wire::context(&reply.held, "held").map_err(|e| e.to_string())?;
    if reply.delivery == proto::Delivery::Pending as i32 {
        tracing::debug!(%peer, "page parked at the peer until its dependencies arrive");
    }
    let mine = held.project([&shared.me]);
    let to_ack = mine.clone();
    blocking(&shared.engine, move |e| e.acknowledge(peer, &to_ack))
        .await
        .map_err(|s| s.to_string())?;
    shared.record_ack(peer, &mine);
    Ok(())
}

/// Anti-entropy with `peer`; on success the cursor the feed continues
/// from (what this node held when the session began).
async fn catch_up(shared: &Arc<Shared>, peer: ReplicaId) -> Option<CausalContext> {
    let addr = shared.peers().get(&peer).map(|p| p.addr)?;
    let me = shared.me;
    let before = shared.engine.context().project([&me]);
    match peer::initiate(shared, addr).await {
        Ok((Outcome::Equal | Outcome::Converged, _)) => {
            let c = before.clone();
            if let Err(s) = blocking(&shared.engine, move |e| {
                e.register_peer(peer)?;
                e.acknowledge(peer, &c)
            })
            .await
            {
                tracing::warn!(%peer, error = %s, "cannot record the cursor");
                return None;
            }
            shared.record_ack(peer, &before);
            tracing::info!(%peer, "caught up by anti-entropy; streaming the feed");
            Some(before)
        }
        Ok((o, _)) => {
            tracing::info!(%peer, outcome = peer::outcome_name(o), "catch-up session did not converge; retrying");
            None
        }
        Err(e) => {
            tracing::debug!(%peer, error = %e, "catch-up session failed");
            None
        }
    }
}

async fn pause(backoff: &mut Duration, stopping: &mut tokio::sync::watch::Receiver<bool>) {
    tokio::select! {
        _ = tokio::time::sleep(*backoff) => {}
        _ = stopping.changed() => {}
    }
    *backoff = (*backoff * 2).min(BACKOFF_MAX);
}

/// Every `NodeConfig::anti_entropy_interval`, a session with a random
/// live peer: it repairs what push replication cannot (operations of a
/// third node this one never heard from, pages lost to a crash).
pub async fn anti_entropy_loop(shared: Arc<Shared>) {
    let mut stopping = shared.stopping.subscribe();
    let mut rng: rand::rngs::StdRng = rand::make_rng();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.anti_entropy_interval) => {}
            _ = stopping.changed() => return,
        }
        let alive = shared.alive();
        if alive.is_empty() {
            continue;
        }
        let (peer, addr) = alive[rng.random_range(0..alive.len())];
        match peer::initiate(&shared, addr).await {
            Ok((o, stats)) => tracing::debug!(%peer, outcome = peer::outcome_name(o),
                sent = stats.bytes_sent, received = stats.bytes_received, "anti-entropy"),
            Err(e) => tracing::debug!(%peer, error = %e, "anti-entropy session failed"),
        }
    }
}

/// Every `NodeConfig::collect_interval`, collect the tombstones every
/// member has acknowledged (or a peer reported collected): deleted keys
/// are purged once every node has seen their deletes.
pub async fn collect_loop(shared: Arc<Shared>) {
    let Some(every) = shared.config.collect_interval else {
        return;
    };
    let mut stopping = shared.stopping.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stopping.changed() => return,
        }
        match blocking(&shared.engine, |e| e.collect()).await {
            Ok(r) => {
                shared.metrics.collected(&r);
                if r.collected > 0 {
                    tracing::info!(
                        collected = r.collected,
                        purged = r.purged,
                        waiting = r.waiting,
                        "tombstones collected"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "collecting tombstones failed"),
        }
    }
}
