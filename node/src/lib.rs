//! d-engine: a Raft coordination engine.
//!
//! - [`raft`]: the deterministic consensus core (no I/O).
//! - [`storage`]: the durable engine behind a trait (RocksDB, or memory for the simulator).
//! - [`kv`]: the KV state machine: revisions, TTLs, watch history, snapshots.
//! - [`proto`]: the wire and log formats, and the gRPC services.
//! - [`cli`]: the `dengine` command-line client.
//! - [`server`]: the node: event loop, gRPC services, and the typed client API they share.
//! - [`embedded`]: the node inside an application's process, with an in-process client.

pub mod backup;
pub mod cli;
pub mod embedded;
pub mod kv;
pub mod proto;
pub mod raft;
pub mod server;
pub mod storage;
