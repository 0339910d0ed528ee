//! The longer quorum runs (`make quorum-test`, not in `make test`):
//! - N=5 W=3 R=3 with every pair of the five nodes down in turn;
//! - a fifth node joins a four-node cluster (32 partitions, N=2): the
//!   partitions it now holds are filled by anti-entropy, the nodes that
//!   lost them hand them off and drop them, and every key keeps its value;
//!   then a node is killed and forgotten: its partitions get new replicas,
//!   filled from the remaining ones, and every key still reads its value.

mod qc;

use converge_cli::cluster::{Cluster, ClusterOptions};
use qc::{incr, read, value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(60);

async fn pairs(cl: &mut Cluster) -> Result<(), String> {
    for i in 0..5 {
        cl.wait_alive(i, 4, WAIT).await?;
        qc::wait_ready(cl, i, WAIT).await?;
    }
    let mut acked = 0u64;
    for a in 0..5 {
        for b in a + 1..5 {
            cl.kill(a);
            cl.kill(b);
            let live: Vec<usize> = (0..5).filter(|i| *i != a && *i != b).collect();
            for round in 0..3 {
                let mut cw = cl.client(live[round % 3], WAIT).await?;
                let mut cr = cl.client(live[(round + 1) % 3], WAIT).await?;
                incr(&mut cw, "pairs", 1, 5, 3)
                    .await
                    .map_err(|s| format!("down {a},{b}: write: {s}"))?;
                acked += 1;
                let got = read(&mut cr, "pairs", 5, 3)
                    .await
                    .map_err(|s| format!("down {a},{b}: read: {s}"))?;
                if value(&got) != acked {
                    return Err(format!("down {a},{b}: read {} after {acked}", value(&got)));
                }
            }
            cl.spawn(a).map_err(|e| e.to_string())?;
            cl.spawn(b).map_err(|e| e.to_string())?;
            for i in 0..5 {
                cl.wait_alive(i, 4, WAIT).await?;
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make quorum-test"]
async fn n5_w3_r3_with_every_pair_of_nodes_down() {
    let opts = ClusterOptions {
        nodes: 5,
        proxied: false,
        probe_ms: 200,
        extra: qc::args(&[
            "--partitions",
            "4",
            "--replicas",
            "5",
            "--collect-ms",
            "0",
            "--rebalance-ms",
            "300",
        ]),
        ..ClusterOptions::default()
    };
    qc::run(opts, 4, pairs).await;
}

const KEYS: u64 = 300;

async fn join(cl: &mut Cluster) -> Result<(), String> {
    for i in 0..4 {
        cl.wait_alive(i, 3, WAIT).await?;
        qc::wait_ready(cl, i, WAIT).await?;
    }
    let mut c0 = cl.client(0, WAIT).await?;
    for k in 0..KEYS {
        incr(&mut c0, &format!("key{k}"), k + 1, 2, 2)
            .await
            .map_err(|s| format!("key{k}: {s}"))?;
    }
    let before = qc::status(&mut c0).await.placement;
    cl.spawn(4).map_err(|e| e.to_string())?;
    for i in 0..5 {
        cl.wait_alive(i, 4, WAIT).await?;
    }
    // Every node ends up holding exactly the partitions it is a replica
    // of, filled.
    for i in 0..5 {
        let mut c = cl.client(i, WAIT).await?;
        qc::eventually(&format!("node {i} settled"), WAIT, || {
            let mut c = c.clone();
            async move {
                let s = qc::status(&mut c).await;
                s.placement
                    .iter()
                    .all(|p| p.replicas.contains(&s.replica_id) == (p.held && p.ready))
                    .then_some(())
            }
        })
        .await?;
        c = cl.client(i, WAIT).await?;
        let _ = qc::status(&mut c).await;
    }
    let after = qc::status(&mut c0).await.placement;
    let moved: usize = before
        .iter()
        .zip(&after)
        .map(|(b, a)| {
            a.replicas
                .iter()
                .filter(|r| !b.replicas.contains(r))
                .count()
        })
        .sum();
    let slots = after.len() * 2;
    eprintln!(
        "replica slots moved: {moved} of {slots} (1/M = {:.0})",
        slots as f64 / 5.0
    );
    if moved == 0 || moved * 2 > slots {
        return Err(format!("{moved} of {slots} replica slots moved"));
    }
    // Every moved slot was handed off (a partition leaves the status
    // before its engine is closed and counted; a node that opened an
    // extra partition from a partial view at start-up hands it off too).
    let handoffs = qc::eventually("hand-offs counted", WAIT, || async {
        let mut n = 0;
        for i in 0..4 {
            n += qc::metric(cl, i, "converge_handoffs_total").await;
        }
        (n as usize >= moved).then_some(n)
    })
    .await?;
    eprintln!("hand-offs: {handoffs}");
    // Every key keeps its value, read from every node.
    check_keys(cl, &[0, 1, 2, 3, 4]).await?;

    // A node leaves for good: killed, then forgotten by the others; its
    // partitions get new replicas, filled from the remaining one.
    cl.kill(1);
    let live = [0usize, 2, 3, 4];
    for &i in &live {
        cl.wait_alive(i, 3, WAIT).await?;
    }
    let mut c2 = cl.client(2, WAIT).await?;
    let id1 = qc::status(&mut c2)
        .await
        .members
        .iter()
        .find(|m| m.address == cl.nodes[1].advertise.to_string())
        .map(|m| m.replica_id.clone())
        .ok_or("node 1 not in node 2's members")?;
    for &i in &live {
        let mut c = cl.client(i, WAIT).await?;
        qc::eventually(&format!("node {i} sees node 1 down"), WAIT, || {
            let (mut c, id) = (c.clone(), id1.clone());
            async move {
                let s = qc::status(&mut c).await;
                s.members
                    .iter()
                    .any(|m| m.replica_id == id && m.state == "down")
                    .then_some(())
            }
        })
        .await?;
        c.forget(converge_cli::proto::ForgetRequest {
            replica_id: id1.clone(),
        })
        .await
        .map_err(|s| format!("forget on node {i}: {s}"))?;
    }
    for &i in &live {
        let mut c = cl.client(i, WAIT).await?;
        qc::eventually(&format!("node {i} settled after the forget"), WAIT, || {
            let mut c = c.clone();
            async move {
                let s = qc::status(&mut c).await;
                (s.placement.iter().all(|p| {
                    p.replicas.len() == 2
                        && p.replicas.contains(&s.replica_id) == (p.held && p.ready)
                }))
                .then_some(())
            }
        })
        .await?;
        c = cl.client(i, WAIT).await?;
        let _ = qc::status(&mut c).await;
    }
    check_keys(cl, &live).await
}

/// Every key reads its value (R=2 of N=2) through each of `nodes`.
async fn check_keys(cl: &Cluster, nodes: &[usize]) -> Result<(), String> {
    for &i in nodes {
        let mut c = cl.client(i, WAIT).await?;
        for k in 0..KEYS {
            let got = read(&mut c, &format!("key{k}"), 2, 2)
                .await
                .map_err(|s| format!("node {i} key{k}: {s}"))?;
            if value(&got) != k + 1 {
                return Err(format!("node {i}: key{k} = {}, not {}", value(&got), k + 1));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: make quorum-test"]
async fn a_joining_node_takes_its_partitions_and_the_others_hand_them_off() {
    let opts = ClusterOptions {
        nodes: 5,
        start: Some(4),
        proxied: false,
        probe_ms: 200,
        anti_entropy_ms: 60_000,
        extra: qc::args(&[
            "--partitions",
            "32",
            "--replicas",
            "2",
            "--collect-ms",
            "0",
            "--rebalance-ms",
            "300",
        ]),
        ..ClusterOptions::default()
    };
    qc::run(opts, 5, join).await;
}
