//! Canonical, versioned encodings. Every persisted value and wire message
//! starts with [`FORMAT_VERSION`], then a kind byte, then a bincode 2 body
//! (standard configuration: little-endian, variable-length integers;
//! collections are sorted maps and sets, so equal states give equal bytes),
//! then a 4-byte checksum (low 32 bits of xxh3-64 of everything before it,
//! little-endian). Decoding checks the checksum, checks sizes against hard
//! limits before allocating, and rejects trailing bytes and non-canonical
//! states. FORMAT.md documents the bytes.

use crate::causal::{CausalContext, ReplicaId, VersionVector};
use crate::crdt::State;
use crate::error::CodecError;
use bincode::{Decode, Encode};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;

/// Largest encoded state, delta or context, in bytes, everything included
/// (version, kind, body and checksum): 64 MiB. The engine never stores a
/// state larger than this (a write that would make one fails with
/// [`crate::Error::StateTooLarge`]) and decoders reject larger input.
pub const MAX_STATE_LEN: usize = 64 << 20;

/// The former name of [`MAX_STATE_LEN`].
pub const MAX_ENCODED_LEN: usize = MAX_STATE_LEN;

/// Largest sync message, in bytes, everything included: one state of
/// [`MAX_STATE_LEN`] with a key of [`crate::MAX_KEY_LEN`] and the message
/// envelope fit with room to spare (65 MiB).
pub const MAX_MESSAGE_LEN: usize = MAX_STATE_LEN + (1 << 20);

/// Kind byte of a full state (also the persisted value and merge operand).
pub const KIND_STATE: u8 = 0;
/// Kind byte of a delta envelope (origin replica, sequence, state).
pub const KIND_DELTA: u8 = 1;
/// Kind byte of a causal context (read context).
pub const KIND_CONTEXT: u8 = 2;
/// Kind byte of a version vector.
pub const KIND_VV: u8 = 3;
/// Kind byte of a persisted anti-entropy IBLT.
pub const KIND_IBLT: u8 = 4;
/// Kind byte of a sync message of protocol 1 (retired: refused with a
/// message naming the protocol).
pub const KIND_SYNC: u8 = 5;
/// Kind byte of a sync message of protocol 2 (causal records exchanged;
/// retired: refused with a message naming the protocol).
pub const KIND_SYNC2: u8 = 7;
/// Kind byte of a sync message of protocol 3 (lists travel as borrowed
/// byte strings, so a session's memory is bounded).
pub const KIND_SYNC3: u8 = 10;
/// Kind byte of a sync message of protocol 4 (protocol 3 with each side's
/// collection horizon in its first message; see `sync::message`).
pub const KIND_SYNC4: u8 = 11;
/// Kind byte of a stored value holding parts the merge operator could not
/// join within [`MAX_STATE_LEN`] (never on the wire; see FORMAT.md).
pub const KIND_PARTS: u8 = 6;
/// Kind byte of a delta envelope with its causal dependencies (origin,
/// sequence, dependencies, state): what local operations produce since
/// causal delivery.
pub const KIND_DELTA_DEPS: u8 = 8;
/// Kind byte of a page of the changes feed (and of an entry of the pending
/// area): dots, dependencies and one coalesced state per key.
pub const KIND_CHANGES: u8 = 9;

/// What decoding may claim to allocate, as a multiple of the input's size
/// limit. bincode counts every decoded integer at its in-memory width (a
/// one-byte varint claims 8 or 16 bytes) and every collection element at
/// its in-memory size, so a legitimate state claims more than it encodes
/// to: up to 16 times for the smallest entries (a G-Counter entry of two
/// one-byte varints claims 32 bytes). The frame length is checked first;
/// this only stops length prefixes that claim more than the input holds.
pub(crate) const CLAIM_FACTOR: usize = 32;

/// Claim limit of state, delta and context decoding (of the largest
/// inputs: smaller ones get less, see [`decode_body`]).
pub(crate) const STATE_CLAIMS: usize = MAX_STATE_LEN * CLAIM_FACTOR;

/// Claim limit of the largest inputs (changes pages, sync messages).
pub(crate) const MESSAGE_CLAIMS: usize = MAX_MESSAGE_LEN * CLAIM_FACTOR;

type Config<const LIMIT: usize> = bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Varint,
    bincode::config::Limit<LIMIT>,
>;

/// The bincode configuration; decoding reads (and allocates) at most
/// `LIMIT` bytes.
pub(crate) fn config_with<const LIMIT: usize>() -> Config<LIMIT> {
    bincode::config::standard().with_limit::<LIMIT>()
}

pub(crate) fn config() -> Config<STATE_CLAIMS> {
    config_with::<STATE_CLAIMS>()
}

/// Bytes of the checksum trailer.
pub const CHECKSUM_LEN: usize = 4;

fn checksum(bytes: &[u8]) -> [u8; CHECKSUM_LEN] {
    (xxhash_rust::xxh3::xxh3_64(bytes) as u32).to_le_bytes()
}

/// Append the checksum trailer to `content` (version byte, kind byte and
/// body; see FORMAT.md, "The envelope"), making it a sealed encoding.
///
/// Not for applications: the encoders seal what they write. For test and
/// fuzz harnesses that build or mutate encodings by hand and need the
/// bytes to pass the checksum and reach the decoders behind it
/// (fuzz/src/lib.rs re-seals every mutated input this way).
#[doc(hidden)]
pub fn seal(mut content: Vec<u8>) -> Vec<u8> {
    let sum = checksum(&content);
    content.extend_from_slice(&sum);
    content
}

/// Encode `body` behind the version and kind bytes, with the checksum.
pub(crate) fn encode_with<T: Encode>(kind: u8, body: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_with_into(kind, body, &mut out);
    out
}

/// Append the encoding of `body` to `out`.
pub(crate) fn encode_with_into<T: Encode>(kind: u8, body: &T, out: &mut Vec<u8>) {
    framed_into(kind, out, |out| {
        // Writing into a Vec cannot fail, and every type here encodes.
        if let Err(e) = bincode::encode_into_std_write(body, out, config()) {
            unreachable!("encoding into a Vec failed: {e}");
        }
    });
}

/// Append an encoding to `out`: the format version, `kind`, the body
/// `body` appends, and the checksum of all three.
fn framed_into(kind: u8, out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.push(FORMAT_VERSION);
    out.push(kind);
    body(out);
    let sum = checksum(&out[start..]);
    out.extend_from_slice(&sum);
}

/// Check the header and checksum of an encoding of at most
/// [`MAX_STATE_LEN`] bytes; return the kind and the body.
pub(crate) fn split_header<'a>(
    bytes: &'a [u8],
    kinds: &[u8],
) -> Result<(u8, &'a [u8]), CodecError> {
    split_header_max(bytes, kinds, MAX_STATE_LEN)
}

/// [`split_header`] for encodings of at most `max` bytes in all.
pub(crate) fn split_header_max<'a>(
    bytes: &'a [u8],
    kinds: &[u8],
    max: usize,
) -> Result<(u8, &'a [u8]), CodecError> {
    if bytes.len() > max {
        return Err(CodecError::TooLarge {
            len: bytes.len() as u64,
            max: max as u64,
        });
    }
    if bytes.len() < 2 + CHECKSUM_LEN {
        return Err(CodecError::Truncated(format!("{} bytes", bytes.len())));
    }
    let (content, sum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
    let intact = checksum(content) == sum;
    // Damaged bytes are reported as damaged, even when the damage hit the
    // version or kind byte; intact bytes of another version as such.
    match bytes {
        [v, ..] if *v != FORMAT_VERSION && intact => Err(CodecError::UnknownVersion {
            found: *v,
            supported: FORMAT_VERSION,
        }),
        _ if !intact => Err(diagnose(bytes)),
        [_, k, body @ ..] if kinds.contains(k) => Ok((*k, &body[..body.len() - CHECKSUM_LEN])),
        [_, k, ..] => Err(CodecError::UnknownKind(*k)),
        _ => Err(CodecError::Truncated("missing header".into())),
    }
}

/// Why bytes whose checksum does not match are bad: `Truncated` if they are
/// the start of a valid encoding of their kind (cut inside the body, or
/// inside or before the checksum), else `Checksum` (damaged).
fn diagnose(bytes: &[u8]) -> CodecError {
    fn cut<T: Decode<()>>(bytes: &[u8]) -> bool {
        let Some(body) = bytes.get(2..) else {
            return false;
        };
        // Cut inside the body: the decoder runs out of bytes.
        if matches!(decode_body::<T>(body), Err(CodecError::Truncated(_))) {
            return true;
        }
        // Cut inside or before the checksum: a whole body, then the first
        // `keep` bytes of its checksum.
        (0..CHECKSUM_LEN).any(|keep| {
            bytes.len() >= 2 + keep && {
                let (content, partial) = bytes.split_at(bytes.len() - keep);
                checksum(content)[..keep] == *partial && decode_body::<T>(&content[2..]).is_ok()
            }
        })
    }
    let truncated = match bytes.get(1) {
        Some(&KIND_STATE) => cut::<State>(bytes),
        Some(&KIND_DELTA) => cut::<DeltaV1>(bytes),
        Some(&KIND_DELTA_DEPS) => cut::<DeltaV2>(bytes),
        Some(&KIND_CONTEXT) => cut::<CausalContext>(bytes),
        Some(&KIND_VV) => cut::<VersionVector>(bytes),
        _ => false,
    };
    if truncated {
        CodecError::Truncated(format!(
            "{} bytes: the input ends before the encoding does",
            bytes.len()
        ))
    } else {
        CodecError::Checksum
    }
}

/// Decode a whole body: every byte must be used. What decoding may claim
/// scales with the body (see [`scaled_claims`]).
pub(crate) fn decode_body<T: Decode<()>>(body: &[u8]) -> Result<T, CodecError> {
    scaled_claims!(body.len(), decode_body_max, T, body)
}

/// [`borrow_decode_body_max`] with claims that scale with the body.
pub(crate) fn borrow_decode_body<'a, T: bincode::BorrowDecode<'a, ()>>(
    body: &'a [u8],
) -> Result<T, CodecError> {
    scaled_claims!(body.len(), borrow_decode_body_max, T, body)
}

/// Call `$f::<$t, LIMIT>($body)` with the claim limit of the smallest size
/// tier (4 KiB, 256 KiB, 8 MiB, the message ceiling) that holds `$len`
/// bytes, times [`CLAIM_FACTOR`]. bincode reserves a collection's claimed
/// length before reading it (`Vec::with_capacity`), so with one limit for
/// every input a few forged bytes could make the decoder reserve
/// gigabytes; scaled, a body reserves at most 32 times its tier.
macro_rules! scaled_claims {
    ($len:expr, $f:ident, $t:ty, $body:expr) => {
        match $len {
            n if n <= 4 << 10 => $f::<$t, { (4 << 10) * CLAIM_FACTOR }>($body),
            n if n <= 256 << 10 => $f::<$t, { (256 << 10) * CLAIM_FACTOR }>($body),
            n if n <= 8 << 20 => $f::<$t, { (8 << 20) * CLAIM_FACTOR }>($body),
            _ => $f::<$t, MESSAGE_CLAIMS>($body),
        }
    };
}
use scaled_claims;

mod join;
mod skim;
#[doc(hidden)]
#[doc(hidden)]
pub use join::join_orset_states;
pub(crate) use join::OrSetBytes;
pub use skim::skim_state;
pub(crate) use skim::{skim_delta, SkimmedDelta};

/// [`decode_body`] claiming at most `LIMIT` bytes (see [`CLAIM_FACTOR`]).
pub(crate) fn decode_body_max<T: Decode<()>, const LIMIT: usize>(
    body: &[u8],
) -> Result<T, CodecError> {
    whole::<T, LIMIT>(
        body.len(),
        bincode::decode_from_slice::<T, _>(body, config_with::<LIMIT>()),
    )
}

/// [`decode_body_max`] for a type that borrows from the body.
pub(crate) fn borrow_decode_body_max<'a, T: bincode::BorrowDecode<'a, ()>, const LIMIT: usize>(
    body: &'a [u8],
) -> Result<T, CodecError> {
    whole::<T, LIMIT>(
        body.len(),
        bincode::borrow_decode_from_slice::<T, _>(body, config_with::<LIMIT>()),
    )
}

/// The value of a decode of a `len`-byte body that must use every byte.
fn whole<T, const LIMIT: usize>(
    len: usize,
    decoded: Result<(T, usize), bincode::error::DecodeError>,
) -> Result<T, CodecError> {
    match decoded {
        Ok((v, used)) if used == len => Ok(v),
        Ok((_, used)) => Err(CodecError::Malformed(format!(
            "{} trailing bytes after the encoding",
            len - used
        ))),
        Err(e) => Err(map_decode_error::<LIMIT>(e)),
    }
}

fn map_decode_error<const LIMIT: usize>(e: bincode::error::DecodeError) -> CodecError {
    use bincode::error::DecodeError as D;
    match e {
        D::UnexpectedEnd { additional } => {
            CodecError::Truncated(format!("{additional} more bytes needed"))
        }
        D::LimitExceeded => CodecError::TooLarge {
            len: u64::MAX,
            max: LIMIT as u64,
        },
        other => CodecError::Malformed(other.to_string()),
    }
}

/// A decoded state or delta.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    /// A full state (or a state-shaped delta without envelope).
    State(State),
    /// A delta from a local operation, with its origin.
    Delta(Delta),
}

impl Item {
    /// The state inside.
    pub fn state(&self) -> &State {
        match self {
            Item::State(s) => s,
            Item::Delta(d) => &d.state,
        }
    }

    /// The state inside, by value.
    pub fn into_state(self) -> State {
        match self {
            Item::State(s) => s,
            Item::Delta(d) => d.state,
        }
    }
}

/// A delta produced by a local operation: ship it to peers, who pass it to
/// `Engine::merge`. Applying it twice is harmless; applied out of causal
/// order it waits in the receiver's pending area until its dependencies
/// arrive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delta {
    /// The replica whose operation produced it.
    pub origin: ReplicaId,
    /// That replica's operation sequence number (1, 2, …).
    pub seq: u64,
    /// The operation's direct dependencies beyond its origin's own earlier
    /// operations (which it always depends on): the peers' dots the origin
    /// had merged since its previous operation, as the origin's record of
    /// those peers. `None`: no dependencies recorded (a delta of encoding
    /// kind 1, from a build before causal delivery, or made by hand); it is
    /// applied at once.
    pub deps: Option<CausalContext>,
    /// The delta state: join it into the key's state.
    pub state: State,
}

/// Kind 1 body.
#[derive(Decode)]
struct DeltaV1 {
    origin: ReplicaId,
    seq: u64,
    state: State,
}

/// Kind 8 body.
#[derive(Decode)]
struct DeltaV2 {
    origin: ReplicaId,
    seq: u64,
    deps: CausalContext,
    state: State,
}

impl Encode for Delta {
    fn encode<E: bincode::enc::Encoder>(
        &self,
        e: &mut E,
    ) -> Result<(), bincode::error::EncodeError> {
        self.origin.encode(e)?;
        self.seq.encode(e)?;
        if let Some(deps) = &self.deps {
            deps.encode(e)?;
        }
        self.state.encode(e)
    }
}

impl Delta {
    /// The encoding kind: [`KIND_DELTA_DEPS`] with dependencies, else
    /// [`KIND_DELTA`].
    pub fn kind(&self) -> u8 {
        if self.deps.is_some() {
            KIND_DELTA_DEPS
        } else {
            KIND_DELTA
        }
    }

    /// The canonical wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_with(self.kind(), self)
    }

    /// Append the canonical wire bytes to `out` (no allocation of its own,
    /// for packing many deltas into one buffer).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode_with_into(self.kind(), self, out)
    }

    /// Everything a receiver must hold before the delta's effects may
    /// become visible: its origin's operations `1..seq` and its recorded
    /// dependencies. `None` for a delta without recorded dependencies.
    pub fn requires(&self) -> Option<CausalContext> {
        let mut need = self.deps.clone()?;
        need.insert_range(self.origin, 1, self.seq.saturating_sub(1));
        Some(need)
    }

    /// A well-formed delta has a sequence number of at least 1 and
    /// dependencies in canonical form that name no operation of its own
    /// origin (those are implied).
    fn check(&self) -> Result<(), CodecError> {
        if self.seq == 0 {
            return Err(CodecError::Malformed(
                "a delta with sequence number 0".into(),
            ));
        }
        if let Some(deps) = &self.deps {
            if !deps.is_canonical() {
                return Err(CodecError::NotCanonical);
            }
            if deps.next_dot(self.origin).counter > 1 {
                return Err(CodecError::Malformed(format!(
                    "a delta's dependencies name operations of its own origin {} \
                     (they are implied by its sequence number {})",
                    self.origin, self.seq
                )));
            }
        }
        Ok(())
    }
}

/// A page of the changes feed ([`crate::Engine::changes_since`]), applied
/// by [`crate::Engine::apply_changes`] atomically: the operations `dots`,
/// coalesced into one state per key, and what they depend on. Also the
/// form in which the pending area keeps a delta that waits for its
/// dependencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Changes {
    /// The operations this page carries (never empty). On the wire: runs
    /// of consecutive dots, so a page of operations `n..m` of one replica
    /// costs a few bytes whatever its length.
    pub dots: CausalContext,
    /// What a receiver must hold before the page's effects may become
    /// visible (disjoint from `dots`).
    pub deps: CausalContext,
    /// The join of the page's deltas per key, in ascending key order, each
    /// key once.
    pub entries: Vec<(Vec<u8>, State)>,
}

/// Most operations a page may carry; a decoded page naming more is
/// `Malformed` (a forged run of dots could otherwise claim 2^64).
pub const MAX_PAGE_OPERATIONS: u64 = 1 << 20;

/// Kind 9 body, as encoded.
#[derive(Encode)]
struct ChangesOut<'a> {
    runs: Vec<(ReplicaId, u64, u64)>,
    deps: &'a CausalContext,
    entries: &'a [(Vec<u8>, State)],
}

/// Kind 9 body, as decoded.
#[derive(Decode)]
struct ChangesIn {
    runs: Vec<(ReplicaId, u64, u64)>,
    deps: CausalContext,
    entries: Vec<(Vec<u8>, State)>,
}

/// The maximal runs of consecutive dots of a context, in (replica, lo)
/// order.
fn runs_of(c: &CausalContext) -> Vec<(ReplicaId, u64, u64)> {
    let mut runs: Vec<(ReplicaId, u64, u64)> = Vec::new();
    let vv: std::collections::BTreeMap<ReplicaId, u64> = c.vv().iter().collect();
    let mut replicas: Vec<ReplicaId> = vv.keys().copied().collect();
    replicas.extend(c.cloud().iter().map(|d| d.replica));
    replicas.sort_unstable();
    replicas.dedup();
    for r in replicas {
        if let Some(&n) = vv.get(&r) {
            runs.push((r, 1, n));
        }
        let lo = crate::causal::Dot::new(r, 0);
        let hi = crate::causal::Dot::new(r, u64::MAX);
        for d in c.cloud().range(lo..=hi) {
            match runs.last_mut() {
                Some((lr, _, h)) if *lr == r && *h + 1 == d.counter => *h = d.counter,
                _ => runs.push((r, d.counter, d.counter)),
            }
        }
    }
    runs
}

impl Changes {
    /// The canonical wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_with(
            KIND_CHANGES,
            &ChangesOut {
                runs: runs_of(&self.dots),
                deps: &self.deps,
                entries: &self.entries,
            },
        )
    }

    /// Decode and check a page: canonical runs (ascending, disjoint, not
    /// adjacent, at most [`MAX_PAGE_OPERATIONS`] dots), canonical contexts
    /// and states, at least one dot, dependencies disjoint from the dots,
    /// keys ascending, unique and within [`crate::MAX_KEY_LEN`], at most
    /// [`MAX_MESSAGE_LEN`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Changes, CodecError> {
        let (_, body) = split_header_max(bytes, &[KIND_CHANGES], MAX_MESSAGE_LEN)?;
        let w: ChangesIn = decode_body(body)?;
        let mut total: u64 = 0;
        for (i, &(r, lo, hi)) in w.runs.iter().enumerate() {
            if lo == 0 || hi < lo {
                return Err(CodecError::Malformed(format!("a run of dots {lo}..={hi}")));
            }
            if let Some(&(pr, _, ph)) = i.checked_sub(1).and_then(|j| w.runs.get(j)) {
                if pr > r || (pr == r && ph.saturating_add(1) >= lo) {
                    return Err(CodecError::NotCanonical);
                }
            }
            total = total.saturating_add(hi - lo + 1);
        }
        if total > MAX_PAGE_OPERATIONS {
            return Err(CodecError::TooLarge {
                len: total,
                max: MAX_PAGE_OPERATIONS,
            });
        }
        let mut dots = CausalContext::new();
        for &(r, lo, hi) in &w.runs {
            dots.insert_range(r, lo, hi);
        }
        let c = Changes {
            dots,
            deps: w.deps,
            entries: w.entries,
        };
        if !c.deps.is_canonical() {
            return Err(CodecError::NotCanonical);
        }
        if c.dots.is_empty() {
            return Err(CodecError::Malformed(
                "a page of changes with no operation".into(),
            ));
        }
        if c.deps.includes_any(&c.dots) {
            return Err(CodecError::Malformed(
                "a page of changes depends on one of its own operations".into(),
            ));
        }
        for w in c.entries.windows(2) {
            if w[0].0 >= w[1].0 {
                return Err(CodecError::Malformed(
                    "page entries are not in ascending key order".into(),
                ));
            }
        }
        for (k, st) in &c.entries {
            if k.len() > crate::MAX_KEY_LEN {
                return Err(CodecError::TooLarge {
                    len: k.len() as u64,
                    max: crate::MAX_KEY_LEN as u64,
                });
            }
            if !st.is_canonical() {
                return Err(CodecError::NotCanonical);
            }
        }
        Ok(c)
    }
}

/// Encode a full state.
pub fn encode_state(state: &State) -> Vec<u8> {
    encode_with(KIND_STATE, state)
}

/// Append the encoding of a full state (as [`encode_state`] returns it)
/// to `out`: for callers that reuse one buffer.
pub(crate) fn encode_state_into(state: &State, out: &mut Vec<u8>) {
    encode_with_into(KIND_STATE, state, out)
}

/// Append the sealed full-state encoding whose body is `body` (a state's
/// canonical bincode body, as [`skim::SkimmedDelta::body`] certifies one)
/// to `out`: the bytes [`encode_state`] makes of that state.
pub(crate) fn seal_state_body_into(body: &[u8], out: &mut Vec<u8>) {
    framed_into(KIND_STATE, out, |out| out.extend_from_slice(body));
}

/// Append the bincode body of a state's encoding to `out` (no version,
/// kind or checksum: for containers that check integrity themselves, like
/// the changes feed's log).
pub(crate) fn encode_state_body_into(state: &State, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and every state encodes.
    if let Err(e) = bincode::encode_into_std_write(state, out, config()) {
        unreachable!("encoding into a Vec failed: {e}");
    }
}

/// Decode a state body written by [`encode_state_body_into`], checking
/// that it is canonical.
pub(crate) fn decode_state_body(body: &[u8]) -> Result<State, CodecError> {
    let s: State = decode_body(body)?;
    if !s.is_canonical() {
        return Err(CodecError::NotCanonical);
    }
    Ok(s)
}

/// Decode a full state or a delta (either kind), and check that it is
/// well formed and its state canonical.
pub fn decode_item(bytes: &[u8]) -> Result<Item, CodecError> {
    let (kind, body) = split_header(bytes, &[KIND_STATE, KIND_DELTA, KIND_DELTA_DEPS])?;
    let item = match kind {
        KIND_STATE => Item::State(decode_canonical_body(body)?),
        KIND_DELTA => {
            let d: DeltaV1 = decode_body(body)?;
            Item::Delta(Delta {
                origin: d.origin,
                seq: d.seq,
                deps: None,
                state: d.state,
            })
        }
        _ => {
            let d: DeltaV2 = decode_body(body)?;
            Item::Delta(Delta {
                origin: d.origin,
                seq: d.seq,
                deps: Some(d.deps),
                state: d.state,
            })
        }
    };
    if let Item::Delta(d) = &item {
        d.check()?;
    }
    if !item.state().is_canonical() {
        return Err(CodecError::NotCanonical);
    }
    Ok(item)
}

/// Decode a full state body that must be byte for byte the encoding of its
/// value. The write path stores a merged full state's bytes as they came
/// (no re-encoding), and anti-entropy hashes stored bytes, so bytes that
/// decode to a canonical state but are not its encoding would make two
/// replicas holding equal states look different. bincode accepts such
/// bytes: sets and maps in any order or with repeated elements (collapsed
/// on decoding), integers in a longer varint form than the shortest.
/// Found by the `codec` fuzz target (docs/RELIABILITY.md).
fn decode_canonical_body(body: &[u8]) -> Result<State, CodecError> {
    let s: State = decode_body(body)?;
    let mut again = Vec::with_capacity(body.len());
    encode_state_body_into(&s, &mut again);
    if again != body {
        return Err(CodecError::NotCanonical);
    }
    Ok(s)
}

/// Decode a full state (persisted value or merge operand). The value must
/// be canonical, but its bytes are not checked to be that value's own
/// encoding (a set written in another order, a varint in a longer form, a
/// plain set under the tombstone variant all decode): the store's bytes
/// were certified when they were taken in. Bytes from a peer go through
/// [`decode_item`], which refuses such encodings.
pub fn decode_state(bytes: &[u8]) -> Result<State, CodecError> {
    let (_, body) = split_header(bytes, &[KIND_STATE])?;
    let s: State = decode_body(body)?;
    if !s.is_canonical() {
        return Err(CodecError::NotCanonical);
    }
    Ok(s)
}

/// Encode a causal context (as returned by reads, passed to writes).
pub fn encode_context(ctx: &CausalContext) -> Vec<u8> {
    encode_with(KIND_CONTEXT, ctx)
}

/// Decode a causal context. The empty byte string is the empty context.
pub fn decode_context(bytes: &[u8]) -> Result<CausalContext, CodecError> {
    if bytes.is_empty() {
        return Ok(CausalContext::new());
    }
    let (_, body) = split_header(bytes, &[KIND_CONTEXT])?;
    let c: CausalContext = decode_body(body)?;
    if !c.is_canonical() {
        return Err(CodecError::NotCanonical);
    }
    Ok(c)
}

/// Encode a version vector.
pub fn encode_vv(vv: &VersionVector) -> Vec<u8> {
    encode_with(KIND_VV, vv)
}

/// Decode a version vector.
pub fn decode_vv(bytes: &[u8]) -> Result<VersionVector, CodecError> {
    let (_, body) = split_header(bytes, &[KIND_VV])?;
    let v: VersionVector = decode_body(body)?;
    if !v.is_canonical() {
        return Err(CodecError::NotCanonical);
    }
    Ok(v)
}

/// Encode an IBLT (persisted at clean close).
pub fn encode_iblt(t: &crate::aae::iblt::Iblt) -> Vec<u8> {
    encode_with(KIND_IBLT, t)
}

/// Decode an IBLT, checking its shape.
pub fn decode_iblt(bytes: &[u8]) -> Result<crate::aae::iblt::Iblt, CodecError> {
    let (_, body) = split_header(bytes, &[KIND_IBLT])?;
    let t: crate::aae::iblt::Iblt = decode_body(body)?;
    if !t.is_well_formed() {
        return Err(CodecError::Malformed("IBLT shape".into()));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crdt::{CrdtType, GCounter};

    #[test]
    fn round_trip_and_rejections() {
        let mut g = GCounter::default();
        g.increment(ReplicaId(9), 3).unwrap();
        let bytes = encode_state(&State::GCounter(g.clone()));
        assert_eq!(decode_state(&bytes).unwrap(), State::GCounter(g.clone()));
        assert!(matches!(decode_item(&[]), Err(CodecError::Truncated(_))));
        assert!(matches!(
            decode_item(&seal(vec![9, 0, 0])),
            Err(CodecError::UnknownVersion { found: 9, .. })
        ));
        assert!(matches!(
            decode_item(&[9, 0, 0, 0, 0, 0, 0]),
            Err(CodecError::Checksum)
        ));
        assert!(matches!(
            decode_item(&seal(vec![1, 7])),
            Err(CodecError::UnknownKind(7))
        ));
        assert!(matches!(
            decode_item(&[1, 0, 0]),
            Err(CodecError::Truncated(_))
        ));
        for cut in 2..bytes.len() {
            assert!(decode_item(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A cut anywhere is reported as truncation, not as damage.
        let delta = Delta {
            origin: ReplicaId(3),
            seq: 7,
            deps: None,
            state: State::GCounter(g.clone()),
        }
        .encode();
        for cut in 0..delta.len() {
            assert!(
                matches!(decode_item(&delta[..cut]), Err(CodecError::Truncated(_))),
                "cut at {cut}: {:?}",
                decode_item(&delta[..cut])
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode_item(&long).is_err());
        for i in 2..bytes.len() {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            assert!(decode_item(&bad).is_err(), "flip at {i}");
        }
        let empty = encode_state(&State::empty(CrdtType::ORSet));
        assert!(decode_item(&empty).is_ok());
    }

    #[test]
    fn huge_claimed_length_is_rejected_without_allocating() {
        // A G-Set claiming 2^60 elements.
        let mut bytes = vec![FORMAT_VERSION, KIND_STATE, 2u8];
        bytes.push(253); // varint u64 marker
        bytes.extend_from_slice(&(1u64 << 60).to_le_bytes());
        let err = decode_item(&seal(bytes)).unwrap_err();
        assert!(
            matches!(err, CodecError::TooLarge { .. } | CodecError::Truncated(_)),
            "{err:?}"
        );
    }

    #[test]
    fn non_canonical_counter_is_rejected() {
        // GCounter with one zero entry: variant 0, map len 1, replica, 0.
        let mut body = Vec::new();
        bincode::encode_into_std_write(0u32, &mut body, config()).unwrap();
        bincode::encode_into_std_write(1u64, &mut body, config()).unwrap();
        bincode::encode_into_std_write(5u128, &mut body, config()).unwrap();
        bincode::encode_into_std_write(0u64, &mut body, config()).unwrap();
        let mut bytes = vec![FORMAT_VERSION, KIND_STATE];
        bytes.extend(body);
        assert_eq!(decode_item(&seal(bytes)), Err(CodecError::NotCanonical));
        // Entries out of replica order.
        let mut body = Vec::new();
        for v in [0u128, 2, 7, 1, 5, 1] {
            bincode::encode_into_std_write(v, &mut body, config()).unwrap();
        }
        let mut bytes = vec![FORMAT_VERSION, KIND_STATE];
        bytes.extend(body);
        assert_eq!(decode_item(&seal(bytes)), Err(CodecError::NotCanonical));
    }
}

#[cfg(test)]
mod format_doc {
    //! The example bytes of FORMAT.md.
    use super::*;
    use crate::crdt::GCounter;

    #[test]
    fn documented_gcounter_example() {
        let mut g = GCounter::default();
        g.increment(ReplicaId(9), 3).unwrap();
        let b = encode_state(&State::GCounter(g));
        assert_eq!(&b[..6], &[1, 0, 0, 1, 9, 3]);
        assert_eq!(b.len(), 10);
    }

    #[test]
    fn documented_delta_with_dependencies_example() {
        let mut g = GCounter::default();
        let state = State::GCounter(g.increment(ReplicaId(5), 1).unwrap());
        let d = Delta {
            origin: ReplicaId(5),
            seq: 1,
            deps: Some(CausalContext::new()),
            state,
        };
        let b = d.encode();
        assert_eq!(&b[..10], &[1, 8, 5, 1, 0, 0, 0, 1, 5, 1]);
        assert_eq!(b.len(), 14);
        assert_eq!(decode_item(&b).unwrap(), Item::Delta(d));
    }
}

#[cfg(test)]
mod encode_into_tests {
    use super::*;
    use crate::crdt::GCounter;

    #[test]
    fn encode_into_appends_the_same_bytes() {
        let mut g = GCounter::default();
        let state = State::GCounter(g.increment(ReplicaId(4), 2).unwrap());
        let d = Delta {
            origin: ReplicaId(4),
            seq: 1,
            deps: Some(CausalContext::new()),
            state,
        };
        let mut buf = vec![0xAA];
        d.encode_into(&mut buf);
        assert_eq!(&buf[1..], &d.encode()[..]);
        assert_eq!(decode_item(&buf[1..]).unwrap(), Item::Delta(d));
    }
}

#[cfg(test)]
mod changes_tests {
    use super::*;
    use crate::causal::Dot;
    use crate::crdt::GCounter;

    fn page(runs: Vec<(ReplicaId, u64, u64)>) -> Vec<u8> {
        let deps = CausalContext::new();
        let mut g = GCounter::default();
        let entries = vec![(
            b"k".to_vec(),
            State::GCounter(g.increment(ReplicaId(1), 1).unwrap()),
        )];
        encode_with(
            KIND_CHANGES,
            &ChangesOut {
                runs,
                deps: &deps,
                entries: &entries,
            },
        )
    }

    #[test]
    fn dots_travel_as_runs_and_forged_runs_are_refused() {
        let mut dots = CausalContext::new();
        dots.insert_range(ReplicaId(1), 1, 3);
        for n in 10..=5000 {
            dots.insert(Dot::new(ReplicaId(2), n));
        }
        dots.insert(Dot::new(ReplicaId(2), 7000));
        assert_eq!(
            runs_of(&dots),
            vec![
                (ReplicaId(1), 1, 3),
                (ReplicaId(2), 10, 5000),
                (ReplicaId(2), 7000, 7000)
            ]
        );
        let c = Changes {
            dots: dots.clone(),
            deps: CausalContext::new(),
            entries: Vec::new(),
        };
        let bytes = c.encode();
        assert!(bytes.len() < 40, "{} bytes", bytes.len());
        assert_eq!(Changes::decode(&bytes).unwrap(), c);
        // A run of 2^64 dots, overlapping or adjacent runs, a zero dot.
        let r = ReplicaId(2);
        assert!(matches!(
            Changes::decode(&page(vec![(r, 5, u64::MAX)])),
            Err(CodecError::TooLarge { .. })
        ));
        assert_eq!(
            Changes::decode(&page(vec![(r, 1, 5), (r, 6, 9)])),
            Err(CodecError::NotCanonical)
        );
        assert_eq!(
            Changes::decode(&page(vec![(r, 1, 5), (r, 3, 9)])),
            Err(CodecError::NotCanonical)
        );
        assert!(matches!(
            Changes::decode(&page(vec![(r, 0, 5)])),
            Err(CodecError::Malformed(_))
        ));
        assert!(matches!(
            Changes::decode(&page(vec![])),
            Err(CodecError::Malformed(_))
        ));
        assert!(Changes::decode(&page(vec![(r, 1, 5), (r, 7, 9)])).is_ok());
    }
}

#[cfg(test)]
mod limit_tests {
    use super::*;
    use crate::crdt::GSet;

    /// A G-Set whose encoding is exactly `total` bytes: four elements with
    /// 5-byte length prefixes (see FORMAT.md).
    fn gset_of_len(total: usize) -> Vec<u8> {
        let rest = total - (2 + 1 + 1 + 4 * 5 + 4);
        let mut s = GSet::default();
        for t in 0..4u8 {
            let len = if t < 3 {
                rest / 4
            } else {
                rest - 3 * (rest / 4)
            };
            s.add(&vec![t; len]);
        }
        let bytes = encode_state(&State::GSet(s));
        assert_eq!(bytes.len(), total);
        bytes
    }

    #[test]
    fn a_state_of_exactly_the_limit_decodes_one_byte_more_does_not() {
        let at = gset_of_len(MAX_STATE_LEN);
        assert!(decode_item(&at).is_ok(), "{:?}", decode_item(&at).err());
        assert!(decode_state(&at).is_ok());
        let over = gset_of_len(MAX_STATE_LEN + 1);
        assert!(matches!(
            decode_item(&over),
            Err(CodecError::TooLarge { len, max }) if len == MAX_STATE_LEN as u64 + 1 && max == MAX_STATE_LEN as u64
        ));
    }
}
