//! What one side of a sync session reports: its role, how it ended, and
//! its traffic.

/// Which side of the session this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends the first message.
    Initiator,
    /// Answers it.
    Responder,
}

/// How a finished session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The roots were equal: nothing differed.
    Equal,
    /// Not produced by sync protocol 2 (since both sides learn the verdict,
    /// they end `Converged` or `Diverged`); kept so that the numbering of
    /// outcomes (and the C ABI's `CVG_SYNC_*`) stays stable.
    Repaired,
    /// The exchange completed and the roots are equal: both sides hold the
    /// join of both states for every key, and each side's causal record
    /// now also lists every dot the other's listed when the session began.
    Converged,
    /// The exchange completed but the roots still differ (a write landed
    /// during the session, or a hash collision): run another session. The
    /// records were not exchanged.
    Diverged,
}

/// Traffic of one side of a session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Messages sent.
    pub messages_sent: u64,
    /// Messages received.
    pub messages_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Key states sent.
    pub states_sent: u64,
    /// Key states received.
    pub states_received: u64,
    /// Bytes of keys and states sent (the payload, not metadata).
    pub state_bytes_sent: u64,
    /// Bytes of keys and states received.
    pub state_bytes_received: u64,
    /// Turns in which this side sent (consecutive parts count once).
    pub flights: u64,
    /// Key states received but left unmerged because the join would exceed
    /// the state size limit ([`crate::codec::MAX_STATE_LEN`]): those keys
    /// still differ, and the session ends `Diverged`.
    pub states_rejected: u64,
    /// The peer's states passed `Config::stage_bytes`, so they were joined
    /// part by part instead of in one atomic write at their last part.
    pub staging_overflowed: bool,
    /// More keys differed than `Config::max_keys`: this session repaired
    /// part of the difference (it ends `Diverged`); run another.
    pub truncated: bool,
    /// Time spent finding the differing keys (estimate, IBLT fold and
    /// peel, key-list diff), in microseconds; excludes reading, shipping
    /// and merging states.
    pub diff_micros: u64,
}

impl Stats {
    /// Reconciliation metadata sent: everything except keys and states.
    pub fn metadata_sent(&self) -> u64 {
        self.bytes_sent - self.state_bytes_sent
    }
}
