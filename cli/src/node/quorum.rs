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
//! **Read.** The coordinator asks the live replicas of the key
//! (`Replication.Fetch`, itself locally) and answers after R of them
//! answered: the join of their states (a CRDT join: MV-register siblings
//! stay siblings), and the union of their records as the session token.
//! Replicas whose state is older than the join are repaired in the
//! background (`repair.rs`), rate-limited.

use super::{blocking, status, PeerHealth, Shared};
use crate::proto::{self, DeliverRequest, Entry, FetchRequest};
use crate::wire;
use crate::PROTOCOL_VERSION;
use converge::codec::{decode_item, decode_state};
use converge::{token_of, Batch, CausalContext, Engine, Item, ReplicaId, State, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
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
                tracing::debug!(%replica, "replica refused the connection; next one");
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
        "the {refused} live replicas of partition {partition} refused connections: \
         0 committed, {} needed (nothing written)",
        plan.need
    )))
}

/// Whether a failed RPC provably never reached the peer: its connection
/// was refused (TCP RST to the SYN; nothing was sent).
fn never_sent(s: &Status) -> bool {
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
    let mut ops = ops;
    observe_deletes(shared, &mut ops, n).await?;
    let batch = wire::batch(ops).map_err(status::wire)?;
    let me = shared.me;
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
    let (tx, mut rx) = mpsc::channel::<bool>(reachable);
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
            let mut ok = deliver_write(&shared, r, partition, &engine, entries, &keys).await;
            if let (false, Some(s)) = (ok, fallback) {
                ok = deliver_hint(&shared, r, s, partition, &engine, &keys).await;
            }
            let _ = tx.send(ok).await;
        });
    }
    for (target, standin) in hinted {
        let (shared, engine, keys, tx) = (shared.clone(), engine.clone(), keys.clone(), tx.clone());
        tokio::spawn(async move {
            let ok = deliver_hint(&shared, target, standin, partition, &engine, &keys).await;
            let _ = tx.send(ok).await;
        });
    }
    drop(tx);
    let deadline = tokio::time::Instant::now() + shared.ack_wait(ack_timeout_ms);
    let mut committed = 1usize;
    let mut failed = 0usize;
    while committed < plan.need {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(true)) => committed += 1,
            Ok(Some(false)) => failed += 1,
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
        consistency: plan.consistency.into(),
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

/// A replica's answer to a read.
struct Answer {
    replica: ReplicaId,
    state: Option<State>,
    context: CausalContext,
}

/// Ask replica `r` for `key`: `None` if it does not hold the partition
/// (filled) or did not answer.
async fn fetch(shared: Arc<Shared>, r: ReplicaId, partition: u32, key: Vec<u8>) -> Option<Answer> {
    let (state, context) = if r == shared.me {
        local_fetch(&shared, partition, key).await.ok()??
    } else {
        let addr = shared.addr_of(r)?;
        let mut client = shared.peer_client(addr).ok()?;
        let req = FetchRequest {
            protocol_version: PROTOCOL_VERSION,
            partitions: shared.parts.q,
            partition,
            key,
        };
        let reply = tokio::time::timeout(shared.config.rpc_timeout, client.fetch(req))
            .await
            .ok()?
            .ok()?
            .into_inner();
        if !reply.held {
            return None;
        }
        (reply.state, reply.context)
    };
    let state = if state.is_empty() {
        None
    } else {
        Some(decode_state(&state).ok()?)
    };
    let context = wire::context(&context, "context").ok()?;
    Some(Answer {
        replica: r,
        state,
        context,
    })
}

/// This node's state bytes and record for a key of `partition`, if it
/// holds the partition filled.
pub async fn local_fetch(
    shared: &Shared,
    partition: u32,
    key: Vec<u8>,
) -> Result<Option<(Vec<u8>, Vec<u8>)>, Status> {
    shared.parts.check(partition)?;
    if !shared.parts.is_ready(partition) {
        return Ok(None);
    }
    let Some(engine) = shared.parts.get(partition) else {
        return Ok(None);
    };
    blocking(&engine, move |e| {
        let ctx = e.context();
        let state = e.state_bytes(&key)?.unwrap_or_default();
        Ok(Some((state, wire::context_bytes(&ctx))))
    })
    .await
}

/// The answers of a read quorum, still running fetches, and their
/// deadline.
struct Gathered {
    plan: Plan,
    answers: Vec<Answer>,
    seen: CausalContext,
    rest: JoinSet<Option<Answer>>,
    deadline: tokio::time::Instant,
}

/// Ask the live replicas of `key` and wait for R answers whose records
/// together hold `at_least`.
async fn gather(
    shared: &Arc<Shared>,
    key: &[u8],
    n: u32,
    r: u32,
    at_least: &CausalContext,
    extra_wait: Duration,
) -> Result<Gathered, Status> {
    let partition = super::placement::partition_of(key, shared.parts.q);
    let plan = plan(shared, partition, n, r, false)?;
    let targets: Vec<ReplicaId> = plan
        .replicas
        .iter()
        .copied()
        .filter(|r| *r == shared.me || shared.health(*r) != Some(PeerHealth::Down))
        .collect();
    if targets.len() < plan.need {
        shared.metrics.unavailable();
        return Err(Status::unavailable(format!(
            "only {} of the {} replicas of partition {partition} are reachable: \
             0 answered, r = {} needed",
            targets.len(),
            plan.replicas.len(),
            plan.need
        )));
    }
    let mut rest = JoinSet::new();
    for r in targets {
        rest.spawn(fetch(shared.clone(), r, partition, key.to_vec()));
    }
    let deadline = tokio::time::Instant::now() + shared.config.rpc_timeout + extra_wait;
    let mut answers: Vec<Answer> = Vec::new();
    let mut seen = CausalContext::new();
    loop {
        if answers.len() >= plan.need && seen.includes(at_least) {
            break;
        }
        match tokio::time::timeout_at(deadline, rest.join_next()).await {
            Ok(Some(Ok(Some(a)))) => {
                seen.merge(&a.context);
                answers.push(a);
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    if answers.len() < plan.need {
        shared.metrics.unavailable();
        rest.abort_all();
        return Err(Status::unavailable(format!(
            "only {} of the {} replicas needed answered (n = {})",
            answers.len(),
            plan.need,
            plan.replicas.len()
        )));
    }
    if !seen.includes(at_least) {
        rest.abort_all();
        return Err(Status::deadline_exceeded(format!(
            "the {} replicas that answered do not hold the session token yet",
            answers.len()
        )));
    }
    Ok(Gathered {
        plan,
        answers,
        seen,
        rest,
        deadline,
    })
}

/// Give each delete of `ops` that names no observed state the join of a
/// read quorum's states of its key (R: the cluster's default), so that it
/// removes what R replicas hold, not only what the applying replica
/// holds (which may be behind). A key no replica holds is left as is.
async fn observe_deletes(
    shared: &Arc<Shared>,
    ops: &mut [proto::Op],
    n: u32,
) -> Result<(), Status> {
    for op in ops.iter_mut() {
        let Some(proto::op::Kind::Delete(d)) = &mut op.kind else {
            continue;
        };
        if !d.observed.is_empty() {
            continue;
        }
        let mut g = gather(shared, &op.key, n, 0, &CausalContext::new(), Duration::ZERO).await?;
        g.rest.abort_all();
        if let Some(s) = join(&g.answers)? {
            d.observed = converge::codec::encode_state(&s);
        }
    }
    Ok(())
}

/// A quorum read coordinated by this node.
pub async fn coordinate_read(
    shared: &Arc<Shared>,
    req: proto::QuorumReadRequest,
) -> Result<proto::ReadReply, Status> {
    let at_least = wire::context(&req.at_least, "at_least").map_err(status::wire)?;
    let extra = Duration::from_millis(u64::from(req.timeout_ms));
    let Gathered {
        plan,
        answers,
        seen,
        rest: mut set,
        deadline,
    } = gather(shared, &req.key, req.n, req.r, &at_least, extra).await?;
    let partition = plan.partition;
    let joined = join(&answers)?;
    let stale = super::repair::schedule(
        shared,
        partition,
        &req.key,
        &joined,
        &answers_view(&answers),
    );
    // Late answers are checked for repair in the background.
    let (shared2, key, joined2) = (shared.clone(), req.key.clone(), joined.clone());
    let early = answers_view(&answers);
    tokio::spawn(async move {
        let mut late = Vec::new();
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, set.join_next()).await {
            if let Ok(Some(a)) = r {
                late.push(a);
            }
        }
        if late.is_empty() {
            return;
        }
        let Ok(more) = join(&late) else { return };
        let j = join_opt(joined2.clone(), more);
        // Newer than the reply's join: the early answers are behind it too.
        let mut view = answers_view(&late);
        if j != joined2 {
            view.extend(early);
        }
        super::repair::schedule(&shared2, partition, &key, &j, &view);
    });
    shared.metrics.quorum_read();
    let (found, crdt_type, value) = match &joined {
        Some(s) if !s.is_absent() => (
            true,
            s.crdt_type().name().to_string(),
            Some(wire::value(Value::of(s))),
        ),
        _ => (false, String::new(), None),
    };
    Ok(proto::ReadReply {
        found,
        crdt_type,
        value,
        token: wire::context_bytes(&seen),
        consistency: plan.consistency.into(),
        answered: answers.len() as u32,
        stale: stale as u32,
    })
}

fn answers_view(answers: &[Answer]) -> Vec<(ReplicaId, Option<State>)> {
    answers
        .iter()
        .map(|a| (a.replica, a.state.clone()))
        .collect()
}

fn join_opt(a: Option<State>, b: Option<State>) -> Option<State> {
    match (a, b) {
        (Some(mut a), Some(b)) => {
            // Different types were refused for the reply already.
            let _ = a.try_join(&b);
            Some(a)
        }
        (a, None) => a,
        (None, b) => b,
    }
}

/// The join of the answers' states (`None`: no replica has the key).
fn join(answers: &[Answer]) -> Result<Option<State>, Status> {
    let mut out: Option<State> = None;
    for a in answers {
        let Some(s) = &a.state else { continue };
        match &mut out {
            None => out = Some(s.clone()),
            Some(j) => j.try_join(s).map_err(|m| {
                Status::failed_precondition(format!(
                    "the replicas hold the key with different types ({} and {})",
                    m.expected.name(),
                    m.found.name()
                ))
            })?,
        }
    }
    Ok(out)
}
