//! Helpers shared by the cluster tests: the binary, the seed, OR-Set
//! writes and reads through a node's client API.

#![allow(dead_code)]

use converge_cli::proto::converge_client::ConvergeClient;
use converge_cli::proto::{
    self, op::Kind, read_reply::Value as V, ReplicationMode, ReplicationMode as Mode,
};
use std::path::PathBuf;
use tonic::transport::Channel;

/// A node's client.
pub type Client = ConvergeClient<Channel>;

/// The `converge` binary under test.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_converge"))
}

/// The seed of this run: `CONVERGE_TEST_SEED`, or the clock. Printed so a
/// failure can be replayed (the proxies' loss decisions and the
/// operation schedule derive from it).
pub fn seed(test: &str) -> u64 {
    let seed = std::env::var("CONVERGE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: CONVERGE_TEST_SEED={seed}");
    seed
}

/// Add `elem` to the OR-Set `key` under `mode` (semi-sync: k = 1).
pub async fn add(
    c: &mut Client,
    key: &str,
    elem: &str,
    mode: ReplicationMode,
    timeout_ms: u32,
) -> Result<proto::WriteReply, tonic::Status> {
    c.write(proto::WriteRequest {
        ops: vec![proto::Op {
            key: key.as_bytes().to_vec(),
            kind: Some(Kind::OrsetAdd(elem.as_bytes().to_vec())),
        }],
        replication: mode as i32,
        min_acks: 1,
        ack_timeout_ms: timeout_ms,
    })
    .await
    .map(|r| r.into_inner())
}

/// The members of the set `key`, read no older than `token`.
pub async fn members(
    c: &mut Client,
    key: &str,
    token: &[u8],
    timeout_ms: u32,
) -> Result<Vec<String>, tonic::Status> {
    let r = c
        .read(proto::ReadRequest {
            key: key.as_bytes().to_vec(),
            at_least: token.to_vec(),
            timeout_ms,
        })
        .await?
        .into_inner();
    Ok(match r.value {
        Some(V::Set(s)) => s
            .members
            .into_iter()
            .map(|m| String::from_utf8_lossy(&m).into_owned())
            .collect(),
        _ => Vec::new(),
    })
}

/// A node's status.
pub async fn status(c: &mut Client) -> proto::StatusReply {
    c.status(proto::StatusRequest {})
        .await
        .expect("status")
        .into_inner()
}

/// The node's metrics text.
pub async fn metrics(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("metrics");
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("response");
    out
}

/// The OR-Set every scenario writes to.
pub const KEY: &str = "acked";

/// What the scenario wrote and had acknowledged.
#[derive(Default)]
pub struct Run {
    /// Elements whose write was acknowledged.
    pub acked: Vec<String>,
    /// Writes attempted.
    pub writes: usize,
}

impl Run {
    /// Write `elem` on `clients[on]` under `mode`; if acknowledged, read
    /// it back on `clients[check]` with its token: the read must contain
    /// it or fail "not yet visible", never return an older set.
    pub async fn write(
        &mut self,
        clients: &mut [Client],
        on: usize,
        check: usize,
        mode: Mode,
        elem: String,
        read_wait_ms: u32,
    ) -> Result<bool, String> {
        self.writes += 1;
        let reply = match add(&mut clients[on], KEY, &elem, mode, 8000).await {
            Ok(r) => r,
            // Not acknowledged (a semi-sync/sync wait ran out, or too
            // few live peers): no promise to check.
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::DeadlineExceeded | tonic::Code::Unavailable
                ) =>
            {
                return Ok(false)
            }
            Err(s) => return Err(format!("write {elem} on node {on}: {s}")),
        };
        self.acked.push(elem.clone());
        match members(&mut clients[check], KEY, &reply.token, read_wait_ms).await {
            Ok(m) if m.contains(&elem) => Ok(true),
            Ok(m) => Err(format!(
                "node {check} read with the token of {elem} and returned a set without it: {m:?}"
            )),
            Err(s) if s.code() == tonic::Code::DeadlineExceeded => Ok(true),
            Err(s) => Err(format!("token read of {elem} on node {check}: {s}")),
        }
    }
}
