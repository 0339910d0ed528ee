//! The shared harness of Converge's fuzz targets (`fuzz_targets/`).
//!
//! - [`Input`]: reads a fuzz input as a little program (mode bytes,
//!   length-prefixed chunks), and [`chunk`] writes one for the seeds.
//! - Structure-aware framing: every encoding ends with a checksum, and a
//!   sync message also carries a session id and a sequence number, so a
//!   raw mutation is nearly always rejected at the frame. In *re-seal*
//!   mode ([`RESEAL`] set in an input's mode byte) the harness repairs the
//!   frame of every mutated encoding before passing it on: [`reseal`]
//!   recomputes the checksum, [`reframe`] also rewrites the session id and
//!   sequence number a session expects. The mutation then reaches the
//!   bincode body decoders and the canonical checks behind the checksum.
//!   Without the bit the bytes go in as the fuzzer made them, which
//!   exercises the frame checks themselves (and the truncation diagnosis,
//!   which decodes bodies whose checksum failed).
//! - [`fixture`]: small real engines in a per-process scratch directory,
//!   filled with every CRDT type, reopened from scratch every
//!   [`RESET_EVERY`] inputs so state left by earlier inputs stays small.
//! - [`seeds`]: the engine contents and peers the seed corpora are
//!   recorded from (`examples/gen_corpus.rs`).

pub mod fixture;
pub mod seeds;

use converge::codec::{seal, CHECKSUM_LEN};

pub use fixture::{Scratch, RESET_EVERY};

/// Mode bit: repair the frame (checksum; session id and sequence number of
/// sync messages) of every encoding in the input before it is decoded.
pub const RESEAL: u8 = 1;

/// Reads a fuzz input front to back. Reads past the end give zeros and
/// empty slices, so every input is a valid program.
#[derive(Clone, Debug)]
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Read `data` from its start.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    /// The next two bytes, little-endian (missing bytes are 0).
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// The next `n` bytes, or what is left if fewer.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A chunk written by [`chunk`]: a u16 length, then that many bytes
    /// (fewer if the input ends first).
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = self.u16() as usize;
        self.take(n)
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// Append a chunk (u16 length, little-endian, then the bytes) for
/// [`Input::chunk`]. Seeds longer than 65,535 bytes are not written (the
/// corpora hold small encodings); returns whether it was.
pub fn chunk(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
    let Ok(n) = u16::try_from(bytes.len()) else {
        return false;
    };
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(bytes);
    true
}

/// `bytes` without its last [`CHECKSUM_LEN`] bytes when it is long enough
/// to hold a version, a kind and a checksum; else all of it.
fn content(bytes: &[u8]) -> &[u8] {
    if bytes.len() >= 2 + CHECKSUM_LEN {
        &bytes[..bytes.len() - CHECKSUM_LEN]
    } else {
        bytes
    }
}

/// `bytes` (a whole encoding, or what the fuzzer made of one) with its
/// checksum trailer replaced by the right one for everything before it.
pub fn reseal(bytes: &[u8]) -> Vec<u8> {
    seal(content(bytes).to_vec())
}

/// Apply `mode`: [`reseal`] when [`RESEAL`] is set, else the bytes as
/// they are.
pub fn framed(mode: u8, bytes: &[u8]) -> Vec<u8> {
    if mode & RESEAL != 0 {
        reseal(bytes)
    } else {
        bytes.to_vec()
    }
}

/// A bincode 2 varint (standard configuration) at the start of `b`: its
/// value and length. `None` if `b` does not start with one.
pub fn read_varint(b: &[u8]) -> Option<(u64, usize)> {
    let le = |n: usize| -> Option<u64> {
        let bytes = b.get(1..1 + n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(bytes);
        Some(u64::from_le_bytes(v))
    };
    match *b.first()? {
        x @ 0..=250 => Some((u64::from(x), 1)),
        251 => Some((le(2)?, 3)),
        252 => Some((le(4)?, 5)),
        253 => Some((le(8)?, 9)),
        _ => None,
    }
}

/// Append `v` as a bincode 2 varint (its shortest form).
pub fn write_varint(out: &mut Vec<u8>, v: u64) {
    if v <= 250 {
        out.push(v as u8);
    } else if let Ok(x) = u16::try_from(v) {
        out.push(251);
        out.extend_from_slice(&x.to_le_bytes());
    } else if let Ok(x) = u32::try_from(v) {
        out.push(252);
        out.extend_from_slice(&x.to_le_bytes());
    } else {
        out.push(253);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A sync message (or what the fuzzer made of one) with the session id and
/// sequence number a session expects, and a valid checksum: the envelope
/// starts with the session (varint u64) and the sequence number (varint
/// u32) right after the version and kind bytes. When the body does not
/// start with two varints, only the checksum is repaired.
pub fn reframe(bytes: &[u8], session: u64, seq: u32) -> Vec<u8> {
    let content = content(bytes);
    let Some(body) = content.get(2..) else {
        return seal(content.to_vec());
    };
    let Some((_, n1)) = read_varint(body) else {
        return seal(content.to_vec());
    };
    let Some((_, n2)) = read_varint(&body[n1..]) else {
        return seal(content.to_vec());
    };
    let mut out = Vec::with_capacity(content.len() + 16);
    out.extend_from_slice(&content[..2]);
    write_varint(&mut out, session);
    write_varint(&mut out, u64::from(seq));
    out.extend_from_slice(&body[n1 + n2..]);
    seal(out)
}

/// The session id in a sync message's envelope, if it has one.
pub fn session_of(bytes: &[u8]) -> Option<u64> {
    read_varint(bytes.get(2..)?).map(|(v, _)| v)
}
