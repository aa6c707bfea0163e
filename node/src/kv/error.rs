//! The errors of the KV state machine.

use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The continuation was not produced by a scan of this prefix.
    #[error("invalid continuation: it does not belong to a scan of this prefix")]
    InvalidContinuation,
    /// The history a watch asked for has been dropped.
    #[error(
        "revision {requested} has been compacted; the oldest retained revision is {oldest_retained}"
    )]
    Compacted {
        requested: i64,
        oldest_retained: i64,
    },
    /// A read at a revision this store has not reached.
    #[error("revision {requested} is a future revision; the current revision is {current}")]
    FutureRevision { requested: i64, current: i64 },
    /// A Raft log entry that does not decode as a [`Command`](super::Command).
    #[error("corrupt command: {0}")]
    CorruptCommand(String),
    /// Snapshot data that does not decode or is inconsistent.
    #[error("invalid snapshot: {0}")]
    InvalidSnapshot(String),
}
