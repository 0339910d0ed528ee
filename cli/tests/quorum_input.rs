//! Quorum requests in the single layout (three nodes, one partition,
//! N = every member), through the gRPC API and the CLI; and bad input:
//! W > N, N > M, R = 0 and W = 0 on the command line, a peer with another
//! partition count, a partition that does not exist, a hint carrying a
//! delta, `--replicas` without partitions, a store reopened with another
//! partition count. Each gets its typed error and changes nothing.

mod qc;

use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::quorum_client::QuorumClient;
use converge_cli::proto::{self, op::Kind};
use qc::{incr, read, value};
use std::process::Command;
use std::time::Duration;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

fn cli(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(qc::bin())
        .args(args)
        .output()
        .expect("run converge");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn expect<T: std::fmt::Debug>(
    what: &str,
    got: Result<T, tonic::Status>,
    code: Code,
) -> Result<(), String> {
    match got {
        Err(s) if s.code() == code => Ok(()),
        other => Err(format!("{what}: expected {code:?}, got {other:?}")),
    }
}

async fn scenario(cl: &mut Cluster) -> Result<(), String> {
    for i in 0..3 {
        cl.wait_alive(i, 2, WAIT).await?;
    }
    let mut c0 = cl.client(0, WAIT).await?;
    let mut c2 = cl.client(2, WAIT).await?;
    // N = every member (3): W=3 then R=3 elsewhere; n=2 works too.
    let w = incr(&mut c0, "likes", 5, 0, 3)
        .await
        .map_err(|s| s.to_string())?;
    if w.acked_by != 3 || w.consistency != "strong" {
        return Err(format!("W=3 of 3: {w:?}"));
    }
    let r = read(&mut c2, "likes", 0, 3)
        .await
        .map_err(|s| s.to_string())?;
    if value(&r) != 5 || r.answered != 3 {
        return Err(format!("R=3 of 3: {r:?}"));
    }
    incr(&mut c2, "likes", 1, 2, 2)
        .await
        .map_err(|s| format!("n=2: {s}"))?;
    // A session token: a quorum read at least as new as a write; a token
    // no replica holds is refused rather than answered with older data.
    let t = incr(&mut c0, "tok", 1, 0, 2)
        .await
        .map_err(|s| s.to_string())?
        .token;
    let r = c2
        .quorum_read(proto::QuorumReadRequest {
            key: b"tok".to_vec(),
            at_least: t.clone(),
            timeout_ms: 0,
            n: 0,
            r: 1,
        })
        .await
        .map_err(|s| format!("token read: {s}"))?
        .into_inner();
    if value(&r) != 1 {
        return Err(format!("token read: {r:?}"));
    }
    let mut forged = converge::CausalContext::new();
    forged.insert(converge::Dot::new(converge::ReplicaId(42), 7));
    expect(
        "a token no replica holds",
        c2.quorum_read(proto::QuorumReadRequest {
            key: b"tok".to_vec(),
            at_least: converge::codec::encode_context(&forged),
            timeout_ms: 0,
            n: 0,
            r: 1,
        })
        .await,
        Code::DeadlineExceeded,
    )?;
    // A delete goes through the same path.
    let del = c0
        .quorum_write(proto::QuorumWriteRequest {
            ops: vec![proto::Op {
                key: b"tok".to_vec(),
                kind: Some(Kind::Delete(proto::Delete::default())),
            }],
            n: 0,
            w: 3,
            ack_timeout_ms: 0,
        })
        .await
        .map_err(|s| format!("delete: {s}"))?
        .into_inner();
    if del.acked_by != 3 {
        return Err(format!("delete: {del:?}"));
    }
    let r = read(&mut c2, "tok", 0, 1)
        .await
        .map_err(|s| s.to_string())?;
    if r.found {
        return Err(format!("deleted key read back: {r:?}"));
    }
    // The CLI: --n/--w/--r, JSON output with the consistency.
    let node = cl.nodes[1].listen.to_string();
    let (code, out, err) = cli(&["--node", &node, "--json", "incr", "likes", "1", "--w", "3"]);
    if code != 0 || !out.contains("\"consistency\":\"strong\"") {
        return Err(format!("CLI quorum write: {code} {out} {err}"));
    }
    let (code, out, err) = cli(&["--node", &node, "--json", "get", "likes", "--r", "3"]);
    if code != 0 || !out.contains("\"value\":\"7\"") || !out.contains("\"answered\":3") {
        return Err(format!("CLI quorum read: {code} {out} {err}"));
    }
    // Bad input: each refused, nothing changes.
    let spread = c0
        .quorum_write(proto::QuorumWriteRequest {
            ops: ["a", "b"]
                .iter()
                .map(|k| proto::Op {
                    key: k.as_bytes().to_vec(),
                    kind: Some(Kind::Increment(1)),
                })
                .collect(),
            n: 0,
            w: 1,
            ack_timeout_ms: 0,
        })
        .await;
    // One partition: two keys are fine here.
    spread.map_err(|s| format!("two keys, one partition: {s}"))?;
    let before = qc::status(&mut c0).await;
    expect(
        "w > n",
        incr(&mut c0, "bad", 1, 2, 3).await,
        Code::InvalidArgument,
    )?;
    expect(
        "n > members",
        incr(&mut c0, "bad", 1, 4, 1).await,
        Code::InvalidArgument,
    )?;
    expect(
        "r > n",
        read(&mut c0, "likes", 2, 3).await,
        Code::InvalidArgument,
    )?;
    for args in [
        vec!["get", "likes", "--r", "0"],
        vec!["incr", "likes", "--w", "0"],
        vec!["incr", "likes", "--n", "0"],
    ] {
        let mut full = vec!["--node", node.as_str()];
        full.extend(args.iter().copied());
        let (code, _, err) = cli(&full);
        if code != 2 {
            return Err(format!("{args:?}: exit {code}, not 2 (usage): {err}"));
        }
    }
    let (code, _, err) = cli(&["--node", &node, "incr", "likes", "--w", "9"]);
    if code != 4 || !err.contains("exceeds") {
        return Err(format!("--w 9: exit {code}, not 4: {err}"));
    }
    let mut peer = QuorumClient::connect(format!("http://{}", cl.nodes[0].listen))
        .await
        .map_err(|e| e.to_string())?;
    let state = converge::codec::encode_state(&{
        let e = converge::Engine::open(
            tempfile::tempdir()
                .map_err(|e| e.to_string())?
                .path()
                .join("x"),
            converge::Options::default(),
        )
        .map_err(|e| e.to_string())?;
        e.increment(b"likes", 1000).map_err(|e| e.to_string())?;
        e.state(b"likes")
            .map_err(|e| e.to_string())?
            .ok_or("no state")?
    });
    let deliver =
        |partitions: u32, partition: u32, item: Vec<u8>, hint_for: Vec<u8>| proto::DeliverRequest {
            protocol_version: 1,
            partitions,
            partition,
            entries: vec![proto::Entry {
                key: b"likes".to_vec(),
                item,
            }],
            hint_for,
        };
    expect(
        "another partition count",
        peer.deliver(deliver(7, 0, state.clone(), Vec::new())).await,
        Code::FailedPrecondition,
    )?;
    expect(
        "no such partition",
        peer.deliver(deliver(1, 3, state.clone(), Vec::new())).await,
        Code::InvalidArgument,
    )?;
    expect(
        "garbage entry",
        peer.deliver(deliver(1, 0, vec![9, 9, 9], Vec::new())).await,
        Code::InvalidArgument,
    )?;
    expect(
        "short hint_for",
        peer.deliver(deliver(1, 0, state.clone(), vec![1, 2])).await,
        Code::InvalidArgument,
    )?;
    expect(
        "fetch with another partition count",
        peer.fetch(proto::FetchRequest {
            protocol_version: 1,
            partitions: 4,
            partition: 0,
            key: b"likes".to_vec(),
        })
        .await,
        Code::FailedPrecondition,
    )?;
    let after = qc::status(&mut c0).await;
    if (after.root.clone(), after.keys, after.last_seq)
        != (before.root.clone(), before.keys, before.last_seq)
    {
        return Err(format!(
            "bad input changed the node: {before:?} → {after:?}"
        ));
    }
    let r = read(&mut c2, "likes", 0, 3)
        .await
        .map_err(|s| s.to_string())?;
    if value(&r) != 7 {
        return Err(format!("likes changed: {r:?}"));
    }
    // An Apply forwarded to a node that is not one of the n = 2 replicas
    // in its own view (a coordinator with another view would do that): it
    // writes nothing and says so, rather than apply the write and count
    // itself toward W.
    let ids = qc::ids(cl, 3).await?;
    let members: Vec<converge::ReplicaId> = ids
        .iter()
        .map(|s| converge_cli::node::hints::parse_id(s).ok_or(format!("bad id {s}")))
        .collect::<Result<_, _>>()?;
    let top2 = converge_cli::node::placement::replicas(0, &members, 2);
    let outsider = (0..3)
        .find(|i| !top2.contains(&members[*i]))
        .ok_or("no outsider")?;
    let mut co = cl.client(outsider, WAIT).await?;
    let before = qc::status(&mut co).await;
    let mut po = QuorumClient::connect(format!("http://{}", cl.nodes[outsider].listen))
        .await
        .map_err(|e| e.to_string())?;
    let got = po
        .apply(proto::ApplyRequest {
            protocol_version: 1,
            partitions: 1,
            partition: 0,
            ops: vec![proto::Op {
                key: b"outsider".to_vec(),
                kind: Some(Kind::Increment(1)),
            }],
            n: 2,
            w: 2,
            ack_timeout_ms: 0,
        })
        .await;
    match &got {
        Err(s)
            if s.code() == Code::FailedPrecondition
                && s.metadata().get("converge-not-applied").is_some() => {}
        other => return Err(format!("Apply on a non-replica: {other:?}")),
    }
    let after = qc::status(&mut co).await;
    if (after.root.clone(), after.keys, after.last_seq)
        != (before.root.clone(), before.keys, before.last_seq)
    {
        return Err(format!(
            "an Apply refused by a non-replica changed it: {before:?} → {after:?}"
        ));
    }
    // A node with another partition count joins the gossip: the members
    // refuse to place data on it.
    // On the cluster's own loopback block, not 127.0.0.1 (shared with the
    // other tests running in parallel).
    let ip = cl.nodes[0].ip;
    let port = converge_cli::netfault::free_port(ip).map_err(|e| e.to_string())?;
    let odd_dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut odd = Command::new(qc::bin())
        .args([
            "serve",
            "--partitions",
            "2",
            "--probe-ms",
            "200",
            "--log",
            "warn",
        ])
        .arg("--data")
        .arg(odd_dir.path())
        .arg("--listen")
        .arg(std::net::SocketAddr::new(ip, port).to_string())
        .arg("--join")
        .arg(cl.nodes[0].advertise.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let refused = qc::eventually("the odd member refused", WAIT, || async {
        let text = qc::metrics_text(cl, 0).await;
        text.contains("change=\"refused\"").then_some(())
    })
    .await;
    let _ = odd.kill();
    let _ = odd.wait();
    refused?;
    if qc::status(&mut c0).await.members.len() != 2 {
        return Err("the odd member was taken into the peers table".into());
    }
    // Start-up refusals: --replicas without partitions; node 0's store
    // with another partition count (refused before the store is opened).
    let data = cl.nodes[0].data.to_string_lossy().into_owned();
    let (code, _, err) = cli(&[
        "serve",
        "--data",
        &data,
        "--listen",
        "127.0.0.1:1",
        "--replicas",
        "2",
    ]);
    if code != 2 {
        return Err(format!(
            "--replicas without --partitions: exit {code}: {err}"
        ));
    }
    let (code, _, err) = cli(&[
        "serve",
        "--data",
        &data,
        "--listen",
        "127.0.0.1:1",
        "--partitions",
        "4",
    ]);
    if code == 0 || !err.contains("--partitions 1") {
        return Err(format!("another partition count: exit {code}: {err}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_layout_quorums_and_bad_input() {
    let opts = ClusterOptions {
        nodes: 3,
        proxied: false,
        probe_ms: 200,
        extra: qc::args(&["--collect-ms", "0"]),
        ..ClusterOptions::default()
    };
    qc::run(opts, 3, scenario).await;
}
