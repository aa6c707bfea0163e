//! The KV state machine: what committed Raft entries do to the key space.
//!
//! Pure logic over an [`Engine`](crate::storage::Engine): no clocks, threads or sockets. Every
//! replica applies the same commands in the same order and so reaches the same state, which is
//! why anything time-dependent (a TTL deadline, the decision that a key expired) is decided by
//! the leader and carried inside the command.
//!
//! Semantics follow etcd v3: one cluster-wide revision bumped by every state-changing command,
//! and per key a create revision, a mod revision and a version.

mod apply;
pub mod command;
mod compare;
mod error;
pub mod etcd;
mod expiry;
mod history;
pub mod lease;
mod meta;
mod outcome;
mod record;
mod snapshot;
mod store;
mod versions;
mod view;

#[cfg(test)]
mod etcd_tests;
#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod mvcc_tests;

pub use command::Command;
pub use error::KvError;
pub use lease::{Lease, LeaseRecord, Leases};
pub use outcome::{ApplyBatch, CommandOutcome};
pub use snapshot::StagedRestore;
pub use store::KvStore;
pub use view::{HistoryPage, KvView, HISTORY_PAGE_ROWS};
