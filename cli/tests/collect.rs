//! Deletes in a cluster are collected: three nodes, keys written and
//! replicated, one deleted on node 0; every node purges it (its tombstone
//! collected once every node has acknowledged the delete, or a peer's
//! horizon says so), the others stay, and the roots agree.

mod common;

use common::{add, status};
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::{self, op::Kind, ReplicationMode as Mode};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(30);

/// The value of an unlabelled metric.
fn metric(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

async fn scenario(cl: &mut Cluster) -> Result<(), String> {
    for i in 0..3 {
        cl.wait_alive(i, 2, WAIT).await?;
    }
    let mut c0 = cl.client(0, WAIT).await?;
    for key in ["keep", "doomed"] {
        add(&mut c0, key, "x", Mode::Sync, 10_000)
            .await
            .map_err(|s| s.to_string())?;
    }
    c0.write(proto::WriteRequest {
        ops: vec![proto::Op {
            key: b"doomed".to_vec(),
            kind: Some(Kind::Delete(proto::Delete::default())),
        }],
        replication: Mode::Sync as i32,
        min_acks: 0,
        ack_timeout_ms: 10_000,
    })
    .await
    .map_err(|s| s.to_string())?;
    // Every node purges the key.
    let deadline = Instant::now() + WAIT;
    for i in 0..3 {
        loop {
            let text = common::metrics(cl.nodes[i].metrics).await;
            if metric(&text, "converge_keys_purged_total") == Some(1) {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("node {i} did not purge the deleted key:\n{text}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    cl.wait_converged(&[0, 1, 2], WAIT).await?;
    for i in 0..3 {
        let mut c = cl.client(i, WAIT).await?;
        let keys = status(&mut c).await.keys;
        if keys != 1 {
            return Err(format!("node {i} holds {keys} keys, not 1"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_key_is_purged_on_every_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: 3,
        proxied: false,
        probe_ms: 200,
        anti_entropy_ms: 300,
        extra: vec!["--collect-ms".into(), "200".into()],
        ..ClusterOptions::default()
    };
    let mut cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    if let Err(e) = scenario(&mut cl).await {
        for i in 0..3 {
            eprintln!("--- node {i} ---\n{}", cl.log_tail(i, 30));
        }
        panic!("{e}");
    }
}
