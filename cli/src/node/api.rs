//! The client service: writes (with their replication mode), reads with
//! session tokens, key listing, status and on-demand sync.

use super::{blocking, quorum, quorum_read, status, Shared};
use crate::proto::converge_server::{Converge, ConvergeServer};
use crate::proto::{self, ReplicationMode as Replication};
use crate::wire;
use converge::{token_of, CausalContext, ReplicaId};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::{Request, Response, Status};

/// The client service of a node.
pub struct Api {
    shared: Arc<Shared>,
}

/// The service, with the node's request size limit.
pub fn service(shared: Arc<Shared>) -> ConvergeServer<Api> {
    let max = shared.config.max_request_bytes;
    ConvergeServer::new(Api { shared })
        .max_decoding_message_size(max)
        .max_encoding_message_size(64 << 20)
}

impl Api {
    /// `Keys` in the partitioned layout: the keys of every partition this
    /// node holds, in byte order (each page scans them all).
    async fn partitioned_keys(
        &self,
        req: proto::KeysRequest,
        limit: usize,
    ) -> Result<Response<proto::KeysReply>, Status> {
        let mut all: Vec<proto::KeyEntry> = Vec::new();
        for (_, engine) in self.shared.parts.held() {
            let (prefix, after) = (req.prefix.clone(), req.start_after.clone());
            let part = blocking(&engine, move |e| {
                let mut out = Vec::new();
                for item in e.keys(&prefix)? {
                    let (k, t) = item?;
                    if after.is_empty() || k > after {
                        out.push(proto::KeyEntry {
                            key: k,
                            crdt_type: wire::type_name(t),
                        });
                    }
                }
                Ok(out)
            })
            .await?;
            all.extend(part);
        }
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all.dedup_by(|a, b| a.key == b.key);
        let more = all.len() > limit;
        all.truncate(limit);
        Ok(Response::new(proto::KeysReply { keys: all, more }))
    }

    /// Placement, as this node computes it, and what it holds.
    async fn placement(&self) -> Result<Vec<proto::PartitionInfo>, Status> {
        let mut out = Vec::new();
        for p in 0..self.shared.parts.q.max(1) {
            let replicas = super::handoff::replicas_of(&self.shared, p)
                .iter()
                .map(|r| r.to_string())
                .collect();
            let (keys, root) = match self.shared.parts.get(p) {
                Some(e) => {
                    let root = blocking(&e, |e| e.root()).await?;
                    (root.count, format!("{:032x}", root.hash))
                }
                None => (0, String::new()),
            };
            out.push(proto::PartitionInfo {
                partition: p,
                replicas,
                held: self.shared.parts.get(p).is_some(),
                ready: self.shared.parts.is_ready(p),
                keys,
                root,
            });
        }
        Ok(out)
    }

    /// A quorum write, counted in the metrics.
    async fn quorum(
        &self,
        req: proto::QuorumWriteRequest,
    ) -> Result<Response<proto::WriteReply>, Status> {
        let started = Instant::now();
        let n_ops = req.ops.len() as u64;
        match quorum::coordinate_write(&self.shared, req).await {
            Ok(r) => {
                self.shared.metrics.quorum_write(n_ops, started.elapsed());
                Ok(Response::new(r))
            }
            Err(s) => {
                self.shared.metrics.write_failed();
                Err(s)
            }
        }
    }

    /// Wait until `need` of `targets` hold `token`, or the timeout.
    async fn wait_acks(
        &self,
        token: &CausalContext,
        targets: &[ReplicaId],
        need: usize,
        timeout: Duration,
    ) -> Result<u32, Status> {
        let mut rx = self.shared.acked.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let have = {
                let peers = self.shared.peers();
                targets
                    .iter()
                    .filter(|r| peers.get(r).is_some_and(|p| p.acked.includes(token)))
                    .count()
            };
            if have >= need {
                return Ok(have as u32);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(Status::unavailable("the node is shutting down")),
                Err(_) => {
                    return Err(Status::deadline_exceeded(format!(
                        "written and committed locally, but only {have} of the {need} \
                         peers needed acknowledged it within {} ms",
                        timeout.as_millis()
                    )))
                }
            }
        }
    }
}

#[tonic::async_trait]
impl Converge for Api {
    async fn write(
        &self,
        request: Request<proto::WriteRequest>,
    ) -> Result<Response<proto::WriteReply>, Status> {
        let started = Instant::now();
        let req = request.into_inner();
        if self.shared.parts.partitioned() {
            let q = proto::QuorumWriteRequest {
                ops: req.ops,
                n: 0,
                w: 0,
                ack_timeout_ms: req.ack_timeout_ms,
            };
            return self.quorum(q).await;
        }
        let mode = Replication::try_from(req.replication)
            .map_err(|_| Status::invalid_argument("unknown replication mode"))?;
        if u64::from(req.ack_timeout_ms) > self.shared.config.max_read_wait.as_millis() as u64 {
            return Err(Status::invalid_argument(format!(
                "ack_timeout_ms {} exceeds this node's limit of {} ms (nothing was written)",
                req.ack_timeout_ms,
                self.shared.config.max_read_wait.as_millis()
            )));
        }
        let n_ops = req.ops.len();
        let batch = wire::batch(req.ops).map_err(status::wire)?;
        // Who must hold it, fixed at the time of the write.
        let alive: Vec<ReplicaId> = self.shared.alive().into_iter().map(|(r, _)| r).collect();
        let need = match mode {
            Replication::Async => 0,
            Replication::SemiSync => req.min_acks.max(1) as usize,
            Replication::Sync => alive.len(),
        };
        if need > alive.len() {
            self.shared.metrics.write_failed();
            return Err(Status::unavailable(format!(
                "semi-sync needs {need} live peers, {} are alive (nothing was written)",
                alive.len()
            )));
        }
        let deltas = match blocking(&self.shared.engine, move |e| e.write(&batch)).await {
            Ok(d) => d,
            Err(s) => {
                self.shared.metrics.write_failed();
                return Err(s);
            }
        };
        let seq = deltas.iter().map(|d| d.delta.seq).max().unwrap_or(0);
        self.shared.wrote(seq);
        let token = token_of(&deltas);
        let acked_by = if need > 0 {
            let timeout = match req.ack_timeout_ms {
                0 => self.shared.config.ack_timeout,
                ms => Duration::from_millis(u64::from(ms)),
            };
            let r = self.wait_acks(&token, &alive, need, timeout).await;
            if r.is_err() {
                self.shared.metrics.ack_timeout();
            }
            r?
        } else {
            0
        };
        self.shared
            .metrics
            .wrote(mode, n_ops as u64, started.elapsed());
        Ok(Response::new(proto::WriteReply {
            token: wire::context_bytes(&token),
            acked_by,
            consistency: String::new(),
        }))
    }

    async fn read(
        &self,
        request: Request<proto::ReadRequest>,
    ) -> Result<Response<proto::ReadReply>, Status> {
        let req = request.into_inner();
        if self.shared.parts.partitioned() {
            let q = proto::QuorumReadRequest {
                key: req.key,
                at_least: req.at_least,
                timeout_ms: req.timeout_ms,
                n: 0,
                r: 0,
            };
            return quorum_read::coordinate_read(&self.shared, q)
                .await
                .map(Response::new);
        }
        let at_least = wire::context(&req.at_least, "at_least").map_err(status::wire)?;
        // A token claiming operations of this replica it never issued was
        // not made by any node: refuse it rather than wait for it.
        let me = self.shared.me;
        let mine = at_least.project([&me]);
        if !self.shared.engine.context().includes(&mine) {
            return Err(Status::invalid_argument(format!(
                "the token claims operations of replica {me} that it never issued"
            )));
        }
        let wait = Duration::from_millis(u64::from(req.timeout_ms));
        if wait > self.shared.config.max_read_wait {
            return Err(Status::invalid_argument(format!(
                "timeout_ms {} exceeds this node's limit of {} ms",
                req.timeout_ms,
                self.shared.config.max_read_wait.as_millis()
            )));
        }
        let timeout = (req.timeout_ms > 0).then_some(wait);
        let key = req.key;
        let (value, ctx) = blocking(&self.shared.engine, move |e| {
            let (value, ctx) = e.read_session(&key, &at_least, timeout)?;
            let ty = match &value {
                Some(_) => e.key_type(&key)?,
                None => None,
            };
            Ok((value.map(|v| (v, ty)), ctx))
        })
        .await?;
        self.shared.metrics.read();
        let (found, crdt_type, value) = match value {
            Some((v, ty)) => (
                true,
                ty.map(wire::type_name).unwrap_or_default(),
                Some(wire::value(v)),
            ),
            None => (false, String::new(), None),
        };
        Ok(Response::new(proto::ReadReply {
            found,
            crdt_type,
            value,
            token: wire::context_bytes(&ctx),
            ..Default::default()
        }))
    }

    async fn keys(
        &self,
        request: Request<proto::KeysRequest>,
    ) -> Result<Response<proto::KeysReply>, Status> {
        let req = request.into_inner();
        let limit = match req.limit {
            0 => 1000,
            n if n > 10_000 => {
                return Err(Status::invalid_argument("at most 10,000 keys per page"));
            }
            n => n as usize,
        };
        if self.shared.parts.partitioned() {
            return self.partitioned_keys(req, limit).await;
        }
        let (keys, more) = blocking(&self.shared.engine, move |e| {
            let mut out = Vec::new();
            for item in e.keys(&req.prefix)? {
                let (k, t) = item?;
                if !req.start_after.is_empty() && k <= req.start_after {
                    continue;
                }
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(proto::KeyEntry {
                    key: k,
                    crdt_type: wire::type_name(t),
                });
            }
            Ok((out, false))
        })
        .await?;
        Ok(Response::new(proto::KeysReply { keys, more }))
    }

    async fn status(
        &self,
        _request: Request<proto::StatusRequest>,
    ) -> Result<Response<proto::StatusReply>, Status> {
        let (root, last, pending) = blocking(&self.shared.engine, |e| {
            Ok((e.root()?, e.context().vv().get(e.replica_id()), e.pending()))
        })
        .await?;
        let members = self
            .shared
            .peers()
            .iter()
            .map(|(r, p)| {
                let (lag_ops, lag_seconds) = self.shared.lag(&p.acked);
                proto::Member {
                    replica_id: r.to_string(),
                    address: p.addr.to_string(),
                    state: p.health.name().into(),
                    lag_ops,
                    lag_seconds,
                }
            })
            .collect();
        let placement = self.placement().await?;
        let hints = self
            .shared
            .hints
            .pending()
            .into_iter()
            .map(|(r, (hints, bytes))| proto::HintQueue {
                replica_id: r.to_string(),
                hints,
                bytes,
            })
            .collect();
        let partitioned = self.shared.parts.partitioned();
        let (root, keys) = if partitioned {
            // No single root: the sum of the keys held.
            (String::new(), placement.iter().map(|p| p.keys).sum())
        } else {
            (format!("{:032x}", root.hash), root.count)
        };
        Ok(Response::new(proto::StatusReply {
            replica_id: self.shared.me.to_string(),
            address: self.shared.config.advertised().to_string(),
            protocol_version: crate::PROTOCOL_VERSION,
            root,
            keys,
            last_seq: last,
            pending_entries: pending.entries,
            members,
            partitions: self.shared.parts.q.max(1),
            replicas: self.shared.config.replicas as u32,
            sloppy_quorum: self.shared.config.sloppy_quorum,
            placement,
            hints,
        }))
    }

    async fn sync(
        &self,
        request: Request<proto::SyncRequest>,
    ) -> Result<Response<proto::SyncReply>, Status> {
        let peer: std::net::SocketAddr = request
            .into_inner()
            .peer
            .parse()
            .map_err(|e| Status::invalid_argument(format!("peer address: {e}")))?;
        let to_status = |e| match e {
            super::NodeError::Peer(s) => s,
            other => Status::unavailable(other.to_string()),
        };
        let (outcome, stats) = if self.shared.parts.partitioned() {
            // One session per partition held; "diverged" if any did.
            let mut outcome = converge::sync::Outcome::Equal;
            let mut total = converge::sync::Stats::default();
            for (p, e) in self.shared.parts.held() {
                let (o, s) = super::peer::initiate_part(&self.shared, peer, p, e)
                    .await
                    .map_err(to_status)?;
                total.bytes_sent += s.bytes_sent;
                total.bytes_received += s.bytes_received;
                total.states_sent += s.states_sent;
                total.states_received += s.states_received;
                outcome = match (outcome, o) {
                    (converge::sync::Outcome::Equal, o) => o,
                    (prev, converge::sync::Outcome::Equal) => prev,
                    (_, o) => o,
                };
            }
            (outcome, total)
        } else {
            super::peer::initiate(&self.shared, peer)
                .await
                .map_err(to_status)?
        };
        Ok(Response::new(proto::SyncReply {
            outcome: super::peer::outcome_name(outcome).into(),
            bytes_sent: stats.bytes_sent,
            bytes_received: stats.bytes_received,
            states_sent: stats.states_sent,
            states_received: stats.states_received,
        }))
    }

    async fn quorum_write(
        &self,
        request: Request<proto::QuorumWriteRequest>,
    ) -> Result<Response<proto::WriteReply>, Status> {
        self.quorum(request.into_inner()).await
    }

    async fn quorum_read(
        &self,
        request: Request<proto::QuorumReadRequest>,
    ) -> Result<Response<proto::ReadReply>, Status> {
        quorum_read::coordinate_read(&self.shared, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn forget(
        &self,
        request: Request<proto::ForgetRequest>,
    ) -> Result<Response<proto::ForgetReply>, Status> {
        let id = request.into_inner().replica_id;
        let peer = u128::from_str_radix(&id, 16)
            .ok()
            .filter(|_| id.len() == 32)
            .map(ReplicaId)
            .ok_or_else(|| Status::invalid_argument("replica_id must be 32 hex digits"))?;
        if peer == self.shared.me {
            return Err(Status::invalid_argument("a node cannot forget itself"));
        }
        let in_table = self.shared.forget(peer).map_err(|h| {
            Status::failed_precondition(format!(
                "member {peer} is {}: stop it (and wait until it is down) first",
                h.name()
            ))
        })?;
        let in_feed = blocking(&self.shared.engine, move |e| {
            let known = e.feed_info()?.peers.iter().any(|(r, _)| *r == peer);
            e.remove_peer(peer)?;
            Ok(known)
        })
        .await?;
        tracing::info!(%peer, "member forgotten");
        Ok(Response::new(proto::ForgetReply {
            known: in_table || in_feed,
        }))
    }
}
