//! The replication service: pushed pages of a peer's changes feed, and
//! anti-entropy sessions over a bidirectional stream (both sides).
//!
//! A session runs on a blocking thread (its engine calls block); two
//! bounded channels of two messages each connect it to the stream, so a
//! session holds at most a few messages of `Config::message_budget` bytes
//! in flight whatever the peer sends.

use super::{status, Shared};
use crate::proto::quorum_client::QuorumClient;
use crate::proto::quorum_server::{Quorum, QuorumServer};
use crate::proto::replication_client::ReplicationClient;
use crate::proto::replication_server::{Replication, ReplicationServer};
use crate::proto::{self, SyncFrame};
use crate::{wire, PROTOCOL_VERSION};
use converge::sync::{Config, Outcome, Session, Stats, SyncError};
use converge::{Delivery, Engine, ReplicaId};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

/// Largest replication message accepted: a sync message of the largest
/// state (`converge::codec::MAX_MESSAGE_LEN`) or a page of changes
/// (`converge::MAX_PAGE_BYTES`) plus framing.
pub const MAX_PEER_MESSAGE: usize = converge::codec::MAX_MESSAGE_LEN + (1 << 20);

/// The replication service of a node.
pub struct Peers {
    shared: Arc<Shared>,
}

/// The service, with the replication message size limit.
pub fn service(shared: Arc<Shared>) -> ReplicationServer<Peers> {
    ReplicationServer::new(Peers { shared })
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE)
}

/// A lazily connecting channel to a peer, from this node's IP, with the
/// node's RPC timeout for connecting and keep-alives.
fn channel(shared: &Shared, addr: SocketAddr) -> Result<Channel, Status> {
    Ok(Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| Status::invalid_argument(format!("peer address {addr}: {e}")))?
        .connect_timeout(shared.config.rpc_timeout)
        .http2_keep_alive_interval(shared.config.rpc_timeout)
        .keep_alive_timeout(shared.config.rpc_timeout)
        .keep_alive_while_idle(true)
        .tcp_nodelay(true)
        .local_address(shared.local_ip())
        .connect_lazy())
}

/// A client for a peer's replication service, connecting from this node's
/// IP.
pub fn client(shared: &Shared, addr: SocketAddr) -> Result<ReplicationClient<Channel>, Status> {
    Ok(ReplicationClient::new(channel(shared, addr)?)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE))
}

/// A client for a peer's quorum service, connecting from this node's IP.
pub fn quorum_client(shared: &Shared, addr: SocketAddr) -> Result<QuorumClient<Channel>, Status> {
    Ok(QuorumClient::new(channel(shared, addr)?)
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE))
}

/// Check the protocol version a peer announced.
fn check_version(v: u32) -> Result<(), Status> {
    match v {
        0 => Err(Status::invalid_argument(
            "the message carries no protocol_version",
        )),
        v if v > PROTOCOL_VERSION => Err(Status::failed_precondition(format!(
            "peer speaks replication protocol {v}; this node speaks {PROTOCOL_VERSION}"
        ))),
        _ => Ok(()),
    }
}

/// The name of an outcome (status, metrics).
pub fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Equal => "equal",
        Outcome::Converged => "converged",
        Outcome::Diverged => "diverged",
        _ => "repaired",
    }
}

type FrameStream = Pin<Box<dyn Stream<Item = Result<SyncFrame, Status>> + Send>>;

#[tonic::async_trait]
impl Replication for Peers {
    async fn push(
        &self,
        request: Request<proto::PushRequest>,
    ) -> Result<Response<proto::PushReply>, Status> {
        let req = request.into_inner();
        check_version(req.protocol_version)?;
        let sender: [u8; 16] = req
            .sender
            .as_slice()
            .try_into()
            .map_err(|_| Status::invalid_argument("sender must be a 16-byte replica id"))?;
        let sender = ReplicaId::from_bytes(sender);
        let changes = req.changes;
        let n = changes.len() as u64;
        let (delivery, held) = super::blocking(&self.shared.engine, move |e| {
            let d = e.apply_changes(&changes)?;
            Ok((d, e.context().project([&sender])))
        })
        .await?;
        self.shared.metrics.pushed_in(n);
        Ok(Response::new(proto::PushReply {
            delivery: match delivery {
                Delivery::Applied => proto::Delivery::Applied,
                Delivery::Pending => proto::Delivery::Pending,
                Delivery::Duplicate => proto::Delivery::Duplicate,
            } as i32,
            held: wire::context_bytes(&held),
        }))
    }

    type AntiEntropyStream = FrameStream;

    async fn anti_entropy(
        &self,
        request: Request<Streaming<SyncFrame>>,
    ) -> Result<Response<FrameStream>, Status> {
        let partition = metadata_u32(&request, "converge-partition")?.unwrap_or(0);
        let partitions = metadata_u32(&request, "converge-partitions")?.unwrap_or(1);
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the session sent no message"))?;
        check_version(first.protocol_version)?;
        super::quorum::check_partitions(&self.shared, partitions)?;
        let engine = if self.shared.parts.partitioned() {
            // A partition is created here only on a replica of it (a
            // hand-off to it, or its fill): a session from a new replica
            // must not resurrect one this node already handed off.
            self.shared.parts.check(partition)?;
            let me = self.shared.me;
            if self.shared.parts.get(partition).is_none()
                && !super::handoff::replicas_of(&self.shared, partition).contains(&me)
            {
                return Err(Status::failed_precondition(format!(
                    "this node neither holds nor replicates partition {partition}"
                )));
            }
            self.shared.parts.open_or_create(partition).await?
        } else {
            self.shared.parts.check(partition)?;
            self.shared.engine.clone()
        };
        let (out_tx, out_rx) = mpsc::channel::<Result<SyncFrame, Status>>(2);
        let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(2);
        let shared = self.shared.clone();
        let err_tx = out_tx.clone();
        tokio::spawn(async move {
            let idle = idle_timeout(&shared);
            let feed = tokio::spawn(forward(inbound, Some(first.message), in_tx, idle));
            let session = Session::respond(engine, Config::default());
            let send = move |m: Vec<u8>, first: bool| {
                out_tx
                    .blocking_send(Ok(frame(m, first)))
                    .map_err(|_| SyncError::Unexpected("the initiator went away".into()))
            };
            let result = tokio::task::spawn_blocking(move || drive(session, None, send, in_rx))
                .await
                .map_err(status::join);
            feed.abort();
            match result {
                Ok(Ok((o, _))) => shared.metrics.session("responder", outcome_name(o)),
                Ok(Err(e)) => {
                    shared.metrics.session("responder", "failed");
                    tracing::debug!(error = %e, "anti-entropy session (responder) failed");
                    let _ = err_tx.send(Err(status::sync(e))).await;
                }
                Err(s) => {
                    let _ = err_tx.send(Err(s)).await;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out_rx))))
    }
}

/// The quorum service of a node (node to node).
pub struct QuorumPeers {
    shared: Arc<Shared>,
}

/// The quorum service, with the replication message size limit.
pub fn quorum_service(shared: Arc<Shared>) -> QuorumServer<QuorumPeers> {
    QuorumServer::new(QuorumPeers { shared })
        .max_decoding_message_size(MAX_PEER_MESSAGE)
        .max_encoding_message_size(MAX_PEER_MESSAGE)
}

#[tonic::async_trait]
impl Quorum for QuorumPeers {
    async fn apply(
        &self,
        request: Request<proto::ApplyRequest>,
    ) -> Result<Response<proto::WriteReply>, Status> {
        let req = request.into_inner();
        check_version(req.protocol_version)?;
        super::quorum::check_partitions(&self.shared, req.partitions)?;
        super::quorum::apply(
            &self.shared,
            req.partition,
            req.ops,
            req.n,
            req.w,
            req.ack_timeout_ms,
        )
        .await
        .map(Response::new)
    }

    async fn deliver(
        &self,
        request: Request<proto::DeliverRequest>,
    ) -> Result<Response<proto::DeliverReply>, Status> {
        let req = request.into_inner();
        check_version(req.protocol_version)?;
        super::quorum::check_partitions(&self.shared, req.partitions)?;
        let hint_for = match req.hint_for.len() {
            0 => None,
            16 => {
                let mut b = [0u8; 16];
                b.copy_from_slice(&req.hint_for);
                Some(ReplicaId::from_bytes(b))
            }
            _ => {
                return Err(Status::invalid_argument(
                    "hint_for must be a 16-byte replica id",
                ))
            }
        };
        let visible =
            super::quorum::receive(&self.shared, req.partition, req.entries, hint_for).await?;
        Ok(Response::new(proto::DeliverReply { visible }))
    }

    async fn fetch(
        &self,
        request: Request<proto::FetchRequest>,
    ) -> Result<Response<proto::FetchReply>, Status> {
        let req = request.into_inner();
        check_version(req.protocol_version)?;
        super::quorum::check_partitions(&self.shared, req.partitions)?;
        let got = super::quorum_read::local_fetch(&self.shared, req.partition, req.key).await?;
        self.shared.metrics.read();
        Ok(Response::new(match got {
            Some((state, context)) => proto::FetchReply {
                held: true,
                state,
                context,
            },
            None => proto::FetchReply::default(),
        }))
    }
}

fn frame(message: Vec<u8>, first: bool) -> SyncFrame {
    SyncFrame {
        protocol_version: if first { PROTOCOL_VERSION } else { 0 },
        message,
    }
}

/// A decimal number from the request's metadata (`None`: absent).
fn metadata_u32<T>(request: &Request<T>, name: &str) -> Result<Option<u32>, Status> {
    match request.metadata().get(name) {
        None => Ok(None),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Some)
            .ok_or_else(|| Status::invalid_argument(format!("metadata {name} is not a number"))),
    }
}

/// How long a session waits for the peer's next message before it gives
/// up (dropping the channel ends the session with an error): four RPC
/// timeouts.
fn idle_timeout(shared: &Shared) -> std::time::Duration {
    shared.config.rpc_timeout * 4
}

/// Move the peer's messages into the session's channel; stop when the
/// peer is silent for `idle`.
async fn forward(
    mut inbound: Streaming<SyncFrame>,
    first: Option<Vec<u8>>,
    to_session: mpsc::Sender<Vec<u8>>,
    idle: std::time::Duration,
) -> Result<(), Status> {
    if let Some(m) = first {
        if to_session.send(m).await.is_err() {
            return Ok(());
        }
    }
    loop {
        let next = tokio::time::timeout(idle, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("the peer went silent mid-session"))?;
        let Some(f) = next? else { break };
        if to_session.send(f.message).await.is_err() {
            break;
        }
    }
    Ok(())
}

/// Run one side of a session to its end (on a blocking thread): send what
/// it has, then take the peer's next message, until it finishes.
fn drive(
    mut session: Session<Arc<Engine>>,
    first: Option<Vec<u8>>,
    mut send: impl FnMut(Vec<u8>, bool) -> Result<(), SyncError>,
    mut inbound: mpsc::Receiver<Vec<u8>>,
) -> Result<(Outcome, Stats), SyncError> {
    let mut sent_any = false;
    if let Some(m) = first {
        send(m, true)?;
        sent_any = true;
    }
    loop {
        while let Some(m) = session.next_message()? {
            send(m, !sent_any)?;
            sent_any = true;
        }
        if session.is_finished() {
            break;
        }
        match inbound.blocking_recv() {
            Some(m) => session.receive(&m)?,
            None => {
                return Err(SyncError::Unexpected(
                    "the peer ended the stream before the session finished".into(),
                ))
            }
        }
    }
    match session.outcome() {
        Some(o) => Ok((o, *session.stats())),
        None => Err(SyncError::Ended),
    }
}

/// Run an anti-entropy session with the node at `addr`, this node
/// initiating (the single layout's engine).
pub async fn initiate(
    shared: &Arc<Shared>,
    addr: SocketAddr,
) -> Result<(Outcome, Stats), super::NodeError> {
    initiate_part(shared, addr, 0, shared.engine.clone()).await
}

/// Run an anti-entropy session on partition `partition` (its engine
/// `engine`) with the node at `addr`, this node initiating.
pub async fn initiate_part(
    shared: &Arc<Shared>,
    addr: SocketAddr,
    partition: u32,
    engine: Arc<Engine>,
) -> Result<(Outcome, Stats), super::NodeError> {
    let mut client = client(shared, addr)?;
    let (out_tx, out_rx) = mpsc::channel::<SyncFrame>(2);
    let (in_tx, in_rx) = mpsc::channel::<Vec<u8>>(2);
    let session = tokio::task::spawn_blocking(move || {
        let (session, first) = Session::initiate(engine, Config::default())?;
        let send = move |m: Vec<u8>, first: bool| {
            out_tx
                .blocking_send(frame(m, first))
                .map_err(|_| SyncError::Unexpected("the responder went away".into()))
        };
        drive(session, Some(first), send, in_rx)
    });
    let idle = idle_timeout(shared);
    let result = async {
        let mut request = Request::new(ReceiverStream::new(out_rx));
        let md = request.metadata_mut();
        md.insert("converge-partition", partition.into());
        md.insert("converge-partitions", shared.parts.q.into());
        let response = tokio::time::timeout(idle, client.anti_entropy(request))
            .await
            .map_err(|_| Status::deadline_exceeded("the peer did not answer the session"))??;
        let mut inbound = response.into_inner();
        let mut first = true;
        loop {
            let next = tokio::time::timeout(idle, inbound.next())
                .await
                .map_err(|_| Status::deadline_exceeded("the peer went silent mid-session"))?;
            let Some(f) = next else { break };
            let f = f?;
            if first {
                check_version(f.protocol_version)?;
                first = false;
            }
            if in_tx.send(f.message).await.is_err() {
                break;
            }
        }
        Ok::<(), Status>(())
    }
    .await;
    drop(in_tx);
    let outcome = session.await?;
    let outcome = match (outcome, result) {
        (Ok(o), _) => Ok(o),
        // The peer's status says more than "the stream ended".
        (Err(_), Err(s)) => Err(super::NodeError::Peer(s)),
        (Err(e), Ok(())) => Err(super::NodeError::Sync(e)),
    };
    match &outcome {
        Ok((o, _)) => shared.metrics.session("initiator", outcome_name(*o)),
        Err(_) => shared.metrics.session("initiator", "failed"),
    }
    outcome
}
