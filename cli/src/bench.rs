//! `converge bench`: increments through gRPC on a local cluster, per
//! replication mode, against the embedded engine in the same run; the
//! replication lag under a steady load; the time to converge after a
//! partition with writes on both sides. Results in BENCHMARKS.md.

use converge::{Engine, Options};
use converge_cli::client::CliError;
use converge_cli::cluster::{Cluster, ClusterOptions};
use converge_cli::proto::{self, op::Kind, ReplicationMode};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Options of `converge bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Increments per measurement.
    #[arg(long, default_value_t = 5000)]
    pub ops: usize,
    /// Concurrent clients (threads for the embedded engine).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Nodes in the cluster.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Seconds of steady load for the replication lag.
    #[arg(long, default_value_t = 5)]
    lag_secs: u64,
    /// Writes per second of that load.
    #[arg(long, default_value_t = 200)]
    pub rate: u64,
    /// Seconds of partition (writes on both sides) before healing.
    #[arg(long, default_value_t = 10)]
    partition_secs: u64,
    /// Measure quorum requests instead (N=3, W/R 1/1, 2/2, 3/3 on 3 and 5
    /// nodes; memory; read repair after an outage).
    #[arg(long)]
    pub quorum: bool,
    /// Quorum: partitions of the clusters.
    #[arg(long, default_value_t = 16)]
    pub partitions: u32,
    /// Quorum: seconds one node is down under W=2 writes (0: skip).
    #[arg(long, default_value_t = 30)]
    pub outage_secs: u64,
}

pub fn fail(e: impl std::fmt::Display) -> CliError {
    CliError::new(1, format!("bench: {e}"))
}

/// Latencies of one measurement.
pub struct Sample {
    pub name: String,
    pub ops: usize,
    pub took: Duration,
    pub lat: Vec<Duration>,
}

impl Sample {
    /// The latencies the client `tasks` (started at `start`) measured,
    /// once they all finished.
    pub async fn gather(
        name: String,
        tasks: Vec<tokio::task::JoinHandle<Result<Vec<Duration>, tonic::Status>>>,
        start: Instant,
        pb: ProgressBar,
    ) -> Result<Sample, CliError> {
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.map_err(fail)?.map_err(fail)?);
        }
        let took = start.elapsed();
        pb.finish_and_clear();
        Ok(Sample {
            name,
            ops: lat.len(),
            took,
            lat,
        })
    }

    pub fn pct(&self, p: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        let mut v = self.lat.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i].as_secs_f64() * 1e3
    }
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.took.as_secs_f64()
    }
    pub fn json(&self) -> serde_json::Value {
        json!({"name": self.name, "ops": self.ops, "ops_per_s": self.rate(),
               "p50_ms": self.pct(0.5), "p99_ms": self.pct(0.99)})
    }
}

pub fn bar(n: usize, what: &str) -> ProgressBar {
    let b = ProgressBar::new(n as u64);
    b.set_style(
        ProgressStyle::with_template("{msg:>22} [{bar:30}] {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_message(what.to_string());
    b
}

fn embedded(args: &BenchArgs, dir: &std::path::Path) -> Result<Sample, CliError> {
    let engine = Arc::new(Engine::open(dir.join("embedded"), Options::default())?);
    let per = args.ops / args.concurrency;
    let pb = bar(per * args.concurrency, "embedded engine");
    let start = Instant::now();
    let lat = std::thread::scope(|s| {
        let hs: Vec<_> = (0..args.concurrency)
            .map(|t| {
                let engine = engine.clone();
                let pb = pb.clone();
                s.spawn(move || {
                    let key = format!("bench:{t}");
                    let mut lat = Vec::with_capacity(per);
                    for _ in 0..per {
                        let t0 = Instant::now();
                        engine.increment(key.as_bytes(), 1)?;
                        lat.push(t0.elapsed());
                        pb.inc(1);
                    }
                    Ok::<_, converge::Error>(lat)
                })
            })
            .collect();
        let mut all = Vec::new();
        for h in hs {
            match h.join() {
                Ok(r) => all.extend(r?),
                Err(_) => return Err(converge::Error::Storage("a bench thread panicked".into())),
            }
        }
        Ok(all)
    })?;
    let took = start.elapsed();
    pb.finish_and_clear();
    Ok(Sample {
        name: "embedded".into(),
        ops: lat.len(),
        took,
        lat,
    })
}

async fn grpc(
    args: &BenchArgs,
    cluster: &Cluster,
    mode: ReplicationMode,
    name: &str,
) -> Result<Sample, CliError> {
    let client = cluster
        .client(0, Duration::from_secs(30))
        .await
        .map_err(fail)?;
    let per = args.ops / args.concurrency;
    let pb = bar(per * args.concurrency, name);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..args.concurrency {
        let mut c = client.clone();
        let pb = pb.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per);
            for _ in 0..per {
                let t0 = Instant::now();
                c.write(proto::WriteRequest {
                    ops: vec![proto::Op {
                        key: format!("bench:{t}").into_bytes(),
                        kind: Some(Kind::Increment(1)),
                    }],
                    replication: mode as i32,
                    min_acks: 1,
                    ack_timeout_ms: 10_000,
                })
                .await?;
                lat.push(t0.elapsed());
                pb.inc(1);
            }
            Ok::<_, tonic::Status>(lat)
        }));
    }
    Sample::gather(name.into(), tasks, start, pb).await
}

/// Writes at `rate` per second on node 0 for `secs`; for each, the time
/// until a token read on node 1 returns.
async fn lag(args: &BenchArgs, cluster: &Cluster) -> Result<Sample, CliError> {
    let mut w = cluster
        .client(0, Duration::from_secs(30))
        .await
        .map_err(fail)?;
    let r = cluster
        .client(1, Duration::from_secs(30))
        .await
        .map_err(fail)?;
    let n = (args.rate * args.lag_secs) as usize;
    let pb = bar(n, "replication lag");
    let gap = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let start = Instant::now();
    let mut reads = Vec::new();
    let mut tick = tokio::time::interval(gap);
    for i in 0..n {
        tick.tick().await;
        let reply = w
            .write(proto::WriteRequest {
                ops: vec![proto::Op {
                    key: format!("lag:{}", i % 64).into_bytes(),
                    kind: Some(Kind::Increment(1)),
                }],
                replication: ReplicationMode::Async as i32,
                min_acks: 0,
                ack_timeout_ms: 0,
            })
            .await
            .map_err(fail)?
            .into_inner();
        let acked = Instant::now();
        let mut r = r.clone();
        let pb = pb.clone();
        reads.push(tokio::spawn(async move {
            let out = r
                .read(proto::ReadRequest {
                    key: format!("lag:{}", i % 64).into_bytes(),
                    at_least: reply.token,
                    timeout_ms: 10_000,
                })
                .await
                .map(|_| acked.elapsed());
            pb.inc(1);
            out
        }));
    }
    let mut lat = Vec::new();
    for t in reads {
        lat.push(t.await.map_err(fail)?.map_err(fail)?);
    }
    pb.finish_and_clear();
    Ok(Sample {
        name: "ack-to-visible on a peer".into(),
        ops: lat.len(),
        took: start.elapsed(),
        lat,
    })
}

/// Partition node 0 from the others, write on both sides, heal, and time
/// until all roots are equal.
async fn partition(args: &BenchArgs, cluster: &Cluster) -> Result<(u64, Duration), CliError> {
    let ips: Vec<_> = cluster.nodes.iter().map(|n| n.ip).collect();
    let rest: Vec<_> = ips[1..].to_vec();
    cluster.faults.partition(&[&[ips[0]], &rest]);
    let mut a = cluster
        .client(0, Duration::from_secs(30))
        .await
        .map_err(fail)?;
    let mut b = cluster
        .client(1, Duration::from_secs(30))
        .await
        .map_err(fail)?;
    let end = Instant::now() + Duration::from_secs(args.partition_secs);
    let pb = ProgressBar::new_spinner();
    pb.set_message(format!(
        "partitioned for {} s, writing on both sides",
        args.partition_secs
    ));
    let mut n = 0u64;
    while Instant::now() < end {
        for (c, side) in [(&mut a, "a"), (&mut b, "b")] {
            c.write(proto::WriteRequest {
                ops: vec![proto::Op {
                    key: format!("part:{side}:{}", n % 500).into_bytes(),
                    kind: Some(Kind::Increment(1)),
                }],
                replication: ReplicationMode::Async as i32,
                min_acks: 0,
                ack_timeout_ms: 0,
            })
            .await
            .map_err(fail)?;
        }
        n += 2;
        pb.tick();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    pb.finish_and_clear();
    cluster.faults.heal();
    let all: Vec<usize> = (0..cluster.nodes.len()).collect();
    let (_, took) = cluster
        .wait_converged(&all, Duration::from_secs(120))
        .await
        .map_err(fail)?;
    Ok((n, took))
}

/// Run every measurement and print the results.
pub async fn run(args: BenchArgs, json_out: bool) -> Result<(), CliError> {
    if args.quorum {
        return crate::bench_quorum::run(args, json_out).await;
    }
    if args.concurrency == 0 || args.ops < args.concurrency || args.nodes < 2 {
        return Err(CliError::new(
            2,
            "need --concurrency >= 1, --ops >= --concurrency, --nodes >= 2",
        ));
    }
    let dir = tempfile::tempdir().map_err(fail)?;
    let emb = embedded(&args, dir.path())?;
    let bin = std::env::current_exe().map_err(fail)?;
    let options = ClusterOptions {
        nodes: args.nodes,
        log: "warn".into(),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&bin, dir.path(), options, 7)
        .await
        .map_err(fail)?;
    for i in 0..args.nodes {
        cluster
            .wait_alive(i, args.nodes - 1, Duration::from_secs(30))
            .await
            .map_err(fail)?;
    }
    let mut samples = vec![emb];
    for (mode, name) in [
        (ReplicationMode::Async, "grpc async"),
        (ReplicationMode::SemiSync, "grpc semi-sync k=1"),
        (ReplicationMode::Sync, "grpc sync"),
    ] {
        samples.push(grpc(&args, &cluster, mode, name).await?);
    }
    let lag = lag(&args, &cluster).await?;
    let (written, converge_time) = partition(&args, &cluster).await?;
    drop(cluster);
    let base = samples[0].rate();
    if json_out {
        let rows: Vec<_> = samples
            .iter()
            .map(|s| {
                let mut j = s.json();
                j["ratio_to_embedded"] = json!(s.rate() / base);
                j
            })
            .collect();
        println!(
            "{}",
            json!({"increments": rows, "replication_lag": lag.json(),
                   "partition": {"seconds": args.partition_secs, "writes": written,
                                 "converge_s": converge_time.as_secs_f64()}})
        );
        return Ok(());
    }
    println!(
        "increments, {} ops, {} concurrent clients, {} nodes on loopback:",
        args.ops, args.concurrency, args.nodes
    );
    println!(
        "  {:<22} {:>10} {:>9} {:>9} {:>10}",
        "", "ops/s", "p50 ms", "p99 ms", "vs engine"
    );
    for s in &samples {
        println!(
            "  {:<22} {:>10.0} {:>9.3} {:>9.3} {:>9.3}x",
            s.name,
            s.rate(),
            s.pct(0.5),
            s.pct(0.99),
            s.rate() / base
        );
    }
    println!(
        "replication lag at {} writes/s for {} s (write ack on node 0 to token read returning on node 1): p50 {:.2} ms, p99 {:.2} ms",
        args.rate,
        args.lag_secs,
        lag.pct(0.5),
        lag.pct(0.99)
    );
    println!(
        "partition of {} s with {written} writes on both sides: converged {:.2} s after healing",
        args.partition_secs,
        converge_time.as_secs_f64()
    );
    Ok(())
}
