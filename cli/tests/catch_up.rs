//! A peer further behind than the changes feed retains: the log is
//! truncated past its acknowledged cursor while it is dead, so when it
//! comes back the push task gets `CursorTooOld`, falls back to an
//! anti-entropy session, and then streams again.

mod common;

use common::{add, members, status};
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::{self, op::Kind, ReplicationMode as Mode};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

async fn scenario(cl: &mut Cluster) -> Result<(), String> {
    cl.wait_alive(0, 1, WAIT).await?;
    let mut c0 = cl.client(0, WAIT).await?;
    add(&mut c0, "seen", "before", Mode::Sync, 10_000)
        .await
        .map_err(|s| s.to_string())?;
    cl.kill(1);
    // About 600 KB of log, ten times the retention of 64 KiB.
    for b in 0..10 {
        let ops = (0..300)
            .map(|i| proto::Op {
                key: format!("doc:{b}:{i}").into_bytes(),
                kind: Some(Kind::LwwSet(vec![b'x'; 200])),
            })
            .collect();
        c0.write(proto::WriteRequest {
            ops,
            replication: Mode::Async as i32,
            min_acks: 0,
            ack_timeout_ms: 0,
        })
        .await
        .map_err(|s| s.to_string())?;
    }
    cl.spawn(1).map_err(|e| e.to_string())?;
    cl.wait_converged(&[0, 1], WAIT).await?;
    let mut c1 = cl.client(1, WAIT).await?;
    if status(&mut c1).await.keys != 3001 {
        return Err("the returning node does not hold every key".into());
    }
    let text = common::metrics(cl.nodes[0].metrics).await;
    if !text.contains("converge_cursor_fallbacks_total 1") {
        return Err(format!("expected one cursor fallback:\n{text}"));
    }
    // Streaming again after the catch-up session.
    let w = add(&mut c0, "seen", "after", Mode::Sync, 10_000)
        .await
        .map_err(|s| s.to_string())?;
    if w.acked_by != 1 {
        return Err(format!("acknowledged by {} peers", w.acked_by));
    }
    let m = members(&mut c1, "seen", &w.token, 0)
        .await
        .map_err(|s| s.to_string())?;
    if m != ["after", "before"] {
        return Err(format!("the returning node reads {m:?}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_behind_the_log_catches_up_by_anti_entropy_then_streams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: 2,
        proxied: false,
        probe_ms: 200,
        // Periodic sessions off: only the fallback can repair.
        anti_entropy_ms: 600_000,
        extra: vec!["--feed-retain-bytes".into(), "65536".into()],
        ..ClusterOptions::default()
    };
    let mut cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    if let Err(e) = scenario(&mut cl).await {
        for i in 0..2 {
            eprintln!("--- node {i} ---\n{}", cl.log_tail(i, 30));
        }
        panic!("{e}");
    }
}
