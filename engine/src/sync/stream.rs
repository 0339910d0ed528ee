//! The parts of a session that grow with the number of keys, kept bounded:
//! our entries are read one estimate-level subtree at a time (a key list
//! is sent and a peer's key list is diffed as a stream), and the states a
//! side ships are read as its messages are pulled, a few at a time, never
//! all at once.

use super::message::{push_entry, push_state, KeyState};
use super::{SyncError, SyncStore};
use crate::aae::{FANOUT_BITS, SEGMENT_BITS};
use std::collections::VecDeque;

/// Tree level whose nodes estimate the difference: 1,024 nodes.
pub(crate) const EST_LEVEL: usize = 2;
pub(crate) const EST_BITS: u32 = SEGMENT_BITS - EST_LEVEL as u32 * FANOUT_BITS;
pub(crate) const EST_NODES: usize = 1 << EST_BITS;

/// The estimate-level node of a key hash.
pub(crate) fn node_of(kh: u64) -> usize {
    (kh >> (64 - EST_BITS)) as usize
}

fn is_set(bitmap: &[u64], node: usize) -> bool {
    bitmap
        .get(node / 64)
        .is_some_and(|w| w & (1 << (node % 64)) != 0)
}

/// Our (key hash, entry hash) pairs in the subtrees set in a bitmap, in
/// ascending order, read one subtree at a time.
pub(crate) struct OurEntries {
    bitmap: Vec<u64>,
    next_node: usize,
    buf: Vec<(u64, u128)>,
    pos: usize,
}

impl OurEntries {
    pub(crate) fn new(bitmap: Vec<u64>) -> Self {
        OurEntries {
            bitmap,
            next_node: 0,
            buf: Vec::new(),
            pos: 0,
        }
    }

    pub(crate) fn bitmap(&self) -> &[u64] {
        &self.bitmap
    }

    /// The next entry, without taking it.
    pub(crate) fn peek<S: SyncStore + ?Sized>(
        &mut self,
        store: &S,
    ) -> Result<Option<(u64, u128)>, SyncError> {
        while self.pos == self.buf.len() {
            let Some(node) = (self.next_node..EST_NODES).find(|&n| is_set(&self.bitmap, n)) else {
                self.next_node = EST_NODES;
                return Ok(None);
            };
            self.next_node = node + 1;
            let shift = 64 - EST_BITS;
            let lo = (node as u64) << shift;
            let hi = lo | ((1u64 << shift) - 1);
            self.buf.clear();
            self.buf.extend(
                store
                    .entries_in(lo, hi)?
                    .into_iter()
                    .map(|(kh, _, eh)| (kh, eh)),
            );
            self.buf.sort_unstable();
            self.buf.dedup();
            self.pos = 0;
        }
        Ok(self.buf.get(self.pos).copied())
    }

    /// Take the entry `peek` returned.
    pub(crate) fn advance(&mut self) {
        self.pos += 1;
    }
}

/// A list of key hashes that stops growing at a cap (the difference one
/// session repairs is bounded; the rest waits for the next session).
#[derive(Default)]
pub(crate) struct CappedHashes {
    pub(crate) khs: Vec<u64>,
    cap: usize,
    pub(crate) truncated: bool,
}

impl CappedHashes {
    pub(crate) fn new(cap: usize) -> Self {
        CappedHashes {
            khs: Vec::new(),
            cap,
            truncated: false,
        }
    }

    pub(crate) fn push(&mut self, kh: u64) {
        if self.khs.last() == Some(&kh) {
            return;
        }
        if self.khs.len() < self.cap {
            self.khs.push(kh);
        } else {
            self.truncated = true;
        }
    }

    /// Sorted, without duplicates.
    pub(crate) fn into_sorted(mut self) -> (Vec<u64>, bool) {
        self.khs.sort_unstable();
        self.khs.dedup();
        (self.khs, self.truncated)
    }
}

/// Diffs a peer's key list, part by part, against our entries in the same
/// subtrees: a merge of two ascending lists. Holds one subtree of our
/// entries and the two capped hash lists, never the peer's whole list.
pub(crate) struct Differ {
    ours: OurEntries,
    last_theirs: Option<(u64, u128)>,
    /// Our keys the peer lacks or holds differently: ship them.
    pub(crate) ship: CappedHashes,
    /// The peer's keys we lack or hold differently: ask for them.
    pub(crate) want: CappedHashes,
}

impl Differ {
    pub(crate) fn new(bitmap: Vec<u64>, cap: usize) -> Self {
        Differ {
            ours: OurEntries::new(bitmap),
            last_theirs: None,
            ship: CappedHashes::new(cap),
            want: CappedHashes::new(cap),
        }
    }

    pub(crate) fn bitmap(&self) -> &[u64] {
        self.ours.bitmap()
    }

    /// Diff one part of the peer's list (ascending, checked by the
    /// decoder; ascending after the previous part and inside the listed
    /// subtrees, checked here).
    pub(crate) fn feed<S: SyncStore + ?Sized>(
        &mut self,
        store: &S,
        theirs: impl Iterator<Item = (u64, u128)>,
    ) -> Result<(), SyncError> {
        for e in theirs {
            if self.last_theirs.is_some_and(|p| p >= e) {
                return Err(SyncError::Malformed(
                    "key list parts out of ascending order".into(),
                ));
            }
            if !is_set(self.ours.bitmap(), node_of(e.0)) {
                return Err(SyncError::Malformed(
                    "key list entry outside the listed subtrees".into(),
                ));
            }
            self.last_theirs = Some(e);
            loop {
                match self.ours.peek(store)? {
                    Some(o) if o < e => {
                        self.ship.push(o.0);
                        self.ours.advance();
                    }
                    Some(o) if o == e => {
                        self.ours.advance();
                        break;
                    }
                    _ => {
                        self.want.push(e.0);
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The peer's list is complete: our remaining entries are ours alone.
    pub(crate) fn finish<S: SyncStore + ?Sized>(&mut self, store: &S) -> Result<(), SyncError> {
        while let Some(o) = self.ours.peek(store)? {
            self.ship.push(o.0);
            self.ours.advance();
        }
        Ok(())
    }
}

/// Our key list of the differing subtrees, produced one part at a time.
pub(crate) struct KeyListStream {
    ours: OurEntries,
    per_part: usize,
}

impl KeyListStream {
    pub(crate) fn new(bitmap: Vec<u64>, budget: usize) -> Self {
        KeyListStream {
            ours: OurEntries::new(bitmap),
            per_part: (budget / super::message::ENTRY_LEN).max(1),
        }
    }

    pub(crate) fn bitmap(&self) -> &[u64] {
        self.ours.bitmap()
    }

    /// The next part's entries, and whether it is the last.
    pub(crate) fn next_part<S: SyncStore + ?Sized>(
        &mut self,
        store: &S,
    ) -> Result<(Vec<u8>, bool), SyncError> {
        let mut blob = Vec::new();
        for _ in 0..self.per_part {
            match self.ours.peek(store)? {
                Some((kh, eh)) => {
                    push_entry(&mut blob, kh, eh);
                    self.ours.advance();
                }
                None => break,
            }
        }
        let last = self.ours.peek(store)?.is_none();
        Ok((blob, last))
    }
}

/// States of a sorted list of key hashes, read as messages are built: a
/// few keys at a time (fewer when states are large), so that what is held
/// beyond the message being built is at most one read's worth.
pub(crate) struct StateStream {
    khs: Vec<u64>,
    pos: usize,
    carry: VecDeque<KeyState>,
    /// Keys read per store call: adapts to the states' sizes.
    per_read: usize,
}

/// Most keys read per store call.
const MAX_PER_READ: usize = 256;

impl StateStream {
    pub(crate) fn new(khs: Vec<u64>) -> Self {
        StateStream {
            khs,
            pos: 0,
            carry: VecDeque::new(),
            per_read: 16,
        }
    }

    /// Whether every state has been taken.
    pub(crate) fn is_done(&self) -> bool {
        self.carry.is_empty() && self.pos == self.khs.len()
    }

    fn refill<S: SyncStore + ?Sized>(&mut self, store: &S, budget: usize) -> Result<(), SyncError> {
        while self.carry.is_empty() && self.pos < self.khs.len() {
            let end = (self.pos + self.per_read).min(self.khs.len());
            let keys: Vec<Vec<u8>> = store
                .entries_for(&self.khs[self.pos..end])?
                .into_iter()
                .map(|(_, key, _)| key)
                .collect();
            self.pos = end;
            let values = store.states_of(&keys)?;
            let mut bytes = 0usize;
            for (k, v) in keys.into_iter().zip(values) {
                if let Some(v) = v {
                    bytes += k.len() + v.len();
                    self.carry.push_back((k, v));
                }
            }
            // Aim for a quarter of the budget per read.
            let avg = bytes / self.carry.len().max(1);
            self.per_read = (budget / 4 / avg.max(64)).clamp(1, MAX_PER_READ);
        }
        Ok(())
    }

    /// Append states to `blob` until it holds about `budget` bytes (a
    /// state larger than the budget goes alone); returns how many.
    pub(crate) fn fill<S: SyncStore + ?Sized>(
        &mut self,
        store: &S,
        blob: &mut Vec<u8>,
        budget: usize,
    ) -> Result<u64, SyncError> {
        let mut n = 0;
        loop {
            self.refill(store, budget)?;
            let Some((k, v)) = self.carry.front() else {
                return Ok(n);
            };
            let len = k.len() + v.len() + super::message::framing_len(k.len(), v.len());
            if !blob.is_empty() && blob.len() + len > budget {
                return Ok(n);
            }
            push_state(blob, k, v);
            self.carry.pop_front();
            n += 1;
        }
    }
}
