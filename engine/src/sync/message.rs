//! Sync protocol messages: an envelope (session id, per-direction sequence
//! number) around one body, encoded like every other Converge value (format
//! version, kind [`KIND_SYNC2`] = protocol 2, bincode body, checksum). A
//! protocol-1 message (kind [`KIND_SYNC`], before the causal records were
//! exchanged) is refused with a message saying so. Sizes are checked
//! before decoding, and every count inside is bounded by the decoder's
//! limit; shapes are checked after decoding.

use super::SyncError;
use crate::aae::iblt::Iblt;
use crate::causal::CausalContext;
use crate::codec::{
    decode_body_max, encode_with, split_header_max, FORMAT_VERSION, KIND_SYNC, KIND_SYNC2,
    MAX_MESSAGE_LEN, MESSAGE_CLAIMS,
};
use bincode::{Decode, Encode};

/// Node hashes of the estimate level travel truncated to 32 bits.
pub type ShortHash = u32;

/// A key and its encoded full state.
pub type KeyState = (Vec<u8>, Vec<u8>);

/// One protocol message.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct Envelope {
    /// Chosen by the initiator; the responder adopts it.
    pub session: u64,
    /// 0, 1, 2, … in each direction: a duplicate, lost or reordered
    /// message is detected by its number.
    pub seq: u32,
    /// What the message says.
    pub body: Body,
}

/// The body of a message. See ARCHITECTURE.md for the exchange.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum Body {
    /// Initiator's first message: its root and key count, and its causal
    /// record taken before the root.
    Summary {
        /// Root hash.
        root: u128,
        /// Number of keys.
        count: u64,
        /// The initiator's causal record at the start of the session.
        context: CausalContext,
    },
    /// Responder: the roots are equal; nothing to do. Carries its record.
    Equal {
        /// The responder's causal record at the start of the session.
        context: CausalContext,
    },
    /// Responder: its estimate-level node hashes (truncated), from which
    /// the initiator estimates how many keys differ, and its record.
    Estimate {
        /// One short hash per node of the estimate level.
        hashes: Vec<ShortHash>,
        /// The responder's causal record at the start of the session.
        context: CausalContext,
    },
    /// Initiator: its IBLT folded to fit the estimated difference, and which
    /// estimate-level subtrees differ (a bitmap).
    Iblt {
        /// Bitmap of differing estimate-level nodes.
        differing: Vec<u64>,
        /// The table, in its wire form.
        table: Vec<u8>,
    },
    /// Either side, when the difference is too large for an IBLT: every
    /// (key hash, entry hash) in the differing subtrees. Split into parts.
    KeyList {
        /// Bitmap of the subtrees listed.
        differing: Vec<u64>,
        /// (key hash, entry hash) pairs in key-hash order.
        entries: Vec<(u64, u128)>,
        /// Whether this is the last part.
        last: bool,
    },
    /// The states of the sender's differing keys, and the key hashes whose
    /// states it wants. Split into parts.
    Exchange {
        /// Keys with their full states.
        states: Vec<KeyState>,
        /// Key hashes the sender wants the states of.
        want: Vec<u64>,
        /// Whether this is the last part.
        last: bool,
    },
    /// The states asked for; the last part carries the sender's root after
    /// it merged everything it received.
    States {
        /// Keys with their full states.
        states: Vec<KeyState>,
        /// The sender's root hash (meaningful on the last part).
        root: u128,
        /// Whether this is the last part.
        last: bool,
    },
    /// The receiver of the last `States` part: whether its root now equals
    /// the sender's. Both sides end with this verdict (`Converged` or
    /// `Diverged`), and on convergence each adds the other's record to its
    /// own.
    Done {
        /// The roots are equal.
        converged: bool,
    },
}

impl Body {
    /// A short name, for errors.
    pub fn name(&self) -> &'static str {
        match self {
            Body::Summary { .. } => "Summary",
            Body::Equal { .. } => "Equal",
            Body::Estimate { .. } => "Estimate",
            Body::Iblt { .. } => "Iblt",
            Body::KeyList { .. } => "KeyList",
            Body::Exchange { .. } => "Exchange",
            Body::States { .. } => "States",
            Body::Done { .. } => "Done",
        }
    }
}

/// Encode a message.
pub fn encode(env: &Envelope) -> Vec<u8> {
    encode_with(KIND_SYNC2, env)
}

/// Decode a message no larger than `max_len` bytes (and never larger than
/// [`MAX_MESSAGE_LEN`]), and check shapes.
pub fn decode(bytes: &[u8], max_len: usize, estimate_nodes: usize) -> Result<Envelope, SyncError> {
    if bytes.len() > max_len {
        return Err(SyncError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    if let [FORMAT_VERSION, KIND_SYNC, ..] = bytes {
        return Err(SyncError::Malformed(
            "a protocol-1 sync message (kind 5): the peer runs an older Converge; \
             both sides need sync protocol 2"
                .into(),
        ));
    }
    let (_, body) = split_header_max(bytes, &[KIND_SYNC2], MAX_MESSAGE_LEN)?;
    let env: Envelope = decode_body_max::<_, MESSAGE_CLAIMS>(body)?;
    let words = estimate_nodes.div_ceil(64);
    let ok = match &env.body {
        Body::Estimate { hashes, context } => {
            hashes.len() == estimate_nodes && context.is_canonical()
        }
        Body::Iblt { differing, table } => {
            differing.len() == words && Iblt::from_wire(table).is_some()
        }
        Body::KeyList { differing, .. } => differing.len() == words,
        Body::Exchange { states, .. } | Body::States { states, .. } => {
            states.iter().all(|(k, _)| k.len() <= crate::MAX_KEY_LEN)
        }
        Body::Summary { context, .. } | Body::Equal { context } => context.is_canonical(),
        Body::Done { .. } => true,
    };
    if ok {
        Ok(env)
    } else {
        Err(SyncError::Malformed(format!(
            "{} message has the wrong shape",
            env.body.name()
        )))
    }
}
