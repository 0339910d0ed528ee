//! Membership and failure detection: foca (SWIM) over UDP on the listen
//! address's port.
//!
//! One task owns the `Foca` instance: it feeds it received datagrams,
//! timer events (kept in a heap in delivery order, so they fire in the
//! order foca scheduled them) and commands, then sends what foca wants
//! sent and turns its notifications into the peers table: a member up
//! starts a push task, a member down stops it. A node's identity is its
//! replica id, its advertised address and an incarnation (`bump`, the
//! start time in milliseconds): a restarted node wins over its old
//! identity, and foca renames it.

use super::{push, Peer, PeerHealth, Shared};
use foca::{AccumulatingRuntime, Foca, OwnedNotification, PostcardCodec, Timer};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// A member's identity on the gossip wire.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Id {
    /// Advertised address: gRPC over TCP, gossip over UDP, same port.
    pub addr: SocketAddr,
    /// The engine's replica id (0 in the placeholder a join announces to).
    pub replica: u128,
    /// Incarnation: the start time in ms, bumped when foca renews it.
    pub bump: u64,
    /// The member's `--partitions`: a member with another count is not
    /// taken into the peers table (placement would disagree).
    pub partitions: u32,
}

impl foca::Identity for Id {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Id {
            bump: self.bump.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.bump > adversary.bump
    }
}

/// The foca configuration for a probe period: suspicion turns into
/// "down" after three periods; announcements to down members (to notice
/// their return) every five.
pub fn foca_config(probe: Duration) -> foca::Config {
    let mut c = foca::Config::new_lan(NonZeroU32::new(16).unwrap_or(NonZeroU32::MIN));
    c.probe_period = probe;
    c.probe_rtt = probe / 2;
    c.suspect_to_down_after = probe * 3;
    c.periodic_gossip = Some(foca::PeriodicParams {
        frequency: (probe / 5).max(Duration::from_millis(50)),
        num_members: std::num::NonZeroUsize::MIN.saturating_add(2),
    });
    c.periodic_announce_to_down_members = Some(foca::PeriodicParams {
        frequency: probe * 5,
        num_members: std::num::NonZeroUsize::MIN.saturating_add(1),
    });
    c
}

type Gossip = Foca<Id, PostcardCodec, rand::rngs::StdRng, foca::NoCustomBroadcast>;

enum Event {
    Data(usize),
    Timer(Timer<Id>),
    Rejoin,
    Stop,
}

/// Bind the gossip socket and start the membership task; it ends (after
/// leaving the cluster) when the node stops.
pub async fn start(shared: Arc<Shared>) -> Result<JoinHandle<()>, std::io::Error> {
    let socket = UdpSocket::bind(shared.config.listen).await?;
    Ok(tokio::spawn(run(shared, socket)))
}

async fn run(shared: Arc<Shared>, socket: UdpSocket) {
    let bump = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64);
    let me = Id {
        addr: shared.config.advertised(),
        replica: shared.me.0,
        bump,
        partitions: shared.parts.q.max(1),
    };
    let config = foca_config(shared.config.probe_period);
    let mut buf = vec![0u8; config.max_packet_size.get()];
    let rng: rand::rngs::StdRng = rand::make_rng();
    let mut foca = Foca::new(me, config, rng, PostcardCodec);
    let mut rt = AccumulatingRuntime::new();
    let mut timers: BinaryHeap<Reverse<(Instant, u64, TimerSlot)>> = BinaryHeap::new();
    let mut timer_seq = 0u64;
    let mut stopping = shared.stopping.subscribe();
    let rejoin_every = shared.config.probe_period * 2;
    let mut next_rejoin = tokio::time::Instant::now();
    loop {
        let next_timer = timers.peek().map(|Reverse((at, _, _))| *at);
        let event = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, _)) => Event::Data(n),
                Err(e) => {
                    tracing::debug!(error = %e, "gossip receive failed");
                    continue;
                }
            },
            _ = sleep_until(next_timer) => match timers.pop() {
                Some(Reverse((_, _, TimerSlot(t)))) => Event::Timer(t),
                None => continue,
            },
            _ = tokio::time::sleep_until(next_rejoin) => Event::Rejoin,
            _ = stopping.changed() => Event::Stop,
        };
        let result = match event {
            Event::Data(n) => foca.handle_data(&buf[..n], &mut rt),
            Event::Timer(t) => foca.handle_timer(t, &mut rt),
            Event::Rejoin => {
                next_rejoin = tokio::time::Instant::now() + rejoin_every;
                // Alone: announce to the seeds until someone answers.
                if foca.num_members() == 0 {
                    let mut r = Ok(());
                    for seed in &shared.config.join {
                        let placeholder = Id {
                            addr: *seed,
                            replica: 0,
                            bump: 0,
                            partitions: 0,
                        };
                        if *seed != shared.config.advertised() {
                            r = r.and(foca.announce(placeholder, &mut rt));
                        }
                    }
                    r
                } else {
                    Ok(())
                }
            }
            Event::Stop => foca.leave_cluster(&mut rt),
        };
        if let Err(e) = result {
            shared.metrics.gossip_error();
            tracing::debug!(error = %e, "foca refused input");
        }
        while let Some((to, data)) = rt.to_send() {
            if let Err(e) = socket.send_to(&data, to.addr).await {
                tracing::debug!(to = %to.addr, error = %e, "gossip send failed");
            }
        }
        let now = Instant::now();
        while let Some((after, timer)) = rt.to_schedule() {
            timer_seq += 1;
            timers.push(Reverse((now + after, timer_seq, TimerSlot(timer))));
        }
        while let Some(n) = rt.to_notify() {
            notify(&shared, n);
        }
        publish_suspects(&shared, &foca);
        if shared.is_stopping() {
            break;
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

/// A timer in the heap: ordered by (time, sequence) only.
struct TimerSlot(Timer<Id>);

impl PartialEq for TimerSlot {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl Eq for TimerSlot {}
impl PartialOrd for TimerSlot {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for TimerSlot {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

/// Turn a foca notification into the peers table.
fn notify(shared: &Arc<Shared>, n: OwnedNotification<Id>) {
    match n {
        OwnedNotification::MemberUp(id)
            if id.replica != shared.me.0 && id.partitions != shared.parts.q.max(1) =>
        {
            shared.metrics.member("refused");
            tracing::error!(peer = %converge::ReplicaId(id.replica), addr = %id.addr,
                theirs = id.partitions, ours = shared.parts.q.max(1),
                "member runs with another --partitions: not taken into placement");
        }
        OwnedNotification::MemberUp(id) if id.replica != shared.me.0 => {
            let replica = converge::ReplicaId(id.replica);
            shared.membership_changed();
            tracing::info!(peer = %replica, addr = %id.addr, "member up");
            shared.metrics.member("up");
            {
                let mut peers = shared.peers();
                let p = peers.entry(replica).or_insert_with(|| Peer {
                    addr: id.addr,
                    bump: id.bump,
                    health: PeerHealth::Alive,
                    acked: converge::CausalContext::new(),
                    pushing: false,
                });
                p.addr = id.addr;
                p.bump = id.bump;
                p.health = PeerHealth::Alive;
            }
            push::ensure_pushing(shared, replica);
        }
        OwnedNotification::MemberDown(id) => {
            let replica = converge::ReplicaId(id.replica);
            let mut peers = shared.peers();
            if let Some(p) = peers.get_mut(&replica) {
                // The down of an old incarnation after a restart is news
                // about that one only.
                if p.bump == id.bump {
                    tracing::info!(peer = %replica, addr = %id.addr, "member down");
                    shared.metrics.member("down");
                    p.health = PeerHealth::Down;
                }
            }
        }
        OwnedNotification::Rename(old, new) => {
            tracing::info!(old = ?old, new = ?new, "member renamed (new incarnation)");
            shared.metrics.member("renamed");
            // Later news (suspect, down) is about the new incarnation.
            let mut peers = shared.peers();
            if let Some(p) = peers.get_mut(&converge::ReplicaId(new.replica)) {
                if new.bump > p.bump {
                    p.bump = new.bump;
                    p.addr = new.addr;
                }
            }
        }
        OwnedNotification::Defunct => {
            tracing::warn!("this node was declared down; rejoining with a new incarnation");
        }
        OwnedNotification::Rejoin(id) => {
            tracing::info!(bump = id.bump, "rejoined the cluster");
        }
        other => tracing::trace!(notification = ?other, "foca"),
    }
}

/// Mark live members foca suspects (status output); alive again once
/// foca clears them.
fn publish_suspects(shared: &Shared, foca: &Gossip) {
    let mut peers = shared.peers();
    for m in foca.iter_membership_state() {
        let id = m.id();
        let Some(p) = peers.get_mut(&converge::ReplicaId(id.replica)) else {
            continue;
        };
        if p.bump != id.bump || p.health == PeerHealth::Down {
            continue;
        }
        p.health = match m.state() {
            foca::State::Suspect => PeerHealth::Suspect,
            foca::State::Alive => PeerHealth::Alive,
            foca::State::Down => PeerHealth::Down,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use foca::Identity;

    #[test]
    fn a_restarted_node_wins_over_its_old_incarnation() {
        let old = Id {
            addr: SocketAddr::from(([127, 0, 0, 1], 7700)),
            replica: 5,
            bump: 10,
            partitions: 1,
        };
        let new = old.renew().expect("renewable");
        assert_eq!((new.bump, new.replica, new.addr()), (11, 5, old.addr()));
        assert!(new.win_addr_conflict(&old));
        assert!(!old.win_addr_conflict(&new));
    }

    #[test]
    fn the_probe_period_sets_the_failure_detection_timers() {
        let c = foca_config(Duration::from_millis(200));
        assert_eq!(c.probe_period, Duration::from_millis(200));
        assert_eq!(c.probe_rtt, Duration::from_millis(100));
        assert_eq!(c.suspect_to_down_after, Duration::from_millis(600));
        let announce = c.periodic_announce_to_down_members.expect("on");
        assert_eq!(announce.frequency, Duration::from_millis(1000));
    }

    #[test]
    fn timers_fire_by_due_time_then_in_scheduling_order() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_millis(5);
        let mut heap = BinaryHeap::new();
        for (at, seq, token) in [(t1, 1, 1u8), (t0, 2, 2), (t0, 3, 3), (t1, 0, 4)] {
            heap.push(Reverse((
                at,
                seq,
                TimerSlot(Timer::<Id>::PeriodicGossip(token)),
            )));
        }
        let order: Vec<u8> = std::iter::from_fn(|| heap.pop())
            .map(|Reverse((_, _, TimerSlot(t)))| match t {
                Timer::PeriodicGossip(n) => n,
                _ => 0,
            })
            .collect();
        assert_eq!(order, [2, 3, 4, 1]);
    }
}
