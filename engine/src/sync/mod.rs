//! Sans-IO anti-entropy: a sync session is a state machine on each side
//! that takes message bytes in and gives message bytes out, so it runs over
//! any transport the embedder owns.
//!
//! The exchange (initiator I, responder R; see ARCHITECTURE.md):
//! 1. I → R `Summary` (root, count). Equal roots: R → I `Equal`; done.
//! 2. R → I `Estimate`: its 1,024 estimate-level node hashes (truncated).
//!    I counts differing nodes and estimates the number of differing keys.
//! 3. I → R `Iblt`: its IBLT folded to fit that estimate (or, if the
//!    difference is too large, `KeyList`: its entries in the differing
//!    subtrees).
//! 4. R subtracts its own IBLT and peels it into exactly the differing
//!    (key hash, entry hash) pairs (if it does not peel, R sends its own
//!    `KeyList` instead and the roles of steps 4–5 swap), then R → I
//!    `Exchange`: the states of its differing keys and the key hashes it
//!    wants.
//! 5. I merges, then I → R `States`: the wanted states and its root.
//! 6. R merges; equal roots mean the session converged both sides.
//!
//! Only states of differing keys travel. Every merge is a CRDT join, so a
//! lost, duplicated or reordered message can only end the session (with a
//! typed error); a new session then converges.
//!
//! A session's memory is bounded by its [`Config`], not by the replica's
//! size or by what the peer claims: key lists are diffed as a stream,
//! states are read as messages are pulled, and one session repairs at
//! most `Config::max_keys` differing keys each way (the rest is left to
//! the next session: this one ends `Diverged`, `Stats::truncated`).

mod driver;
mod message;
mod outcome;
mod session;
mod stream;

pub use driver::{sync_engines, SideResult};
pub use message::{
    decode, encode, entries, hashes, hashes_blob, push_entry, push_state, states, states_blob,
    Body, Envelope, KeyState, Sender, ShortHash, StateIter, CONTROL_MESSAGE_LEN, ENTRY_LEN,
};
pub use outcome::{Outcome, Role, Stats};
pub use session::Session;

use crate::aae::iblt::Iblt;
use crate::aae::Node;
use crate::causal::CausalContext;
use crate::error::{CodecError, Error};

/// A sync session failed. The message that caused it changed nothing;
/// states joined before it stay (they are joins; the peer's states are
/// joined when their last part arrives, see [`Config::stage_bytes`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The message bytes do not decode.
    #[error("malformed sync message: {0}")]
    Codec(#[from] CodecError),
    /// The message decodes but its contents are not well formed.
    #[error("malformed sync message: {0}")]
    Malformed(String),
    /// The message is larger than the configured limit.
    #[error("sync message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A message of another session, out of sequence, or not expected now.
    #[error("unexpected sync message: {0}")]
    Unexpected(String),
    /// The session already ended (done or failed).
    #[error("the sync session has ended")]
    Ended,
    /// The peer holds data but its record lacks deletes whose tombstones
    /// this replica collected: it was restored from an old copy of its
    /// directory, or missed deletes every member acknowledged. Syncing
    /// could bring purged keys back, so the session is refused. Recovery:
    /// rebuild that replica (an empty directory, a new replica id) and sync
    /// it from a live one; see ARCHITECTURE.md, "Deletes and garbage
    /// collection".
    #[error(
        "the peer's record lacks collected deletes of {origin} up to {needed} (it holds {has}): \
         it was restored from an old copy or missed deletes; start it again empty, with a new replica id"
    )]
    BehindHorizon {
        /// The origin of the deletes missing.
        origin: crate::causal::ReplicaId,
        /// The sequence number collected up to.
        needed: u64,
        /// What the peer's record holds of that origin.
        has: u64,
    },
    /// The local engine failed (for example a received state is invalid).
    #[error("engine error during sync: {0}")]
    Engine(#[from] Error),
}

/// Limits of a session.
#[derive(Clone, Debug)]
pub struct Config {
    /// Messages are split so that each stays under about this many bytes
    /// (default 4 MiB). One state larger than this travels alone.
    pub message_budget: usize,
    /// Larger incoming messages are rejected before decoding. Default and
    /// ceiling: [`crate::codec::MAX_MESSAGE_LEN`] (65 MiB: one state of the
    /// largest size, its key and the envelope); a larger value acts as the
    /// ceiling. A smaller value also refuses states that do not fit in it.
    pub max_message: usize,
    /// Use the IBLT to find differing keys when the estimate says it fits
    /// (default true). False always exchanges key lists of the differing
    /// subtrees: more bytes, no chance of a failed peel.
    pub iblt: bool,
    /// The peer's states are held until their last message part arrives
    /// and then joined in one atomic write, so they become visible
    /// together (causal delivery: no effect shows before a cause that
    /// travels in a later part). Past this many bytes of states (default
    /// 16 MiB) the session joins what it holds and continues part by part:
    /// its memory stays bounded, at the cost of that guarantee for the
    /// rest of the session (`Stats::staging_overflowed`). Staged states
    /// are counted with 1 KiB of overhead each (what joining a state holds
    /// in the write path).
    pub stage_bytes: usize,
    /// Most differing keys one session repairs in each direction (default
    /// 2^20, 8 MiB of key hashes per direction). A larger difference is
    /// repaired in part: the session ends `Diverged` with
    /// `Stats::truncated`, and the next session goes on. Also bounds the
    /// key hashes a peer may ask for.
    pub max_keys: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            message_budget: 4 << 20,
            max_message: crate::codec::MAX_MESSAGE_LEN,
            iblt: true,
            stage_bytes: 16 << 20,
            max_keys: 1 << 20,
        }
    }
}

/// What a session needs from a replica. [`crate::Engine`] implements it;
/// a test or simulation can implement it over anything.
pub trait SyncStore {
    /// Root of the anti-entropy tree (settled).
    fn root(&self) -> Result<Node, Error>;
    /// Every node hash of tree level `level` (settled).
    fn level_hashes(&self, level: usize) -> Result<Vec<u128>, Error>;
    /// The IBLT folded to `size` cells per sub-table (settled).
    fn iblt(&self, size: usize) -> Result<Iblt, Error>;
    /// (key hash, key, entry hash) of keys with key hash in `lo..=hi`.
    fn entries_in(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Vec<u8>, u128)>, Error>;
    /// (key hash, key, entry hash) of keys with one of the given key
    /// hashes (ascending).
    fn entries_for(&self, khs: &[u64]) -> Result<Vec<(u64, Vec<u8>, u128)>, Error>;
    /// The encoded full states of keys (`None` if absent).
    fn states_of(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, Error>;
    /// Join received full states, atomically.
    /// Join the states into the replica atomically, except those whose join
    /// would exceed the state size limit: those keys are left unchanged
    /// and counted in the result.
    fn merge_states(&self, states: &[KeyState]) -> Result<u64, Error>;
    /// The replica's causal record (sent to the peer at the start).
    fn context(&self) -> Result<CausalContext, Error>;
    /// Add a converged peer's record to this replica's: it holds the
    /// effects of those dots now.
    fn learn_context(&self, context: &CausalContext) -> Result<(), Error>;
    /// The deletes whose tombstones this replica collected (see
    /// `Engine::collect`): a peer with data whose record lacks them is
    /// refused. A store that never collects returns the empty vector.
    fn horizon(&self) -> Result<crate::causal::VersionVector, Error> {
        Ok(crate::causal::VersionVector::new())
    }
    /// A peer's horizon: it collected the tombstones of these deletes, so
    /// they are stable (every member holds them) and this replica may
    /// collect them too. A store that never collects ignores it.
    fn learn_horizon(&self, _horizon: &crate::causal::VersionVector) -> Result<(), Error> {
        Ok(())
    }
}

/// Forward every [`SyncStore`] method through a pointer type, so a session
/// can hold `&Engine`, `Arc<Engine>`, … alike.
macro_rules! forward_sync_store {
    ($($ptr:ty),*) => {$(
        impl<T: SyncStore + ?Sized> SyncStore for $ptr {
            fn root(&self) -> Result<Node, Error> {
                (**self).root()
            }
            fn level_hashes(&self, level: usize) -> Result<Vec<u128>, Error> {
                (**self).level_hashes(level)
            }
            fn iblt(&self, size: usize) -> Result<Iblt, Error> {
                (**self).iblt(size)
            }
            fn entries_in(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Vec<u8>, u128)>, Error> {
                (**self).entries_in(lo, hi)
            }
            fn entries_for(&self, khs: &[u64]) -> Result<Vec<(u64, Vec<u8>, u128)>, Error> {
                (**self).entries_for(khs)
            }
            fn states_of(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, Error> {
                (**self).states_of(keys)
            }
            fn merge_states(&self, states: &[KeyState]) -> Result<u64, Error> {
                (**self).merge_states(states)
            }
            fn context(&self) -> Result<CausalContext, Error> {
                (**self).context()
            }
            fn learn_context(&self, context: &CausalContext) -> Result<(), Error> {
                (**self).learn_context(context)
            }
            fn horizon(&self) -> Result<crate::causal::VersionVector, Error> {
                (**self).horizon()
            }
            fn learn_horizon(&self, h: &crate::causal::VersionVector) -> Result<(), Error> {
                (**self).learn_horizon(h)
            }
        }
    )*};
}

forward_sync_store!(&T, std::sync::Arc<T>);

impl SyncStore for crate::Engine {
    fn root(&self) -> Result<Node, Error> {
        crate::Engine::root(self)
    }
    fn level_hashes(&self, level: usize) -> Result<Vec<u128>, Error> {
        self.aae_level_hashes(level)
    }
    fn iblt(&self, size: usize) -> Result<Iblt, Error> {
        self.aae_iblt(size)
    }
    fn entries_in(&self, lo: u64, hi: u64) -> Result<Vec<(u64, Vec<u8>, u128)>, Error> {
        self.aae_entries_in(lo, hi)
    }
    fn entries_for(&self, khs: &[u64]) -> Result<Vec<(u64, Vec<u8>, u128)>, Error> {
        self.aae_entries_for(khs)
    }
    fn states_of(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.states_bytes(keys)
    }
    fn context(&self) -> Result<CausalContext, Error> {
        Ok(crate::Engine::context(self))
    }
    fn learn_context(&self, context: &CausalContext) -> Result<(), Error> {
        crate::Engine::learn_context(self, context)
    }
    fn horizon(&self) -> Result<crate::causal::VersionVector, Error> {
        Ok(self.collection_horizon())
    }
    fn learn_horizon(&self, h: &crate::causal::VersionVector) -> Result<(), Error> {
        crate::Engine::learn_horizon(self, h)
    }
    fn merge_states(&self, states: &[KeyState]) -> Result<u64, Error> {
        // A key whose join would pass the state size limit is left out and
        // the rest written again (each retry leaves out one more key).
        let mut rejected: Vec<&[u8]> = Vec::new();
        loop {
            let mut b = crate::Batch::with_capacity(states.len());
            for (k, v) in states.iter().filter(|(k, _)| !rejected.contains(&&k[..])) {
                b.merge(k.clone(), v.clone());
            }
            match self.write(&b) {
                Ok(_) => return Ok(rejected.len() as u64),
                Err(Error::StateTooLarge { key, size, max }) => {
                    match states.iter().find(|(k, _)| *k == key) {
                        Some((k, _)) if !rejected.contains(&&k[..]) => rejected.push(k),
                        _ => return Err(Error::StateTooLarge { key, size, max }),
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }
}
