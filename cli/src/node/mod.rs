//! `converge serve`: one engine served over gRPC, replicated to its peers.
//!
//! - [`api`]: the client service (`converge.v1.Converge`).
//! - [`peer`]: the replication service (`converge.v1.Replication`) and the
//!   anti-entropy sessions it carries, both sides.
//! - [`members`]: membership and failure detection (foca's SWIM over UDP).
//! - [`push`]: per live peer, the changes feed streamed to it; the periodic
//!   anti-entropy session with a random live peer.
//! - [`metrics`]: counters and the Prometheus `/metrics` endpoint.
//! - [`status`]: engine errors as gRPC statuses.
//! - [`placement`]: key → partition, partition → replicas (rendezvous).
//! - [`parts`]: the engines of the partitions a node holds.
//! - [`quorum`]: quorum writes (N/W), both sides; [`quorum_read`]: quorum
//!   reads (R), both sides.
//! - [`repair`]: rate-limited read repair.
//! - [`hints`]: persisted hints of the sloppy quorum.
//! - [`handoff`]: rebalancing, per-partition anti-entropy, hint delivery.
//!
//! The engine's calls block (RocksDB): they run on tokio's blocking pool
//! (`spawn_blocking`), never on the async workers.

pub mod api;
pub mod handoff;
pub mod hints;
pub mod members;
pub mod metrics;
pub mod parts;
pub mod peer;
pub mod placement;
pub mod push;
pub mod quorum;
pub mod quorum_read;
pub mod repair;
pub mod status;

use crate::proto::quorum_client::QuorumClient;
use converge::{CausalContext, Engine, Options, ReplicaId};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Everything `converge serve` is told; every timer and limit has a
/// documented default (docs/NODE.md).
#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// The store directory.
    pub data: PathBuf,
    /// Where the gRPC server listens (TCP) and membership binds (UDP).
    pub listen: SocketAddr,
    /// The address peers use to reach this node (gRPC and gossip); the
    /// listen address by default.
    pub advertise: Option<SocketAddr>,
    /// Seed addresses to join through (any live member).
    pub join: Vec<SocketAddr>,
    /// Serve Prometheus metrics over HTTP here.
    pub metrics: Option<SocketAddr>,
    /// Interval between anti-entropy sessions with a random live peer.
    pub anti_entropy_interval: Duration,
    /// Interval between collections of tombstones (`Engine::collect`);
    /// `None`: never.
    pub collect_interval: Option<Duration>,
    /// SWIM probe period (failure detection within about 4 of them).
    pub probe_period: Duration,
    /// Operations per pushed page of the changes feed.
    pub push_page: usize,
    /// Timeout of one peer RPC (a push, a connection attempt).
    pub rpc_timeout: Duration,
    /// Default wait for semi-sync and sync acknowledgements.
    pub ack_timeout: Duration,
    /// Longest wait a read may ask for.
    pub max_read_wait: Duration,
    /// Largest client request accepted, in bytes.
    pub max_request_bytes: usize,
    /// The engine's options (durability, feed retention, ...).
    pub engine: Options,
    /// Partitions of the cluster (`--partitions`; 1: the single layout).
    pub partitions: u32,
    /// Replicas of each key (`--replicas`; 0: every member).
    pub replicas: usize,
    /// Default W of a quorum write (0: a majority of N).
    pub write_quorum: usize,
    /// Default R of a quorum read (0: a majority of N).
    pub read_quorum: usize,
    /// Stand-ins keep hints for replicas that are down.
    pub sloppy_quorum: bool,
    /// Hints kept at most (count).
    pub max_hints: u64,
    /// Hints kept at most (bytes).
    pub max_hint_bytes: u64,
    /// Read repairs queued at most.
    pub repair_queue: usize,
    /// Bytes of states queued for read repair at most.
    pub repair_queue_bytes: u64,
    /// Read repairs sent per second at most.
    pub repair_rate: u32,
    /// Interval of the rebalancing checks (partitioned layout).
    pub rebalance_interval: Duration,
}

impl NodeConfig {
    /// The defaults for a node with this store and listen address.
    pub fn new(data: PathBuf, listen: SocketAddr) -> NodeConfig {
        NodeConfig {
            data,
            listen,
            advertise: None,
            join: Vec::new(),
            metrics: None,
            anti_entropy_interval: Duration::from_secs(10),
            collect_interval: Some(Duration::from_secs(10)),
            probe_period: Duration::from_millis(1000),
            push_page: 1024,
            rpc_timeout: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(5),
            max_read_wait: Duration::from_secs(30),
            max_request_bytes: 20 << 20,
            engine: Options::default(),
            partitions: 1,
            replicas: 0,
            write_quorum: 0,
            read_quorum: 0,
            sloppy_quorum: false,
            max_hints: 100_000,
            max_hint_bytes: 256 << 20,
            repair_queue: 1024,
            repair_queue_bytes: 64 << 20,
            repair_rate: 1000,
            rebalance_interval: Duration::from_secs(2),
        }
    }

    /// The address peers reach this node at.
    pub fn advertised(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.listen)
    }
}

/// A node failed to start or stopped on an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    /// The engine failed (opening or closing the store).
    #[error("engine: {0}")]
    Engine(#[from] converge::Error),
    /// A socket could not be bound or used.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// The store's layout does not match the configuration.
    #[error("{0}")]
    Layout(String),
    /// The gRPC server failed.
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// A peer RPC failed.
    #[error("peer: {0}")]
    Peer(#[from] tonic::Status),
    /// A sync session failed.
    #[error("sync: {0}")]
    Sync(#[from] converge::sync::SyncError),
    /// A blocking task failed.
    #[error("task: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Membership state of a peer, as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerHealth {
    /// Answering probes.
    Alive,
    /// Missed probes; not yet declared down.
    Suspect,
    /// Declared down by the cluster.
    Down,
}

impl PeerHealth {
    /// Lower-case name (status output).
    pub fn name(self) -> &'static str {
        match self {
            PeerHealth::Alive => "alive",
            PeerHealth::Suspect => "suspect",
            PeerHealth::Down => "down",
        }
    }
}

/// What this node knows of one peer.
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its gRPC (and gossip) address.
    pub addr: SocketAddr,
    /// Its identity's incarnation (bumped at each start).
    pub bump: u64,
    /// Membership state.
    pub health: PeerHealth,
    /// This node's operations the peer holds (acknowledged).
    pub acked: CausalContext,
    /// Whether a push task serves it now.
    pub pushing: bool,
}

/// State shared by the services and tasks of a node.
pub struct Shared {
    /// The engine in the data directory: the store of the single layout;
    /// in the partitioned layout the node's identity only (no data).
    pub engine: Arc<Engine>,
    /// The engines of the partitions held.
    pub parts: parts::Parts,
    /// Hints kept for other nodes.
    pub hints: Arc<hints::Hints>,
    /// Read repairs waiting for the worker.
    pub repairs: tokio::sync::mpsc::Sender<repair::Repair>,
    /// Bytes of states the queued read repairs hold.
    pub repair_bytes: std::sync::atomic::AtomicU64,
    /// When a member last joined the peers table (or the node started):
    /// partitions are handed off only once membership has been stable.
    changed_at: Mutex<Instant>,
    /// Connections to peers' replication services, by address.
    conns: Mutex<HashMap<SocketAddr, QuorumClient<tonic::transport::Channel>>>,
    /// This replica.
    pub me: ReplicaId,
    /// The configuration.
    pub config: NodeConfig,
    /// Peers by replica id.
    peers: Mutex<BTreeMap<ReplicaId, Peer>>,
    /// Bumped after every local write: wakes the push tasks.
    pub wrote: watch::Sender<u64>,
    /// Bumped whenever a peer acknowledges: wakes semi-sync/sync writers.
    pub acked: watch::Sender<u64>,
    /// Set on shutdown.
    pub stopping: watch::Sender<bool>,
    /// Counters.
    pub metrics: metrics::Metrics,
    /// (last sequence number, commit time) of recent local writes, for
    /// replication lag in seconds; at most `WRITE_TIMES` of them.
    write_times: Mutex<VecDeque<(u64, Instant)>>,
}

/// Local writes whose commit time is kept for the lag in seconds.
const WRITE_TIMES: usize = 1 << 16;

impl Shared {
    /// The peers table (never held across an await).
    pub fn peers(&self) -> MutexGuard<'_, BTreeMap<ReplicaId, Peer>> {
        // A panic while holding it leaves plain data: keep using it.
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Live peers and their addresses.
    pub fn alive(&self) -> Vec<(ReplicaId, SocketAddr)> {
        self.peers()
            .iter()
            .filter(|(_, p)| p.health == PeerHealth::Alive)
            .map(|(r, p)| (*r, p.addr))
            .collect()
    }

    /// Record that `peer` holds `held` of this node's operations.
    pub fn record_ack(&self, peer: ReplicaId, held: &CausalContext) {
        if let Some(p) = self.peers().get_mut(&peer) {
            p.acked.merge(held);
        }
        self.acked.send_modify(|n| *n += 1);
    }

    /// A local write committed, its last operation numbered `seq`: wake
    /// the push tasks.
    pub fn wrote(&self, seq: u64) {
        {
            let mut t = self.write_times.lock().unwrap_or_else(|p| p.into_inner());
            if t.len() == WRITE_TIMES {
                t.pop_front();
            }
            t.push_back((seq, Instant::now()));
        }
        self.wrote.send_modify(|n| *n += 1);
    }

    /// A peer's lag: this node's operations it has not acknowledged, and
    /// the age of the oldest of them (from the commit times kept; for a
    /// peer behind all of them, the age of the oldest kept: a lower
    /// bound).
    pub fn lag(&self, acked: &CausalContext) -> (u64, f64) {
        let last = self.engine.context().vv().get(self.me);
        let held = acked.vv().get(self.me);
        let ops = last.saturating_sub(held);
        if ops == 0 {
            return (0, 0.0);
        }
        let t = self.write_times.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = t.iter().find(|(seq, _)| *seq > held).map(|(_, at)| *at);
        (ops, oldest.map_or(0.0, |at| at.elapsed().as_secs_f64()))
    }

    /// Forget a member that is down (see `Converge.Forget`): whether it
    /// was known. `Err` names its state when it is not down.
    pub fn forget(&self, peer: ReplicaId) -> Result<bool, PeerHealth> {
        let mut peers = self.peers();
        match peers.get(&peer).map(|p| p.health) {
            Some(PeerHealth::Down) | None => Ok(peers.remove(&peer).is_some()),
            Some(h) => Err(h),
        }
    }

    /// The members placement is computed over: this node and every peer
    /// not forgotten (alive, suspect or down).
    pub fn members(&self) -> Vec<ReplicaId> {
        let mut m: Vec<ReplicaId> = self.peers().keys().copied().collect();
        m.push(self.me);
        m
    }

    /// A member's health (this node: alive).
    pub fn health(&self, r: ReplicaId) -> Option<PeerHealth> {
        if r == self.me {
            return Some(PeerHealth::Alive);
        }
        self.peers().get(&r).map(|p| p.health)
    }

    /// A member joined the peers table.
    pub fn membership_changed(&self) {
        *self.changed_at.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    /// How long membership has been stable.
    pub fn membership_stable_for(&self) -> Duration {
        self.changed_at
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }

    /// A peer's address.
    pub fn addr_of(&self, r: ReplicaId) -> Option<SocketAddr> {
        if r == self.me {
            return Some(self.config.advertised());
        }
        self.peers().get(&r).map(|p| p.addr)
    }

    /// A (shared, reconnecting) client of the quorum service at `addr`.
    pub fn peer_client(
        &self,
        addr: SocketAddr,
    ) -> Result<QuorumClient<tonic::transport::Channel>, tonic::Status> {
        if let Some(c) = self
            .conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
        {
            return Ok(c.clone());
        }
        // A new connection: first forget those of addresses no member has
        // any more (forgotten nodes, nodes that came back elsewhere), so
        // the table stays as large as the membership.
        let known: std::collections::HashSet<SocketAddr> =
            self.peers().values().map(|p| p.addr).collect();
        let c = peer::quorum_client(self, addr)?;
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        conns.retain(|a, _| known.contains(a));
        Ok(conns.entry(addr).or_insert(c).clone())
    }

    /// How long a write waits for its acknowledgements.
    pub fn ack_wait(&self, ms: u32) -> Duration {
        match ms {
            0 => self.config.ack_timeout,
            ms => Duration::from_millis(u64::from(ms)),
        }
    }

    /// Whether the node is shutting down.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow()
    }

    /// The local IP outgoing connections are made from (the listen
    /// address's, so that peers and fault-injecting proxies see which node
    /// connects), or `None` for a wildcard listen address.
    pub fn local_ip(&self) -> Option<IpAddr> {
        let ip = self.config.listen.ip();
        (!ip.is_unspecified()).then_some(ip)
    }
}

/// Open the engine and serve until SIGTERM or SIGINT; then leave the
/// cluster, stop serving, and close the engine cleanly.
pub async fn serve(config: NodeConfig) -> Result<(), NodeError> {
    // First of all, so that a SIGTERM during start-up stops cleanly too.
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate())?;
    let int = signal(SignalKind::interrupt())?;
    let data = config.data.clone();
    let q = config.partitions.max(1);
    parts::check_layout(&data, q).map_err(NodeError::Layout)?;
    let node_options = if q > 1 {
        // The node engine holds no data in the partitioned layout.
        parts::partition_options(&config.engine)
    } else {
        config.engine.clone()
    };
    let node_options = Options {
        changes_feed: config.engine.changes_feed,
        ..node_options
    };
    let (engine, parts) = tokio::task::spawn_blocking(move || {
        let engine = Arc::new(Engine::open(&data, node_options.clone())?);
        let parts = parts::Parts::open(&data, q, &node_options, engine.clone())?;
        Ok::<_, converge::Error>((engine, parts))
    })
    .await??;
    let me = engine.replica_id();
    let hints = Arc::new(hints::Hints::open(
        &config.data,
        config.max_hints,
        config.max_hint_bytes,
    )?);
    let (repair_tx, repair_rx) = tokio::sync::mpsc::channel(config.repair_queue.max(1));
    let shared = Arc::new(Shared {
        engine: engine.clone(),
        parts,
        hints,
        repairs: repair_tx,
        repair_bytes: std::sync::atomic::AtomicU64::new(0),
        conns: Mutex::new(HashMap::new()),
        changed_at: Mutex::new(Instant::now()),
        me,
        config: config.clone(),
        peers: Mutex::new(BTreeMap::new()),
        wrote: watch::channel(0).0,
        acked: watch::channel(0).0,
        stopping: watch::channel(false).0,
        metrics: metrics::Metrics::default(),
        write_times: Mutex::new(VecDeque::new()),
    });
    tracing::info!(replica = %me, listen = %config.listen, advertise = %config.advertised(),
        data = %config.data.display(), partitions = q, replicas = config.replicas,
        sloppy_quorum = config.sloppy_quorum, "node starting");

    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let membership = members::start(shared.clone()).await?;
    let metrics_task = match config.metrics {
        Some(addr) => Some(metrics::serve(shared.clone(), addr).await?),
        None => None,
    };
    let mut tasks = vec![
        tokio::spawn(push::collect_loop(shared.clone())),
        tokio::spawn(handoff::hints_loop(shared.clone())),
        tokio::spawn(repair::worker(
            shared.clone(),
            repair_rx,
            config.repair_rate,
        )),
    ];
    if shared.parts.partitioned() {
        tasks.push(tokio::spawn(handoff::rebalance_loop(shared.clone())));
        tasks.push(tokio::spawn(handoff::anti_entropy_loop(shared.clone())));
    } else {
        tasks.push(tokio::spawn(push::anti_entropy_loop(shared.clone())));
    }

    let mut stop_rx = shared.stopping.subscribe();
    let signals = tokio::spawn(stop_on_signal(shared.clone(), term, int));
    // No Nagle on accepted connections either (the peer clients set it on
    // theirs): a small reply held back for a delayed ACK costs ~40 ms.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |s| {
            if let Ok(s) = &s {
                let _ = s.set_nodelay(true);
            }
            s
        },
    );
    let server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(256)
        .add_service(api::service(shared.clone()))
        .add_service(peer::service(shared.clone()))
        .add_service(peer::quorum_service(shared.clone()))
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        });
    println!("converge node {me} listening on {}", config.listen);
    let served = server.await;
    signals.abort();
    // Stop everything that holds the engine, then close it.
    shared.stopping.send_replace(true);
    engine.interrupt_waits();
    let _ = membership.await;
    for t in &tasks {
        t.abort();
    }
    for t in tasks {
        let _ = t.await;
    }
    if let Some(t) = metrics_task {
        t.abort();
    }
    push::wait_stopped(&shared).await;
    shared.parts.close_all().await;
    drop(shared);
    close_engine(engine).await?;
    served?;
    tracing::info!("node stopped");
    Ok(())
}

/// Set the stop flag on SIGTERM or SIGINT.
async fn stop_on_signal(
    shared: Arc<Shared>,
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) {
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    shared.stopping.send_replace(true);
}

/// Close the engine once every task released it (blocking calls still
/// running finish first); flush and fsync the WAL if some never does.
async fn close_engine(mut engine: Arc<Engine>) -> Result<(), NodeError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Arc::try_unwrap(engine) {
            Ok(e) => {
                tokio::task::spawn_blocking(move || e.close()).await??;
                return Ok(());
            }
            Err(shared) if Instant::now() < deadline => {
                engine = shared;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(shared) => {
                tracing::warn!("engine still in use after 10 s: flushing instead of closing");
                tokio::task::spawn_blocking(move || {
                    shared.flush()?;
                    shared.sync_wal()
                })
                .await??;
                return Ok(());
            }
        }
    }
}

/// Run a blocking engine call off the async workers.
pub async fn blocking<T, F>(engine: &Arc<Engine>, f: F) -> Result<T, tonic::Status>
where
    F: FnOnce(&Engine) -> Result<T, converge::Error> + Send + 'static,
    T: Send + 'static,
{
    let engine = engine.clone();
    tokio::task::spawn_blocking(move || f(&engine))
        .await
        .map_err(status::join)?
        .map_err(status::engine)
}
