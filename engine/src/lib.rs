//! # Converge
//!
//! An embeddable replication storage engine: replicated state in RocksDB,
//! made to converge without coordination by CRDTs, causality tracking and
//! anti-entropy.
//!
//! - [`causal`]: replica ids, dots, version vectors, causal contexts, the
//!   hybrid logical clock.
//! - [`crdt`]: the pure lattice types (G/PN-Counter, G/2P/OR-Set, LWW, FWW
//!   and MV registers); no I/O.
//! - [`codec`]: canonical, versioned encodings.
//! - [`store`]: the RocksDB engine: write path, merge operator, reads.
//! - [`aae`]: the anti-entropy Merkle tree over the keyspace.
//! - [`sync`]: the sans-IO replication protocol.
//!
//! ```no_run
//! use converge::{Engine, Options};
//! let db = Engine::open("/tmp/replica-a", Options::default())?;
//! let delta = db.increment(b"likes", 1)?;      // ship delta.delta.encode() to peers
//! assert_eq!(db.counter_value(b"likes")?, 1);
//! # Ok::<(), converge::Error>(())
//! ```

#![deny(missing_docs)]

pub mod aae;
pub mod causal;
pub mod codec;
pub mod crdt;
mod error;
mod shortkey;
pub mod store;
pub mod sync;

pub use aae::{Node, VerifyReport};
pub use causal::{CausalContext, Causality, Dot, ReplicaId, Timestamp, VersionVector};
pub use codec::{Changes, Delta, Item, MAX_PAGE_OPERATIONS};
pub use crdt::{CrdtType, Sibling, Stamped, State};
pub use error::{CodecError, Error, Result};
pub use store::{
    token_of, Batch, CollectReport, Delivery, Durability, Engine, FeedInfo, FeedPage, KeyIter,
    KeyedDelta, MvRead, Op, Options, PendingInfo, SetRead, Value, MAX_KEY_LEN, MAX_PAGE_BYTES,
    MAX_VALUE_LEN,
};
