//! The node: the Raft core driven by an event loop over RocksDB, the client KV API on
//! localhost, and the peer Raft and admin APIs on the pod network.

mod admin_service;
pub mod api;
pub mod config;
mod data_dir;
mod etcd_auth;
mod etcd_cluster;
mod etcd_concurrency;
mod etcd_lease;
mod etcd_service;
mod etcd_watch;
mod event_loop;
pub mod failpoints;
mod founding;
mod frontend;
mod kv_service;
mod limits;
mod listeners;
pub mod metrics;
mod node;
mod peer_links;
mod peer_service;
mod persist;
pub mod probes;
pub mod raft_store;
mod read_coalescer;
pub(crate) mod replica;
pub mod requests;
pub mod status;
pub mod tls;
mod transport;
mod vocabulary;
mod write;

pub use config::{NodeConfig, NodeFlags};
pub use data_dir::restore_data_dir;
pub use listeners::Listeners;
pub use node::{start, start_with, NodeError, NodeHandle};
