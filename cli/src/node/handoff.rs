//! The partitioned layout's background work: rebalancing, anti-entropy
//! per partition, and delivery of hints.
//!
//! **Rebalancing** (every `--rebalance-ms`): for each partition, the
//! replicas are the N members of highest rendezvous weight over the known
//! membership (alive, suspect and down members alike: a node that fails
//! keeps its partitions until it is forgotten, so failures move no data;
//! sloppy quorum covers them). A node that becomes a replica opens the
//! partition's engine and fills it by an anti-entropy session with a live
//! replica; only then does it answer quorum reads (`ready`). A node that
//! is no longer a replica (two rounds in a row, and no member joined for
//! three rounds and ten probe periods) hands the partition off,
//! one anti-entropy session with each of its replicas, all alive and all
//! converged, before it closes and removes the engine.
//!
//! **Anti-entropy** (every `--anti-entropy-ms`): for each partition held,
//! one session with a random live replica of it.
//!
//! **Hints** (every 500 ms): the hints kept for a member that is alive
//! again are delivered to it (full states: visible at once) and deleted.

use super::placement::replicas;
use super::{peer, quorum, PeerHealth, Shared};
use crate::proto::Entry;
use converge::sync::Outcome;
use converge::{Engine, ReplicaId};
use rand::RngExt;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

/// The replicas of partition `p` in this node's view.
pub fn replicas_of(shared: &Shared, p: u32) -> Vec<ReplicaId> {
    replicas(p, &shared.members(), shared.config.replicas)
}

/// Whether a session converged the two sides.
fn converged(o: Outcome) -> bool {
    matches!(o, Outcome::Equal | Outcome::Converged)
}

/// One anti-entropy session on partition `p` with `r`: whether it
/// converged.
async fn session(shared: &Arc<Shared>, p: u32, r: ReplicaId) -> bool {
    match shared.parts.get(p) {
        Some(engine) => session_with(shared, p, r, engine).await,
        None => false,
    }
}

/// One anti-entropy session on partition `p` (its engine `engine`) with
/// `r`: whether it converged.
async fn session_with(shared: &Arc<Shared>, p: u32, r: ReplicaId, engine: Arc<Engine>) -> bool {
    let Some(addr) = shared.addr_of(r) else {
        return false;
    };
    match peer::initiate_part(shared, addr, p, engine).await {
        Ok((o, stats)) => {
            shared
                .metrics
                .partition_sync(stats.bytes_sent + stats.bytes_received);
            tracing::debug!(partition = p, peer = %r, outcome = peer::outcome_name(o),
                sent = stats.bytes_sent, received = stats.bytes_received, "partition anti-entropy");
            converged(o)
        }
        Err(e) => {
            tracing::debug!(partition = p, peer = %r, error = %e, "partition session failed");
            false
        }
    }
}

/// Whether replica `r` holds partition `p` filled (`None`: no answer).
async fn peer_filled(shared: &Arc<Shared>, r: ReplicaId, p: u32) -> Option<bool> {
    let addr = shared.addr_of(r)?;
    let mut client = shared.peer_client(addr).ok()?;
    let req = crate::proto::FetchRequest {
        protocol_version: crate::PROTOCOL_VERSION,
        partitions: shared.parts.q,
        partition: p,
        key: Vec::new(),
    };
    let reply = tokio::time::timeout(shared.config.rpc_timeout, client.fetch(req))
        .await
        .ok()?
        .ok()?;
    Some(reply.into_inner().held)
}

/// Fill partition `p` from a live replica that holds it filled; mark it
/// ready on success. A session with a replica that is itself still
/// filling (two nodes that took the partition at once) would mark it
/// ready empty, and reads would then count it: only when every other
/// replica answers that none holds it filled (a partition new to the
/// cluster) is it filled from all of them instead.
async fn fill(shared: &Arc<Shared>, p: u32, reps: &[ReplicaId]) {
    let me = shared.me;
    let others: Vec<ReplicaId> = reps.iter().copied().filter(|r| *r != me).collect();
    let mut done = others.is_empty();
    let mut unfilled = Vec::new();
    for r in &others {
        if shared.health(*r) != Some(PeerHealth::Alive) {
            continue;
        }
        let filled = peer_filled(shared, *r, p).await;
        if filled == Some(false) {
            unfilled.push(*r);
        }
        if filled == Some(true) && session(shared, p, *r).await {
            done = true;
            break;
        }
    }
    if !done && unfilled.len() == others.len() {
        done = true;
        for r in &unfilled {
            done = done && session(shared, p, *r).await;
        }
    }
    if done {
        match shared.parts.set_ready(p) {
            Ok(()) => tracing::info!(partition = p, "partition filled; serving reads"),
            Err(e) => tracing::warn!(partition = p, error = %e, "cannot mark the partition ready"),
        }
    }
}

/// Hand partition `p` to its replicas, then drop it: whether it was.
///
/// A first round of sessions while the partition still takes requests
/// moves the bulk; then the partition is detached (new deliveries, hints,
/// repairs and sessions are refused: a sender does not count a refused
/// delivery toward W), the requests already holding its engine finish,
/// and a last round of sessions hands off what they wrote. Only then is
/// the store removed: a write this node acknowledged after the first
/// round is not lost with it.
async fn hand_off(shared: &Arc<Shared>, p: u32, reps: &[ReplicaId]) -> bool {
    for r in reps {
        if shared.health(*r) != Some(PeerHealth::Alive) || !session(shared, p, *r).await {
            return false;
        }
    }
    let Some(engine) = shared.parts.detach(p).await else {
        return false;
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while Arc::strong_count(&engine) > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut done = Arc::strong_count(&engine) == 1;
    for r in reps {
        if !done {
            break;
        }
        done = shared.health(*r) == Some(PeerHealth::Alive)
            && session_with(shared, p, *r, engine.clone()).await;
    }
    if !done {
        shared.parts.reattach(p, engine);
        return false;
    }
    match shared.parts.drop_detached(p, engine).await {
        Ok(()) => {
            tracing::info!(partition = p, "partition handed off and dropped");
            shared.metrics.handoff();
            true
        }
        Err(e) => {
            tracing::warn!(partition = p, error = %e, "dropping the partition failed");
            false
        }
    }
}

/// Whether this node knows the cluster well enough to act on placement:
/// a node told to join acts once it has seen a member.
fn joined(shared: &Shared) -> bool {
    shared.config.join.is_empty() || !shared.peers().is_empty()
}

/// Whether membership has been stable long enough to hand data off: no
/// member joined for three rebalancing rounds and ten probe periods.
fn settled(shared: &Shared) -> bool {
    let c = &shared.config;
    shared.membership_stable_for() >= (c.rebalance_interval * 3).max(c.probe_period * 10)
}

/// The rebalancing loop (partitioned layout).
pub async fn rebalance_loop(shared: Arc<Shared>) {
    let mut stopping = shared.stopping.subscribe();
    let mut leaving: BTreeSet<u32> = BTreeSet::new();
    loop {
        if joined(&shared) {
            let me = shared.me;
            let mut next_leaving = BTreeSet::new();
            for p in 0..shared.parts.q {
                if shared.is_stopping() {
                    return;
                }
                let reps = replicas_of(&shared, p);
                let mine = reps.contains(&me);
                let held = shared.parts.get(p).is_some();
                if mine && !held {
                    if let Err(s) = shared.parts.open_or_create(p).await {
                        tracing::warn!(partition = p, error = %s, "cannot open the partition");
                        continue;
                    }
                }
                if mine && !shared.parts.is_ready(p) {
                    fill(&shared, p, &reps).await;
                }
                if !mine && held {
                    // Two rounds in a row, with membership stable, so a
                    // passing or partial view does not move data.
                    if !leaving.contains(&p)
                        || !settled(&shared)
                        || !hand_off(&shared, p, &reps).await
                    {
                        next_leaving.insert(p);
                    }
                }
            }
            leaving = next_leaving;
        }
        tokio::select! {
            _ = tokio::time::sleep(shared.config.rebalance_interval) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Periodic anti-entropy of every partition held (partitioned layout).
pub async fn anti_entropy_loop(shared: Arc<Shared>) {
    let mut stopping = shared.stopping.subscribe();
    let mut rng: rand::rngs::StdRng = rand::make_rng();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(shared.config.anti_entropy_interval) => {}
            _ = stopping.changed() => return,
        }
        // Partition numbers only: holding the engines for the whole round
        // would keep a hand-off from closing one.
        let held: Vec<u32> = shared.parts.held().into_iter().map(|(p, _)| p).collect();
        for p in held {
            if shared.is_stopping() {
                return;
            }
            let others: Vec<ReplicaId> = replicas_of(&shared, p)
                .into_iter()
                .filter(|r| *r != shared.me && shared.health(*r) == Some(PeerHealth::Alive))
                .collect();
            if others.is_empty() {
                continue;
            }
            let r = others[rng.random_range(0..others.len())];
            session(&shared, p, r).await;
        }
    }
}

/// Hints per delivery round and target.
const HINT_BATCH: usize = 256;

/// Deliver the hints of members that are alive (any layout).
pub async fn hints_loop(shared: Arc<Shared>) {
    let mut stopping = shared.stopping.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = stopping.changed() => return,
        }
        for (target, _) in shared.hints.pending() {
            // A target no longer among the members (forgotten) never
            // comes back: its hints go to the partition's replicas now,
            // once this node's view is complete and stable (a member not
            // seen yet after a restart is not taken for a forgotten one).
            let forgotten = shared.health(target).is_none() && joined(&shared) && settled(&shared);
            if shared.health(target) != Some(PeerHealth::Alive) && !forgotten {
                continue;
            }
            let hints = shared.hints.clone();
            let Ok(Ok(batch)) =
                tokio::task::spawn_blocking(move || hints.load(target, HINT_BATCH)).await
            else {
                continue;
            };
            for h in batch {
                let entry = Entry {
                    key: h.key.clone(),
                    item: h.state.clone(),
                };
                let sent = if forgotten {
                    redirect(&shared, h.partition, entry).await
                } else {
                    match quorum::deliver(&shared, target, h.partition, vec![entry.clone()], None)
                        .await
                    {
                        // The target is no longer a replica of the
                        // partition: its replicas take the hint.
                        Err(s) if quorum::refused_unapplied(&s) => {
                            redirect(&shared, h.partition, entry).await
                        }
                        other => other.map(|_| ()),
                    }
                };
                match sent {
                    Ok(()) => {
                        let hints = shared.hints.clone();
                        let _ =
                            tokio::task::spawn_blocking(move || hints.delivered(target, &h)).await;
                        shared.metrics.hint_delivered();
                    }
                    Err(e) => {
                        tracing::debug!(%target, error = %e, "hint delivery failed; later");
                        break;
                    }
                }
            }
        }
    }
}

/// Deliver a hint of a forgotten member to every live replica of its
/// partition (this node's view); `Ok` once all of them, at least one,
/// joined it.
async fn redirect(shared: &Arc<Shared>, p: u32, entry: Entry) -> Result<(), tonic::Status> {
    let live: Vec<ReplicaId> = replicas_of(shared, p)
        .into_iter()
        .filter(|r| shared.health(*r) == Some(PeerHealth::Alive))
        .collect();
    if live.is_empty() {
        return Err(tonic::Status::unavailable(format!(
            "no live replica of partition {p}"
        )));
    }
    for r in live {
        quorum::deliver(shared, r, p, vec![entry.clone()], None).await?;
    }
    Ok(())
}
