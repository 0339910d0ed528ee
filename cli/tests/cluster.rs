//! Three `converge serve` processes behind fault-injecting proxies:
//! writes under every replication mode, through message delay and loss, a
//! partition and a `kill -9` with restart. After healing, every
//! acknowledged write is on every node and the roots are equal; a read
//! with a token never returns a value older than the token.

mod common;

use common::{members, Run};
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::ReplicationMode as Mode;
use std::time::{Duration, Instant};

const MODES: [Mode; 3] = [Mode::Async, Mode::SemiSync, Mode::Sync];

async fn scenario(cl: &mut Cluster, seed: u64) -> Result<(), String> {
    let wait = Duration::from_secs(30);
    for i in 0..3 {
        cl.wait_alive(i, 2, wait).await?;
    }
    let mut c = Vec::new();
    for i in 0..3 {
        c.push(cl.client(i, wait).await?);
    }
    let mut run = Run::default();
    // The operation schedule derives from the seed.
    let mut rng = seed | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % 3) as usize
    };

    // 1. Healthy: every mode on every node, always acknowledged and
    // visible on another node.
    for (m, mode) in MODES.iter().enumerate() {
        for j in 0..9 {
            let on = next();
            let check = (on + 1 + j % 2) % 3;
            let acked = run
                .write(&mut c, on, check, *mode, format!("healthy-{m}-{j}"), 10_000)
                .await?;
            if !acked {
                return Err(format!(
                    "healthy write {m}-{j} on node {on} not acknowledged"
                ));
            }
        }
    }

    // 2. Delay and loss between the nodes.
    cl.faults.set_delay(Duration::from_millis(15));
    cl.faults.set_loss(0.1);
    for (m, mode) in MODES.iter().enumerate() {
        for j in 0..6 {
            let on = next();
            run.write(
                &mut c,
                on,
                (on + 1) % 3,
                *mode,
                format!("lossy-{m}-{j}"),
                2000,
            )
            .await?;
        }
    }
    cl.faults.set_delay(Duration::ZERO);
    cl.faults.set_loss(0.0);

    // 3. Partition: node 0 alone.
    let ips: Vec<_> = cl.nodes.iter().map(|n| n.ip).collect();
    cl.faults.partition(&[&[ips[0]], &[ips[1], ips[2]]]);
    cl.wait_alive(1, 1, wait).await?;
    cl.wait_alive(0, 0, wait).await?;
    for j in 0..6 {
        // Across the partition a token read cannot succeed: it must say
        // "not yet visible".
        run.write(&mut c, 0, 1, Mode::Async, format!("minority-{j}"), 300)
            .await?;
        for (m, mode) in MODES.iter().enumerate() {
            let on = 1 + j % 2;
            run.write(
                &mut c,
                on,
                3 - on,
                *mode,
                format!("majority-{m}-{j}"),
                10_000,
            )
            .await?;
        }
    }
    cl.faults.heal();

    // 4. kill -9 node 2, write elsewhere, restart it.
    cl.kill(2);
    for j in 0..6 {
        let on = j % 2;
        run.write(
            &mut c,
            on,
            1 - on,
            MODES[j % 3],
            format!("while-dead-{j}"),
            10_000,
        )
        .await?;
    }
    cl.spawn(2).map_err(|e| e.to_string())?;
    c[2] = cl.client(2, wait).await?;
    for (j, mode) in MODES.iter().enumerate() {
        run.write(&mut c, 2, j % 2, *mode, format!("restarted-{j}"), 10_000)
            .await?;
    }

    // 5. Healed: every acknowledged write everywhere, equal roots.
    let healed = Instant::now();
    let (root, took) = cl
        .wait_converged(&[0, 1, 2], Duration::from_secs(60))
        .await?;
    for (i, cli) in c.iter_mut().enumerate() {
        let m = members(cli, common::KEY, &[], 0)
            .await
            .map_err(|s| s.to_string())?;
        let missing: Vec<_> = run.acked.iter().filter(|e| !m.contains(e)).collect();
        if !missing.is_empty() {
            return Err(format!("node {i} lacks acknowledged writes {missing:?}"));
        }
    }
    eprintln!(
        "{} writes, {} acknowledged; converged (root {root}) {:.2} s after the restart",
        run.writes,
        run.acked.len(),
        took.max(healed.elapsed()).as_secs_f64()
    );
    if run.acked.len() < 60 {
        return Err(format!(
            "only {} writes were acknowledged: the scenario did not exercise the modes",
            run.acked.len()
        ));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_faults_partition_and_kill() {
    let seed = common::seed("cluster3");
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = ClusterOptions {
        nodes: 3,
        proxied: true,
        anti_entropy_ms: 500,
        probe_ms: 400,
        log: "info".into(),
        ..ClusterOptions::default()
    };
    let mut cl = Cluster::start(&common::bin(), dir.path(), opts, seed)
        .await
        .expect("start the cluster");
    let result = scenario(&mut cl, seed).await;
    if let Err(e) = result {
        for i in 0..3 {
            eprintln!("--- node {i} ---\n{}", cl.log_tail(i, 40));
        }
        panic!("{e} (replay with CONVERGE_TEST_SEED={seed})");
    }
}
