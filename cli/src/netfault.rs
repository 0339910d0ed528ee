//! A fault-injecting proxy for cluster tests and the demo: one per node,
//! in front of it, on the address the node advertises (TCP for gRPC and
//! UDP for gossip, same port), forwarding to its listen address.
//!
//! Each node listens on its own loopback IP (127.0.0.x) and connects from
//! it, so the proxy knows which node a connection or datagram comes from
//! by its source IP. [`Faults`] decides per (source, destination):
//! - a partition cuts the link both ways: open TCP connections across it
//!   are closed, new ones refused, datagrams dropped;
//! - a delay holds every forwarded chunk or datagram that long;
//! - a loss rate drops that share of datagrams and of new TCP connections
//!   (TCP itself never loses bytes inside a connection).
//!
//! Traffic from addresses no node has (clients, the test itself) passes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

/// The faults in force, shared by every proxy of a cluster.
#[derive(Default)]
pub struct Faults {
    inner: Mutex<FaultState>,
}

#[derive(Default, Clone)]
struct FaultState {
    /// Groups of a partition: IPs in different groups cannot talk. Empty:
    /// no partition.
    groups: Vec<BTreeSet<IpAddr>>,
    delay: Duration,
    /// Per mille of datagrams and new connections dropped.
    loss_permille: u32,
    /// A small deterministic generator (seeded by the test).
    rng: u64,
}

impl Faults {
    /// No faults; `seed` drives the loss decisions.
    pub fn new(seed: u64) -> Arc<Faults> {
        Arc::new(Faults {
            inner: Mutex::new(FaultState {
                rng: seed | 1,
                ..FaultState::default()
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Split the nodes into groups that cannot reach each other.
    pub fn partition(&self, groups: &[&[IpAddr]]) {
        self.state().groups = groups.iter().map(|g| g.iter().copied().collect()).collect();
    }

    /// Remove the partition.
    pub fn heal(&self) {
        self.state().groups.clear();
    }

    /// Delay every forwarded chunk and datagram.
    pub fn set_delay(&self, d: Duration) {
        self.state().delay = d;
    }

    /// Drop this share (0.0 to 1.0) of datagrams and new connections.
    pub fn set_loss(&self, share: f64) {
        self.state().loss_permille = (share.clamp(0.0, 1.0) * 1000.0) as u32;
    }

    /// Whether `from` may reach `to` now.
    pub fn linked(&self, from: IpAddr, to: IpAddr) -> bool {
        let s = self.state();
        let group = |ip: IpAddr| s.groups.iter().position(|g| g.contains(&ip));
        match (group(from), group(to)) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }

    fn delay(&self) -> Duration {
        self.state().delay
    }

    /// Whether to drop the next datagram or connection.
    fn lose(&self) -> bool {
        let mut s = self.state();
        if s.loss_permille == 0 {
            return false;
        }
        // xorshift64
        s.rng ^= s.rng << 13;
        s.rng ^= s.rng >> 7;
        s.rng ^= s.rng << 17;
        (s.rng % 1000) < u64::from(s.loss_permille)
    }
}

/// A running proxy; dropping it stops it.
pub struct Proxy {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Proxy {
    /// Proxy `front` (TCP and UDP) to `back`, the node at `back.ip()`.
    pub async fn start(
        front: SocketAddr,
        back: SocketAddr,
        faults: Arc<Faults>,
    ) -> std::io::Result<Proxy> {
        let tcp = TcpListener::bind(front).await?;
        let udp = UdpSocket::bind(front).await?;
        let f = faults.clone();
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((conn, from)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let f = f.clone();
                tokio::spawn(async move {
                    let to = back.ip();
                    if !f.linked(from.ip(), to) || f.lose() {
                        return; // dropped: the connection closes
                    }
                    let Ok(upstream) = TcpStream::connect(back).await else {
                        return;
                    };
                    let _ = conn.set_nodelay(true);
                    let _ = upstream.set_nodelay(true);
                    let (cr, cw) = conn.into_split();
                    let (ur, uw) = upstream.into_split();
                    let a = tokio::spawn(pipe(cr, uw, f.clone(), from.ip(), to));
                    let b = tokio::spawn(pipe(ur, cw, f.clone(), to, from.ip()));
                    let _ = tokio::join!(a, b);
                });
            }
        });
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok((n, from)) = udp.recv_from(&mut buf).await else {
                    continue;
                };
                if !faults.linked(from.ip(), back.ip()) || faults.lose() {
                    continue;
                }
                let delay = faults.delay();
                if delay.is_zero() {
                    let _ = udp.send_to(&buf[..n], back).await;
                } else {
                    let data = buf[..n].to_vec();
                    // Sent from a fresh socket on the proxy's IP after the
                    // delay (the node reads identities, not sources).
                    let ip = front.ip();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        if let Ok(s) = UdpSocket::bind(SocketAddr::new(ip, 0)).await {
                            let _ = s.send_to(&data, back).await;
                        }
                    });
                }
            }
        });
        Ok(Proxy {
            tasks: vec![tcp_task, udp_task],
        })
    }
}

/// Copy one direction of a connection, applying the faults to each chunk;
/// a partition closes it.
async fn pipe(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    f: Arc<Faults>,
    from: IpAddr,
    to: IpAddr,
) {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = tokio::select! {
            r = r.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            // Notice a partition on an idle connection too.
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                if f.linked(from, to) { continue } else { break }
            }
        };
        if !f.linked(from, to) {
            break;
        }
        let d = f.delay();
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = w.shutdown().await;
}

/// Per-node loopback IPs: node `i` (from 0) at 127.0.0.(10 + i).
pub fn node_ip(i: usize) -> IpAddr {
    cluster_ip(0, i)
}

/// Node `i` of the cluster using address block `block`: 127.0.block.(10 +
/// i). Clusters started at the same time in one process (tests run in
/// parallel) use different blocks, so a port one picks can never be one
/// the other is about to bind or connect from.
pub fn cluster_ip(block: u8, i: usize) -> IpAddr {
    IpAddr::from([127, 0, block, 10 + i as u8])
}

/// A port free for both TCP and UDP on `ip` now (the OS picks it; another
/// process could take it before it is used, which a test then reports as
/// a bind error).
pub fn free_port(ip: IpAddr) -> std::io::Result<u16> {
    for _ in 0..64 {
        let t = std::net::TcpListener::bind(SocketAddr::new(ip, 0))?;
        let port = t.local_addr()?.port();
        if std::net::UdpSocket::bind(SocketAddr::new(ip, port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no port free for both TCP and UDP"))
}

/// Map of proxies by node index, for callers that keep them together.
pub type Proxies = BTreeMap<usize, Proxy>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_cuts_only_across_groups() {
        let f = Faults::new(1);
        let (a, b, c, client) = (
            node_ip(0),
            node_ip(1),
            node_ip(2),
            IpAddr::from([127, 0, 0, 1]),
        );
        assert!(f.linked(a, b));
        f.partition(&[&[a], &[b, c]]);
        assert!(!f.linked(a, b) && !f.linked(c, a));
        assert!(f.linked(b, c) && f.linked(c, b));
        assert!(f.linked(client, a), "addresses of no node pass");
        f.heal();
        assert!(f.linked(a, b));
    }

    #[test]
    fn losses_follow_the_rate_and_the_seed() {
        let f = Faults::new(9);
        assert!(!(0..100).any(|_| f.lose()));
        f.set_loss(1.0);
        assert!((0..100).all(|_| f.lose()));
        let run = |seed| {
            let f = Faults::new(seed);
            f.set_loss(0.3);
            (0..1000).map(|_| f.lose()).collect::<Vec<_>>()
        };
        let a = run(42);
        assert_eq!(a, run(42), "one seed, one schedule");
        let lost = a.iter().filter(|l| **l).count();
        assert!((200..400).contains(&lost), "{lost} of 1000 lost at 30 %");
    }
}
