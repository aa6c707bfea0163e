//! Embedded mode: the engine inside an application's own process.
//!
//! An [`EmbeddedNode`] is a whole d-engine node — the Raft core and its event loop, RocksDB
//! storage, forwarding to the leader, read policies, TTLs, leases, watches — started by the
//! application instead of run beside it. Its [`Client`] has the operations, read policies,
//! limits and errors of the gRPC `Kv` API (`proto/dengine/v1/kv.proto`), executed in process
//! on the same path the gRPC service uses ([`crate::server::api::KvApi`]): no protobuf
//! encoding and no network between the application and its node.
//!
//! ```
//! use std::time::Duration;
//!
//! use dengine::embedded::{Embedded, ReadPolicy};
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! // A one-member cluster, founded in `dir` now and restarted from it next time.
//! let node = Embedded::single_node(dir.path()).start().await?;
//! node.wait_ready(Duration::from_secs(10)).await?;
//!
//! let client = node.client();
//! let written = client.put("greeting", "hello").await?;
//! let read = client.get("greeting").await?; // linearizable by default
//! assert_eq!(read.kv.expect("the key exists").value, "hello");
//! assert_eq!(read.header.revision, written.header.revision);
//! let stale_ok = client.get_with("greeting", ReadPolicy::Eventual).await?;
//! assert!(stale_ok.kv.is_some());
//!
//! node.shutdown().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Starting
//!
//! - [`Embedded::single_node`]`(data_dir)` (or [`EmbeddedNode::start`]): everything else
//!   defaulted, node id 1, no listener at all.
//! - [`Embedded::from_config`]`(`[`NodeConfig`]`)`: the configuration the `node` binary uses,
//!   so an embedded node can be a founding member (`initial_cluster`), join a cluster
//!   (`join`, then be added as a learner and promoted through the admin API), or be
//!   restarted or restored as any node is. The peer listener is open (the other members reach
//!   this node there), the gRPC client listener and the metrics listener are not, unless
//!   [`Embedded::client_listener`] and [`Embedded::metrics_listener`] ask for them.
//!
//! [`Embedded::start`] returns once the node runs; [`EmbeddedNode::wait_ready`] waits, with a
//! deadline, until it is a member, knows a leader and has applied what it knows committed.
//! A request sent before that waits up to three election timeouts for a leader, as over gRPC.
//!
//! The node's listeners and peer connections run on the Tokio runtime `start` is called in
//! (a multi-threaded runtime suits a cluster member best); its event loop runs on a thread of
//! its own.
//!
//! # Requests
//!
//! [`Client`] is cheap to clone and `Send + Sync`. Every node serves everything: on a follower
//! writes are forwarded to the leader and linearizable and lease reads ask it for a read
//! index, exactly as for a gRPC client of that node. Errors are an [`Error`] whose variants
//! map one to one to the gRPC statuses ([`Error::code`]): [`Error::InvalidArgument`] names
//! the limit exceeded, [`Error::NotLeader`] and [`Error::Unavailable`] mean the request was
//! not served now and may be retried, [`Error::Compacted`] ends a watch from history no longer
//! retained. [`Client::watch`] returns a [`WatchStream`] (a [`futures::Stream`]) with the
//! gRPC watch's resume and `OUT_OF_RANGE` semantics; [`Client::watch_role`] streams this
//! node's leadership, with the term as a fencing token.
//!
//! # Stopping
//!
//! [`EmbeddedNode::shutdown`] stops the node gracefully and returns once its storage is
//! synced and closed. Dropping an [`EmbeddedNode`] stops it in the background instead: see
//! its documentation. Either way, [`Client`]s left over fail with [`Error::ShuttingDown`]
//! from then on, and watch streams end with it.

mod client;
mod node;

pub use client::Client;
pub use node::{Embedded, EmbeddedNode, DEFAULT_REQUEST_TIMEOUT};

pub use crate::raft::NodeId;
pub use crate::server::api::{
    ApiError as Error, Compare, CompareAndSwapOptions, CompareAndSwapResponse, DeleteOptions,
    DeleteResponse, EventKind, GetResponse, Header, KeyValue, LeaseGrant, LeaseStatus, PutOptions,
    PutResponse, ReadPolicy, RoleEvent, RoleStream, ScanRequest, ScanResponse, WatchEvent,
    WatchRequest, WatchResponse, WatchStream,
};
pub use crate::server::{NodeConfig, NodeError};
