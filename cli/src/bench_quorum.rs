//! `converge bench --quorum`: quorum writes and reads (N=3, W/R = 1/1,
//! 2/2, 3/3) on 3 and 5 nodes in the same run, the resident memory of
//! the nodes, and the read-repair traffic after a node returns from an
//! outage. Results in BENCHMARKS.md.

use crate::bench::{bar, fail, BenchArgs, Sample};
use converge_cli::client::CliError;
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::{self, op::Kind};
use serde_json::json;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(60);
/// Keys the quorum measurements spread over.
const KEYS: usize = 1000;

fn extra(args: &BenchArgs) -> Vec<String> {
    [
        "--partitions",
        &args.partitions.to_string(),
        "--replicas",
        "3",
        "--collect-ms",
        "0",
        "--rebalance-ms",
        "500",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn start(args: &BenchArgs, nodes: usize, dir: &std::path::Path) -> Result<Cluster, CliError> {
    let bin = std::env::current_exe().map_err(fail)?;
    let options = ClusterOptions {
        nodes,
        proxied: false,
        log: "warn".into(),
        // Periodic anti-entropy out of the way: the outage measurement
        // counts what read repair sends.
        anti_entropy_ms: 600_000,
        extra: extra(args),
        ..ClusterOptions::default()
    };
    let cl = Cluster::start(&bin, dir, options, 11).await.map_err(fail)?;
    for i in 0..nodes {
        cl.wait_alive(i, nodes - 1, WAIT).await.map_err(fail)?;
    }
    // Every partition filled on its replicas.
    for i in 0..nodes {
        let mut c = cl.client(i, WAIT).await.map_err(fail)?;
        let deadline = Instant::now() + WAIT;
        loop {
            let s = c
                .status(proto::StatusRequest {})
                .await
                .map_err(fail)?
                .into_inner();
            if s.placement
                .iter()
                .all(|p| !p.replicas.contains(&s.replica_id) || p.ready)
            {
                break;
            }
            if Instant::now() > deadline {
                return Err(fail(format!("node {i}: partitions not filled")));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(cl)
}

/// `args.ops` quorum increments (write) or reads, `args.concurrency`
/// clients spread over the nodes.
async fn run_ops(
    args: &BenchArgs,
    cl: &Cluster,
    nodes: usize,
    w_or_r: u32,
    write: bool,
    name: String,
) -> Result<Sample, CliError> {
    let mut clients = Vec::new();
    for i in 0..nodes {
        clients.push(cl.client(i, WAIT).await.map_err(fail)?);
    }
    let per = args.ops / args.concurrency;
    let pb = bar(per * args.concurrency, &name);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..args.concurrency {
        let mut c = clients[t % nodes].clone();
        let pb = pb.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for i in 0..per {
                let key = format!("q:{}", (t * per + i) % KEYS).into_bytes();
                let t0 = Instant::now();
                if write {
                    c.quorum_write(proto::QuorumWriteRequest {
                        ops: vec![proto::Op {
                            key,
                            kind: Some(Kind::Increment(1)),
                        }],
                        n: 3,
                        w: w_or_r,
                        ack_timeout_ms: 10_000,
                    })
                    .await?;
                } else {
                    c.quorum_read(proto::QuorumReadRequest {
                        key,
                        at_least: Vec::new(),
                        timeout_ms: 0,
                        n: 3,
                        r: w_or_r,
                    })
                    .await?;
                }
                lat.push(t0.elapsed());
                pb.inc(1);
            }
            Ok::<_, tonic::Status>(lat)
        }));
    }
    Sample::gather(name, tasks, start, pb).await
}

/// Resident memory of the running nodes, in MiB (from /proc).
fn rss_mib(cl: &Cluster, nodes: usize) -> Vec<f64> {
    (0..nodes)
        .filter_map(|i| {
            let pid = cl.pid(i)?;
            let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let kb: f64 = s
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kb / 1024.0)
        })
        .collect()
}

/// The sum of an unlabelled metric over the running nodes.
async fn metric_sum(cl: &Cluster, nodes: &[usize], name: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut total = 0;
    for &i in nodes {
        let Ok(mut s) = tokio::net::TcpStream::connect(cl.nodes[i].metrics).await else {
            continue;
        };
        if s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").await.is_err() {
            continue;
        }
        let mut out = String::new();
        let _ = s.read_to_string(&mut out).await;
        total += out
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

/// Node 4 down for `args.outage_secs` under W=2 writes; then R=3 reads of
/// every key: the read repairs (count, bytes) they cause.
async fn outage(
    args: &BenchArgs,
    cl: &mut Cluster,
    nodes: usize,
) -> Result<serde_json::Value, CliError> {
    let victim = nodes - 1;
    let others: Vec<usize> = (0..victim).collect();
    let all: Vec<usize> = (0..nodes).collect();
    cl.kill(victim);
    let mut c = cl.client(0, WAIT).await.map_err(fail)?;
    let end = Instant::now() + Duration::from_secs(args.outage_secs);
    let gap = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut tick = tokio::time::interval(gap);
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(format!(
        "node {victim} down for {} s, W=2 writes",
        args.outage_secs
    ));
    let mut written = 0u64;
    let mut failed = 0u64;
    while Instant::now() < end {
        tick.tick().await;
        let r = c
            .quorum_write(proto::QuorumWriteRequest {
                ops: vec![proto::Op {
                    key: format!("q:{}", written as usize % KEYS).into_bytes(),
                    kind: Some(Kind::Increment(1)),
                }],
                n: 3,
                w: 2,
                ack_timeout_ms: 10_000,
            })
            .await;
        if r.is_ok() {
            written += 1;
        } else {
            failed += 1;
        }
        pb.tick();
    }
    pb.finish_and_clear();
    cl.spawn(victim).map_err(fail)?;
    for i in 0..nodes {
        cl.wait_alive(i, nodes - 1, WAIT).await.map_err(fail)?;
    }
    let repairs0 = metric_sum(cl, &all, "converge_read_repairs_total").await;
    let bytes0 = metric_sum(cl, &all, "converge_read_repair_bytes_total").await;
    let start = Instant::now();
    let mut stale = 0u64;
    for k in 0..KEYS {
        let r = c
            .quorum_read(proto::QuorumReadRequest {
                key: format!("q:{k}").into_bytes(),
                at_least: Vec::new(),
                timeout_ms: 0,
                n: 3,
                r: 3,
            })
            .await
            .map_err(fail)?
            .into_inner();
        stale += u64::from(r.stale);
    }
    let read_s = start.elapsed().as_secs_f64();
    // Let the repair queue drain.
    let mut repairs;
    let deadline = Instant::now() + WAIT;
    loop {
        repairs = metric_sum(cl, &all, "converge_read_repairs_total").await - repairs0;
        if repairs >= stale || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let bytes = metric_sum(cl, &all, "converge_read_repair_bytes_total").await - bytes0;
    let dropped = metric_sum(cl, &others, "converge_read_repairs_dropped_total").await;
    Ok(
        json!({"outage_s": args.outage_secs, "writes_during_outage": written,
              "writes_failed": failed, "keys_read": KEYS, "read_s": read_s,
              "stale_answers": stale, "read_repairs": repairs, "read_repair_bytes": bytes,
              "repairs_dropped": dropped}),
    )
}

/// The quorum benchmark (`converge bench --quorum`).
pub async fn run(args: BenchArgs, json_out: bool) -> Result<(), CliError> {
    if args.concurrency == 0 || args.ops < args.concurrency {
        return Err(CliError::new(
            2,
            "need --concurrency >= 1, --ops >= --concurrency",
        ));
    }
    let mut rows = Vec::new();
    let mut rss = Vec::new();
    let mut outage_result = serde_json::Value::Null;
    for nodes in [3usize, 5] {
        let dir = tempfile::tempdir().map_err(fail)?;
        let mut cl = start(&args, nodes, dir.path()).await?;
        let idle = rss_mib(&cl, nodes);
        for q in [1u32, 2, 3] {
            let w = run_ops(&args, &cl, nodes, q, true, format!("{nodes} nodes W={q}")).await?;
            let r = run_ops(&args, &cl, nodes, q, false, format!("{nodes} nodes R={q}")).await?;
            rows.push((nodes, q, w, r));
        }
        let mem = rss_mib(&cl, nodes);
        rss.push((nodes, idle, mem));
        if nodes == 5 && args.outage_secs > 0 {
            outage_result = outage(&args, &mut cl, nodes).await?;
        }
    }
    if json_out {
        let r: Vec<_> = rows
            .iter()
            .map(|(n, q, w, r)| json!({"nodes": n, "w_r": q, "write": w.json(), "read": r.json()}))
            .collect();
        let m: Vec<_> = rss
            .iter()
            .map(|(n, idle, v)| json!({"nodes": n, "rss_mib_idle": idle, "rss_mib": v}))
            .collect();
        println!(
            "{}",
            json!({"quorum": r, "rss": m, "outage": outage_result,
                   "partitions": args.partitions, "replicas": 3})
        );
        return Ok(());
    }
    println!(
        "quorum increments and reads, N=3, {} partitions, {} ops each, {} concurrent clients spread over the nodes, loopback:",
        args.partitions, args.ops, args.concurrency
    );
    println!(
        "  {:<6} {:<5} {:>10} {:>8} {:>8}   {:>10} {:>8} {:>8}",
        "nodes", "W/R", "write/s", "p50 ms", "p99 ms", "read/s", "p50 ms", "p99 ms"
    );
    for (n, q, w, r) in &rows {
        println!(
            "  {:<6} {:<5} {:>10.0} {:>8.2} {:>8.2}   {:>10.0} {:>8.2} {:>8.2}",
            n,
            format!("{q}/{q}"),
            w.rate(),
            w.pct(0.5),
            w.pct(0.99),
            r.rate(),
            r.pct(0.5),
            r.pct(0.99)
        );
    }
    for (n, idle, mem) in &rss {
        let show = |v: &Vec<f64>| {
            v.iter()
                .map(|m| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "resident memory, {n} nodes (MiB each): {} after start, {} after the runs",
            show(idle),
            show(mem)
        );
    }
    if !outage_result.is_null() {
        println!("outage: {outage_result}");
    }
    Ok(())
}
