//! Counters of a node and the `/metrics` endpoint (Prometheus text format,
//! version 0.0.4) served over HTTP/1.1 with hyper.

use super::Shared;
use crate::proto::ReplicationMode;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// A node's counters.
#[derive(Default)]
pub struct Metrics {
    writes: [AtomicU64; 3],
    write_ops: AtomicU64,
    write_errors: AtomicU64,
    write_micros: AtomicU64,
    ack_timeouts: AtomicU64,
    reads: AtomicU64,
    pushed_ops: AtomicU64,
    push_failures: AtomicU64,
    received_bytes: AtomicU64,
    fallbacks: AtomicU64,
    gossip_errors: AtomicU64,
    tombstones_collected: AtomicU64,
    keys_purged: AtomicU64,
    tombstones_waiting: AtomicU64,
    quorum_writes: AtomicU64,
    quorum_write_micros: AtomicU64,
    quorum_reads: AtomicU64,
    unavailable: AtomicU64,
    read_repairs: AtomicU64,
    read_repair_bytes: AtomicU64,
    read_repairs_dropped: AtomicU64,
    hints_stored: AtomicU64,
    hints_delivered: AtomicU64,
    handoffs: AtomicU64,
    partition_sync_bytes: AtomicU64,
    labelled: Mutex<BTreeMap<(&'static str, String), u64>>,
}

impl Metrics {
    /// A write acknowledged under `mode`.
    pub fn wrote(&self, mode: ReplicationMode, ops: u64, took: Duration) {
        self.writes[mode as usize].fetch_add(1, Relaxed);
        self.write_ops.fetch_add(ops, Relaxed);
        self.write_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }
    /// A write refused or failed.
    pub fn write_failed(&self) {
        self.write_errors.fetch_add(1, Relaxed);
    }
    /// A semi-sync or sync write not acknowledged in time.
    pub fn ack_timeout(&self) {
        self.ack_timeouts.fetch_add(1, Relaxed);
    }
    /// A read served.
    pub fn read(&self) {
        self.reads.fetch_add(1, Relaxed);
    }
    /// Operations pushed to a peer.
    pub fn pushed_out(&self, ops: u64) {
        self.pushed_ops.fetch_add(ops, Relaxed);
    }
    /// A push that failed.
    pub fn push_failed(&self) {
        self.push_failures.fetch_add(1, Relaxed);
    }
    /// A page pushed to this node (its bytes).
    pub fn pushed_in(&self, bytes: u64) {
        self.received_bytes.fetch_add(bytes, Relaxed);
    }
    /// A peer sent to anti-entropy because its cursor was too old.
    pub fn fallback(&self) {
        self.fallbacks.fetch_add(1, Relaxed);
    }
    /// A gossip datagram foca refused.
    pub fn gossip_error(&self) {
        self.gossip_errors.fetch_add(1, Relaxed);
    }
    /// A collection of tombstones ran.
    pub fn collected(&self, r: &converge::CollectReport) {
        self.tombstones_collected.fetch_add(r.collected, Relaxed);
        self.keys_purged.fetch_add(r.purged, Relaxed);
        self.tombstones_waiting.store(r.waiting, Relaxed);
    }
    /// A quorum write acknowledged (counted by its coordinator).
    pub fn quorum_write(&self, ops: u64, took: Duration) {
        self.quorum_writes.fetch_add(1, Relaxed);
        self.write_ops.fetch_add(ops, Relaxed);
        self.quorum_write_micros
            .fetch_add(took.as_micros() as u64, Relaxed);
    }
    /// A quorum read answered.
    pub fn quorum_read(&self) {
        self.quorum_reads.fetch_add(1, Relaxed);
    }
    /// A quorum request refused: too few replicas reachable or answering.
    pub fn unavailable(&self) {
        self.unavailable.fetch_add(1, Relaxed);
    }
    /// A read repair delivered (its bytes).
    pub fn repaired(&self, bytes: u64) {
        self.read_repairs.fetch_add(1, Relaxed);
        self.read_repair_bytes.fetch_add(bytes, Relaxed);
    }
    /// A read repair dropped: the queue was full.
    pub fn repair_dropped(&self) {
        self.read_repairs_dropped.fetch_add(1, Relaxed);
    }
    /// Hints kept for other nodes.
    pub fn hints_stored(&self, n: u64) {
        self.hints_stored.fetch_add(n, Relaxed);
    }
    /// A hint delivered to its node.
    pub fn hint_delivered(&self) {
        self.hints_delivered.fetch_add(1, Relaxed);
    }
    /// A partition handed off and dropped.
    pub fn handoff(&self) {
        self.handoffs.fetch_add(1, Relaxed);
    }
    /// Bytes of a partition's anti-entropy session (both directions).
    pub fn partition_sync(&self, bytes: u64) {
        self.partition_sync_bytes.fetch_add(bytes, Relaxed);
    }
    fn bump(&self, name: &'static str, label: String) {
        let mut m = self.labelled.lock().unwrap_or_else(|p| p.into_inner());
        *m.entry((name, label)).or_insert(0) += 1;
    }
    /// A sync session ended (`role`: initiator or responder).
    pub fn session(&self, role: &str, outcome: &str) {
        self.bump(
            "converge_sync_sessions_total",
            format!("role=\"{role}\",outcome=\"{outcome}\""),
        );
    }
    /// A membership change (up, down, renamed).
    pub fn member(&self, change: &str) {
        self.bump(
            "converge_membership_changes_total",
            format!("change=\"{change}\""),
        );
    }
}

/// The metrics in Prometheus text format.
pub fn render(shared: &Shared) -> String {
    let m = &shared.metrics;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, rows: &[(String, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for (labels, v) in rows {
            if labels.is_empty() {
                let _ = writeln!(out, "{name} {v}");
            } else {
                let _ = writeln!(out, "{name}{{{labels}}} {v}");
            }
        }
    };
    let one = |a: &AtomicU64| vec![(String::new(), a.load(Relaxed))];
    counter(
        "converge_writes_total",
        "Writes acknowledged, by replication mode.",
        &["async", "semi_sync", "sync"]
            .iter()
            .enumerate()
            .map(|(i, n)| (format!("mode=\"{n}\""), m.writes[i].load(Relaxed)))
            .collect::<Vec<_>>(),
    );
    counter(
        "converge_write_ops_total",
        "Operations in acknowledged writes.",
        &one(&m.write_ops),
    );
    counter(
        "converge_write_errors_total",
        "Writes refused or failed.",
        &one(&m.write_errors),
    );
    counter(
        "converge_write_seconds_micros_total",
        "Microseconds spent in acknowledged writes (with replication waits).",
        &one(&m.write_micros),
    );
    counter(
        "converge_ack_timeouts_total",
        "Semi-sync or sync writes not acknowledged by enough peers in time.",
        &one(&m.ack_timeouts),
    );
    counter("converge_reads_total", "Reads served.", &one(&m.reads));
    counter(
        "converge_pushed_ops_total",
        "Operations of this node pushed to peers.",
        &one(&m.pushed_ops),
    );
    counter(
        "converge_push_failures_total",
        "Pushes that failed (retried from the acknowledged cursor).",
        &one(&m.push_failures),
    );
    counter(
        "converge_push_received_bytes_total",
        "Bytes of pages pushed to this node.",
        &one(&m.received_bytes),
    );
    counter(
        "converge_cursor_fallbacks_total",
        "Peers sent to anti-entropy because the log no longer served their cursor.",
        &one(&m.fallbacks),
    );
    counter(
        "converge_gossip_errors_total",
        "Gossip datagrams foca refused.",
        &one(&m.gossip_errors),
    );
    counter(
        "converge_tombstones_collected_total",
        "Tombstones collected (every member had acknowledged their deletes).",
        &one(&m.tombstones_collected),
    );
    counter(
        "converge_keys_purged_total",
        "Deleted keys removed entirely by collection.",
        &one(&m.keys_purged),
    );
    for (name, help, v) in [
        (
            "converge_quorum_writes_total",
            "Quorum writes acknowledged (as coordinator).",
            &m.quorum_writes,
        ),
        (
            "converge_quorum_write_micros_total",
            "Microseconds spent in acknowledged quorum writes.",
            &m.quorum_write_micros,
        ),
        (
            "converge_quorum_reads_total",
            "Quorum reads answered (as coordinator).",
            &m.quorum_reads,
        ),
        (
            "converge_unavailable_total",
            "Quorum requests refused: fewer than W or R replicas reachable or answering.",
            &m.unavailable,
        ),
        (
            "converge_read_repairs_total",
            "Read repairs delivered.",
            &m.read_repairs,
        ),
        (
            "converge_read_repair_bytes_total",
            "Bytes of states sent by read repair.",
            &m.read_repair_bytes,
        ),
        (
            "converge_read_repairs_dropped_total",
            "Read repairs dropped because the queue was full.",
            &m.read_repairs_dropped,
        ),
        (
            "converge_hints_stored_total",
            "Hints kept for nodes that were down (sloppy quorum).",
            &m.hints_stored,
        ),
        (
            "converge_hints_delivered_total",
            "Hints delivered to their node.",
            &m.hints_delivered,
        ),
        (
            "converge_handoffs_total",
            "Partitions handed off to their new replicas and dropped.",
            &m.handoffs,
        ),
        (
            "converge_partition_sync_bytes_total",
            "Bytes of per-partition anti-entropy sessions this node initiated (both directions).",
            &m.partition_sync_bytes,
        ),
    ] {
        counter(name, help, &one(v));
    }
    let labelled = m.labelled.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for (name, help) in [
        (
            "converge_sync_sessions_total",
            "Anti-entropy sessions, by role and outcome.",
        ),
        (
            "converge_membership_changes_total",
            "Membership changes seen.",
        ),
    ] {
        let rows: Vec<(String, u64)> = labelled
            .iter()
            .filter(|((n, _), _)| *n == name)
            .map(|((_, l), v)| (l.clone(), *v))
            .collect();
        counter(name, help, &rows);
    }
    let _ = writeln!(
        out,
        "# HELP converge_tombstones_waiting Tombstones waiting for acknowledgements (at the last collection).\n\
         # TYPE converge_tombstones_waiting gauge\nconverge_tombstones_waiting {}",
        m.tombstones_waiting.load(Relaxed)
    );
    let held = shared.parts.held().len();
    let hints: u64 = shared.hints.pending().values().map(|(n, _)| n).sum();
    let _ = writeln!(
        out,
        "# HELP converge_partitions_held Partitions this node holds an engine for.\n\
         # TYPE converge_partitions_held gauge\nconverge_partitions_held {held}\n\
         # HELP converge_hints_pending Hints kept for other nodes, not delivered yet.\n\
         # TYPE converge_hints_pending gauge\nconverge_hints_pending {hints}"
    );
    let last = shared.engine.context().vv().get(shared.me);
    let pending = shared.engine.pending();
    let _ = writeln!(
        out,
        "# HELP converge_pending_entries Deltas and pages waiting for their dependencies.\n\
         # TYPE converge_pending_entries gauge\nconverge_pending_entries {}",
        pending.entries
    );
    let _ = writeln!(
        out,
        "# HELP converge_last_seq The last operation this node issued.\n\
         # TYPE converge_last_seq gauge\nconverge_last_seq {last}"
    );
    let peers = shared.peers().clone();
    let _ = writeln!(
        out,
        "# HELP converge_peer_up Whether a peer is alive (1), suspect (0.5) or down (0).\n\
         # TYPE converge_peer_up gauge"
    );
    for (r, p) in &peers {
        let v = match p.health {
            super::PeerHealth::Alive => "1",
            super::PeerHealth::Suspect => "0.5",
            super::PeerHealth::Down => "0",
        };
        let _ = writeln!(out, "converge_peer_up{{peer=\"{r}\"}} {v}");
    }
    let lags: Vec<(String, (u64, f64))> = peers
        .iter()
        .map(|(r, p)| (r.to_string(), shared.lag(&p.acked)))
        .collect();
    let _ = writeln!(
        out,
        "# HELP converge_replication_lag_ops Operations of this node a peer has not acknowledged.\n\
         # TYPE converge_replication_lag_ops gauge"
    );
    for (r, (ops, _)) in &lags {
        let _ = writeln!(out, "converge_replication_lag_ops{{peer=\"{r}\"}} {ops}");
    }
    let _ = writeln!(
        out,
        "# HELP converge_replication_lag_seconds Age of the oldest operation of this node a peer has not acknowledged.\n\
         # TYPE converge_replication_lag_seconds gauge"
    );
    for (r, (_, secs)) in &lags {
        let _ = writeln!(
            out,
            "converge_replication_lag_seconds{{peer=\"{r}\"}} {secs:.3}"
        );
    }
    out
}

/// Serve `GET /metrics` on `addr` until the node stops.
pub async fn serve(shared: Arc<Shared>, addr: SocketAddr) -> std::io::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "metrics endpoint listening");
    Ok(tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors or similar: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                    let shared = shared.clone();
                    async move {
                        let resp = if req.uri().path() == "/metrics" {
                            let body = tokio::task::spawn_blocking(move || render(&shared))
                                .await
                                .unwrap_or_default();
                            Response::builder()
                                .header("content-type", "text/plain; version=0.0.4")
                                .body(Full::new(Bytes::from(body)))
                        } else {
                            Response::builder()
                                .status(404)
                                .body(Full::new(Bytes::from_static(b"not found\n")))
                        };
                        resp
                    }
                });
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, svc)
                    .await;
            });
        }
    }))
}
