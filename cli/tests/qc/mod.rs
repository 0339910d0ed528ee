//! Helpers of the quorum tests: quorum writes and reads of counters,
//! placement and readiness from `Status`, metrics.

#![allow(dead_code)]

use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::converge_client::ConvergeClient;
use converge_cli::proto::{self, op::Kind, read_reply::Value as V};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// A node's client.
pub type Client = ConvergeClient<Channel>;

/// The `converge` binary under test.
pub fn bin() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_BIN_EXE_converge"))
}

/// Add `by` to the G-Counter `key` with a quorum write.
pub async fn incr(
    c: &mut Client,
    key: &str,
    by: u64,
    n: u32,
    w: u32,
) -> Result<proto::WriteReply, tonic::Status> {
    c.quorum_write(proto::QuorumWriteRequest {
        ops: vec![proto::Op {
            key: key.as_bytes().to_vec(),
            kind: Some(Kind::Increment(by)),
        }],
        n,
        w,
        ack_timeout_ms: 5000,
    })
    .await
    .map(|r| r.into_inner())
}

/// A quorum read of `key`.
pub async fn read(
    c: &mut Client,
    key: &str,
    n: u32,
    r: u32,
) -> Result<proto::ReadReply, tonic::Status> {
    c.quorum_read(proto::QuorumReadRequest {
        key: key.as_bytes().to_vec(),
        at_least: Vec::new(),
        timeout_ms: 0,
        n,
        r,
    })
    .await
    .map(|r| r.into_inner())
}

/// A counter's value in a read (0 if absent).
pub fn value(r: &proto::ReadReply) -> u64 {
    match &r.value {
        Some(V::Counter(s)) => s.parse().unwrap_or(u64::MAX),
        _ => 0,
    }
}

/// A node's status.
pub async fn status(c: &mut Client) -> proto::StatusReply {
    c.status(proto::StatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

/// Wait until node `i` holds, filled, every partition it is a replica of
/// (in its own view, with `members` peers known).
pub async fn wait_ready(cl: &Cluster, i: usize, timeout: Duration) -> Result<(), String> {
    let mut c = cl.client(i, timeout).await?;
    let deadline = Instant::now() + timeout;
    loop {
        let s = status(&mut c).await;
        let pending: Vec<u32> = s
            .placement
            .iter()
            .filter(|p| p.replicas.contains(&s.replica_id) && !(p.held && p.ready))
            .map(|p| p.partition)
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("node {i}: partitions {pending:?} not ready"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Node `i`'s metrics text.
pub async fn metrics_text(cl: &Cluster, i: usize) -> String {
    fetch_metrics(cl.nodes[i].metrics).await
}

/// The value of an unlabelled metric of node `i`.
pub async fn metric(cl: &Cluster, i: usize, name: &str) -> u64 {
    let text = fetch_metrics(cl.nodes[i].metrics).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0)
}

async fn fetch_metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(addr).await else {
        return String::new();
    };
    let req = format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// Poll `f` until it returns `Some`, at most `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return Ok(v);
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: not within {timeout:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The replica ids of a key's partition, as node `i` computes them.
pub async fn replicas_of(c: &mut Client, key: &str) -> Vec<String> {
    let s = status(c).await;
    let p = converge_cli::node::placement::partition_of(key.as_bytes(), s.partitions);
    s.placement
        .iter()
        .find(|x| x.partition == p)
        .map(|x| x.replicas.clone())
        .unwrap_or_default()
}

/// Each node's replica id, by index.
pub async fn ids(cl: &Cluster, nodes: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for i in 0..nodes {
        let mut c = cl.client(i, Duration::from_secs(20)).await?;
        out.push(status(&mut c).await.replica_id);
    }
    Ok(out)
}

/// Command-line arguments from literals (`ClusterOptions::extra`).
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Fail the test with a scenario's error, after printing the tail of the
/// log of each of the first `nodes` nodes.
pub fn fail(cl: &Cluster, nodes: usize, e: &str) -> ! {
    for i in 0..nodes {
        eprintln!("--- node {i} ---\n{}", cl.log_tail(i, 25));
    }
    panic!("{e}");
}

/// Start a cluster with `opts` (fault seed `seed`) in a fresh directory and
/// run `scenario` on it; on its error, fail with every node's log tail.
pub async fn run(
    opts: ClusterOptions,
    seed: u64,
    scenario: impl AsyncFnOnce(&mut Cluster) -> Result<(), String>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes = opts.nodes;
    let mut cl = Cluster::start(&bin(), dir.path(), opts, seed)
        .await
        .expect("start");
    if let Err(e) = scenario(&mut cl).await {
        fail(&cl, nodes, &e);
    }
}
