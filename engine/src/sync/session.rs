//! The session state machine (one per side) and a driver that syncs two
//! engines in one process.

use super::message::{decode, encode, Body, Envelope, KeyState, ShortHash};
use super::outcome::{Outcome, Role, Stats};
use super::{Config, SyncError, SyncStore};
use crate::aae::iblt::{cells_for, Iblt};
use crate::aae::{FANOUT_BITS, SEGMENT_BITS};
use crate::causal::CausalContext;
use std::collections::HashSet;

/// Tree level whose nodes estimate the difference: 1,024 nodes.
const EST_LEVEL: usize = 2;
const EST_BITS: u32 = SEGMENT_BITS - EST_LEVEL as u32 * FANOUT_BITS;
const EST_NODES: usize = 1 << EST_BITS;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    AwaitSummary,
    AwaitSummaryReply,
    AwaitDiff,
    CollectKeyList,
    CollectExchange,
    AwaitStates,
    AwaitDone,
    Done(Outcome),
    Failed,
}

/// One side of a sync session over a [`SyncStore`] (`&Engine`,
/// `Arc<Engine>`, or anything implementing it).
pub struct Session<S: SyncStore> {
    store: S,
    role: Role,
    config: Config,
    id: Option<u64>,
    seq_out: u32,
    seq_in: u32,
    phase: Phase,
    theirs: Vec<(u64, u128)>,
    differing: Vec<u64>,
    wants: Vec<u64>,
    /// The peer's causal record from its first message; added to ours when
    /// the session converges.
    their_context: Option<CausalContext>,
    /// The peer's states received so far, joined when their last part
    /// arrives (see `Config::stage_bytes`).
    staged: Vec<KeyState>,
    staged_bytes: u64,
    stats: Stats,
}

/// A session id: 64 bits from the OS random source (via
/// [`crate::ReplicaId::random`]).
fn random_id() -> u64 {
    crate::causal::ReplicaId::random().0 as u64
}

fn key_range(node: usize) -> (u64, u64) {
    let shift = 64 - EST_BITS;
    let lo = (node as u64) << shift;
    (lo, lo | ((1u64 << shift) - 1))
}

/// Full states of `keys`, skipping keys that vanished.
fn load_states<S: SyncStore + ?Sized>(
    store: &S,
    keys: Vec<Vec<u8>>,
) -> Result<Vec<KeyState>, SyncError> {
    let values = store.states_of(&keys)?;
    Ok(keys
        .into_iter()
        .zip(values)
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect())
}

/// Split states into message parts of about `budget` bytes each (a state
/// larger than the budget travels alone); returns the parts (at least one)
/// and the size of the last.
fn split_states(states: Vec<KeyState>, budget: usize) -> (Vec<Vec<KeyState>>, usize) {
    let mut parts: Vec<Vec<KeyState>> = vec![Vec::new()];
    let mut size = 0usize;
    for s in states {
        let len = s.0.len() + s.1.len() + 16;
        if size + len > budget && size > 0 {
            parts.push(Vec::new());
            size = 0;
        }
        size += len;
        if let Some(p) = parts.last_mut() {
            p.push(s);
        }
    }
    (parts, size)
}

fn state_len(states: &[KeyState]) -> u64 {
    states.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum()
}

impl<S: SyncStore> Session<S> {
    fn new(store: S, role: Role, config: Config, id: Option<u64>, phase: Phase) -> Self {
        Session {
            store,
            role,
            config,
            id,
            seq_out: 0,
            seq_in: 0,
            phase,
            theirs: Vec::new(),
            differing: Vec::new(),
            wants: Vec::new(),
            their_context: None,
            staged: Vec::new(),
            staged_bytes: 0,
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
        let msg = s.envelope(Body::Summary {
            root: root.hash,
            count: root.count,
            context,
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

    /// The outcome, once the session is done.
    pub fn outcome(&self) -> Option<Outcome> {
        match self.phase {
            Phase::Done(o) => Some(o),
            _ => None,
        }
    }

    /// Whether the session has ended (done or failed): nothing more to
    /// send or receive.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done(_) | Phase::Failed)
    }

    /// Traffic so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    fn envelope(&mut self, body: Body) -> Vec<u8> {
        let (states, sbytes) = match &body {
            Body::Exchange { states, .. } | Body::States { states, .. } => {
                (states.len() as u64, state_len(states))
            }
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

    /// Handle one message from the peer; returns the messages to send back
    /// (possibly none). An error ends the session.
    pub fn handle(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, SyncError> {
        if self.is_finished() {
            return Err(SyncError::Ended);
        }
        match self.handle_inner(bytes) {
            Ok(out) => {
                if !out.is_empty() {
                    self.stats.flights += 1;
                }
                Ok(out)
            }
            Err(e) => {
                self.phase = Phase::Failed;
                Err(e)
            }
        }
    }

    fn handle_inner(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, SyncError> {
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
        self.seq_in += 1;
        self.stats.messages_received += 1;
        self.stats.bytes_received += bytes.len() as u64;
        if let Body::Exchange { states, .. } | Body::States { states, .. } = &env.body {
            self.stats.states_received += states.len() as u64;
            self.stats.state_bytes_received += state_len(states);
        }
        match (self.phase, env.body) {
            (
                Phase::AwaitSummary,
                Body::Summary {
                    root,
                    count,
                    context,
                },
            ) => self.on_summary(root, count, context),
            (Phase::AwaitSummaryReply, Body::Equal { context }) => {
                self.store.learn_context(&context)?;
                self.phase = Phase::Done(Outcome::Equal);
                Ok(Vec::new())
            }
            (Phase::AwaitSummaryReply, Body::Estimate { hashes, context }) => {
                self.their_context = Some(context);
                self.on_estimate(&hashes)
            }
            (Phase::AwaitDiff, Body::Iblt { differing, table }) => self.on_iblt(differing, &table),
            (
                Phase::AwaitDiff | Phase::CollectKeyList,
                Body::KeyList {
                    differing,
                    entries,
                    last,
                },
            ) => {
                self.phase = Phase::CollectKeyList;
                self.differing = differing;
                self.theirs.extend(entries);
                if last {
                    self.on_key_list()
                } else {
                    Ok(Vec::new())
                }
            }
            (Phase::AwaitDiff | Phase::CollectExchange, Body::Exchange { states, want, last }) => {
                self.phase = Phase::CollectExchange;
                self.stage(states, last)?;
                self.wants.extend(want);
                if last {
                    self.on_exchange_done()
                } else {
                    Ok(Vec::new())
                }
            }
            (Phase::AwaitStates, Body::States { states, root, last }) => {
                self.stage(states, last)?;
                if !last {
                    return Ok(Vec::new());
                }
                let converged = self.store.root()?.hash == root;
                self.finish(converged)?;
                Ok(vec![self.envelope(Body::Done { converged })])
            }
            (Phase::AwaitDone, Body::Done { converged }) => {
                self.finish(converged)?;
                Ok(Vec::new())
            }
            (phase, body) => Err(SyncError::Unexpected(format!(
                "{} while in {phase:?}",
                body.name()
            ))),
        }
    }

    /// Hold the peer's states until their last part, then join them all in
    /// one atomic write; past `Config::stage_bytes`, join what is held now.
    fn stage(&mut self, states: Vec<KeyState>, last: bool) -> Result<(), SyncError> {
        self.staged_bytes += state_len(&states);
        self.staged.extend(states);
        let over = self.staged_bytes > self.config.stage_bytes as u64;
        if over {
            self.stats.staging_overflowed = true;
        }
        if (last || over) && !self.staged.is_empty() {
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
    ) -> Result<Vec<Vec<u8>>, SyncError> {
        let context = self.store.context()?;
        let mine = self.store.root()?;
        if mine.hash == root && mine.count == count {
            self.store.learn_context(&theirs)?;
            self.phase = Phase::Done(Outcome::Equal);
            return Ok(vec![self.envelope(Body::Equal { context })]);
        }
        self.their_context = Some(theirs);
        let hashes: Vec<ShortHash> = self
            .store
            .level_hashes(EST_LEVEL)?
            .iter()
            .map(|h| *h as ShortHash)
            .collect();
        self.phase = Phase::AwaitDiff;
        Ok(vec![self.envelope(Body::Estimate { hashes, context })])
    }

    fn on_estimate(&mut self, theirs: &[ShortHash]) -> Result<Vec<Vec<u8>>, SyncError> {
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
        self.phase = Phase::AwaitDiff;
        match size.filter(|_| self.config.iblt) {
            Some(size) => {
                let table = self.store.iblt(size)?.to_wire();
                self.stats.diff_micros += t.elapsed().as_micros() as u64;
                Ok(vec![self.envelope(Body::Iblt { differing, table })])
            }
            None => self.key_list(differing),
        }
    }

    fn on_iblt(&mut self, differing: Vec<u64>, table: &[u8]) -> Result<Vec<Vec<u8>>, SyncError> {
        let t = std::time::Instant::now();
        let mut diff =
            Iblt::from_wire(table).ok_or_else(|| SyncError::Malformed("IBLT table".into()))?;
        let mine = self.store.iblt(diff.size())?;
        diff.subtract(&mine);
        match diff.peel() {
            Some((only_theirs, only_mine)) => {
                let wanted: HashSet<(u64, u32)> = only_mine.iter().map(|e| (e.kh, e.eh)).collect();
                let mut khs: Vec<u64> = only_mine.iter().map(|e| e.kh).collect();
                khs.sort_unstable();
                khs.dedup();
                let keys: Vec<Vec<u8>> = self
                    .store
                    .entries_for(&khs)?
                    .into_iter()
                    .filter(|(kh, _, eh)| wanted.contains(&(*kh, *eh as u32)))
                    .map(|(_, key, _)| key)
                    .collect();
                self.stats.diff_micros += t.elapsed().as_micros() as u64;
                let states = load_states(&self.store, keys)?;
                let mut want: Vec<u64> = only_theirs.iter().map(|e| e.kh).collect();
                want.sort_unstable();
                want.dedup();
                self.phase = Phase::AwaitStates;
                Ok(self.exchange(states, want))
            }
            None => {
                self.stats.diff_micros += t.elapsed().as_micros() as u64;
                // Too many differences for this table: list our entries in
                // the differing subtrees; the peer diffs and sends Exchange.
                let out = self.key_list(differing)?;
                self.phase = Phase::CollectExchange;
                Ok(out)
            }
        }
    }

    /// Our (key hash, entry hash) pairs in the differing subtrees, in parts.
    fn key_list(&mut self, differing: Vec<u64>) -> Result<Vec<Vec<u8>>, SyncError> {
        let per_part = (self.config.message_budget / 25).max(1);
        let mut parts = Vec::new();
        let mut cur: Vec<(u64, u128)> = Vec::new();
        for (kh, _, eh) in self.differing_entries(&differing)? {
            cur.push((kh, eh));
            if cur.len() == per_part {
                parts.push(std::mem::take(&mut cur));
            }
        }
        parts.push(cur);
        let n = parts.len();
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(i, entries)| {
                self.envelope(Body::KeyList {
                    differing: differing.clone(),
                    entries,
                    last: i + 1 == n,
                })
            })
            .collect())
    }

    /// Our (key hash, key, entry hash) entries in the estimate-level
    /// subtrees set in `bitmap`.
    fn differing_entries(&self, bitmap: &[u64]) -> Result<Vec<(u64, Vec<u8>, u128)>, SyncError> {
        let mut out = Vec::new();
        for node in (0..EST_NODES).filter(|i| bitmap[i / 64] & (1 << (i % 64)) != 0) {
            let (lo, hi) = key_range(node);
            out.extend(self.store.entries_in(lo, hi)?);
        }
        Ok(out)
    }

    /// The peer's key list is complete: diff it against ours.
    fn on_key_list(&mut self) -> Result<Vec<Vec<u8>>, SyncError> {
        let t = std::time::Instant::now();
        let theirs: HashSet<(u64, u128)> = std::mem::take(&mut self.theirs).into_iter().collect();
        let mut mine_set = HashSet::new();
        let mut keys = Vec::new();
        for (kh, key, eh) in self.differing_entries(&self.differing)? {
            mine_set.insert((kh, eh));
            if !theirs.contains(&(kh, eh)) {
                keys.push(key);
            }
        }
        let mut want: Vec<u64> = theirs
            .iter()
            .filter(|e| !mine_set.contains(e))
            .map(|(kh, _)| *kh)
            .collect();
        want.sort_unstable();
        want.dedup();
        self.stats.diff_micros += t.elapsed().as_micros() as u64;
        let states = load_states(&self.store, keys)?;
        self.phase = Phase::AwaitStates;
        Ok(self.exchange(states, want))
    }

    /// Exchange messages: our differing states and our wants, in parts.
    fn exchange(&mut self, states: Vec<KeyState>, want: Vec<u64>) -> Vec<Vec<u8>> {
        let budget = self.config.message_budget;
        let (state_parts, mut size) = split_states(states, budget);
        let mut parts: Vec<(Vec<KeyState>, Vec<u64>)> =
            state_parts.into_iter().map(|p| (p, Vec::new())).collect();
        for w in want {
            if size + 9 > budget {
                parts.push((Vec::new(), Vec::new()));
                size = 0;
            }
            size += 9;
            if let Some(p) = parts.last_mut() {
                p.1.push(w);
            }
        }
        let n = parts.len();
        parts
            .into_iter()
            .enumerate()
            .map(|(i, (states, want))| {
                self.envelope(Body::Exchange {
                    states,
                    want,
                    last: i + 1 == n,
                })
            })
            .collect()
    }

    /// The peer's exchange is complete: send what it wants, with our root.
    fn on_exchange_done(&mut self) -> Result<Vec<Vec<u8>>, SyncError> {
        let mut wants = std::mem::take(&mut self.wants);
        wants.sort_unstable();
        wants.dedup();
        let keys: Vec<Vec<u8>> = self
            .store
            .entries_for(&wants)?
            .into_iter()
            .map(|(_, key, _)| key)
            .collect();
        let (parts, _) = split_states(load_states(&self.store, keys)?, self.config.message_budget);
        let root = self.store.root()?.hash;
        self.phase = Phase::AwaitDone;
        let n = parts.len();
        Ok(parts
            .into_iter()
            .enumerate()
            .map(|(i, states)| {
                self.envelope(Body::States {
                    states,
                    root,
                    last: i + 1 == n,
                })
            })
            .collect())
    }
}

/// One side's result of [`sync_engines`].
pub type SideResult = (Outcome, Stats);

/// Sync two stores in one process (used by the demo and tests): `a`
/// initiates, messages are delivered in order. Returns both sides' outcome
/// and stats.
pub fn sync_engines<A, B>(
    a: &A,
    b: &B,
    config: Config,
) -> Result<(SideResult, SideResult), SyncError>
where
    A: SyncStore + ?Sized,
    B: SyncStore + ?Sized,
{
    let (a, b): (&A, &B) = (a, b);
    let (mut sa, first) = Session::initiate(a, config.clone())?;
    let mut sb = Session::respond(b, config);
    let mut to_b = vec![first];
    let mut to_a: Vec<Vec<u8>> = Vec::new();
    while !to_b.is_empty() || !to_a.is_empty() {
        for m in std::mem::take(&mut to_b) {
            to_a.extend(sb.handle(&m)?);
        }
        for m in std::mem::take(&mut to_a) {
            to_b.extend(sa.handle(&m)?);
        }
    }
    match (sa.outcome(), sb.outcome()) {
        (Some(oa), Some(ob)) => Ok(((oa, *sa.stats()), (ob, *sb.stats()))),
        _ => Err(SyncError::Unexpected(
            "the exchange stopped before both sides finished".into(),
        )),
    }
}
