//! The session state machine (one per side) and a driver that syncs two
//! engines in one process.
//!
//! A side takes the peer's messages with [`Session::receive`] and gives
//! its own with [`Session::next_message`], one at a time: what it sends
//! is built as it is pulled (states read from the store a few at a time),
//! so a side never holds its whole reply. [`Session::handle`] does both
//! for callers that want every reply at once.

use super::message::{
    decode, encode, entries, hashes, hashes_blob, states, Body, Envelope, Sender, ShortHash,
};
use super::outcome::{Outcome, Role, Stats};
use super::stream::{CappedHashes, Differ, KeyListStream, StateStream, EST_LEVEL, EST_NODES};
use super::{Config, KeyState, SyncError, SyncStore};
use crate::aae::iblt::{cells_for, Iblt};
use crate::causal::CausalContext;
use std::collections::VecDeque;

/// What a side expects next. Phases before the exchange belong to one
/// role; the exchange phases to whichever side ended up in them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Responder: the initiator's `Summary`.
    AwaitSummary,
    /// Initiator: `Equal` or `Estimate`.
    AwaitSummaryReply,
    /// Responder: the initiator's `Iblt` or the first part of its key list.
    AwaitDiff,
    /// Initiator, after sending its IBLT: `Exchange` (the responder
    /// peeled it) or a key list (it did not).
    AwaitPeel,
    /// The side diffing the peer's key list: its next part.
    CollectKeyList,
    /// The side whose keys were diffed by the peer: `Exchange` parts.
    AwaitExchange,
    /// The side that sent `Exchange`: `States` parts.
    AwaitStates,
    /// The side that sent `States`: the verdict.
    AwaitDone,
    Done(Outcome),
    Failed,
}

/// Output built as it is pulled.
enum Stream {
    /// Our key list of the differing subtrees.
    KeyList(KeyListStream),
    /// Our differing states, then the key hashes we want.
    Exchange {
        states: StateStream,
        want: Vec<u64>,
        want_pos: usize,
    },
    /// The states the peer wants, then our root.
    States(StateStream),
}

/// One side of a sync session over a [`SyncStore`] (`&Engine`,
/// `Arc<Engine>`, or anything implementing it).
///
/// Memory: besides the message being received (borrowed) and the one
/// being built (about `Config::message_budget`), a side holds at most one
/// estimate-level subtree of its own entries, two lists of at most
/// `Config::max_keys` key hashes (8 bytes each), the peer's staged states
/// (at most `Config::stage_bytes`) and the causal records; nothing grows
/// with the replica's size or with what the peer claims.
pub struct Session<S: SyncStore> {
    store: S,
    role: Role,
    config: Config,
    id: Option<u64>,
    seq_out: u32,
    seq_in: u32,
    phase: Phase,
    /// The peer's key list being diffed (`CollectKeyList`).
    differ: Option<Differ>,
    /// The key hashes the peer wants (`AwaitExchange`).
    wants: CappedHashes,
    /// The peer's causal record from its first message; added to ours when
    /// the session converges.
    their_context: Option<CausalContext>,
    /// The records both sides sent (theirs, ours), for
    /// [`Session::acknowledged`].
    records: (Option<CausalContext>, Option<CausalContext>),
    /// The peer's states received so far, joined when their last part
    /// arrives (see `Config::stage_bytes`).
    staged: Vec<KeyState>,
    staged_bytes: u64,
    /// Messages ready to send, then the stream that builds the rest.
    queue: VecDeque<Vec<u8>>,
    stream: Option<Stream>,
    stats: Stats,
}

/// A session id: 64 bits from the OS random source (via
/// [`crate::ReplicaId::random`]).
fn random_id() -> u64 {
    crate::causal::ReplicaId::random().0 as u64
}

/// Staged bytes counted per state beyond its key and value: what joining
/// it holds in the write path (its batch operation, decoded state,
/// operand, dirty mark; about 1 KiB for a small counter, measured with
/// `sync_memory`), so that many tiny states cannot make the join hold
/// much more memory than `stage_bytes` says.
const STAGE_OVERHEAD: u64 = 1024;

/// Counts and payload bytes of a state list.
fn state_totals(blob: &[u8]) -> (u64, u64) {
    states(blob).fold((0, 0), |(n, b), (k, v)| {
        (n + 1, b + (k.len() + v.len()) as u64)
    })
}

impl<S: SyncStore> Session<S> {
    fn new(store: S, role: Role, config: Config, id: Option<u64>, phase: Phase) -> Self {
        let cap = config.max_keys;
        Session {
            store,
            role,
            config,
            id,
            seq_out: 0,
            seq_in: 0,
            phase,
            differ: None,
            wants: CappedHashes::new(cap),
            their_context: None,
            records: (None, None),
            staged: Vec::new(),
            staged_bytes: 0,
            queue: VecDeque::new(),
            stream: None,
            stats: Stats::default(),
        }
    }

    /// Start a session: returns it and the first message to send.
    pub fn initiate(store: S, config: Config) -> Result<(Self, Vec<u8>), SyncError> {
        // The record before the root: whatever it lists is in the data the
        // root covers.
        let context = store.context()?;
        let root = store.root()?;
        let mut s = Session::new(
            store,
            Role::Initiator,
            config,
            Some(random_id()),
            Phase::AwaitSummaryReply,
        );
        s.records.1 = Some(context.clone());
        let horizon = s.store.horizon()?;
        let msg = s.envelope(Body::Summary {
            root: root.hash,
            count: root.count,
            context,
            horizon,
        });
        s.stats.flights += 1;
        Ok((s, msg))
    }

    /// Wait for an initiator's first message.
    pub fn respond(store: S, config: Config) -> Self {
        Session::new(store, Role::Responder, config, None, Phase::AwaitSummary)
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// What the peer holds after a session that ended `Equal` or
    /// `Converged`: both records as they were sent (the peer holds the
    /// data both listed). Pass it to `Engine::acknowledge` for the peer
    /// (the session does not know the peer's replica id): the collection
    /// of tombstones waits for every member's acknowledgement. `None`
    /// otherwise.
    pub fn acknowledged(&self) -> Option<CausalContext> {
        match self.outcome() {
            Some(Outcome::Equal | Outcome::Converged) => {
                let (theirs, ours) = &self.records;
                let mut ctx = theirs.clone()?;
                if let Some(o) = ours {
                    ctx.merge(o);
                }
                Some(ctx)
            }
            _ => None,
        }
    }

    /// Refuse a peer that holds data but whose record lacks deletes this
    /// replica collected (see [`SyncError::BehindHorizon`]).
    fn check_horizon(&self, theirs: &CausalContext, has_data: bool) -> Result<(), SyncError> {
        if !has_data {
            return Ok(());
        }
        let horizon = self.store.horizon()?;
        let missing = horizon.iter().find(|(o, s)| theirs.vv().get(*o) < *s);
        match missing {
            Some((origin, needed)) => Err(SyncError::BehindHorizon {
                origin,
                needed,
                has: theirs.vv().get(origin),
            }),
            None => Ok(()),
        }
    }

    /// The outcome, once the session is done.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }

    /// Whether the session has ended (done or failed): it accepts no more
    /// messages. A side that ended done may still have messages to send
    /// (the verdict): pull them with [`Session::next_message`].
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done(_) | Phase::Failed)
    }

    /// Whether this side has messages to send (pull them with
    /// [`Session::next_message`] before passing it the peer's next one).
    pub fn has_output(&self) -> bool {
        !self.queue.is_empty() || self.stream.is_some()
    }

    /// Traffic so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn envelope(&mut self, body: Body<'_>) -> Vec<u8> {
        let (states, sbytes) = match &body {
            Body::Exchange { states, .. } | Body::States { states, .. } => state_totals(states),
            _ => (0, 0),
        };
        let msg = encode(&Envelope {
            session: self.id.unwrap_or(0),
            seq: self.seq_out,
            body,
        });
        self.seq_out += 1;
        self.stats.messages_sent += 1;
        self.stats.bytes_sent += msg.len() as u64;
        self.stats.states_sent += states;
        self.stats.state_bytes_sent += sbytes;
        msg
    }

    fn fail<T>(&mut self, e: SyncError) -> Result<T, SyncError> {
        self.phase = Phase::Failed;
        self.queue.clear();
        self.stream = None;
        self.staged.clear();
        self.staged_bytes = 0;
        Err(e)
    }

    /// Take one message from the peer. Pull this side's replies with
    /// [`Session::next_message`] (until it returns `None`) before passing
    /// the next one: a message that arrives while this side still has
    /// messages to send is out of turn. An error ends the session (it is
    /// finished, with no outcome), except [`SyncError::Ended`]: a message
    /// given to a session that has already ended is refused and leaves its
    /// outcome as it was (a converged session stays converged).
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(), SyncError> {
        if self.is_finished() {
            return Err(SyncError::Ended);
        }
        if self.has_output() {
            return self.fail(SyncError::Unexpected(
                "a message arrived while this side still had messages to send \
                 (pull them with next_message first)"
                    .into(),
            ));
        }
        match self.receive_inner(bytes) {
            Ok(()) => {
                if self.has_output() {
                    self.stats.flights += 1;
                }
                Ok(())
            }
            Err(e) => self.fail(e),
        }
    }

    /// The next message to send, built now, or `None` when this side has
    /// nothing to send until the peer answers (or the session ended). An
    /// error (reading the store) ends the session.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, SyncError> {
        if let Some(m) = self.queue.pop_front() {
            return Ok(Some(m));
        }
        let Some(stream) = self.stream.take() else {
            return Ok(None);
        };
        match self.build(stream) {
            Ok(m) => Ok(Some(m)),
            Err(e) => self.fail(e),
        }
    }

    /// Handle one message from the peer; returns every message to send
    /// back (possibly none). Holds the whole reply at once: callers that
    /// bound memory use [`Session::receive`] and
    /// [`Session::next_message`]. An error ends the session, as for
    /// [`Session::receive`].
    pub fn handle(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, SyncError> {
        self.receive(bytes)?;
        let mut out = Vec::new();
        while let Some(m) = self.next_message()? {
            out.push(m);
        }
        Ok(out)
    }

    /// Build the next message of a stream; put the stream back unless that
    /// was its last message.
    fn build(&mut self, stream: Stream) -> Result<Vec<u8>, SyncError> {
        let budget = self.config.message_budget;
        match stream {
            Stream::KeyList(mut list) => {
                let (blob, last) = list.next_part(&self.store)?;
                let msg = self.envelope(Body::KeyList {
                    differing: list.bitmap().to_vec(),
                    entries: &blob,
                    last,
                });
                if !last {
                    self.stream = Some(Stream::KeyList(list));
                }
                Ok(msg)
            }
            Stream::Exchange {
                mut states,
                want,
                mut want_pos,
            } => {
                let mut blob = Vec::new();
                states.fill(&self.store, &mut blob, budget)?;
                let mut want_blob = Vec::new();
                if states.is_done() {
                    let room = budget.saturating_sub(blob.len()) / 8;
                    let n = room.max(usize::from(blob.is_empty()));
                    let end = (want_pos + n).min(want.len());
                    want_blob = hashes_blob(&want[want_pos..end]);
                    want_pos = end;
                }
                let last = states.is_done() && want_pos == want.len();
                let msg = self.envelope(Body::Exchange {
                    states: &blob,
                    want: &want_blob,
                    last,
                });
                if !last {
                    self.stream = Some(Stream::Exchange {
                        states,
                        want,
                        want_pos,
                    });
                }
                Ok(msg)
            }
            Stream::States(mut states) => {
                let mut blob = Vec::new();
                states.fill(&self.store, &mut blob, budget)?;
                let last = states.is_done();
                // The root after everything received was merged.
                let root = if last { self.store.root()?.hash } else { 0 };
                let msg = self.envelope(Body::States {
                    states: &blob,
                    root,
                    last,
                });
                if !last {
                    self.stream = Some(Stream::States(states));
                }
                Ok(msg)
            }
        }
    }

    fn receive_inner(&mut self, bytes: &[u8]) -> Result<(), SyncError> {
        let env = decode(bytes, self.config.max_message, EST_NODES)?;
        match self.id {
            None => self.id = Some(env.session),
            Some(id) if id != env.session => {
                return Err(SyncError::Unexpected(format!(
                    "message of session {:x}, this is {id:x}",
                    env.session
                )))
            }
            Some(_) => {}
        }
        if env.seq != self.seq_in {
            return Err(SyncError::Unexpected(format!(
                "message number {} where {} was due",
                env.seq, self.seq_in
            )));
        }
        match (env.body.sent_by(), self.role) {
            (Sender::Initiator, Role::Initiator) | (Sender::Responder, Role::Responder) => {
                return Err(SyncError::Unexpected(format!(
                    "{} is sent by the {:?}, and this side is the {:?} too",
                    env.body.name(),
                    self.role,
                    self.role
                )))
            }
            _ => {}
        }
        self.seq_in += 1;
        self.stats.messages_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        if let Body::Exchange { states, .. } | Body::States { states, .. } = &env.body {
            let (n, b) = state_totals(states);
            self.stats.states_received += n;
            self.stats.state_bytes_received += b;
        }
        match (self.phase, env.body) {
            (
                Phase::AwaitSummary,
                Body::Summary {
                    root,
                    count,
                    context,
                    horizon,
                },
            ) => self.on_summary(root, count, context, horizon),
            (Phase::AwaitSummaryReply, Body::Equal { context, horizon }) => {
                // Equal roots: the same data, nothing to refuse.
                self.store.learn_context(&context)?;
                self.store.learn_horizon(&horizon)?;
                self.records.0 = Some(context);
                self.phase = Phase::Done(Outcome::Equal);
                Ok(())
            }
            (
                Phase::AwaitSummaryReply,
                Body::Estimate {
                    hashes,
                    context,
                    horizon,
                },
            ) => {
                // An empty replica's tree hashes to zeros: it may catch up.
                self.check_horizon(&context, hashes.iter().any(|h| *h != 0))?;
                self.store.learn_horizon(&horizon)?;
                self.records.0 = Some(context.clone());
                self.their_context = Some(context);
                self.on_estimate(&hashes)
            }
            (Phase::AwaitDiff, Body::Iblt { differing, table }) => self.on_iblt(differing, table),
            (
                Phase::AwaitDiff | Phase::AwaitPeel | Phase::CollectKeyList,
                Body::KeyList {
                    differing,
                    entries: list,
                    last,
                },
            ) => {
                let differ = match self.differ.as_mut() {
                    Some(d) if d.bitmap() != differing.as_slice() => {
                        return Err(SyncError::Malformed(
                            "key list parts list different subtrees".into(),
                        ))
                    }
                    Some(d) => d,
                    None => self
                        .differ
                        .insert(Differ::new(differing, self.config.max_keys)),
                };
                self.phase = Phase::CollectKeyList;
                differ.feed(&self.store, entries(list))?;
                if last {
                    self.on_key_list()?;
                }
                Ok(())
            }
            (
                Phase::AwaitPeel | Phase::AwaitExchange,
                Body::Exchange {
                    states: list,
                    want,
                    last,
                },
            ) => {
                self.phase = Phase::AwaitExchange;
                self.stage(list, last)?;
                for kh in hashes(want) {
                    self.wants.push(kh);
                }
                if last {
                    let wants =
                        std::mem::replace(&mut self.wants, CappedHashes::new(self.config.max_keys));
                    let (khs, truncated) = wants.into_sorted();
                    self.stats.truncated |= truncated;
                    self.phase = Phase::AwaitDone;
                    self.stream = Some(Stream::States(StateStream::new(khs)));
                }
                Ok(())
            }
            (
                Phase::AwaitStates,
                Body::States {
                    states: list,
                    root,
                    last,
                },
            ) => {
                self.stage(list, last)?;
                if last {
                    let converged = self.store.root()?.hash == root;
                    self.finish(converged)?;
                    let done = self.envelope(Body::Done { converged });
                    self.queue.push_back(done);
                }
                Ok(())
            }
            (Phase::AwaitDone, Body::Done { converged }) => self.finish(converged),
            (phase, body) => Err(SyncError::Unexpected(format!(
                "{} while in {phase:?}",
                body.name()
            ))),
        }
    }

    /// Hold the peer's states until their last part, then join them all in
    /// one atomic write; past `Config::stage_bytes`, join what is held
    /// first and go on part by part.
    fn stage(&mut self, list: &[u8], last: bool) -> Result<(), SyncError> {
        for (k, v) in states(list) {
            let size = (k.len() + v.len()) as u64 + STAGE_OVERHEAD;
            if self.staged_bytes + size > self.config.stage_bytes as u64 && !self.staged.is_empty()
            {
                self.stats.staging_overflowed = true;
                self.join_staged()?;
            }
            self.staged_bytes += size;
            self.staged.push((k.to_vec(), v.to_vec()));
        }
        if last {
            self.join_staged()?;
        }
        Ok(())
    }

    fn join_staged(&mut self) -> Result<(), SyncError> {
        if !self.staged.is_empty() {
            let staged = std::mem::take(&mut self.staged);
            self.staged_bytes = 0;
            self.stats.states_rejected += self.store.merge_states(&staged)?;
        }
        Ok(())
    }

    /// End the exchange with the verdict: on convergence both sides hold
    /// the same data, which holds everything either record listed when the
    /// session began, so the peer's record joins ours.
    fn finish(&mut self, converged: bool) -> Result<(), SyncError> {
        if converged {
            if let Some(ctx) = self.their_context.take() {
                self.store.learn_context(&ctx)?;
            }
        }
        self.phase = Phase::Done(if converged {
            Outcome::Converged
        } else {
            Outcome::Diverged
        });
        Ok(())
    }

    fn on_summary(
        &mut self,
        root: u128,
        count: u64,
        theirs: CausalContext,
        their_horizon: crate::causal::VersionVector,
    ) -> Result<(), SyncError> {
        let context = self.store.context()?;
        let mine = self.store.root()?;
        let horizon = self.store.horizon()?;
        self.records = (Some(theirs.clone()), Some(context.clone()));
        if mine.hash == root && mine.count == count {
            self.store.learn_context(&theirs)?;
            self.store.learn_horizon(&their_horizon)?;
            self.phase = Phase::Done(Outcome::Equal);
            let msg = self.envelope(Body::Equal { context, horizon });
            self.queue.push_back(msg);
            return Ok(());
        }
        self.check_horizon(&theirs, count > 0)?;
        self.store.learn_horizon(&their_horizon)?;
        self.their_context = Some(theirs);
        let hashes: Vec<ShortHash> = self
            .store
            .level_hashes(EST_LEVEL)?
            .iter()
            .map(|h| *h as ShortHash)
            .collect();
        self.phase = Phase::AwaitDiff;
        let msg = self.envelope(Body::Estimate {
            hashes,
            context,
            horizon,
        });
        self.queue.push_back(msg);
        Ok(())
    }

    fn on_estimate(&mut self, theirs: &[ShortHash]) -> Result<(), SyncError> {
        let t = std::time::Instant::now();
        let mine = self.store.level_hashes(EST_LEVEL)?;
        let mut differing = vec![0u64; EST_NODES.div_ceil(64)];
        let mut k = 0usize;
        for (i, (a, b)) in mine.iter().zip(theirs).enumerate() {
            if *a as ShortHash != *b {
                differing[i / 64] |= 1 << (i % 64);
                k += 1;
            }
        }
        if k == 0 {
            // The roots differ but no node does (a write landed meanwhile,
            // or truncated hashes collide): look everywhere.
            differing.fill(u64::MAX);
            k = 1;
        }
        // Balls in bins: k of m nodes differ ⇒ about -m·ln(1 - k/m) keys.
        // The estimate loosens as k nears m, so the margin grows with it;
        // when nearly every node differs, take the largest table.
        let m = EST_NODES as f64;
        let fill = k as f64 / m;
        let estimate = -m * (1.0 - fill.min(0.999)).ln();
        let margin = if fill < 0.5 {
            1.1
        } else if fill < 0.8 {
            1.2
        } else {
            1.5
        };
        let size = if fill > 0.95 {
            Some(crate::aae::iblt::MAX_CELLS)
        } else {
            cells_for(estimate * margin)
        };
        match size.filter(|_| self.config.iblt) {
            Some(size) => {
                let table = self.store.iblt(size)?.to_wire();
                self.stats.diff_micros += t.elapsed().as_micros() as u64;
                self.phase = Phase::AwaitPeel;
                let msg = self.envelope(Body::Iblt {
                    differing,
                    table: &table,
                });
                self.queue.push_back(msg);
            }
            // Too many differences for a table: our key list; the
            // responder diffs it and sends Exchange.
            None => self.send_key_list(differing),
        }
        Ok(())
    }

    fn on_iblt(&mut self, differing: Vec<u64>, table: &[u8]) -> Result<(), SyncError> {
        let t = std::time::Instant::now();
        let mut diff =
            Iblt::from_wire(table).ok_or_else(|| SyncError::Malformed("IBLT table".into()))?;
        let mine = self.store.iblt(diff.size())?;
        diff.subtract(&mine);
        let peeled = diff.peel();
        self.stats.diff_micros += t.elapsed().as_micros() as u64;
        match peeled {
            Some((only_theirs, only_mine)) => {
                let mut ship = CappedHashes::new(self.config.max_keys);
                let mut want = CappedHashes::new(self.config.max_keys);
                only_mine.iter().for_each(|e| ship.push(e.kh));
                only_theirs.iter().for_each(|e| want.push(e.kh));
                self.exchange(ship, want);
            }
            // Too many differences for this table: our key list of the
            // differing subtrees; the initiator diffs it and sends
            // Exchange.
            None => self.send_key_list(differing),
        }
        Ok(())
    }

    /// Start sending our key list of the subtrees in `differing`; the peer
    /// diffs it and answers with Exchange.
    fn send_key_list(&mut self, differing: Vec<u64>) {
        self.phase = Phase::AwaitExchange;
        self.stream = Some(Stream::KeyList(KeyListStream::new(
            differing,
            self.config.message_budget,
        )));
    }

    /// The peer's key list is complete: ship what differs.
    fn on_key_list(&mut self) -> Result<(), SyncError> {
        let t = std::time::Instant::now();
        let Some(mut differ) = self.differ.take() else {
            return Err(SyncError::Unexpected(
                "a key list without a first part".into(),
            ));
        };
        differ.finish(&self.store)?;
        self.stats.diff_micros += t.elapsed().as_micros() as u64;
        self.exchange(differ.ship, differ.want);
        Ok(())
    }

    /// Start sending Exchange: our states of `ship`, then `want`.
    fn exchange(&mut self, ship: CappedHashes, want: CappedHashes) {
        let (ship, t1) = ship.into_sorted();
        let (want, t2) = want.into_sorted();
        self.stats.truncated |= t1 || t2;
        self.phase = Phase::AwaitStates;
        self.stream = Some(Stream::Exchange {
            states: StateStream::new(ship),
            want,
            want_pos: 0,
        });
    }
}
