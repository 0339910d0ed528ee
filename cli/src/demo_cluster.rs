//! `converge demo`: the eventual-consistency story on a real three-node
//! cluster on loopback (three `converge serve` processes behind
//! fault-injecting proxies, which the demo uses to partition them).

use converge_cli::client::CliError;
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::converge_client::ConvergeClient;
use converge_cli::proto::{
    self, op::Kind, read_reply::Value as V, MvWrite, OrRemove, ReplicationMode,
};
use converge_cli::wire;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

const NAMES: [&str; 3] = ["A", "B", "C"];
const WAIT: Duration = Duration::from_secs(30);

type Client = ConvergeClient<Channel>;

fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::new(1, format!("demo: {e}"))
}

async fn write(c: &mut Client, key: &str, kind: Kind) -> Result<Vec<u8>, CliError> {
    let r = c
        .write(proto::WriteRequest {
            ops: vec![proto::Op {
                key: key.into(),
                kind: Some(kind),
            }],
            replication: ReplicationMode::Async as i32,
            min_acks: 0,
            ack_timeout_ms: 0,
        })
        .await
        .map_err(fail)?;
    Ok(r.into_inner().token)
}

async fn read(c: &mut Client, key: &str, at_least: &[u8]) -> Result<proto::ReadReply, CliError> {
    Ok(c.read(proto::ReadRequest {
        key: key.into(),
        at_least: at_least.to_vec(),
        timeout_ms: if at_least.is_empty() { 0 } else { 20_000 },
    })
    .await
    .map_err(fail)?
    .into_inner())
}

async fn show_all(clients: &mut [Client], key: &str) -> Result<(), CliError> {
    for (i, c) in clients.iter_mut().enumerate() {
        let r = read(c, key, &[]).await?;
        println!("    {}: {key} = {}", NAMES[i], wire::show(&r));
    }
    Ok(())
}

/// Run the demo; every node is stopped at the end, even on failure.
pub async fn run() -> Result<(), CliError> {
    let started = Instant::now();
    let dir = tempfile::tempdir().map_err(fail)?;
    let bin = std::env::current_exe().map_err(fail)?;
    let options = ClusterOptions {
        log: "warn".into(),
        ..ClusterOptions::default()
    };
    println!("== Converge: three nodes on loopback ==");
    let mut cluster = Cluster::start(&bin, dir.path(), options, 1)
        .await
        .map_err(fail)?;
    let mut result = story(&mut cluster).await;
    let mut clean = true;
    for i in 0..3 {
        clean &= cluster.terminate(i, Duration::from_secs(10));
    }
    if result.is_ok() && !clean {
        result = Err(fail("a node did not stop cleanly on SIGTERM"));
    }
    if let Err(e) = &result {
        for (i, name) in NAMES.iter().enumerate() {
            eprintln!("--- node {name} log ---\n{}", cluster.log_tail(i, 20));
        }
        eprintln!("demo failed: {}", e.message);
    } else {
        println!(
            "\nAll three nodes stopped cleanly. Demo took {:.1} s.",
            started.elapsed().as_secs_f64()
        );
    }
    result
}

async fn story(cluster: &mut Cluster) -> Result<(), CliError> {
    for (i, n) in cluster.nodes.iter().enumerate() {
        println!(
            "  node {} listens on {}, peers reach it at {}",
            NAMES[i], n.listen, n.advertise
        );
    }
    for i in 0..3 {
        cluster.wait_alive(i, 2, WAIT).await.map_err(fail)?;
    }
    println!("  membership (SWIM): every node sees the two others alive\n");
    let mut c = Vec::new();
    for i in 0..3 {
        c.push(cluster.client(i, WAIT).await.map_err(fail)?);
    }

    println!("1. Concurrent increments: 100 likes on each node at the same time");
    let mut tasks = Vec::new();
    for cl in &c {
        let mut cl = cl.clone();
        tasks.push(tokio::spawn(async move {
            let mut last = Vec::new();
            for _ in 0..100 {
                last = write(&mut cl, "likes", Kind::Increment(1)).await?;
            }
            Ok::<_, CliError>(last)
        }));
    }
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(t.await.map_err(fail)??);
    }
    // Each node reads with the three writers' tokens: it waits until it
    // holds every increment, then reads.
    for (i, cl) in c.iter_mut().enumerate() {
        let mut v = String::new();
        for t in &tokens {
            v = wire::show(&read(cl, "likes", t).await?);
        }
        println!("    {}: likes = {v}", NAMES[i]);
    }

    println!("\n2. Black Friday: the cart is edited on both sides of a partition");
    let t = write(&mut c[0], "cart", Kind::OrsetAdd(b"socks".to_vec())).await?;
    for cl in c.iter_mut() {
        read(cl, "cart", &t).await?;
    }
    show_all(&mut c, "cart").await?;
    let ips: Vec<_> = cluster.nodes.iter().map(|n| n.ip).collect();
    cluster.faults.partition(&[&[ips[0]], &[ips[1], ips[2]]]);
    println!("  -- partition: A | B C --");
    write(&mut c[0], "cart", Kind::OrsetAdd(b"hat".to_vec())).await?;
    write(
        &mut c[0],
        "cart",
        Kind::OrsetRemove(OrRemove {
            element: b"socks".to_vec(),
            observed: Vec::new(),
        }),
    )
    .await?;
    println!("    A: adds hat, removes socks");
    write(&mut c[1], "cart", Kind::OrsetAdd(b"shoes".to_vec())).await?;
    write(&mut c[1], "cart", Kind::OrsetAdd(b"socks".to_vec())).await?;
    println!("    B: adds shoes, adds socks again (concurrently with A's remove)");

    println!("\n3. An MV-register conflict: the shipping address, written on both sides");
    write(
        &mut c[0],
        "address",
        Kind::MvWrite(MvWrite {
            value: b"1 Main St".to_vec(),
            context: Vec::new(),
        }),
    )
    .await?;
    let tc = write(
        &mut c[2],
        "address",
        Kind::MvWrite(MvWrite {
            value: b"42 Elm Ave".to_vec(),
            context: Vec::new(),
        }),
    )
    .await?;
    read(&mut c[1], "address", &tc).await?;
    println!("  while partitioned, each side sees its own story:");
    show_all(&mut c, "cart").await?;
    show_all(&mut c, "address").await?;

    println!("\n4. A lagging replica: C loses its disk and comes back empty");
    cluster.kill(2);
    let data = cluster.nodes[2].data.clone();
    std::fs::remove_dir_all(&data).map_err(fail)?;
    let mut batch = Vec::new();
    for i in 0..200 {
        batch.push(proto::Op {
            key: format!("stock:{i:03}").into_bytes(),
            kind: Some(Kind::PnAdd(10)),
        });
    }
    c[1].write(proto::WriteRequest {
        ops: batch,
        replication: ReplicationMode::Async as i32,
        min_acks: 0,
        ack_timeout_ms: 0,
    })
    .await
    .map_err(fail)?;
    println!("    B writes 200 stock counters in one batch while C is away");
    let caught = Instant::now();
    cluster.spawn(2).map_err(fail)?;
    c[2] = cluster.client(2, WAIT).await.map_err(fail)?;
    loop {
        let s = c[2]
            .status(proto::StatusRequest {})
            .await
            .map_err(fail)?
            .into_inner();
        let b = c[1]
            .status(proto::StatusRequest {})
            .await
            .map_err(fail)?
            .into_inner();
        if s.root == b.root {
            println!(
                "    C (a new replica {}…) got B's {} keys by anti-entropy {:.1} s after it started; roots equal",
                &s.replica_id[..8],
                s.keys,
                caught.elapsed().as_secs_f64()
            );
            break;
        }
        if caught.elapsed() > WAIT {
            return Err(fail("C did not catch up with B"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!("\n5. Heal the partition");
    cluster.faults.heal();
    let (root, took) = cluster
        .wait_converged(&[0, 1, 2], WAIT)
        .await
        .map_err(fail)?;
    println!("  converged {:.1} s after healing:", took.as_secs_f64());
    show_all(&mut c, "likes").await?;
    show_all(&mut c, "cart").await?;
    println!("    (socks survives: B's add was concurrent with A's remove; add wins)");
    show_all(&mut c, "address").await?;
    let r = read(&mut c[0], "address", &[]).await?;
    if let Some(V::Mv(mv)) = r.value {
        let ctx = mv.context;
        let t = write(
            &mut c[0],
            "address",
            Kind::MvWrite(MvWrite {
                value: b"42 Elm Ave".to_vec(),
                context: ctx,
            }),
        )
        .await?;
        println!("  A resolves the conflict with a write based on what it read:");
        for cl in c.iter_mut() {
            read(cl, "address", &t).await?;
        }
        show_all(&mut c, "address").await?;
    }
    let (root2, _) = cluster
        .wait_converged(&[0, 1, 2], WAIT)
        .await
        .map_err(fail)?;
    println!("\n  roots: A = B = C = {root2} (was {root} before the resolution)");
    Ok(())
}
