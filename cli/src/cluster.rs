//! A cluster of `converge serve` processes on loopback, for the demo, the
//! benchmarks and the cluster tests: each node on its own loopback IP,
//! optionally behind a fault-injecting proxy ([`crate::netfault`]); every
//! node joins through every other one, so any of them can restart alone.
//! Children are killed when the cluster is dropped, whatever happened.

use crate::netfault::{cluster_ip, free_port, Faults, Proxy};
use crate::proto::converge_client::ConvergeClient;
use crate::proto::StatusRequest;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How the nodes are started.
#[derive(Clone, Debug)]
pub struct ClusterOptions {
    /// Nodes.
    pub nodes: usize,
    /// Put a fault-injecting proxy in front of every node.
    pub proxied: bool,
    /// `--anti-entropy-ms`.
    pub anti_entropy_ms: u64,
    /// `--probe-ms`.
    pub probe_ms: u64,
    /// Log filter given to the nodes (`--log`).
    pub log: String,
    /// Nodes started by [`Cluster::start`] (the others by
    /// [`Cluster::spawn`]); all of them when `None`.
    pub start: Option<usize>,
    /// Nodes other than node 0 join through node 0 only (one seed).
    pub seed_only: bool,
    /// More `converge serve` arguments for every node.
    pub extra: Vec<String>,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        ClusterOptions {
            nodes: 3,
            proxied: true,
            anti_entropy_ms: 1000,
            probe_ms: 300,
            log: "info".into(),
            start: None,
            seed_only: false,
            extra: Vec::new(),
        }
    }
}

/// One node of the cluster.
pub struct NodeProc {
    /// Its loopback IP.
    pub ip: IpAddr,
    /// Where it listens (clients talk here directly).
    pub listen: SocketAddr,
    /// What peers use (its proxy when proxied).
    pub advertise: SocketAddr,
    /// Its `/metrics` address.
    pub metrics: SocketAddr,
    /// Its store.
    pub data: PathBuf,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
    child: Option<Child>,
}

/// A running cluster.
pub struct Cluster {
    /// The nodes, by index.
    pub nodes: Vec<NodeProc>,
    /// The faults every proxy applies.
    pub faults: Arc<Faults>,
    /// Held to keep the proxies running (dropping one stops it).
    _proxies: BTreeMap<usize, Proxy>,
    bin: PathBuf,
    options: ClusterOptions,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Cluster {
    /// Start `options.nodes` nodes of binary `bin` with stores under
    /// `dir`; `seed` drives the proxies' loss decisions.
    pub async fn start(
        bin: &Path,
        dir: &Path,
        options: ClusterOptions,
        seed: u64,
    ) -> std::io::Result<Cluster> {
        let faults = Faults::new(seed);
        let mut nodes = Vec::new();
        let mut proxies = BTreeMap::new();
        // A block of loopback addresses of its own (1..=250, in turn).
        static NEXT_BLOCK: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        let block = 1 + NEXT_BLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 250;
        for i in 0..options.nodes {
            let ip = cluster_ip(block, i);
            // A port found free is released until it is bound, and may be
            // taken meanwhile: when the proxy's bind finds it taken, pick
            // new ports (a start failed twice in busy full test runs; the
            // error was not kept, this is the likeliest cause; errors now
            // say which step failed).
            let mut attempts = 0;
            let (listen, advertise, metrics) = loop {
                // Three distinct ports: a port just released may be handed
                // out again.
                let mut ports = Vec::new();
                while ports.len() < 3 {
                    let p = free_port(ip).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("a free port on {ip}: {e}"))
                    })?;
                    if !ports.contains(&p) {
                        ports.push(p);
                    }
                }
                let listen = SocketAddr::new(ip, ports[0]);
                let metrics = SocketAddr::new(ip, ports[2]);
                if !options.proxied {
                    break (listen, listen, metrics);
                }
                let front = SocketAddr::new(ip, ports[1]);
                match Proxy::start(front, listen, faults.clone()).await {
                    Ok(p) => {
                        proxies.insert(i, p);
                        break (listen, front, metrics);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && attempts < 8 => {
                        attempts += 1;
                    }
                    Err(e) => {
                        let m = format!("node {i}'s proxy on {front}: {e}");
                        return Err(std::io::Error::new(e.kind(), m));
                    }
                }
            };
            nodes.push(NodeProc {
                ip,
                listen,
                advertise,
                metrics,
                data: dir.join(format!("node{i}")),
                log: dir.join(format!("node{i}.log")),
                child: None,
            });
        }
        let mut c = Cluster {
            nodes,
            faults,
            _proxies: proxies,
            bin: bin.to_path_buf(),
            options,
        };
        for i in 0..c.options.start.unwrap_or(c.nodes.len()) {
            c.spawn(i)?;
        }
        Ok(c)
    }

    /// Start node `i`'s process (again).
    pub fn spawn(&mut self, i: usize) -> std::io::Result<()> {
        let join: Vec<String> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i && (i == 0 || !self.options.seed_only || *j == 0))
            .map(|(_, n)| n.advertise.to_string())
            .collect();
        let n = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .map_err(|e| std::io::Error::new(e.kind(), format!("log {:?}: {e}", n.log)))?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("serve")
            .arg("--data")
            .arg(&n.data)
            .arg("--listen")
            .arg(n.listen.to_string())
            .arg("--advertise")
            .arg(n.advertise.to_string())
            .arg("--metrics")
            .arg(n.metrics.to_string())
            .arg("--anti-entropy-ms")
            .arg(self.options.anti_entropy_ms.to_string())
            .arg("--probe-ms")
            .arg(self.options.probe_ms.to_string())
            .arg("--log")
            .arg(&self.options.log);
        for j in join {
            cmd.arg("--join").arg(j);
        }
        cmd.args(&self.options.extra);
        cmd.stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        n.child = Some(cmd.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("spawning node {i} ({:?}): {e}", self.bin))
        })?);
        Ok(())
    }

    /// SIGKILL node `i` and reap it.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM node `i` and wait for it to exit (at most `timeout`);
    /// whether it exited cleanly (status 0).
    pub fn terminate(&mut self, i: usize, timeout: Duration) -> bool {
        let Some(mut c) = self.nodes[i].child.take() else {
            return false;
        };
        // SAFETY: kill(2) with our own child's pid, which it cannot
        // have reused: the child is not reaped yet.
        unsafe {
            libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match c.try_wait() {
                Ok(Some(s)) => return s.success(),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = c.kill();
                    let _ = c.wait();
                    return false;
                }
            }
        }
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(|c| c.id())
    }

    /// Whether node `i`'s process is running.
    pub fn running(&mut self, i: usize) -> bool {
        match self.nodes[i].child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// A client of node `i` (direct, not through its proxy), once it
    /// answers (within `timeout`).
    pub async fn client(
        &self,
        i: usize,
        timeout: Duration,
    ) -> Result<ConvergeClient<Channel>, String> {
        let deadline = Instant::now() + timeout;
        let url = format!("http://{}", self.nodes[i].listen);
        loop {
            match ConvergeClient::connect(url.clone()).await {
                Ok(mut c) => {
                    if c.status(StatusRequest {}).await.is_ok() {
                        return Ok(c);
                    }
                }
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("node {i} at {url} did not answer: {e}"))
                }
                Err(_) => {}
            }
            if Instant::now() >= deadline {
                return Err(format!("node {i} at {url} did not answer"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until node `i` sees exactly `alive` live peers.
    pub async fn wait_alive(
        &self,
        i: usize,
        alive: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let mut c = self.client(i, timeout).await?;
        let deadline = Instant::now() + timeout;
        loop {
            let s = c
                .status(StatusRequest {})
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let n = s.members.iter().filter(|m| m.state == "alive").count();
            if n == alive {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "node {i} sees {n} live peers, not {alive}, after {timeout:?}: {:?}",
                    s.members
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Wait until every running node reports the same root; returns it
    /// and how long it took.
    pub async fn wait_converged(
        &self,
        nodes: &[usize],
        timeout: Duration,
    ) -> Result<(String, Duration), String> {
        if nodes.is_empty() {
            return Err("no nodes to compare".into());
        }
        let start = Instant::now();
        let mut clients = Vec::new();
        for &i in nodes {
            clients.push(self.client(i, timeout).await?);
        }
        loop {
            let mut roots = Vec::new();
            for c in &mut clients {
                let s = c
                    .status(StatusRequest {})
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                roots.push(s.root);
            }
            if roots.windows(2).all(|w| w[0] == w[1]) {
                return Ok((roots[0].clone(), start.elapsed()));
            }
            if start.elapsed() >= timeout {
                return Err(format!("roots still differ after {timeout:?}: {roots:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines of node `i`'s log (for failure reports).
    pub fn log_tail(&self, i: usize, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}
