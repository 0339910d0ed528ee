//! The simulated world: N replicas (real engines in temporary directories),
//! the network between them, sync sessions driven message by message, and
//! crashes; every step is checked against the model.

use super::model::{needs_of, observed_by, Intent, OpRec, RecordModel};
use super::net::{dots_of, Message, Net, Payload, Rng, WireDelta};
use converge::crdt::LwwRegister;
use converge::sync::{Config, Outcome, Session, SyncError};
use converge::{Batch, CausalContext, Dot, Engine, Error, ReplicaId, State, Timestamp};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

#[path = "checks.rs"]
mod checks;

/// The keys, by type: G-Counter, PN-Counter, G-Set, 2P-Set, OR-Set, LWW,
/// FWW and MV register (the first letter says which).
pub const KEYS: [&str; 16] = [
    "g0", "g1", "p0", "p1", "s0", "s1", "t0", "t1", "o0", "o1", "l0", "l1", "f0", "f1", "m0", "m1",
];

/// Sessions older than this many ticks are abandoned (a lost message
/// leaves a session waiting forever; an embedder would time it out).
const SESSION_TIMEOUT: u64 = 40;

/// Counters of what a run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct SimStats {
    /// Local operations committed.
    pub ops: u64,
    /// Sync sessions started, and how many ended converged or equal on
    /// both sides, and how many failed on a side.
    pub sessions: u64,
    /// See `sessions`.
    pub converged: u64,
    /// See `sessions`.
    pub failed: u64,
    /// Feed pages applied, parked, or found duplicate.
    pub pages: [u64; 3],
    /// Crashes (drop without clean close) and clean restarts.
    pub crashes: u64,
    /// See `crashes`.
    pub restarts: u64,
    /// Pages refused because the log was truncated past the cursor.
    pub too_old: u64,
    /// Heals followed by the full checks.
    pub heals: u64,
    /// Token reads satisfied, and refused as not yet visible.
    pub tokens_ok: u64,
    /// See `tokens_ok`.
    pub tokens_not_yet: u64,
    /// The network's counters.
    pub net: super::net::NetStats,
}

impl SimStats {
    /// Add another run's counters.
    pub fn add(&mut self, o: &SimStats) {
        self.ops += o.ops;
        self.sessions += o.sessions;
        self.converged += o.converged;
        self.failed += o.failed;
        for i in 0..3 {
            self.pages[i] += o.pages[i];
        }
        self.crashes += o.crashes;
        self.restarts += o.restarts;
        self.heals += o.heals;
        self.too_old += o.too_old;
        self.tokens_ok += o.tokens_ok;
        self.tokens_not_yet += o.tokens_not_yet;
        self.net.add(&o.net);
    }
}

struct Replica {
    engine: Option<Arc<Engine>>,
    dir: tempfile::TempDir,
}

struct SimSession {
    a: usize,
    b: usize,
    init: Session<Arc<Engine>>,
    resp: Session<Arc<Engine>>,
    /// Each side's record when it took it for the session.
    snap_a: BTreeSet<Dot>,
    snap_b: Option<BTreeSet<Dot>>,
    learned_a: bool,
    learned_b: bool,
    started: u64,
}

/// The whole simulated system.
pub struct World {
    seed: u64,
    rng: Rng,
    now: u64,
    reps: Vec<Replica>,
    models: Vec<RecordModel>,
    ops: Vec<OpRec>,
    net: Net,
    sessions: BTreeMap<u64, SimSession>,
    next_session: u64,
    next_tag: u64,
    trace: VecDeque<String>,
    /// (a, b): replica a keeps its changes feed's log for b.
    registered: BTreeSet<(usize, usize)>,
    /// Crashes happen in this many of every 400 steps (1 to 4).
    crashiness: usize,
    digest: u64,
    stats: SimStats,
}

fn options(r: usize) -> converge::Options {
    let mut o = converge::Options {
        replica_id: Some(ReplicaId(r as u128 + 1)),
        block_cache_bytes: 1 << 20,
        write_buffer_bytes: 1 << 20,
        background_jobs: 1,
        ..converge::Options::default()
    };
    o.durability = converge::Durability::Buffered;
    o
}

impl World {
    /// A world of `n` replicas for `seed`.
    pub fn new(seed: u64, n: usize) -> World {
        let mut w = World {
            seed,
            rng: Rng::new(seed),
            now: 0,
            reps: Vec::new(),
            models: vec![RecordModel::default(); n],
            ops: Vec::new(),
            net: Net::default(),
            sessions: BTreeMap::new(),
            next_session: 0,
            next_tag: 0,
            trace: VecDeque::new(),
            registered: BTreeSet::new(),
            crashiness: 1,
            digest: 0xcbf2_9ce4_8422_2325,
            stats: SimStats::default(),
        };
        w.net = Net::faulty(&mut w.rng);
        w.crashiness = 1 + w.rng.below(4);
        // Register writes are ordered by a hybrid clock that reads the
        // wall clock. Every replica first merges a register stamped far
        // in the future: its clock observes it and from then on only
        // counts (wall time never catches up), so stamps, and with them
        // message sizes and the whole run, depend on the seed alone.
        let mut clock = LwwRegister::default();
        clock.set(
            Timestamp {
                wall_ms: 1 << 50,
                logical: 0,
            },
            ReplicaId(0),
            b"sim",
        );
        let clock = converge::codec::encode_state(&State::LwwRegister(clock));
        for r in 0..n {
            let dir = tempfile::tempdir().expect("temp dir");
            let e = Engine::open(dir.path(), options(r)).expect("open");
            e.merge(b"clock", &clock).expect("clock");
            // Half the peers are registered with the changes feed: the log
            // is kept for them; the others may find it truncated past
            // their cursor (`CursorTooOld`) and fall back to a session.
            for p in (0..n).filter(|p| *p != r) {
                if w.rng.chance(1, 2) {
                    e.register_peer(ReplicaId(p as u128 + 1)).expect("register");
                    w.registered.insert((r, p));
                }
            }
            w.reps.push(Replica {
                engine: Some(Arc::new(e)),
                dir,
            });
        }
        w
    }

    /// What the run did.
    pub fn stats(&self) -> SimStats {
        let mut s = self.stats;
        s.net = self.net.stats;
        s
    }

    fn engine(&self, r: usize) -> Arc<Engine> {
        self.reps[r].engine.clone().expect("replica is open")
    }

    /// Record an event: the last ones are kept for a failure report, and
    /// every one is folded into the run's digest.
    fn log(&mut self, event: String) {
        let line = format!("t={} {event}", self.now);
        for b in line.bytes().chain([b'\n']) {
            self.digest = (self.digest ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        if self.trace.len() == 60 {
            self.trace.pop_front();
        }
        self.trace.push_back(line);
    }

    /// A hash of every event of the run so far (FNV-1a): two runs of one
    /// seed must agree on it.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// One tick: a random action, then every message due is delivered,
    /// then the records are checked against the model.
    pub fn step(&mut self) {
        self.now += 1;
        let n = self.reps.len();
        let r = self.rng.below(n);
        let peer = (r + 1 + self.rng.below(n - 1)) % n;
        match self.rng.below(100) {
            0..=44 => self.operate(r),
            45..=54 => {
                self.start_session(r, peer);
            }
            55..=64 => self.ship_page(r, peer),
            65..=79 => self.read_with_token(r),
            80..=83 if self.rng.below(4) < self.crashiness => self.restart(r, false),
            80..=83 if self.rng.chance(1, 8) => self.restart(r, true),
            84..=86 if !self.net.is_partitioned() => {
                let side: Vec<bool> = (0..n).map(|_| self.rng.chance(1, 2)).collect();
                self.log(format!("partition {side:?}"));
                self.net.partition(side);
            }
            87..=89 => {
                self.log("partition healed".into());
                self.net.heal();
            }
            90..=94 if self.registered.contains(&(peer, r)) => {
                let cursor = self.engine(r).context();
                self.net
                    .send(&mut self.rng, self.now, r, peer, Payload::Ack(cursor));
            }
            _ => {}
        }
        while let Some(m) = self.net.next_due(self.now) {
            self.deliver(m);
        }
        let now = self.now;
        self.sessions.retain(|_, s| {
            !(s.init.is_finished() && s.resp.is_finished()) && now - s.started < SESSION_TIMEOUT
        });
        self.check_records();
    }

    /// A batch of one to three random operations at replica `r`; its
    /// deltas are sent to every other replica as one message each.
    fn operate(&mut self, r: usize) {
        let e = self.engine(r);
        let mut b = Batch::new();
        let mut intents = Vec::new();
        let mut in_batch: BTreeSet<&str> = BTreeSet::new();
        // An OR-Set remove of a member read before the batch removes
        // nothing (no operation, no delta) after the batch deleted the key
        // or removed that member already: such removes are not generated.
        let mut deleted: BTreeSet<&str> = BTreeSet::new();
        let mut removed: BTreeSet<(&str, Vec<u8>)> = BTreeSet::new();
        for _ in 0..1 + self.rng.below(3) {
            let key = KEYS[self.rng.below(KEYS.len())];
            // Now and then a delete of a key that reads as present and
            // that the batch has not written yet (what it observes is then
            // the stored state). Not of FWW keys: the model does not
            // follow their epochs.
            if !key.starts_with('f') && !in_batch.contains(key) && self.rng.chance(1, 8) {
                let state = e.state(key.as_bytes()).expect("state");
                if let Some(state) = state.filter(|s| !s.is_absent()) {
                    let observed = self
                        .ops
                        .iter()
                        .filter(|o| o.key == key.as_bytes() && observed_by(&state, &o.delta))
                        .map(|o| o.dot)
                        .collect();
                    b.delete(key, None);
                    intents.push(Intent::Delete { observed });
                    in_batch.insert(key);
                    deleted.insert(key);
                    continue;
                }
            }
            in_batch.insert(key);
            self.next_tag += 1;
            let tag = format!("{r}:{}", self.next_tag).into_bytes();
            let intent = match key.as_bytes()[0] {
                b'g' => {
                    let n = 1 + self.rng.below(5) as u64;
                    b.increment(key, n);
                    Intent::Add(n as i128)
                }
                b'p' => {
                    let n = self.rng.below(7) as i64 - 3;
                    b.pn_add(key, n);
                    Intent::Add(n as i128)
                }
                b's' => {
                    b.gset_add(key, tag.clone());
                    Intent::Insert(tag)
                }
                t @ (b't' | b'o') => {
                    let mut members = e.set_members(key.as_bytes()).expect("read").members;
                    if t == b'o' {
                        if deleted.contains(key) {
                            members.clear();
                        }
                        members.retain(|m| !removed.contains(&(key, m.clone())));
                    }
                    if !members.is_empty() && self.rng.chance(1, 3) {
                        let m = members[self.rng.below(members.len())].clone();
                        if t == b't' {
                            b.twop_remove(key, m.clone());
                        } else {
                            b.orset_remove(key, m.clone());
                            removed.insert((key, m.clone()));
                        }
                        Intent::Remove(m)
                    } else {
                        if t == b't' {
                            b.twop_add(key, tag.clone());
                        } else {
                            b.orset_add(key, tag.clone());
                        }
                        Intent::Insert(tag)
                    }
                }
                b'l' => {
                    b.lww_set(key, tag);
                    Intent::Set
                }
                b'f' => {
                    b.fww_set(key, tag);
                    Intent::Set
                }
                _ => {
                    let (ctx, replaces) = if self.rng.chance(2, 3) {
                        let read = e.mv_read(key.as_bytes()).expect("read");
                        let seen = read.siblings.into_iter().map(|s| s.value).collect();
                        (read.context, seen)
                    } else {
                        (CausalContext::new(), Vec::new())
                    };
                    b.mv_write(key, tag.clone(), ctx);
                    Intent::Write {
                        value: tag,
                        replaces,
                    }
                }
            };
            intents.push(intent);
        }
        let deltas = e.write(&b).expect("write");
        assert_eq!(deltas.len(), intents.len());
        let mut wire = Vec::new();
        for (d, intent) in deltas.into_iter().zip(intents) {
            self.models[r].local(d.dot());
            wire.push(WireDelta {
                key: d.key.clone(),
                bytes: d.delta.encode(),
                dot: d.dot(),
                needs: needs_of(&d.delta),
            });
            self.ops.push(OpRec {
                dot: d.dot(),
                key: d.key,
                delta: d.delta.state,
                intent,
            });
            self.stats.ops += 1;
        }
        let dots: Vec<u64> = wire.iter().map(|w| w.dot.counter).collect();
        self.log(format!("op at {r}: dots {dots:?}"));
        for to in (0..self.reps.len()).filter(|t| *t != r) {
            self.net.send(
                &mut self.rng,
                self.now,
                r,
                to,
                Payload::Deltas(wire.clone()),
            );
        }
    }

    /// A page of `from`'s changes feed, from `to`'s record, is sent to `to`.
    fn ship_page(&mut self, from: usize, to: usize) {
        let cursor = self.engine(to).context();
        let limit = 1 + self.rng.below(4);
        let page = match self.engine(from).changes_since(&cursor, limit) {
            Ok(page) => page,
            Err(Error::CursorTooOld { needed, oldest }) => {
                // The log was truncated past what `to` holds: anti-entropy.
                self.log(format!("page {from}->{to}: too old ({needed} < {oldest})"));
                self.stats.too_old += 1;
                self.start_session(from, to);
                return;
            }
            Err(e) => panic!("changes_since: {e}"),
        };
        if let Some(c) = page.changes {
            self.log(format!("page {from}->{to}: {} ops", page.operations));
            let payload = Payload::Page {
                bytes: c.encode(),
                dots: dots_of(&c.dots),
                needs: dots_of(&c.deps),
            };
            self.net.send(&mut self.rng, self.now, from, to, payload);
        }
    }

    /// Start a sync session, `a` initiating; returns its number.
    fn start_session(&mut self, a: usize, b: usize) -> u64 {
        self.start_session_with(a, b, true)
    }

    /// Start a session, `a` initiating, with random limits if `random`
    /// (else the defaults); returns its number.
    fn start_session_with(&mut self, a: usize, b: usize, random: bool) -> u64 {
        // Small budgets split exchanges into many parts; a quarter of the
        // sessions repair at most a few keys (ending `Diverged`, truncated)
        // and a quarter stage few bytes (joining part by part).
        let mut config = Config {
            message_budget: 200 + self.rng.below(2000),
            iblt: self.rng.chance(3, 4),
            ..Config::default()
        };
        if random && self.rng.chance(1, 4) {
            config.max_keys = 1 + self.rng.below(8);
        }
        if random && self.rng.chance(1, 4) {
            config.stage_bytes = 1024 + self.rng.below(4096);
        }
        let (init, first) = Session::initiate(self.engine(a), config.clone()).expect("initiate");
        let resp = Session::respond(self.engine(b), config);
        self.next_session += 1;
        let id = self.next_session;
        self.log(format!("session {id}: {a} -> {b}"));
        self.sessions.insert(
            id,
            SimSession {
                a,
                b,
                init,
                resp,
                snap_a: self.models[a].record.clone(),
                snap_b: None,
                learned_a: false,
                learned_b: false,
                started: self.now,
            },
        );
        self.stats.sessions += 1;
        let payload = Payload::Sync {
            session: id,
            to_initiator: false,
            bytes: first,
        };
        self.net.send(&mut self.rng, self.now, a, b, payload);
        id
    }

    fn deliver(&mut self, m: Message) {
        match m.payload {
            Payload::Deltas(ds) => {
                let mut b = Batch::new();
                for d in &ds {
                    b.merge(d.key.clone(), d.bytes.clone());
                }
                self.engine(m.to).write(&b).expect("merge deltas");
                for d in &ds {
                    self.models[m.to].deliver(&BTreeSet::from([d.dot]), &d.needs);
                }
                self.log(format!("deltas {}->{} merged", m.from, m.to));
            }
            Payload::Page { bytes, dots, needs } => {
                let got = self.engine(m.to).apply_changes(&bytes).expect("apply");
                let want = self.models[m.to].deliver(&dots, &needs);
                self.log(format!("page {}->{}: {got:?}", m.from, m.to));
                assert_eq!(got, want, "page {}->{}: delivery", m.from, m.to);
                self.stats.pages[match got {
                    converge::Delivery::Applied => 0,
                    converge::Delivery::Pending => 1,
                    converge::Delivery::Duplicate => 2,
                }] += 1;
            }
            Payload::Ack(cursor) => {
                let peer = ReplicaId(m.from as u128 + 1);
                self.engine(m.to)
                    .acknowledge(peer, &cursor)
                    .expect("acknowledge");
                let floor = self.engine(m.to).feed_info().expect("feed").floor;
                self.log(format!("ack {}->{}: floor {floor}", m.from, m.to));
            }
            Payload::Sync {
                session,
                to_initiator,
                bytes,
            } => self.deliver_sync(session, to_initiator, &bytes),
        }
    }

    /// Hand a sync message to its side; send the replies; when a side
    /// ends converged or equal, the model adds the peer's record.
    fn deliver_sync(&mut self, id: u64, to_initiator: bool, bytes: &[u8]) {
        let World {
            sessions,
            models,
            net,
            rng,
            now,
            stats,
            ..
        } = self;
        let Some(s) = sessions.get_mut(&id) else {
            return; // abandoned, or its replica crashed
        };
        let (from, to) = if to_initiator { (s.b, s.a) } else { (s.a, s.b) };
        let before = models[to].record.clone();
        let side = if to_initiator {
            &mut s.init
        } else {
            &mut s.resp
        };
        let result = side.handle(bytes);
        let outcome = side.outcome();
        let event = match result {
            Ok(replies) => {
                if !to_initiator && s.snap_b.is_none() {
                    s.snap_b = Some(before);
                }
                for bytes in replies {
                    let payload = Payload::Sync {
                        session: id,
                        to_initiator: !to_initiator,
                        bytes,
                    };
                    net.send(rng, *now, to, from, payload);
                }
                format!("session {id} at {to}: ok, {outcome:?}")
            }
            Err(e) => {
                stats.failed += 1;
                // The kind only: some messages name the session's random
                // wire id, which is not part of the seeded run.
                let kind = match e {
                    SyncError::Codec(_) | SyncError::Malformed(_) => "malformed",
                    SyncError::TooLarge { .. } => "too large",
                    SyncError::Unexpected(_) => "unexpected",
                    SyncError::Ended => "ended",
                    SyncError::Engine(_) => "engine",
                    _ => "other",
                };
                format!("session {id} at {to}: failed, {kind}")
            }
        };
        if matches!(outcome, Some(Outcome::Converged | Outcome::Equal)) {
            let (learned, peer) = if to_initiator {
                (&mut s.learned_a, s.snap_b.as_ref())
            } else {
                (&mut s.learned_b, Some(&s.snap_a))
            };
            if !*learned {
                *learned = true;
                models[to].learn(peer.expect("the peer's record was taken"));
                if s.learned_a && s.learned_b {
                    stats.converged += 1;
                }
            }
        }
        self.log(event);
    }

    /// Crash (`clean` false: drop without the clean close) or cleanly
    /// restart replica `r`, then check what it reopened with.
    fn restart(&mut self, r: usize, clean: bool) {
        self.sessions.retain(|_, s| s.a != r && s.b != r);
        let e = self.reps[r].engine.take().expect("open");
        let e = Arc::try_unwrap(e).unwrap_or_else(|_| panic!("engine {r} still shared"));
        if clean {
            e.close().expect("close");
            self.stats.restarts += 1;
        } else {
            e.simulate_crash();
            self.stats.crashes += 1;
        }
        self.log(format!(
            "replica {r} {}",
            if clean { "restarted" } else { "crashed" }
        ));
        let e = Engine::open(self.reps[r].dir.path(), options(r)).expect("reopen");
        assert!(
            e.verify().expect("verify").consistent,
            "replica {r}: tree after reopen"
        );
        self.reps[r].engine = Some(Arc::new(e));
        self.check_records();
        self.check_visible(r);
    }

    /// End faults and partitions, deliver everything in flight, abandon
    /// unfinished sessions, sync every replica with replica 0 and back,
    /// then check convergence and the model.
    pub fn heal(&mut self, last: bool) {
        self.log("heal".into());
        self.net.heal();
        self.net.faulty = false;
        self.flush_network();
        self.sessions.clear();
        let n = self.reps.len();
        let pairs: Vec<usize> = (1..n).chain(1..n - 1).collect();
        for b in pairs {
            let id = self.start_session_with(0, b, false);
            self.flush_network();
            let s = self.sessions.remove(&id).expect("session");
            for o in [s.init.outcome(), s.resp.outcome()] {
                assert!(
                    matches!(o, Some(Outcome::Converged | Outcome::Equal)),
                    "a reliable session 0 <-> {b} ended {o:?}"
                );
            }
        }
        self.net.faulty = true;
        self.stats.heals += 1;
        self.check_converged();
        if last {
            let report = self.engine(0).verify().expect("verify");
            assert!(report.consistent, "replica 0: tree after the last heal");
        }
    }

    fn flush_network(&mut self) {
        while let Some(m) = self.net.next_due(u64::MAX) {
            self.deliver(m);
            self.check_records();
        }
    }

    /// The replicas end as crashed ones (skipping the clean close's work,
    /// which the simulation does not need to wait for).
    pub fn crash_all(&mut self) {
        self.sessions.clear();
        for r in &mut self.reps {
            if let Some(e) = r.engine.take() {
                if let Ok(e) = Arc::try_unwrap(e) {
                    e.simulate_crash();
                }
            }
        }
    }

    /// The last events, for a failure report.
    pub fn trace(&self) -> String {
        let mut s = format!("last events of seed {}:\n", self.seed);
        for e in &self.trace {
            s.push_str("  ");
            s.push_str(e);
            s.push('\n');
        }
        s
    }
}
