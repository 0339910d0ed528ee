//! The textbook quorum configurations on five nodes (partitioned layout,
//! 4 partitions, N = 5), as executable checks:
//! - N=5 W=3 R=3 with two nodes killed: writes and reads succeed and every
//!   read sees the last acknowledged write;
//! - W=1 R=5: a write needs one replica, a read all five (one down: the
//!   read is UNAVAILABLE, saying how many answered);
//! - W=5 R=1: one node down, a write is UNAVAILABLE; all up, it succeeds
//!   and a read of any single replica sees it;
//! - W=1 R=1 under a 3 | 2 partition: a read on the majority side misses a
//!   write acknowledged on the minority side (a stale read: "eventual"),
//!   and after healing the value converges.

mod qc;

use converge_cli::cluster::{Cluster, ClusterOptions};
use qc::{incr, read, value};
use std::time::Duration;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(30);

async fn scenario(cl: &mut Cluster) -> Result<(), String> {
    for i in 0..5 {
        cl.wait_alive(i, 4, WAIT).await?;
    }
    for i in 0..5 {
        qc::wait_ready(cl, i, WAIT).await?;
    }
    let mut c: Vec<qc::Client> = Vec::new();
    for i in 0..5 {
        c.push(cl.client(i, WAIT).await?);
    }

    // N=5 W=3 R=3, nodes 3 and 4 killed: every read sees every
    // acknowledged write.
    cl.kill(3);
    cl.kill(4);
    let mut acked = 0;
    for i in 0..12usize {
        let (w, r) = (i % 3, (i + 1) % 3);
        let reply = incr(&mut c[w], "n5", 1, 5, 3)
            .await
            .map_err(|s| format!("W=3 write {i} on node {w}: {s}"))?;
        if reply.consistency != "strong" || reply.acked_by < 3 {
            return Err(format!("W=3 write {i}: {reply:?}"));
        }
        acked += 1;
        let got = read(&mut c[r], "n5", 5, 3)
            .await
            .map_err(|s| format!("R=3 read {i} on node {r}: {s}"))?;
        if value(&got) != acked || got.answered < 3 || got.consistency != "strong" {
            return Err(format!(
                "R=3 read {i} on node {r} saw {} after {acked} acknowledged writes ({got:?})",
                value(&got)
            ));
        }
    }
    cl.spawn(3).map_err(|e| e.to_string())?;
    cl.spawn(4).map_err(|e| e.to_string())?;
    for i in 0..5 {
        cl.wait_alive(i, 4, WAIT).await?;
    }
    c[3] = cl.client(3, WAIT).await?;
    c[4] = cl.client(4, WAIT).await?;

    // W=1 R=5.
    let reply = incr(&mut c[0], "w1r5", 7, 5, 1)
        .await
        .map_err(|s| format!("W=1: {s}"))?;
    // W=1 with the cluster's default R (a majority, 3) of N=5: 1+3 ≤ 5.
    if reply.consistency != "eventual" {
        return Err(format!(
            "W=1 with the default R=3 of N=5 is eventual: {reply:?}"
        ));
    }
    let got = read(&mut c[1], "w1r5", 5, 5)
        .await
        .map_err(|s| format!("R=5: {s}"))?;
    if value(&got) != 7 || got.answered != 5 {
        return Err(format!("R=5 read: {got:?}"));
    }
    cl.kill(4);
    match read(&mut c[1], "w1r5", 5, 5).await {
        // "only 4 of the 5 replicas … reachable" or "only 4 of the 5
        // replicas needed answered" (not any message with a 4 in it).
        Err(s) if s.code() == Code::Unavailable && s.message().starts_with("only 4 of") => {}
        other => return Err(format!("R=5 with a node down: {other:?}")),
    }
    incr(&mut c[2], "w1r5", 1, 5, 1)
        .await
        .map_err(|s| format!("W=1 with a node down: {s}"))?;

    // W=5 R=1 (node 4 still down).
    match incr(&mut c[0], "w5r1", 1, 5, 5).await {
        Err(s) if s.code() == Code::Unavailable => {}
        other => return Err(format!("W=5 with a node down: {other:?}")),
    }
    cl.spawn(4).map_err(|e| e.to_string())?;
    for i in 0..5 {
        cl.wait_alive(i, 4, WAIT).await?;
    }
    c[4] = cl.client(4, WAIT).await?;
    let before = value(
        &read(&mut c[0], "w5r1", 5, 5)
            .await
            .map_err(|s| s.to_string())?,
    );
    let reply = incr(&mut c[0], "w5r1", 1, 5, 5)
        .await
        .map_err(|s| format!("W=5, all up: {s}"))?;
    if reply.acked_by != 5 {
        return Err(format!("W=5: {reply:?}"));
    }
    for (i, ci) in c.iter_mut().enumerate() {
        let got = read(ci, "w5r1", 5, 1).await.map_err(|s| s.to_string())?;
        // "eventual": R=1 against the cluster's default W (3 of 5); the
        // reply cannot know this client wrote with W=5.
        if value(&got) != before + 1 || got.consistency != "eventual" {
            return Err(format!("R=1 on node {i} after a W=5 write: {got:?}"));
        }
    }

    // W=1 R=1 under a 3 | 2 partition: a stale read, then convergence.
    incr(&mut c[0], "w1r1", 1, 5, 5)
        .await
        .map_err(|s| format!("seed write: {s}"))?;
    let ips: Vec<_> = cl.nodes.iter().map(|n| n.ip).collect();
    cl.faults
        .partition(&[&[ips[0], ips[1], ips[2]], &[ips[3], ips[4]]]);
    let reply = incr(&mut c[3], "w1r1", 10, 5, 1)
        .await
        .map_err(|s| format!("W=1 on the minority side: {s}"))?;
    if reply.consistency != "eventual" {
        return Err(format!("W=1 is eventual with R=3 of N=5: {reply:?}"));
    }
    let stale = read(&mut c[0], "w1r1", 5, 1)
        .await
        .map_err(|s| format!("R=1 on the majority side: {s}"))?;
    if value(&stale) != 1 {
        return Err(format!(
            "expected a stale read (1) across the partition, got {stale:?}"
        ));
    }
    cl.faults.heal();
    qc::eventually("convergence after healing", WAIT, || {
        let mut c0 = c[0].clone();
        async move {
            let r = read(&mut c0, "w1r1", 5, 1).await.ok()?;
            (value(&r) == 11).then_some(())
        }
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn textbook_configurations_on_five_nodes() {
    let opts = ClusterOptions {
        nodes: 5,
        proxied: true,
        probe_ms: 200,
        anti_entropy_ms: 1000,
        extra: qc::args(&[
            "--partitions",
            "4",
            "--replicas",
            "5",
            "--collect-ms",
            "0",
            "--rebalance-ms",
            "300",
            "--rpc-timeout-ms",
            "2000",
        ]),
        ..ClusterOptions::default()
    };
    qc::run(opts, 1, scenario).await;
}
