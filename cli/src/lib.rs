//! The `converge` command's library: the cluster node (`converge serve`),
//! its gRPC wire contract, the client the CLI uses, the fault-injecting
//! proxy of the cluster tests and demo, and the benchmark driver.
//!
//! - [`proto`]: code generated from `proto/converge.proto`.
//! - [`wire`]: conversions between the wire messages and engine types.
//! - [`node`]: one engine served over gRPC, with membership (foca), push
//!   replication, periodic anti-entropy, replication modes and metrics.
//! - [`client`]: the client side of the CLI.
//! - [`netfault`]: a TCP and UDP proxy that partitions, delays and drops.
//! - [`cluster`]: start, stop and kill `converge serve` processes (demo,
//!   benchmarks, tests).

pub mod client;
pub mod cluster;
pub mod netfault;
pub mod node;
pub mod wire;

/// Code generated from `proto/converge.proto` (package `converge.v1`).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    tonic::include_proto!("converge.v1");
}

/// The replication protocol version this build speaks (`PushRequest` and
/// the first `SyncFrame` of each side carry it).
pub const PROTOCOL_VERSION: u32 = 1;
