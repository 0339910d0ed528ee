//! Anti-entropy tree: a Merkle tree over the whole keyspace in the style of
//! Riak's tictac AAE. Keys are placed in 2^20 segments (leaves) by the top
//! bits of a 64-bit key hash; a leaf holds the XOR of the 128-bit entry
//! hashes H(key, canonical state bytes) of its keys and their count, and
//! every inner node (fan-out 32, four levels) the XOR and sum of its
//! children. XOR makes maintenance O(1) per key: fold the old entry hash out
//! and the new one in, along the path to the root.
//!
//! Writes never read state to maintain the tree: the write path marks keys
//! dirty (in memory), and a settle ([`crate::Engine::settle`], or the
//! background settler) folds each dirty key once before the tree is read.
//! The per-key entry hashes live in the `aae_keys` column
//! family (ordered by key hash, so a segment's keys are one range scan) of
//! the index's own RocksDB instance (`aae/` in the store's directory); the
//! leaves are persisted there at clean close. An unclean shutdown is
//! detected at open and the tree is rebuilt from the data. See
//! ARCHITECTURE.md.
//!
//! Beside the tree, the same maintenance keeps an invertible Bloom lookup
//! table ([`iblt`]) of (key hash, entry hash) pairs, which lets a sync
//! session find a small number of differing keys in one message.

pub(crate) mod hash;
pub mod iblt;
pub(crate) mod settler;
mod tree;

pub use hash::{entry_hash, key_hash, segment_of};
pub(crate) use tree::{disabled, Written};
pub use tree::{Node, Tree, VerifyReport, FANOUT, FANOUT_BITS, LEVELS, SEGMENT_BITS};
