//! Causality: replica ids, dots, version vectors, causal contexts (dotted
//! version vectors with a dot cloud) and the hybrid logical clock.
//!
//! Everything here is pure data with lattice operations; no I/O.

mod context;
mod hlc;
mod vv;

pub use context::CausalContext;
pub use hlc::{HybridClock, Timestamp};
pub use vv::{Causality, VersionVector};

use bincode::{Decode, Encode};
use std::fmt;

/// A replica's 128-bit identity. Generated at first open and persisted, or
/// given by the embedder.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct ReplicaId(pub u128);

impl ReplicaId {
    /// A fresh random id: 128 bits from the operating system's random
    /// source (`getrandom`: `getrandom(2)` on Linux). Only if that source
    /// fails does it fall back to std's randomly keyed hasher over the time
    /// and process id.
    pub fn random() -> ReplicaId {
        let mut bytes = [0u8; 16];
        match getrandom::fill(&mut bytes) {
            Ok(()) => ReplicaId(u128::from_le_bytes(bytes)),
            Err(_) => Self::fallback_random(),
        }
    }

    fn fallback_random() -> ReplicaId {
        use std::collections::hash_map::RandomState;
        use std::hash::{BuildHasher, Hasher};
        let mut hi = RandomState::new().build_hasher();
        hi.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        hi.write_u32(std::process::id());
        let mut lo = RandomState::new().build_hasher();
        lo.write_u64(hi.finish());
        ReplicaId(((hi.finish() as u128) << 64) | lo.finish() as u128)
    }

    /// Big-endian bytes of the id.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// The id from 16 big-endian bytes.
    pub fn from_bytes(b: [u8; 16]) -> ReplicaId {
        ReplicaId(u128::from_be_bytes(b))
    }
}

impl fmt::Debug for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

/// One event of one replica: the `counter`-th event `replica` generated for a
/// given key. Dots name OR-Set adds and MV-register writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode)]
pub struct Dot {
    /// The replica that generated the event.
    pub replica: ReplicaId,
    /// Its per-key sequence number, starting at 1.
    pub counter: u64,
}

impl Dot {
    /// A dot.
    pub fn new(replica: ReplicaId, counter: u64) -> Dot {
        Dot { replica, counter }
    }
}

#[cfg(test)]
mod random_tests {
    use super::ReplicaId;

    #[test]
    fn random_ids_are_distinct_and_use_all_bits() {
        let ids: std::collections::HashSet<u128> =
            (0..1000).map(|_| ReplicaId::random().0).collect();
        assert_eq!(ids.len(), 1000);
        // Every bit position is set in some id and clear in another.
        let (or, and) = ids
            .iter()
            .fold((0u128, u128::MAX), |(o, a), i| (o | i, a & i));
        assert_eq!((or, and), (u128::MAX, 0));
        let f = ReplicaId::fallback_random();
        assert_ne!(f, ReplicaId::fallback_random());
    }
}
