//! The longer cluster run (`make cluster-test`, not in `make test`): five
//! `converge serve` processes behind fault-injecting proxies; rounds of
//! writes under every replication mode through delay and loss, a 2 | 3
//! partition, two nodes killed with `kill -9` and restarted, a graceful
//! SIGTERM restart. After healing every acknowledged write is on every
//! node, the roots are equal, and no token read returned an older value.
//! `CONVERGE_CLUSTER_ROUNDS` (default 3) sets the number of rounds.

mod common;

use common::{members, Run};
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::ReplicationMode as Mode;
use std::time::{Duration, Instant};

const N: usize = 5;
const MODES: [Mode; 3] = [Mode::Async, Mode::SemiSync, Mode::Sync];

async fn round(cl: &mut Cluster, run: &mut Run, r: usize, rng: &mut u64) -> Result<(), String> {
    let wait = Duration::from_secs(60);
    let mut next = || {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        (*rng % N as u64) as usize
    };
    let mut c = Vec::new();
    for i in 0..N {
        c.push(cl.client(i, wait).await?);
    }
    // Delay and loss.
    cl.faults.set_delay(Duration::from_millis(10));
    cl.faults.set_loss(0.05);
    for j in 0..15 {
        let on = next();
        let check = (on + 1 + next() % (N - 1)) % N;
        run.write(
            &mut c,
            on,
            check,
            MODES[j % 3],
            format!("r{r}-lossy-{j}"),
            3000,
        )
        .await?;
    }
    cl.faults.set_delay(Duration::ZERO);
    cl.faults.set_loss(0.0);
    // A 2 | 3 partition.
    let ips: Vec<_> = cl.nodes.iter().map(|n| n.ip).collect();
    cl.faults.partition(&[&ips[..2], &ips[2..]]);
    for j in 0..15 {
        let on = next();
        let same_side = if on < 2 { 1 - on } else { 2 + (on - 1) % 3 };
        run.write(
            &mut c,
            on,
            same_side,
            MODES[j % 3],
            format!("r{r}-split-{j}"),
            3000,
        )
        .await?;
    }
    cl.faults.heal();
    // Two kill -9s and restarts, one SIGTERM restart.
    let (a, b) = (next(), (next() + 1) % N);
    let b = if a == b { (a + 1) % N } else { b };
    cl.kill(a);
    cl.kill(b);
    let alive: Vec<usize> = (0..N).filter(|i| *i != a && *i != b).collect();
    for j in 0..9 {
        let on = alive[j % alive.len()];
        let check = alive[(j + 1) % alive.len()];
        run.write(
            &mut c,
            on,
            check,
            MODES[j % 3],
            format!("r{r}-dead-{j}"),
            3000,
        )
        .await?;
    }
    cl.spawn(a).map_err(|e| e.to_string())?;
    cl.spawn(b).map_err(|e| e.to_string())?;
    for i in 0..N {
        cl.wait_alive(i, N - 1, wait).await?;
    }
    let t = next();
    if !cl.terminate(t, Duration::from_secs(15)) {
        return Err(format!("node {t} did not stop cleanly on SIGTERM"));
    }
    cl.spawn(t).map_err(|e| e.to_string())?;
    for i in 0..N {
        cl.wait_alive(i, N - 1, wait).await?;
    }
    Ok(())
}

async fn scenario(cl: &mut Cluster, seed: u64) -> Result<(), String> {
    let wait = Duration::from_secs(60);
    for i in 0..N {
        cl.wait_alive(i, N - 1, wait).await?;
    }
    let rounds: usize = std::env::var("CONVERGE_CLUSTER_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let mut run = Run::default();
    let mut rng = seed | 1;
    for r in 0..rounds {
        round(cl, &mut run, r, &mut rng).await?;
        let healed = Instant::now();
        let all: Vec<usize> = (0..N).collect();
        let (root, _) = cl.wait_converged(&all, Duration::from_secs(120)).await?;
        eprintln!(
            "round {r}: {} writes, {} acknowledged so far; converged (root {root}) in {:.2} s",
            run.writes,
            run.acked.len(),
            healed.elapsed().as_secs_f64()
        );
        for i in 0..N {
            let mut c = cl.client(i, wait).await?;
            let m = members(&mut c, common::KEY, &[], 0)
                .await
                .map_err(|s| s.to_string())?;
            let missing: Vec<_> = run.acked.iter().filter(|e| !m.contains(e)).collect();
            if !missing.is_empty() {
                return Err(format!("node {i} lacks acknowledged writes {missing:?}"));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by `make cluster-test`"]
async fn five_nodes_through_rounds_of_faults() {
    let seed = common::seed("cluster5");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: N,
        proxied: true,
        anti_entropy_ms: 1000,
        probe_ms: 400,
        log: "info".into(),
        ..ClusterOptions::default()
    };
    let mut cl = Cluster::start(&common::bin(), dir.path(), opts, seed)
        .await
        .expect("start the cluster");
    if let Err(e) = scenario(&mut cl, seed).await {
        for i in 0..N {
            eprintln!("--- node {i} ---\n{}", cl.log_tail(i, 30));
        }
        panic!("{e} (replay with CONVERGE_TEST_SEED={seed})");
    }
}
