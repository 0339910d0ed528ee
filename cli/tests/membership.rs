//! Membership over real processes: a killed node is declared down and its
//! return is noticed; a node joining through one seed receives the whole
//! data set by anti-entropy, then the live stream of pushes.

mod common;

use common::{add, members, status};
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::{self, op::Kind, ReplicationMode as Mode};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

fn report(cl: &Cluster, n: usize, e: String) -> ! {
    for i in 0..n {
        eprintln!("--- node {i} ---\n{}", cl.log_tail(i, 40));
    }
    panic!("{e}");
}

async fn down_and_back(cl: &mut Cluster) -> Result<(), String> {
    for i in 0..3 {
        cl.wait_alive(i, 2, WAIT).await?;
    }
    let mut c0 = cl.client(0, WAIT).await?;
    let victim = status(&mut cl.client(2, WAIT).await?).await.replica_id;
    cl.kill(2);
    cl.wait_alive(1, 1, WAIT).await?;
    // Suspected first, then declared down.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = status(&mut c0).await;
        let m = s
            .members
            .iter()
            .find(|m| m.replica_id == victim)
            .ok_or("node 0 forgot the killed node")?;
        if m.state == "down" {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "the killed node is still {} after {WAIT:?}",
                m.state
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Written while it is away: it gets it when it is back.
    let w = add(&mut c0, "k", "while-away", Mode::Async, 0)
        .await
        .map_err(|s| s.to_string())?;
    // The dead node's lag: one operation, of a positive age.
    let s = status(&mut c0).await;
    let m = s
        .members
        .iter()
        .find(|m| m.replica_id == victim)
        .ok_or("node 0 forgot the killed node")?;
    if m.lag_ops != 1 || m.lag_seconds <= 0.0 {
        return Err(format!(
            "lag of the dead node: {} ops, {} s",
            m.lag_ops, m.lag_seconds
        ));
    }
    cl.spawn(2).map_err(|e| e.to_string())?;
    cl.wait_alive(0, 2, WAIT).await?;
    cl.wait_alive(2, 2, WAIT).await?;
    let mut c2 = cl.client(2, WAIT).await?;
    let got = members(&mut c2, "k", &w.token, 20_000)
        .await
        .map_err(|s| s.to_string())?;
    if got != ["while-away"] {
        return Err(format!("the returned node reads {got:?}"));
    }
    // Its acknowledgement clears the lag.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let s = status(&mut c0).await;
        let lag = s
            .members
            .iter()
            .find(|m| m.replica_id == victim)
            .map(|m| m.lag_ops);
        if lag == Some(0) {
            break;
        }
        if std::time::Instant::now() > deadline {
            return Err(format!("the returned node still lags: {lag:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = common::metrics(cl.nodes[0].metrics).await;
    for needle in [
        "converge_membership_changes_total{change=\"down\"}",
        "converge_membership_changes_total{change=\"up\"}",
        "converge_replication_lag_ops{peer=",
    ] {
        if !text.contains(needle) {
            return Err(format!("metrics lack {needle}:\n{text}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_marked_down_and_its_return_noticed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        proxied: false,
        anti_entropy_ms: 60_000,
        probe_ms: 200,
        ..ClusterOptions::default()
    };
    let mut cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    if let Err(e) = down_and_back(&mut cl).await {
        report(&cl, 3, e);
    }
}

async fn join_from_one_seed(cl: &mut Cluster) -> Result<(), String> {
    cl.wait_alive(0, 1, WAIT).await?;
    let mut c0 = cl.client(0, WAIT).await?;
    // 500 keys before the newcomer exists.
    let ops: Vec<proto::Op> = (0..500)
        .map(|i| proto::Op {
            key: format!("item:{i:03}").into_bytes(),
            kind: Some(Kind::Increment(i + 1)),
        })
        .collect();
    c0.write(proto::WriteRequest {
        ops,
        replication: Mode::Sync as i32,
        min_acks: 0,
        ack_timeout_ms: 10_000,
    })
    .await
    .map_err(|s| s.to_string())?;
    cl.spawn(2).map_err(|e| e.to_string())?;
    cl.wait_alive(2, 2, WAIT).await?;
    // The whole data set, by anti-entropy (periodic sessions are off:
    // only the catch-up session of a new peer can bring it).
    cl.wait_converged(&[0, 1, 2], WAIT).await?;
    let mut c2 = cl.client(2, WAIT).await?;
    if status(&mut c2).await.keys != 500 {
        return Err("the newcomer does not hold the 500 keys".into());
    }
    // Then the live stream: a new write reaches it by push.
    let w = add(&mut c0, "live", "after-join", Mode::Async, 0)
        .await
        .map_err(|s| s.to_string())?;
    let got = members(&mut c2, "live", &w.token, 20_000)
        .await
        .map_err(|s| s.to_string())?;
    if got != ["after-join"] {
        return Err(format!("the newcomer reads {got:?}"));
    }
    // Every node starts a catch-up session with a peer that comes up, so
    // the newcomer and the seeds each start one: whichever ends first
    // converges the two, and the other finds them equal. The newcomer took
    // part in a converged one, on either side.
    let text = common::metrics(cl.nodes[2].metrics).await;
    let converged = ["responder", "initiator"].iter().any(|role| {
        text.contains(&format!(
            "converge_sync_sessions_total{{role=\"{role}\",outcome=\"converged\"}}"
        ))
    });
    if !converged {
        return Err(format!(
            "no converged catch-up session in the newcomer's metrics:\n{text}"
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_joining_from_one_seed_gets_everything_then_the_stream() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        proxied: false,
        anti_entropy_ms: 600_000,
        probe_ms: 200,
        start: Some(2),
        seed_only: true,
        ..ClusterOptions::default()
    };
    let mut cl = Cluster::start(&common::bin(), dir.path(), opts, 1)
        .await
        .expect("start");
    if let Err(e) = join_from_one_seed(&mut cl).await {
        report(&cl, 3, e);
    }
}
