//! Sync protocol messages: an envelope (session id, per-direction sequence
//! number) around one body, encoded like every other Converge value (format
//! version, kind [`KIND_SYNC4`] = protocol 4, bincode body, checksum). A
//! message of protocol 1, 2 or 3 (kinds [`KIND_SYNC`], [`KIND_SYNC2`],
//! [`KIND_SYNC3`]) is refused with a message saying so. Protocol 4 is
//! protocol 3 with each side's collection horizon (the deletes whose
//! tombstones it collected) in `Summary`, `Equal` and `Estimate`.
//!
//! Memory: the lists that grow with the number of keys (key lists, wanted
//! key hashes, key states) travel as fixed-layout byte strings that the
//! decoder borrows from the input instead of copying into collections; the
//! kinds whose fields are decoded into memory (a causal record, 1,024
//! hashes, an IBLT) are held to [`CONTROL_MESSAGE_LEN`] (the IBLT to its
//! largest size) before decoding. Decoding a message therefore allocates
//! a bounded amount whatever it claims. Shapes are checked after decoding.

use super::SyncError;
use crate::aae::iblt::Iblt;
use crate::causal::{CausalContext, VersionVector};
use crate::codec::{
    borrow_decode_body, config_with, encode_with, split_header_max, FORMAT_VERSION, KIND_SYNC,
    KIND_SYNC2, KIND_SYNC3, KIND_SYNC4, MAX_MESSAGE_LEN, MAX_STATE_LEN,
};
use crate::error::CodecError;
use bincode::{BorrowDecode, Encode};

/// Node hashes of the estimate level travel truncated to 32 bits.
pub type ShortHash = u32;

/// A key and its encoded full state.
pub type KeyState = (Vec<u8>, Vec<u8>);

/// Largest message of the kinds that carry no lists (`Summary`, `Equal`,
/// `Estimate`, `Done`): 1 MiB holds a causal record of about 50,000
/// replicas with random ids. Checked before decoding, so what decoding
/// them allocates is bounded (at most about 16 bytes per input byte).
pub const CONTROL_MESSAGE_LEN: usize = 1 << 20;

/// Largest `Iblt` message: the largest table (3 · 30,720 cells of 17
/// bytes) with its bitmap and envelope.
const IBLT_MESSAGE_LEN: usize = 3 * crate::aae::iblt::MAX_CELLS * 17 + 4096;

/// Bytes of one key-list entry on the wire: key hash u64 LE, entry hash
/// u128 LE.
pub const ENTRY_LEN: usize = 24;

/// One protocol message, borrowing its lists from the bytes it was decoded
/// from (or from the buffers it is built from).
#[derive(Clone, Debug, PartialEq, Eq, Encode, BorrowDecode)]
pub struct Envelope<'a> {
    /// Chosen by the initiator; the responder adopts it.
    pub session: u64,
    /// 0, 1, 2, … in each direction: a duplicate, lost or reordered
    /// message is detected by its number.
    pub seq: u32,
    /// What the message says.
    pub body: Body<'a>,
}

/// The body of a message. See ARCHITECTURE.md for the exchange and
/// FORMAT.md for the bytes. Which side may send each kind is fixed:
/// [`Body::sent_by`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, BorrowDecode)]
pub enum Body<'a> {
    /// Initiator's first message: its root and key count, and its causal
    /// record taken before the root.
    Summary {
        /// Root hash.
        root: u128,
        /// Number of keys.
        count: u64,
        /// The initiator's causal record at the start of the session.
        context: CausalContext,
        /// The deletes whose tombstones the initiator collected.
        horizon: VersionVector,
    },
    /// Responder: the roots are equal; nothing to do. Carries its record.
    Equal {
        /// The responder's causal record at the start of the session.
        context: CausalContext,
        /// The deletes whose tombstones the responder collected.
        horizon: VersionVector,
    },
    /// Responder: its estimate-level node hashes (truncated), from which
    /// the initiator estimates how many keys differ, and its record.
    Estimate {
        /// One short hash per node of the estimate level.
        hashes: Vec<ShortHash>,
        /// The responder's causal record at the start of the session.
        context: CausalContext,
        /// The deletes whose tombstones the responder collected.
        horizon: VersionVector,
    },
    /// Initiator: its IBLT folded to fit the estimated difference, and which
    /// estimate-level subtrees differ (a bitmap).
    Iblt {
        /// Bitmap of differing estimate-level nodes.
        differing: Vec<u64>,
        /// The table, in its wire form.
        table: &'a [u8],
    },
    /// Either side, when the difference is too large for an IBLT: every
    /// (key hash, entry hash) in the differing subtrees, in ascending
    /// order across all parts. Split into parts.
    KeyList {
        /// Bitmap of the subtrees listed (the same in every part).
        differing: Vec<u64>,
        /// [`ENTRY_LEN`]-byte entries ([`entries`] reads them).
        entries: &'a [u8],
        /// Whether this is the last part.
        last: bool,
    },
    /// The states of the sender's differing keys, and the key hashes whose
    /// states it wants. Split into parts.
    Exchange {
        /// Keys with their full states ([`states`] reads them).
        states: &'a [u8],
        /// Key hashes the sender wants the states of, u64 LE each
        /// ([`hashes`] reads them).
        want: &'a [u8],
        /// Whether this is the last part.
        last: bool,
    },
    /// The states asked for; the last part carries the sender's root after
    /// it merged everything it received.
    States {
        /// Keys with their full states ([`states`] reads them).
        states: &'a [u8],
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

/// Which side sends a message kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sender {
    /// Only the initiator.
    Initiator,
    /// Only the responder.
    Responder,
    /// Either side, depending on how the exchange went.
    Either,
}

impl Body<'_> {
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

    /// Which side may send this kind of message: the initiator opens with
    /// `Summary` and sends `Iblt`; the responder answers with `Equal` or
    /// `Estimate`; key lists, exchanges, states and the verdict go either
    /// way.
    pub fn sent_by(&self) -> Sender {
        match self {
            Body::Summary { .. } | Body::Iblt { .. } => Sender::Initiator,
            Body::Equal { .. } | Body::Estimate { .. } => Sender::Responder,
            _ => Sender::Either,
        }
    }
}

/// Encode a message.
pub fn encode(env: &Envelope<'_>) -> Vec<u8> {
    encode_with(KIND_SYNC4, env)
}

/// Decode a message no larger than `max_len` bytes (and never larger than
/// [`MAX_MESSAGE_LEN`]), and check shapes: bitmaps of the right length,
/// key lists in strictly ascending order, well-framed state lists.
pub fn decode(
    bytes: &[u8],
    max_len: usize,
    estimate_nodes: usize,
) -> Result<Envelope<'_>, SyncError> {
    if bytes.len() > max_len {
        return Err(SyncError::TooLarge {
            len: bytes.len(),
            max: max_len,
        });
    }
    if let [FORMAT_VERSION, kind @ (KIND_SYNC | KIND_SYNC2 | KIND_SYNC3), ..] = bytes {
        let protocol = match *kind {
            KIND_SYNC => 1,
            KIND_SYNC2 => 2,
            _ => 3,
        };
        return Err(SyncError::Malformed(format!(
            "a protocol-{protocol} sync message (kind {kind}): the peer runs an older \
             Converge; both sides need sync protocol 4"
        )));
    }
    let (_, body) = split_header_max(bytes, &[KIND_SYNC4], MAX_MESSAGE_LEN)?;
    // The body's variant index follows the session id and sequence number:
    // the kinds whose fields are allocated must be small.
    let variant = bincode::decode_from_slice::<(u64, u32, u32), _>(body, config_with::<64>())
        .map(|((_, _, v), _)| v)
        .map_err(|_| SyncError::Codec(CodecError::Truncated("sync envelope header".into())))?;
    let ceiling = match variant {
        3 => IBLT_MESSAGE_LEN,
        4..=6 => MAX_MESSAGE_LEN,
        _ => CONTROL_MESSAGE_LEN,
    };
    if bytes.len() > ceiling {
        return Err(SyncError::TooLarge {
            len: bytes.len(),
            max: ceiling,
        });
    }
    let env: Envelope<'_> = borrow_decode_body(body)?;
    let words = estimate_nodes.div_ceil(64);
    let ok = match &env.body {
        Body::Estimate {
            hashes,
            context,
            horizon,
        } => hashes.len() == estimate_nodes && context.is_canonical() && horizon.is_canonical(),
        Body::Iblt { differing, table } => {
            differing.len() == words && Iblt::from_wire(table).is_some()
        }
        Body::KeyList {
            differing, entries, ..
        } => differing.len() == words && entries_ascending(entries),
        Body::Exchange { states, want, .. } => {
            want.len() % 8 == 0 && StateIter::well_framed(states)
        }
        Body::States { states, .. } => StateIter::well_framed(states),
        Body::Summary {
            context, horizon, ..
        }
        | Body::Equal { context, horizon } => context.is_canonical() && horizon.is_canonical(),
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

/// Whether a key-list byte string is whole entries in strictly ascending
/// (key hash, entry hash) order.
fn entries_ascending(blob: &[u8]) -> bool {
    if blob.len() % ENTRY_LEN != 0 {
        return false;
    }
    let mut prev: Option<(u64, u128)> = None;
    entries(blob).all(|e| {
        let ok = prev.is_none_or(|p| p < e);
        prev = Some(e);
        ok
    })
}

/// The (key hash, entry hash) pairs of a key-list byte string.
pub fn entries(blob: &[u8]) -> impl Iterator<Item = (u64, u128)> + '_ {
    blob.chunks_exact(ENTRY_LEN).map(|c| {
        let (kh, eh) = c.split_at(8);
        (
            u64::from_le_bytes(kh.try_into().unwrap_or_default()),
            u128::from_le_bytes(eh.try_into().unwrap_or_default()),
        )
    })
}

/// Append one key-list entry.
pub fn push_entry(blob: &mut Vec<u8>, kh: u64, eh: u128) {
    blob.extend_from_slice(&kh.to_le_bytes());
    blob.extend_from_slice(&eh.to_le_bytes());
}

/// The key hashes of a want list.
pub fn hashes(blob: &[u8]) -> impl Iterator<Item = u64> + '_ {
    blob.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
}

/// A want list of these key hashes.
pub fn hashes_blob(khs: &[u64]) -> Vec<u8> {
    khs.iter().flat_map(|kh| kh.to_le_bytes()).collect()
}

/// A state list of these (key, state) pairs.
pub fn states_blob<K: AsRef<[u8]>, V: AsRef<[u8]>>(states: &[(K, V)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in states {
        push_state(&mut out, k.as_ref(), v.as_ref());
    }
    out
}

/// Append one (key, state) pair to a state list: key length (LEB128),
/// key, state length (LEB128), state.
pub fn push_state(blob: &mut Vec<u8>, key: &[u8], state: &[u8]) {
    push_len(blob, key.len());
    blob.extend_from_slice(key);
    push_len(blob, state.len());
    blob.extend_from_slice(state);
}

/// Bytes of the framing of one (key, state) pair.
pub(crate) fn framing_len(key: usize, state: usize) -> usize {
    let leb = |n: usize| (usize::BITS - (n | 1).leading_zeros()).div_ceil(7) as usize;
    leb(key) + leb(state)
}

/// Unsigned LEB128: 7 bits a byte, low bits first, high bit set on every
/// byte but the last.
fn push_len(blob: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        blob.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    blob.push(n as u8);
}

/// The (key, state) pairs of a state list. On a list that is not well
/// framed it stops at the damage (decoded messages are checked first).
pub fn states(blob: &[u8]) -> StateIter<'_> {
    StateIter { rest: blob }
}

/// Iterator over a state list; see [`states`].
#[derive(Clone, Debug)]
pub struct StateIter<'a> {
    rest: &'a [u8],
}

impl<'a> StateIter<'a> {
    /// A LEB128 length of at most `max`, in its shortest form.
    fn read_len(&mut self, max: usize) -> Option<usize> {
        let mut n = 0usize;
        for (i, b) in self.rest.iter().enumerate().take(5) {
            n |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                // Shortest form only: no trailing zero byte.
                if (i > 0 && *b == 0) || n > max {
                    return None;
                }
                self.rest = &self.rest[i + 1..];
                return Some(n);
            }
        }
        None
    }

    fn take(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = self.read_len(max)?;
        let tail = self.rest;
        if tail.len() < len {
            return None;
        }
        let (item, tail) = tail.split_at(len);
        self.rest = tail;
        Some(item)
    }

    /// Whether `blob` is a sequence of whole (key, state) pairs with keys
    /// of at most [`crate::MAX_KEY_LEN`] bytes and states of at most
    /// [`MAX_STATE_LEN`].
    pub fn well_framed(blob: &[u8]) -> bool {
        let mut it = states(blob);
        while !it.rest.is_empty() {
            if it.next().is_none() {
                return false;
            }
        }
        true
    }
}

impl<'a> Iterator for StateIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let saved = self.rest;
        let pair = self
            .take(crate::MAX_KEY_LEN)
            .and_then(|k| self.take(MAX_STATE_LEN).map(|v| (k, v)));
        if pair.is_none() {
            self.rest = &saved[saved.len()..];
        }
        pair
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_lists_round_trip_and_reject_bad_framing() {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
            (vec![], vec![1]),
            (vec![7; 127], vec![2; 128]),
            (vec![8; 300], vec![3; 20_000]),
        ];
        let blob = states_blob(&pairs);
        let framing: usize = pairs
            .iter()
            .map(|(k, v)| framing_len(k.len(), v.len()))
            .sum();
        let payload: usize = pairs.iter().map(|(k, v)| k.len() + v.len()).sum();
        assert_eq!(blob.len(), framing + payload);
        assert_eq!(framing, 2 + 1 + 2 + 2 + 3);
        assert!(StateIter::well_framed(&blob));
        let back: Vec<(Vec<u8>, Vec<u8>)> = states(&blob)
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        assert_eq!(back, pairs);
        // Cut short, a length past the end, a non-minimal length, a key
        // over the limit.
        assert!(!StateIter::well_framed(&blob[..blob.len() - 1]));
        assert!(!StateIter::well_framed(&[5, 1, 2]));
        assert!(!StateIter::well_framed(&[0x81, 0x00, 1, 0]));
        let mut big_key = Vec::new();
        push_state(&mut big_key, &vec![0; crate::MAX_KEY_LEN + 1], &[1]);
        assert!(!StateIter::well_framed(&big_key));
        assert!(StateIter::well_framed(&[]));
    }

    #[test]
    fn key_lists_must_ascend() {
        let mut blob = Vec::new();
        push_entry(&mut blob, 1, 5);
        push_entry(&mut blob, 1, 6);
        push_entry(&mut blob, 2, 0);
        assert!(entries_ascending(&blob));
        assert_eq!(
            entries(&blob).collect::<Vec<_>>(),
            vec![(1, 5), (1, 6), (2, 0)]
        );
        let mut bad = blob.clone();
        push_entry(&mut bad, 2, 0);
        assert!(!entries_ascending(&bad));
        assert!(!entries_ascending(&blob[..30]));
    }
}
