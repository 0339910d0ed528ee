//! The client side of the CLI: each command is one or a few RPCs to a
//! node, printed for people (default) or as one JSON object (`--json`).
//!
//! Exit codes (docs/NODE.md): 0 success; 1 any other error; 2 usage
//! error; 3 the key is absent (`get`); 4 the node refused the request
//! (bad argument, wrong type, oversized); 5 the node is unreachable or
//! unavailable, or a read's token was not visible in time; 6 a
//! semi-sync/sync write was committed locally but not acknowledged by
//! enough peers in time; 7 `verify` found the store inconsistent.

use crate::proto::converge_client::ConvergeClient;
use crate::proto::{self, op::Kind, ReplicationMode};
use crate::wire;
use serde_json::json;
use tonic::transport::Channel;
use tonic::Code;

/// A failed command: the message and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// Process exit code.
    pub code: u8,
    /// What to print.
    pub message: String,
}

impl CliError {
    /// An error with an exit code.
    pub fn new(code: u8, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// The exit code of a status from a read or an async write.
    pub fn status(s: tonic::Status) -> CliError {
        let code = match s.code() {
            Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::OutOfRange
            | Code::ResourceExhausted => 4,
            Code::Unavailable | Code::DeadlineExceeded => 5,
            _ => 1,
        };
        CliError::new(code, format!("{:?}: {}", s.code(), s.message()))
    }

    /// The exit code of a status from a semi-sync or sync write.
    fn write_status(s: tonic::Status) -> CliError {
        if s.code() == Code::DeadlineExceeded {
            CliError::new(6, format!("not acknowledged in time: {}", s.message()))
        } else {
            CliError::status(s)
        }
    }
}

impl From<converge::Error> for CliError {
    fn from(e: converge::Error) -> Self {
        let code = match e {
            converge::Error::Corruption(_) => 7,
            _ => 1,
        };
        CliError::new(code, e.to_string())
    }
}

/// A spinner on stderr (hidden when stderr is not a terminal) for a call
/// that may take more than a second.
fn spinner(msg: String) -> indicatif::ProgressBar {
    let s = indicatif::ProgressBar::new_spinner();
    s.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    s.set_message(msg);
    s.enable_steady_tick(std::time::Duration::from_millis(100));
    s
}

/// Connect to a node.
pub async fn connect(node: &str) -> Result<ConvergeClient<Channel>, CliError> {
    let url = if node.starts_with("http://") {
        node.to_string()
    } else {
        format!("http://{node}")
    };
    ConvergeClient::connect(url)
        .await
        .map(|c| c.max_decoding_message_size(64 << 20))
        .map_err(|e| CliError::new(5, format!("cannot reach the node at {node}: {e}")))
}

/// How a write is replicated before it is acknowledged.
#[derive(Clone, Copy, Debug)]
pub struct WriteMode {
    /// The mode.
    pub mode: ReplicationMode,
    /// Semi-sync: peers that must hold the write.
    pub acks: u32,
    /// Wait for the peers at most this long (0: the node's default).
    pub timeout_ms: u32,
    /// A quorum write: (n, w), 0 for the cluster's default.
    pub quorum: Option<(u32, u32)>,
}

/// An operation on one key.
pub fn op(key: &str, kind: Kind) -> proto::Op {
    proto::Op {
        key: key.as_bytes().to_vec(),
        kind: Some(kind),
    }
}

/// Send a write; print what it did.
pub async fn write(
    c: &mut ConvergeClient<Channel>,
    ops: Vec<proto::Op>,
    mode: WriteMode,
    what: &str,
    json_out: bool,
) -> Result<proto::WriteReply, CliError> {
    let waiting = (mode.mode != ReplicationMode::Async || mode.quorum.is_some())
        .then(|| spinner("waiting for the peers to acknowledge".into()));
    let reply = match mode.quorum {
        Some((n, w)) => {
            c.quorum_write(proto::QuorumWriteRequest {
                ops,
                n,
                w,
                ack_timeout_ms: mode.timeout_ms,
            })
            .await
        }
        None => {
            c.write(proto::WriteRequest {
                ops,
                replication: mode.mode as i32,
                min_acks: mode.acks,
                ack_timeout_ms: mode.timeout_ms,
            })
            .await
        }
    };
    if let Some(w) = waiting {
        w.finish_and_clear();
    }
    let reply = reply
        .map_err(|s| {
            if mode.mode == ReplicationMode::Async {
                CliError::status(s)
            } else {
                CliError::write_status(s)
            }
        })?
        .into_inner();
    let token = wire::hex(&reply.token);
    if json_out {
        println!(
            "{}",
            json!({"ok": true, "token": token, "acked_by": reply.acked_by,
                   "consistency": reply.consistency})
        );
    } else if !reply.consistency.is_empty() {
        let n = reply.acked_by;
        println!(
            "{what} (committed on {n} replica{}, {})",
            if n == 1 { "" } else { "s" },
            reply.consistency
        );
    } else if mode.mode == ReplicationMode::Async {
        println!("{what}");
    } else {
        let n = reply.acked_by;
        println!("{what} (held by {n} peer{})", if n == 1 { "" } else { "s" });
    }
    Ok(reply)
}

/// Read a key; print its value. Exit code 3 if absent.
pub async fn get(
    c: &mut ConvergeClient<Channel>,
    key: &str,
    at_least: Option<&str>,
    wait_ms: u32,
    json_out: bool,
    show_token: bool,
    quorum: Option<(u32, u32)>,
) -> Result<proto::ReadReply, CliError> {
    let at_least = match at_least {
        Some(t) => wire::unhex(t).ok_or_else(|| CliError::new(2, "the token is not hex"))?,
        None => Vec::new(),
    };
    let reply = match quorum {
        Some((n, r)) => {
            c.quorum_read(proto::QuorumReadRequest {
                key: key.as_bytes().to_vec(),
                at_least,
                timeout_ms: wait_ms,
                n,
                r,
            })
            .await
        }
        None => {
            c.read(proto::ReadRequest {
                key: key.as_bytes().to_vec(),
                at_least,
                timeout_ms: wait_ms,
            })
            .await
        }
    }
    .map_err(CliError::status)?
    .into_inner();
    if json_out {
        println!("{}", read_json(key, &reply));
    } else {
        println!("{}", wire::show(&reply));
        if !reply.consistency.is_empty() {
            let behind = match reply.stale {
                0 => String::new(),
                n => format!("; {n} behind, repairing"),
            };
            eprintln!(
                "({} replica{} answered, {}{behind})",
                reply.answered,
                if reply.answered == 1 { "" } else { "s" },
                reply.consistency,
            );
        }
        if show_token {
            println!("token {}", wire::hex(&reply.token));
        }
    }
    if reply.found {
        Ok(reply)
    } else {
        Err(CliError::new(3, ""))
    }
}

/// A read as JSON.
pub fn read_json(key: &str, r: &proto::ReadReply) -> serde_json::Value {
    use proto::read_reply::Value as V;
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let value = match &r.value {
        Some(V::Counter(n)) => json!(n),
        Some(V::Set(set)) => json!(set.members.iter().map(|m| s(m)).collect::<Vec<_>>()),
        Some(V::Register(reg)) if reg.present => json!(s(&reg.value)),
        Some(V::Mv(mv)) => json!(mv.siblings.iter().map(|x| s(&x.value)).collect::<Vec<_>>()),
        _ => serde_json::Value::Null,
    };
    json!({
        "key": key,
        "found": r.found,
        "type": r.crdt_type,
        "value": value,
        "token": wire::hex(&r.token),
        "consistency": r.consistency,
        "answered": r.answered,
        "stale": r.stale,
    })
}

/// List keys (all pages), with a spinner when it takes more than one.
pub async fn keys(
    c: &mut ConvergeClient<Channel>,
    prefix: &str,
    json_out: bool,
) -> Result<(), CliError> {
    let mut start_after = Vec::new();
    let mut all = Vec::new();
    let spinner = indicatif::ProgressBar::new_spinner();
    spinner.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    loop {
        let page = c
            .keys(proto::KeysRequest {
                prefix: prefix.as_bytes().to_vec(),
                start_after: start_after.clone(),
                // The largest page: each page scans from the prefix.
                limit: 10_000,
            })
            .await
            .map_err(CliError::status)?
            .into_inner();
        if let Some(last) = page.keys.last() {
            start_after = last.key.clone();
        }
        all.extend(page.keys);
        if !page.more {
            break;
        }
        spinner.set_message(format!("{} keys", all.len()));
        spinner.tick();
    }
    spinner.finish_and_clear();
    if json_out {
        let v: Vec<_> = all
            .iter()
            .map(|k| json!({"key": String::from_utf8_lossy(&k.key), "type": k.crdt_type}))
            .collect();
        println!("{}", json!(v));
    } else {
        for k in &all {
            println!("{}\t{}", String::from_utf8_lossy(&k.key), k.crdt_type);
        }
    }
    Ok(())
}

/// The root of the node at `addr`, or why it could not be read.
async fn root_of(addr: &str) -> Result<String, String> {
    let ask = async {
        let mut c = connect(addr).await.map_err(|e| e.message)?;
        c.status(proto::StatusRequest {})
            .await
            .map(|s| s.into_inner().root)
            .map_err(|s| s.message().to_string())
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), ask)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// Print a node's status, with the root of every live member (asked
/// directly, at the address the node knows it by).
pub async fn status(c: &mut ConvergeClient<Channel>, json_out: bool) -> Result<(), CliError> {
    let s = c
        .status(proto::StatusRequest {})
        .await
        .map_err(CliError::status)?
        .into_inner();
    let mut roots = Vec::new();
    for m in &s.members {
        // The partitioned layout has one root per partition, not per node.
        roots.push(if s.partitions > 1 {
            Err("per partition".into())
        } else if m.state == "alive" {
            root_of(&m.address).await
        } else {
            Err(m.state.clone())
        });
    }
    let converged = roots.iter().all(|r| r.as_ref().is_ok_and(|r| *r == s.root));
    if json_out {
        let members: Vec<_> = s
            .members
            .iter()
            .zip(&roots)
            .map(|(m, r)| {
                json!({"replica_id": m.replica_id, "address": m.address, "state": m.state,
                       "lag_ops": m.lag_ops, "lag_seconds": m.lag_seconds,
                       "root": r.as_ref().ok()})
            })
            .collect();
        let placement: Vec<_> = s
            .placement
            .iter()
            .map(|p| {
                json!({"partition": p.partition, "replicas": p.replicas, "held": p.held,
                       "ready": p.ready, "keys": p.keys, "root": p.root})
            })
            .collect();
        let hints: Vec<_> = s
            .hints
            .iter()
            .map(|h| json!({"replica_id": h.replica_id, "hints": h.hints, "bytes": h.bytes}))
            .collect();
        println!(
            "{}",
            json!({"replica_id": s.replica_id, "address": s.address, "root": s.root,
                   "keys": s.keys, "last_seq": s.last_seq, "pending": s.pending_entries,
                   "protocol_version": s.protocol_version, "members": members,
                   "converged": converged, "partitions": s.partitions,
                   "replicas": s.replicas, "sloppy_quorum": s.sloppy_quorum,
                   "placement": placement, "hints": hints})
        );
        return Ok(());
    }
    println!("node     {} at {}", s.replica_id, s.address);
    if s.partitions > 1 {
        println!(
            "root     (one per partition, below)  ({} keys held)",
            s.keys
        );
    } else {
        println!("root     {}  ({} keys)", s.root, s.keys);
    }
    println!(
        "ops      {} issued, {} pending deltas",
        s.last_seq, s.pending_entries
    );
    if s.members.is_empty() {
        println!("members  (none seen)");
    }
    for (m, r) in s.members.iter().zip(&roots) {
        let root = match r {
            Err(_) if s.partitions > 1 => String::new(),
            Ok(r) if *r == s.root => "same root".to_string(),
            Ok(r) => format!("root {r}"),
            Err(e) => format!("root unknown ({e})"),
        };
        if s.partitions > 1 {
            // No changes feed in the partitioned layout: no lag to show.
            println!("member   {} at {:<21} {}", m.replica_id, m.address, m.state);
            continue;
        }
        println!(
            "member   {} at {:<21} {:<8} lag {} ops, {:.1} s; {root}",
            m.replica_id, m.address, m.state, m.lag_ops, m.lag_seconds
        );
    }
    print_placement(&s);
    if !s.members.is_empty() && s.partitions <= 1 {
        println!(
            "cluster  {}",
            if converged {
                "converged: every live member has this root"
            } else {
                "not converged (yet)"
            }
        );
    }
    Ok(())
}

/// The placement part of `status` (text).
fn print_placement(s: &proto::StatusReply) {
    let n = if s.replicas == 0 {
        "every member".to_string()
    } else {
        s.replicas.to_string()
    };
    println!(
        "placement {} partition{}, replicas {n}, sloppy quorum {}",
        s.partitions,
        if s.partitions == 1 { "" } else { "s" },
        if s.sloppy_quorum { "on" } else { "off" }
    );
    for p in &s.placement {
        let short: Vec<&str> = p.replicas.iter().map(|r| &r[..8.min(r.len())]).collect();
        let here = match (p.held, p.ready) {
            (true, true) => format!("held, {} keys", p.keys),
            (true, false) => "held, filling".to_string(),
            _ => "not held".to_string(),
        };
        println!(
            "  p{:04}  replicas {}  ({here})",
            p.partition,
            short.join(" ")
        );
    }
    for h in &s.hints {
        println!(
            "hints    {} for {} ({} bytes)",
            h.hints, h.replica_id, h.bytes
        );
    }
}

/// Ask a node to run an anti-entropy session with a peer.
pub async fn sync(
    c: &mut ConvergeClient<Channel>,
    peer: &str,
    json_out: bool,
) -> Result<(), CliError> {
    let busy = spinner(format!("anti-entropy session with {peer}"));
    let r = c.sync(proto::SyncRequest { peer: peer.into() }).await;
    busy.finish_and_clear();
    let r = r.map_err(CliError::status)?.into_inner();
    if json_out {
        println!(
            "{}",
            json!({"outcome": r.outcome, "bytes_sent": r.bytes_sent,
                   "bytes_received": r.bytes_received, "states_sent": r.states_sent,
                   "states_received": r.states_received})
        );
    } else {
        println!(
            "{}: sent {} states ({} bytes), received {} states ({} bytes)",
            r.outcome, r.states_sent, r.bytes_sent, r.states_received, r.bytes_received
        );
    }
    Ok(())
}
