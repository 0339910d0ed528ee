//! Quorum requests (Dynamo's N/W/R): the coordinator and the replica side.
//!
//! **Write.** Any node accepts it (`Converge.Write`). Every operation of a
//! quorum write must fall in one partition. The coordinator forwards it
//! (`Replication.Apply`) to one replica of that partition, itself if it is
//! one: the operations are applied exactly once, by that replica's
//! `Engine::write`, which returns their deltas. The applying replica ships
//! the deltas (`Replication.Deliver`) to the other N−1 replicas; a replica
//! that parks a delta (it lacks the delta's causal dependencies) gets the
//! keys' full states at once. With `--sloppy-quorum`, a replica that
//! membership reports down is replaced by the next live node of the
//! preference list, which keeps the keys' states as a persisted hint
//! (`hints.rs`); so does a live replica whose delivery fails (it may be
//! dead and not yet detected). The reply comes once W replicas (the applying one
//! included, stand-ins counted) committed; the remaining deliveries go on.
//! Fewer than W reachable before writing: `UNAVAILABLE`, nothing written;
//! fewer than W committed in time: `UNAVAILABLE` saying how many did (the
//! write stays on those and spreads by anti-entropy and read repair).
//!
//! **Read** (`quorum_read.rs`). The coordinator asks the live replicas of the key
//! (`Quorum.Fetch`, itself locally) and answers after R of them
//! answered: the join of their states (a CRDT join: MV-register siblings
//! stay siblings), and the union of their records as the session token.
//! Replicas whose state is older than the join are repaired in the
//! background (`repair.rs`), rate-limited.

use super::{blocking, status, PeerHealth, Shared};
use crate::proto::{self, DeliverRequest, Entry};
use crate::wire;
use crate::PROTOCOL_VERSION;
use converge::codec::decode_item;
use converge::{token_of, Batch, CausalContext, Engine, Item, ReplicaId};
use std::sync::Arc;
use tokio::sync::mpsc;
use tonic::Status;

/// Where a quorum request goes: the replicas, and how many must answer.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The key's partition.
    pub partition: u32,
    /// Its N replicas, most preferred first.
    pub replicas: Vec<ReplicaId>,
    /// The other members in preference order (sloppy-quorum stand-ins).
    pub standins: Vec<ReplicaId>,
    /// W or R.
    pub need: usize,
    /// "strong" when W + R > N, else "eventual".
    pub consistency: &'static str,
}

/// A majority of `n`.
fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// The plan of a request on `partition` with the request's `n` and `w`
/// (`write`) or `r`; `INVALID_ARGUMENT` for a bad combination.
pub fn plan(
    shared: &Shared,
    partition: u32,
    n_req: u32,
    need_req: u32,
    write: bool,
) -> Result<Plan, Status> {
    shared.parts.check(partition)?;
    let members = shared.members();
    let m = members.len();
    let cluster_n = match shared.config.replicas {
        0 => m,
        n => n,
    };
    let n = match n_req {
        0 => cluster_n,
        n => n as usize,
    };
    if n == 0 || n > m {
        return Err(Status::invalid_argument(format!(
            "n = {n}, but the cluster has {m} members (nothing done)"
        )));
    }
    if n > cluster_n {
        return Err(Status::invalid_argument(format!(
            "n = {n} exceeds the {cluster_n} replicas the cluster keeps of each key \
             (--replicas; nothing done)"
        )));
    }
    let default = |configured: usize| match configured {
        0 => majority(n),
        k => k.min(n),
    };
    let (w_default, r_default) = (
        default(shared.config.write_quorum),
        default(shared.config.read_quorum),
    );
    let need = match need_req {
        0 if write => w_default,
        0 => r_default,
        k => k as usize,
    };
    if need > n {
        return Err(Status::invalid_argument(format!(
            "{} = {need} exceeds n = {n} (nothing done)",
            if write { "w" } else { "r" }
        )));
    }
    let other = if write { r_default } else { w_default };
    let mut pref = super::placement::preference(partition, &members);
    let standins = pref.split_off(n);
    Ok(Plan {
        partition,
        replicas: pref,
        standins,
        need,
        consistency: if need + other > n {
            "strong"
        } else {
            "eventual"
        },
    })
}

/// The partition all of a batch's keys fall in; `INVALID_ARGUMENT` if
/// they span several.
pub fn partition_of_ops(shared: &Shared, ops: &[proto::Op]) -> Result<u32, Status> {
    let q = shared.parts.q;
    let mut parts = ops
        .iter()
        .map(|o| super::placement::partition_of(&o.key, q));
    let first = parts.next().unwrap_or(0);
    if parts.any(|p| p != first) {
        return Err(Status::invalid_argument(
            "a quorum write's keys must fall in one partition (nothing written)",
        ));
    }
    Ok(first)
}

/// Refuse a peer of another partition count.
pub fn check_partitions(shared: &Shared, theirs: u32) -> Result<(), Status> {
    let ours = shared.parts.q.max(1);
    if theirs.max(1) != ours {
        return Err(Status::failed_precondition(format!(
            "partition count mismatch: the sender has {}, this node {ours} \
             (--partitions must be the same on every node; nothing done)",
            theirs.max(1)
        )));
    }
    Ok(())
}

/// A write a client sent to this node (the coordinator): apply it here if
/// this node is a replica, else forward it to a live replica.
pub async fn coordinate_write(
    shared: &Arc<Shared>,
    req: proto::QuorumWriteRequest,
) -> Result<proto::WriteReply, Status> {
    // Validate everything before anything is written anywhere.
    wire::batch(req.ops.clone()).map_err(status::wire)?;
    let partition = partition_of_ops(shared, &req.ops)?;
    let plan = plan(shared, partition, req.n, req.w, true)?;
    let me = shared.me;
    if plan.replicas.contains(&me) {
        return apply(shared, partition, req.ops, req.n, req.w, req.ack_timeout_ms).await;
    }
    let candidates: Vec<(ReplicaId, std::net::SocketAddr)> = plan
        .replicas
        .iter()
        .filter(|r| shared.health(**r) == Some(PeerHealth::Alive))
        .filter_map(|r| Some((*r, shared.addr_of(*r)?)))
        .collect();
    if candidates.is_empty() {
        shared.metrics.unavailable();
        return Err(Status::unavailable(format!(
            "0 of the {} replicas of partition {partition} are alive: \
             0 committed, {} needed (nothing written)",
            plan.replicas.len(),
            plan.need
        )));
    }
    let fwd = proto::ApplyRequest {
        protocol_version: PROTOCOL_VERSION,
        partitions: shared.parts.q,
        partition,
        ops: req.ops,
        n: req.n,
        w: req.w,
        ack_timeout_ms: req.ack_timeout_ms,
    };
    let wait = shared.ack_wait(req.ack_timeout_ms) + shared.config.rpc_timeout;
    let mut refused = 0;
    for (replica, addr) in &candidates {
        let mut client = shared.peer_client(*addr)?;
        match tokio::time::timeout(wait, client.apply(fwd.clone())).await {
            // Refused at connect: the request never left this node, so
            // the next replica may apply it without doubling it.
            Ok(Err(s)) if never_sent(&s) => {
                tracing::debug!(%replica, error = %s, "replica refused the write unapplied; next one");
                refused += 1;
            }
            Ok(r) => return r.map(|r| r.into_inner()),
            Err(_) => {
                return Err(Status::unavailable(format!(
                    "the replica at {addr} did not answer the forwarded write in time: \
                     it may or may not be committed"
                )))
            }
        }
    }
    shared.metrics.unavailable();
    Err(Status::unavailable(format!(
        "the {refused} live replicas of partition {partition} refused the write unapplied \
         (connection refused, or not a replica in their view): \
         0 committed, {} needed (nothing written)",
        plan.need
    )))
}

/// Metadata of a refusal that provably wrote nothing (the write may go to
/// another replica).
const NOT_APPLIED: &str = "converge-not-applied";

/// Whether a refusal says it wrote nothing because this node is not a
/// replica in the refusing node's view.
pub fn refused_unapplied(s: &Status) -> bool {
    s.metadata().get(NOT_APPLIED).is_some()
}

/// Mark a refusal of `Apply` or `Deliver` as having written nothing.
fn not_applied(mut s: Status) -> Status {
    s.metadata_mut().insert(
        NOT_APPLIED,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    s
}

/// Whether a failed RPC provably never applied the write: its connection
/// was refused (TCP RST to the SYN; nothing was sent), or the replica
/// said it wrote nothing because it is not a replica in its view.
fn never_sent(s: &Status) -> bool {
    if refused_unapplied(s) {
        return true;
    }
    let mut e: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(s);
    while let Some(err) = e {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return true;
            }
        }
        e = err.source();
    }
    false
}

/// Apply a quorum write on this replica and replicate it (the applying
/// replica's side of `coordinate_write`, and `Replication.Apply`).
pub async fn apply(
    shared: &Arc<Shared>,
    partition: u32,
    ops: Vec<proto::Op>,
    n: u32,
    w: u32,
    ack_timeout_ms: u32,
) -> Result<proto::WriteReply, Status> {
    if partition_of_ops(shared, &ops)? != partition {
        return Err(Status::invalid_argument(
            "the operations do not all belong to the partition named (nothing written)",
        ));
    }
    // Validate first: bad input changes nothing, and costs no read.
    wire::batch(ops.clone()).map_err(status::wire)?;
    let plan = plan(shared, partition, n, w, true)?;
    let me = shared.me;
    // A coordinator whose view of the membership differs may forward to a
    // node that, in its own view, is not a replica: it must not apply the
    // write and count itself toward W (its copy would not be read, and is
    // handed off later). Nothing is written: the coordinator may try the
    // next replica.
    if !plan.replicas.contains(&me) {
        return Err(not_applied(Status::failed_precondition(format!(
            "this node is not one of the {} replicas of partition {partition} \
             in its view of the membership (nothing written)",
            plan.replicas.len()
        ))));
    }
    let mut ops = ops;
    super::quorum_read::observe_deletes(shared, &mut ops, n).await?;
    let batch = wire::batch(ops).map_err(status::wire)?;
    let others: Vec<ReplicaId> = plan.replicas.iter().copied().filter(|r| *r != me).collect();
    let (up, down): (Vec<ReplicaId>, Vec<ReplicaId>) = others
        .iter()
        .partition(|r| shared.health(**r) != Some(PeerHealth::Down));
    // Stand-ins for the replicas that are down (sloppy quorum).
    // Stand-ins left over back the live replicas whose delivery fails
    // (one each, in order).
    let mut hinted: Vec<(ReplicaId, ReplicaId)> = Vec::new();
    let mut spare: Vec<ReplicaId> = Vec::new();
    if shared.config.sloppy_quorum {
        let mut free = plan
            .standins
            .iter()
            .copied()
            .filter(|s| *s != me && shared.health(*s) == Some(PeerHealth::Alive));
        for d in &down {
            match free.next() {
                Some(s) => hinted.push((*d, s)),
                None => break,
            }
        }
        spare = free.collect();
    }
    let reachable = 1 + up.len() + hinted.len();
    if reachable < plan.need {
        shared.metrics.unavailable();
        return Err(Status::unavailable(format!(
            "only {reachable} of the {} replicas of partition {partition} are reachable \
             (w = {}): 0 committed (nothing written)",
            plan.replicas.len(),
            plan.need
        )));
    }
    let engine = shared.parts.open_or_create(partition).await?;
    let b = batch;
    let deltas = blocking(&engine, move |e| e.write(&b)).await?;
    if !shared.parts.partitioned() {
        let seq = deltas.iter().map(|d| d.delta.seq).max().unwrap_or(0);
        shared.wrote(seq);
    }
    let token = token_of(&deltas);
    let keys: Vec<Vec<u8>> = deltas.iter().map(|d| d.key.clone()).collect();
    let entries: Vec<Entry> = deltas
        .iter()
        .map(|d| Entry {
            key: d.key.clone(),
            item: d.delta.encode(),
        })
        .collect();
    // Per delivery: whether it committed, and whether on a stand-in.
    let (tx, mut rx) = mpsc::channel::<(bool, bool)>(reachable);
    for (i, r) in up.into_iter().enumerate() {
        let (shared, engine, entries, keys, tx) = (
            shared.clone(),
            engine.clone(),
            entries.clone(),
            keys.clone(),
            tx.clone(),
        );
        let fallback = spare.get(i).copied();
        tokio::spawn(async move {
            let ok = deliver_write(&shared, r, partition, &engine, entries, &keys).await;
            let outcome = match (ok, fallback) {
                (false, Some(s)) => (
                    deliver_hint(&shared, r, s, partition, &engine, &keys).await,
                    true,
                ),
                _ => (ok, false),
            };
            let _ = tx.send(outcome).await;
        });
    }
    for (target, standin) in hinted {
        let (shared, engine, keys, tx) = (shared.clone(), engine.clone(), keys.clone(), tx.clone());
        tokio::spawn(async move {
            let ok = deliver_hint(&shared, target, standin, partition, &engine, &keys).await;
            let _ = tx.send((ok, true)).await;
        });
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + shared.ack_wait(ack_timeout_ms);
    let mut committed = 1usize;
    let mut failed = 0usize;
    let mut by_hint = 0usize;
    while committed < plan.need {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((true, hint))) => {
                committed += 1;
                by_hint += usize::from(hint);
            }
            Ok(Some((false, _))) => failed += 1,
            Ok(None) | Err(_) => break,
        }
    }
    if committed < plan.need {
        shared.metrics.unavailable();
        return Err(Status::unavailable(format!(
            "only {committed} of the {} replicas needed committed the write \
             ({failed} failed, n = {}); it stays committed on those and reaches \
             the others by anti-entropy and read repair",
            plan.need,
            plan.replicas.len()
        )));
    }
    Ok(proto::WriteReply {
        token: wire::context_bytes(&token),
        acked_by: committed as u32,
        // A stand-in's hint counted toward W (sloppy quorum): the W are
        // not all among the N a read asks, so W + R > N promises nothing.
        consistency: if by_hint > 0 {
            "eventual".into()
        } else {
            plan.consistency.into()
        },
    })
}

/// Ship a write's deltas to replica `to`; if it parks them (missing
/// dependencies), the keys' full states. Whether it committed.
async fn deliver_write(
    shared: &Arc<Shared>,
    to: ReplicaId,
    partition: u32,
    engine: &Arc<Engine>,
    entries: Vec<Entry>,
    keys: &[Vec<u8>],
) -> bool {
    match deliver(shared, to, partition, entries, None).await {
        Ok(true) => true,
        Ok(false) => {
            let keys = keys.to_vec();
            let states = match blocking(engine, move |e| full_states(e, &keys)).await {
                Ok(s) => s,
                Err(_) => return false,
            };
            matches!(deliver(shared, to, partition, states, None).await, Ok(true))
        }
        Err(s) => {
            tracing::debug!(replica = %to, error = %s, "delivery failed");
            false
        }
    }
}

/// The full states of `keys` as entries (absent keys left out).
pub fn full_states(e: &Engine, keys: &[Vec<u8>]) -> converge::Result<Vec<Entry>> {
    Ok(keys
        .iter()
        .zip(e.states_bytes(keys)?)
        .filter_map(|(k, s)| {
            s.map(|item| Entry {
                key: k.clone(),
                item,
            })
        })
        .collect())
}

/// Give a stand-in the keys' full states to keep for `target`.
async fn deliver_hint(
    shared: &Arc<Shared>,
    target: ReplicaId,
    standin: ReplicaId,
    partition: u32,
    engine: &Arc<Engine>,
    keys: &[Vec<u8>],
) -> bool {
    let keys = keys.to_vec();
    let Ok(states) = blocking(engine, move |e| full_states(e, &keys)).await else {
        return false;
    };
    match deliver(shared, standin, partition, states, Some(target)).await {
        Ok(_) => {
            tracing::debug!(%target, %standin, "hint handed to a stand-in");
            true
        }
        Err(s) => {
            tracing::debug!(%standin, error = %s, "stand-in refused the hint");
            false
        }
    }
}

/// One `Deliver` to `to` (this node: locally): whether the entries are
/// visible there.
pub async fn deliver(
    shared: &Arc<Shared>,
    to: ReplicaId,
    partition: u32,
    entries: Vec<Entry>,
    hint_for: Option<ReplicaId>,
) -> Result<bool, Status> {
    if to == shared.me {
        return receive(shared, partition, entries, hint_for).await;
    }
    let addr = shared
        .addr_of(to)
        .ok_or_else(|| Status::unavailable(format!("replica {to} is not a known member")))?;
    let mut client = shared.peer_client(addr)?;
    let req = DeliverRequest {
        protocol_version: PROTOCOL_VERSION,
        partitions: shared.parts.q,
        partition,
        entries,
        hint_for: hint_for.map(|h| h.to_bytes().to_vec()).unwrap_or_default(),
    };
    let reply = tokio::time::timeout(shared.config.rpc_timeout, client.deliver(req))
        .await
        .map_err(|_| Status::deadline_exceeded("delivery timed out"))??;
    Ok(reply.into_inner().visible)
}

/// The receiving side of a `Deliver`: keep a hint, or join the entries
/// into the partition's engine. Whether they are visible.
pub async fn receive(
    shared: &Arc<Shared>,
    partition: u32,
    entries: Vec<Entry>,
    hint_for: Option<ReplicaId>,
) -> Result<bool, Status> {
    shared.parts.check(partition)?;
    // Decode everything first: bad bytes change nothing.
    let mut dots = CausalContext::new();
    for (i, e) in entries.iter().enumerate() {
        if super::placement::partition_of(&e.key, shared.parts.q) != partition {
            return Err(Status::invalid_argument(format!(
                "entry {i}'s key is not in partition {partition} (nothing joined)"
            )));
        }
        let item = decode_item(&e.item).map_err(|err| {
            Status::invalid_argument(format!("entry {i} is not a delta or a state: {err}"))
        })?;
        match item {
            Item::Delta(d) if hint_for.is_none() => {
                dots.insert(converge::Dot::new(d.origin, d.seq))
            }
            Item::Delta(_) => {
                return Err(Status::invalid_argument(
                    "a hint carries full states, not deltas (nothing kept)",
                ))
            }
            Item::State(_) => {}
        }
    }
    if let Some(target) = hint_for.filter(|t| *t != shared.me) {
        let hints = shared.hints.clone();
        let n = entries.len() as u64;
        tokio::task::spawn_blocking(move || {
            for e in &entries {
                hints.store(target, partition, &e.key, &e.item)?;
            }
            Ok::<(), super::hints::HintError>(())
        })
        .await
        .map_err(status::join)?
        .map_err(|e| match e {
            super::hints::HintError::Full { .. } => Status::resource_exhausted(e.to_string()),
            other => Status::internal(other.to_string()),
        })?;
        shared.metrics.hints_stored(n);
        return Ok(true);
    }
    // A sender with another view of the membership may take this node for
    // a replica: joining here (into a partition opened empty, never read,
    // handed off later) would let the sender count it toward W.
    if shared.parts.partitioned()
        && !super::handoff::replicas_of(shared, partition).contains(&shared.me)
    {
        return Err(not_applied(Status::failed_precondition(format!(
            "this node is not a replica of partition {partition} in its view \
             of the membership (nothing joined)"
        ))));
    }
    let engine = shared.parts.open_or_create(partition).await?;
    blocking(&engine, move |e| {
        let mut b = Batch::with_capacity(entries.len());
        for en in entries {
            b.merge(en.key, en.item);
        }
        e.write(&b)?;
        Ok(e.context().includes(&dots))
    })
    .await
}
