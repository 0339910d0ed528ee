//! The simulated network of the simulation: a seeded random source, and
//! messages between replicas that are dropped, duplicated, delayed (hence
//! reordered) and cut by partitions, in virtual time.

use converge::{CausalContext, Dot};
use std::collections::BTreeSet;

/// SplitMix64: one `u64` seed gives the whole sequence.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}

/// One delta of a shipped write, with what the model needs to know of it.
#[derive(Clone, Debug)]
pub struct WireDelta {
    /// The key it is merged into.
    pub key: Vec<u8>,
    /// The encoded delta (`Delta::encode`).
    pub bytes: Vec<u8>,
    /// Its dot.
    pub dot: Dot,
    /// What a replica must hold before applying it.
    pub needs: BTreeSet<Dot>,
}

/// What a message carries.
#[derive(Clone, Debug)]
pub enum Payload {
    /// The deltas of one write, merged at the receiver as one batch.
    Deltas(Vec<WireDelta>),
    /// A page of the sender's changes feed.
    Page {
        /// `Changes::encode()`.
        bytes: Vec<u8>,
        /// The page's operations.
        dots: BTreeSet<Dot>,
        /// Its dependencies.
        needs: BTreeSet<Dot>,
    },
    /// A replica's record, acknowledged to a peer's changes feed (which
    /// may then truncate its log).
    Ack(CausalContext),
    /// A message of a sync session, for its initiator or its responder.
    Sync {
        /// The simulation's number of the session.
        session: u64,
        /// True for the initiator.
        to_initiator: bool,
        /// The message.
        bytes: Vec<u8>,
    },
}

/// A message in flight.
pub struct Message {
    /// Sending replica.
    pub from: usize,
    /// Receiving replica.
    pub to: usize,
    /// Virtual time at which it arrives.
    due: u64,
    /// Tie-break among messages due at the same time: sending order.
    order: u64,
    /// Contents.
    pub payload: Payload,
}

/// Counters of what the network did.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    /// Messages handed to the network.
    pub sent: u64,
    /// Dropped at sending.
    pub dropped: u64,
    /// Sent twice.
    pub duplicated: u64,
    /// Dropped at delivery because a partition separated the two replicas.
    pub cut: u64,
    /// Delivered.
    pub delivered: u64,
}

impl NetStats {
    /// Add another run's counters.
    pub fn add(&mut self, o: &NetStats) {
        self.sent += o.sent;
        self.dropped += o.dropped;
        self.duplicated += o.duplicated;
        self.cut += o.cut;
        self.delivered += o.delivered;
    }
}

/// The network between the replicas.
#[derive(Default)]
pub struct Net {
    queue: Vec<Message>,
    order: u64,
    /// Under a partition, the side of each replica.
    side: Option<Vec<bool>>,
    /// Drop, duplicate and delay messages (off while healing).
    pub faulty: bool,
    /// While faulty: one message in this many is dropped, one in
    /// `dup_one_in` sent twice, and each delayed by 1 to `max_delay` ticks.
    pub drop_one_in: u64,
    /// See `drop_one_in`.
    pub dup_one_in: u64,
    /// See `drop_one_in`.
    pub max_delay: usize,
    /// What happened so far.
    pub stats: NetStats,
}

impl Net {
    /// A network with its faults on, their rates drawn from `rng`: drops of
    /// 1 in 6, 12 or 40; duplicates of 1 in 6, 16 or 64; delays up to 3, 6
    /// or 12 ticks.
    pub fn faulty(rng: &mut Rng) -> Net {
        Net {
            faulty: true,
            drop_one_in: [6, 12, 40][rng.below(3)],
            dup_one_in: [6, 16, 64][rng.below(3)],
            max_delay: [3, 6, 12][rng.below(3)],
            ..Net::default()
        }
    }

    /// Send `payload` at virtual time `now`.
    pub fn send(&mut self, rng: &mut Rng, now: u64, from: usize, to: usize, payload: Payload) {
        self.stats.sent += 1;
        let copies = if !self.faulty {
            1
        } else if rng.chance(1, self.drop_one_in) {
            self.stats.dropped += 1;
            0
        } else if rng.chance(1, self.dup_one_in) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = if self.faulty {
                1 + rng.below(self.max_delay) as u64
            } else {
                1
            };
            self.order += 1;
            self.queue.push(Message {
                from,
                to,
                due: now + delay,
                order: self.order,
                payload: payload.clone(),
            });
        }
    }

    /// Split the replicas into two sides; messages between them are lost.
    pub fn partition(&mut self, side: Vec<bool>) {
        self.side = Some(side);
    }

    /// End the partition.
    pub fn heal(&mut self) {
        self.side = None;
    }

    /// Whether a partition is in force.
    pub fn is_partitioned(&self) -> bool {
        self.side.is_some()
    }

    /// The next message due at or before `until` (earliest first), if any;
    /// messages across the partition are dropped on the way.
    pub fn next_due(&mut self, until: u64) -> Option<Message> {
        loop {
            let i = self
                .queue
                .iter()
                .enumerate()
                .filter(|(_, m)| m.due <= until)
                .min_by_key(|(_, m)| (m.due, m.order))
                .map(|(i, _)| i)?;
            let m = self.queue.remove(i);
            if let Some(side) = &self.side {
                if side[m.from] != side[m.to] {
                    self.stats.cut += 1;
                    continue;
                }
            }
            self.stats.delivered += 1;
            return Some(m);
        }
    }
}

/// The dots of a context.
pub fn dots_of(c: &CausalContext) -> BTreeSet<Dot> {
    let mut out = BTreeSet::new();
    for (r, n) in c.vv().iter() {
        out.extend((1..=n).map(|k| Dot::new(r, k)));
    }
    out.extend(c.cloud().iter().copied());
    out
}
