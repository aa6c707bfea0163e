//! d-engine: a Raft coordination engine.
//!
//! - [`raft`]: the deterministic consensus core (no I/O; the `dengine-raft` crate).
//! - [`storage`]: the durable engine behind a trait (RocksDB, or memory for the simulator).
//! - [`kv`]: the KV state machine: revisions, TTLs, watch history, snapshots.
//! - [`proto`]: the wire and log formats, and the gRPC services (the `dengine-proto` crate).
//! - [`server`]: the node: event loop, gRPC services, and the typed client API they share.
//! - [`embedded`]: the node inside an application's process, with an in-process client.

pub mod embedded;
pub mod kv;
pub mod server;
pub mod storage;

/// The wire and log formats and the gRPC services: the `dengine.v1` package of
/// [`dengine_proto`], compiled once for every crate of the project.
pub use dengine_proto::v1 as proto;
/// The Raft consensus core (the `dengine-raft` crate).
pub use dengine_raft as raft;
