//! Merge-throughput benchmarks for Converge, with their peers side by side
//! in the same process run and with identical RocksDB options:
//!
//! - raw RocksDB puts and merge-operand writes (the physical limit),
//! - a read-modify-write baseline (get, join in memory, put),
//! - the `crdts` crate's in-memory joins.
//!
//! The `report` binary runs a [`Suite`] and writes a table, a JSON list of
//! [`Record`]s and an SVG plot. Workload modules:
//!
//! - [`local`]: local operations persisted through the engine,
//! - [`remote`]: peers' deltas and full states applied by merge,
//! - [`reads`]: point-read latency,
//! - [`aae`]: anti-entropy tree maintenance and root latency,
//! - [`bigset`]: adds and removes on an OR-Set of many elements,
//! - [`joins`]: in-memory joins against the `crdts` crate.
//!
//! See BENCHMARKS.md at the repository root.

#![deny(missing_docs)]

pub mod aae;
pub mod bigset;
pub mod fixtures;
pub mod joins;
pub mod local;
pub mod measure;
pub mod peers;
pub mod reads;
pub mod record;
pub mod remote;
pub mod runner;
pub mod suite;
pub mod svg;

pub use record::Record;
pub use runner::run_suite;
pub use suite::{Sizes, Suite};

/// Any failure of a benchmark run: engine, RocksDB or file errors, as text.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// Result of a benchmark step.
pub type BenchResult<T> = Result<T, BenchError>;
