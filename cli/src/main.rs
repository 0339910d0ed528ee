//! `converge`: the node (`converge serve`), its client, and offline tools.
//! See `converge --help` and docs/NODE.md.

mod bench;
mod bench_quorum;
mod demo;
mod demo_cluster;

use clap::{Parser, Subcommand, ValueEnum};
use converge::{Engine, Options};
use converge_cli::client::{self, CliError, WriteMode};
use converge_cli::node::{self, NodeConfig};
use converge_cli::proto::{op::Kind, MvWrite, OrRemove, ReplicationMode};
use converge_cli::wire;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

const AFTER_HELP: &str = "\
Examples:
  converge serve --data /tmp/n1 --listen 127.0.0.1:7701
  converge serve --data /tmp/n2 --listen 127.0.0.1:7702 --join 127.0.0.1:7701
  converge --node 127.0.0.1:7701 incr likes 5
  converge --node 127.0.0.1:7702 get likes
  converge --node 127.0.0.1:7701 add cart socks --mode sync
  converge --node 127.0.0.1:7701 delete cart
  converge --node 127.0.0.1:7701 status --json
  converge verify /tmp/n1      (offline, node stopped)
  converge demo                (a three-node cluster on loopback)

Exit codes: 0 ok, 1 other error, 2 usage, 3 key absent, 4 refused by the
node (bad argument, wrong type, too large), 5 node unreachable or
unavailable (or a token not visible in time), 6 semi-sync/sync write not
acknowledged by enough peers in time (it is committed locally), 7 store
inconsistent (verify).";

#[derive(Parser)]
#[command(
    name = "converge",
    version,
    about = "Converge: a replicated CRDT store. Run nodes, talk to them, inspect stores.",
    after_help = AFTER_HELP
)]
struct Cli {
    /// The node to talk to (host:port).
    #[arg(
        long,
        global = true,
        env = "CONVERGE_NODE",
        default_value = "127.0.0.1:7700"
    )]
    node: String,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Acknowledged after the local commit.
    Async,
    /// Acknowledged once --acks live peers hold it.
    SemiSync,
    /// Acknowledged once every live peer holds it.
    Sync,
}

#[derive(clap::Args, Clone, Copy)]
struct Replication {
    /// When the write is acknowledged.
    #[arg(long, value_enum, default_value = "async")]
    mode: Mode,
    /// Semi-sync: how many peers must hold the write.
    #[arg(long, default_value_t = 1)]
    acks: u32,
    /// Semi-sync and sync: wait at most this long for the peers (0: the
    /// node's default).
    #[arg(long, default_value_t = 0)]
    ack_timeout_ms: u32,
    /// Quorum write: replicas of the key (default: the cluster's
    /// --replicas).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    n: Option<u32>,
    /// Quorum write: replicas that must commit it (default: the node's
    /// --w, a majority of n).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    w: Option<u32>,
}

impl Replication {
    fn mode(self) -> WriteMode {
        WriteMode {
            mode: match self.mode {
                Mode::Async => ReplicationMode::Async,
                Mode::SemiSync => ReplicationMode::SemiSync,
                Mode::Sync => ReplicationMode::Sync,
            },
            acks: self.acks,
            timeout_ms: self.ack_timeout_ms,
            quorum: (self.n.is_some() || self.w.is_some())
                .then(|| (self.n.unwrap_or(0), self.w.unwrap_or(0))),
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum DurabilityArg {
    /// The WAL is fsynced before a write is acknowledged.
    Sync,
    /// The WAL is written, not fsynced: survives a crash of the process.
    Buffered,
    /// No WAL (bulk loads that can be redone).
    None,
}

#[derive(Clone, Copy, ValueEnum)]
enum SetKind {
    /// OR-Set (add wins; elements can be re-added).
    Or,
    /// G-Set (grow only).
    G,
    /// 2P-Set (a removed element never comes back).
    #[value(name = "2p")]
    TwoP,
}

#[derive(Clone, Copy, ValueEnum)]
enum RegisterKind {
    /// Last writer wins.
    Lww,
    /// First writer wins.
    Fww,
    /// Multi-value: concurrent writes stay as siblings.
    Mv,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a node: serve the store in DIR over gRPC and replicate it.
    Serve(Box<ServeArgs>),
    /// Add N (default 1) to a counter (G-Counter; --pn: PN-Counter, N may
    /// be negative).
    Incr {
        /// The key.
        key: String,
        /// The amount.
        #[arg(default_value_t = 1, allow_hyphen_values = true)]
        by: i64,
        /// A PN-Counter.
        #[arg(long)]
        pn: bool,
        #[command(flatten)]
        replication: Replication,
    },
    /// Add an element to a set.
    Add {
        /// The key.
        key: String,
        /// The element.
        element: String,
        /// The kind of set.
        #[arg(long = "set", value_enum, default_value = "or")]
        kind: SetKind,
        #[command(flatten)]
        replication: Replication,
    },
    /// Remove an element from a set (OR-Set: the adds observed now).
    Rm {
        /// The key.
        key: String,
        /// The element.
        element: String,
        /// The kind of set (or, 2p).
        #[arg(long = "set", value_enum, default_value = "or")]
        kind: SetKind,
        #[command(flatten)]
        replication: Replication,
    },
    /// Write a register.
    Set {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// The kind of register.
        #[arg(long = "register", value_enum, default_value = "lww")]
        kind: RegisterKind,
        /// MV: the token of the read this write replaces (hex; default:
        /// read the key first and replace what it holds).
        #[arg(long)]
        context: Option<String>,
        #[command(flatten)]
        replication: Replication,
    },
    /// Delete a key (any type): it reads as absent until a write the
    /// delete did not see re-creates it.
    Delete {
        /// The key.
        key: String,
        #[command(flatten)]
        replication: Replication,
    },
    /// Print a key's value (exit code 3 if absent).
    Get {
        /// The key.
        key: String,
        /// Read no older than this session token (hex, from a write or
        /// read with --json or --token).
        #[arg(long)]
        at_least: Option<String>,
        /// Wait this long for the token to become visible.
        #[arg(long, default_value_t = 0)]
        wait_ms: u32,
        /// Also print the read's token.
        #[arg(long)]
        token: bool,
        /// Read a stopped node's store directory instead of a node.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Quorum read: replicas of the key (default: the cluster's
        /// --replicas).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        n: Option<u32>,
        /// Quorum read: replicas that must answer (default: the node's
        /// --r, a majority of n).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        r: Option<u32>,
    },
    /// List keys (optionally by prefix) with their CRDT types.
    Keys {
        /// Only keys starting with this prefix.
        #[arg(default_value = "")]
        prefix: String,
        /// Read a stopped node's store directory instead of a node.
        #[arg(long)]
        data: Option<PathBuf>,
    },
    /// The node, its view of the cluster (members, lag) and the roots of
    /// every live member.
    Status,
    /// Run one anti-entropy session between the node and PEER now.
    Sync {
        /// The peer's address (host:port).
        peer: String,
    },
    /// Retire a member that left for good (by replica id, as `status`
    /// shows it): the log is no longer kept for it and tombstone
    /// collection no longer waits for it. Refused while it is alive.
    Forget {
        /// The member's replica id (32 hex digits).
        replica_id: String,
    },
    /// Print a store's anti-entropy root and check it against the data
    /// (offline: the node must be stopped).
    Verify {
        /// Store directory.
        dir: PathBuf,
    },
    /// A three-node cluster on loopback: partition, concurrent edits,
    /// conflicts, healing (--local: two in-process replicas instead).
    Demo {
        /// The in-process two-replica demo.
        #[arg(long)]
        local: bool,
    },
    /// Measure increments through gRPC on a local cluster, per
    /// replication mode, against the embedded engine; replication lag;
    /// time to converge after a partition.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Store directory (created if missing).
    #[arg(long)]
    data: PathBuf,
    /// gRPC (TCP) and gossip (UDP) address.
    #[arg(long, default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// The address peers reach this node at (default: --listen).
    #[arg(long)]
    advertise: Option<SocketAddr>,
    /// A member to join through (repeatable).
    #[arg(long)]
    join: Vec<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Milliseconds between anti-entropy sessions with a random peer.
    #[arg(long, default_value_t = 10_000)]
    anti_entropy_ms: u64,
    /// SWIM probe period in milliseconds (a dead node is declared down
    /// after about 4 of them).
    #[arg(long, default_value_t = 1000)]
    probe_ms: u64,
    /// Milliseconds between collections of tombstones (deleted keys are
    /// purged once every member has seen their deletes); 0: never.
    #[arg(long, default_value_t = 10_000)]
    collect_ms: u64,
    /// Operations per pushed page.
    #[arg(long, default_value_t = 1024)]
    push_page: usize,
    /// Default wait for semi-sync/sync acknowledgements, in ms.
    #[arg(long, default_value_t = 5000)]
    ack_timeout_ms: u64,
    /// Timeout of one peer RPC (a push, a connection attempt), in ms.
    #[arg(long, default_value_t = 5000)]
    rpc_timeout_ms: u64,
    /// Longest wait a token read may ask for, in ms.
    #[arg(long, default_value_t = 30_000)]
    max_read_wait_ms: u64,
    /// Largest client request accepted, in bytes.
    #[arg(long, default_value_t = 20 << 20)]
    max_request_bytes: usize,
    /// Log bytes the changes feed keeps for peers that have not
    /// acknowledged them; a peer further behind catches up by
    /// anti-entropy.
    #[arg(long, default_value_t = 64 << 20)]
    feed_retain_bytes: u64,
    /// When an acknowledged write is safe: sync (fsync per commit group),
    /// buffered (survives a process crash), none.
    #[arg(long, value_enum, default_value = "buffered")]
    durability: DurabilityArg,
    /// Log filter: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log: tracing::Level,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
    /// Partitions of the keyspace (the same on every node, fixed for the
    /// life of the cluster); 1: one engine holds every key.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    partitions: u32,
    /// Replicas of each key (N); 0: every member. Below the member count
    /// it needs --partitions > 1.
    #[arg(long, default_value_t = 0)]
    replicas: usize,
    /// Default W of quorum writes (0: a majority of N).
    #[arg(long = "w", default_value_t = 0)]
    write_quorum: usize,
    /// Default R of quorum reads (0: a majority of N).
    #[arg(long = "r", default_value_t = 0)]
    read_quorum: usize,
    /// Sloppy quorum: a write to a replica that is down goes to the next
    /// live node of the preference list, which keeps it as a hint and
    /// hands it over when the replica returns.
    #[arg(long)]
    sloppy_quorum: bool,
    /// Hints kept at most (sloppy quorum).
    #[arg(long, default_value_t = 100_000)]
    max_hints: u64,
    /// Bytes of hints kept at most (sloppy quorum).
    #[arg(long, default_value_t = 256 << 20)]
    max_hint_bytes: u64,
    /// Read repairs waiting at most (more are dropped and counted).
    #[arg(long, default_value_t = 1024)]
    repair_queue: usize,
    /// Bytes of states the waiting read repairs hold at most (more are
    /// dropped and counted).
    #[arg(long, default_value_t = 64 << 20)]
    repair_queue_bytes: u64,
    /// Read repairs sent per second at most.
    #[arg(long, default_value_t = 1000)]
    repair_rate: u32,
    /// Milliseconds between placement checks (partitioned layout: fill
    /// new partitions, hand off old ones).
    #[arg(long, default_value_t = 2000)]
    rebalance_ms: u64,
}

fn serve(a: ServeArgs) -> Result<(), CliError> {
    let builder = tracing_subscriber::fmt()
        .with_max_level(a.log)
        .with_writer(std::io::stderr);
    if a.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
    if a.push_page == 0 || a.probe_ms == 0 || a.anti_entropy_ms == 0 || a.rpc_timeout_ms == 0 {
        return Err(CliError::new(
            2,
            "--push-page, --probe-ms, --anti-entropy-ms and --rpc-timeout-ms must be positive",
        ));
    }
    if a.listen.ip().is_unspecified() && a.advertise.is_none() {
        return Err(CliError::new(
            2,
            "listening on a wildcard address: give --advertise, the address peers can reach",
        ));
    }
    if a.partitions == 1 && a.replicas > 0 {
        return Err(CliError::new(
            2,
            "--replicas needs --partitions > 1 (with one partition every node holds every key)",
        ));
    }
    if a.replicas > 0 && (a.write_quorum > a.replicas || a.read_quorum > a.replicas) {
        return Err(CliError::new(2, "--w and --r cannot exceed --replicas"));
    }
    if a.rebalance_ms == 0 || a.repair_rate == 0 {
        return Err(CliError::new(
            2,
            "--rebalance-ms and --repair-rate must be positive",
        ));
    }
    let mut c = NodeConfig::new(a.data, a.listen);
    c.partitions = a.partitions;
    c.replicas = a.replicas;
    c.write_quorum = a.write_quorum;
    c.read_quorum = a.read_quorum;
    c.sloppy_quorum = a.sloppy_quorum;
    c.max_hints = a.max_hints;
    c.max_hint_bytes = a.max_hint_bytes;
    c.repair_queue = a.repair_queue;
    c.repair_queue_bytes = a.repair_queue_bytes;
    c.repair_rate = a.repair_rate;
    c.rebalance_interval = Duration::from_millis(a.rebalance_ms);
    c.advertise = a.advertise;
    c.join = a.join;
    c.metrics = a.metrics;
    c.anti_entropy_interval = Duration::from_millis(a.anti_entropy_ms);
    c.collect_interval = (a.collect_ms > 0).then(|| Duration::from_millis(a.collect_ms));
    c.probe_period = Duration::from_millis(a.probe_ms);
    c.push_page = a.push_page;
    c.ack_timeout = Duration::from_millis(a.ack_timeout_ms);
    c.rpc_timeout = Duration::from_millis(a.rpc_timeout_ms);
    c.max_read_wait = Duration::from_millis(a.max_read_wait_ms);
    c.max_request_bytes = a.max_request_bytes;
    c.engine.feed_retain_bytes = a.feed_retain_bytes;
    c.engine.durability = match a.durability {
        DurabilityArg::Sync => converge::Durability::Sync,
        DurabilityArg::Buffered => converge::Durability::Buffered,
        DurabilityArg::None => converge::Durability::None,
    };
    let rt = runtime()?;
    rt.block_on(node::serve(c))
        .map_err(|e| CliError::new(1, e.to_string()))
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::new(1, format!("cannot start the runtime: {e}")))
}

fn open_existing(dir: &PathBuf) -> converge::Result<Engine> {
    let opts = Options {
        create_if_missing: false,
        ..Options::default()
    };
    Engine::open(dir, opts)
}

fn offline(cmd: Cmd) -> Result<(), CliError> {
    match cmd {
        Cmd::Keys {
            prefix,
            data: Some(dir),
        } => {
            let e = open_existing(&dir)?;
            for item in e.keys(prefix.as_bytes())? {
                let (k, t) = item?;
                println!("{}\t{}", String::from_utf8_lossy(&k), t);
            }
            Ok(())
        }
        Cmd::Get {
            key,
            data: Some(dir),
            ..
        } => {
            let e = open_existing(&dir)?;
            match e.read(key.as_bytes())? {
                None => {
                    println!("(absent)");
                    Err(CliError::new(3, ""))
                }
                Some(v) => {
                    println!("{}", demo::show(&v));
                    Ok(())
                }
            }
        }
        Cmd::Verify { dir } => {
            let e = open_existing(&dir)?;
            let root = e.root()?;
            let report = e.verify()?;
            println!("root {:032x}  keys {}", root.hash, root.count);
            if report.consistent {
                println!("tree consistent with the data");
                Ok(())
            } else {
                Err(CliError::new(
                    7,
                    format!(
                        "TREE INCONSISTENT with the data: {} segments differ",
                        report.bad_segments.len()
                    ),
                ))
            }
        }
        _ => Err(CliError::new(1, "not an offline command")),
    }
}

async fn online(node: &str, json: bool, cmd: Cmd) -> Result<(), CliError> {
    let mut c = client::connect(node).await?;
    let c = &mut c;
    match cmd {
        Cmd::Incr {
            key,
            by,
            pn,
            replication,
        } => {
            let kind = if pn {
                Kind::PnAdd(by)
            } else {
                let n = u64::try_from(by)
                    .map_err(|_| CliError::new(2, "a G-Counter only grows: use --pn"))?;
                Kind::Increment(n)
            };
            let what = format!("{key} += {by}");
            client::write(
                c,
                vec![client::op(&key, kind)],
                replication.mode(),
                &what,
                json,
            )
            .await?;
        }
        Cmd::Add {
            key,
            element,
            kind,
            replication,
        } => {
            let e = element.as_bytes().to_vec();
            let kind = match kind {
                SetKind::Or => Kind::OrsetAdd(e),
                SetKind::G => Kind::GsetAdd(e),
                SetKind::TwoP => Kind::TwopAdd(e),
            };
            let what = format!("added {element:?} to {key}");
            client::write(
                c,
                vec![client::op(&key, kind)],
                replication.mode(),
                &what,
                json,
            )
            .await?;
        }
        Cmd::Rm {
            key,
            element,
            kind,
            replication,
        } => {
            let e = element.as_bytes().to_vec();
            let kind = match kind {
                SetKind::Or => Kind::OrsetRemove(OrRemove {
                    element: e,
                    observed: Vec::new(),
                }),
                SetKind::TwoP => Kind::TwopRemove(e),
                SetKind::G => return Err(CliError::new(2, "a G-Set has no remove")),
            };
            let what = format!("removed {element:?} from {key}");
            client::write(
                c,
                vec![client::op(&key, kind)],
                replication.mode(),
                &what,
                json,
            )
            .await?;
        }
        Cmd::Set {
            key,
            value,
            kind,
            context,
            replication,
        } => {
            let v = value.as_bytes().to_vec();
            let kind = match kind {
                RegisterKind::Lww => Kind::LwwSet(v),
                RegisterKind::Fww => Kind::FwwSet(v),
                RegisterKind::Mv => {
                    let context = match context {
                        Some(t) => wire::unhex(&t)
                            .ok_or_else(|| CliError::new(2, "--context is not hex"))?,
                        None => mv_context(c, &key).await?,
                    };
                    Kind::MvWrite(MvWrite { value: v, context })
                }
            };
            let what = format!("{key} = {value:?}");
            client::write(
                c,
                vec![client::op(&key, kind)],
                replication.mode(),
                &what,
                json,
            )
            .await?;
        }
        Cmd::Delete { key, replication } => {
            let kind = Kind::Delete(converge_cli::proto::Delete {
                observed: Vec::new(),
            });
            let what = format!("deleted {key}");
            client::write(
                c,
                vec![client::op(&key, kind)],
                replication.mode(),
                &what,
                json,
            )
            .await?;
        }
        Cmd::Get {
            key,
            at_least,
            wait_ms,
            token,
            n,
            r,
            ..
        } => {
            let quorum = (n.is_some() || r.is_some()).then(|| (n.unwrap_or(0), r.unwrap_or(0)));
            client::get(c, &key, at_least.as_deref(), wait_ms, json, token, quorum).await?;
        }
        Cmd::Keys { prefix, .. } => client::keys(c, &prefix, json).await?,
        Cmd::Status => client::status(c, json).await?,
        Cmd::Sync { peer } => client::sync(c, &peer, json).await?,
        Cmd::Forget { replica_id } => {
            let r = c
                .forget(converge_cli::proto::ForgetRequest {
                    replica_id: replica_id.clone(),
                })
                .await
                .map_err(CliError::status)?
                .into_inner();
            if json {
                println!("{}", serde_json::json!({"known": r.known}));
            } else if r.known {
                println!("forgot {replica_id}");
            } else {
                println!("{replica_id} was not known");
            }
        }
        _ => return Err(CliError::new(1, "not a client command")),
    }
    Ok(())
}

/// The context of an MV register's current siblings (to replace them).
async fn mv_context(
    c: &mut converge_cli::proto::converge_client::ConvergeClient<tonic::transport::Channel>,
    key: &str,
) -> Result<Vec<u8>, CliError> {
    use converge_cli::proto::read_reply::Value as V;
    let r = c
        .read(converge_cli::proto::ReadRequest {
            key: key.as_bytes().to_vec(),
            at_least: Vec::new(),
            timeout_ms: 0,
        })
        .await
        .map_err(CliError::status)?
        .into_inner();
    Ok(match r.value {
        Some(V::Mv(mv)) => mv.context,
        _ => Vec::new(),
    })
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.cmd {
        Cmd::Serve(a) => serve(*a),
        Cmd::Demo { local: true } => demo::run().map_err(CliError::from),
        Cmd::Demo { local: false } => runtime()?.block_on(demo_cluster::run()),
        Cmd::Bench(args) => runtime()?.block_on(bench::run(args, cli.json)),
        cmd @ (Cmd::Verify { .. }
        | Cmd::Keys { data: Some(_), .. }
        | Cmd::Get { data: Some(_), .. }) => offline(cmd),
        cmd => runtime()?.block_on(online(&cli.node, cli.json, cmd)),
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("converge: {}", e.message);
            }
            ExitCode::from(e.code)
        }
    }
}
