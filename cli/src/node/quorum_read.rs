//! Quorum reads (see `quorum.rs` for the whole picture): the
//! coordinator asks the live replicas of the key (`Quorum.Fetch`, itself
//! locally), answers after R of them answered with the join of their
//! states and the union of their records, and queues read repairs for the
//! answers behind the join (`repair.rs`). A delete without an observed
//! state reads a quorum the same way first (`observe_deletes`).

use super::quorum::plan;
use super::{blocking, status, PeerHealth, Shared};
use crate::proto::{self, FetchRequest};
use crate::wire;
use crate::PROTOCOL_VERSION;
use converge::codec::decode_state;
use converge::{CausalContext, ReplicaId, State, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tonic::Status;

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
    plan: super::quorum::Plan,
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
pub(super) async fn observe_deletes(
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
