//! What the core asks its driver to do.

use super::{LogIndex, NodeId, Role, Term};
use crate::proto::{Entry, HardState, Message, Snapshot};

/// Volatile state worth telling the application about (role watch, status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftState {
    pub role: Role,
    pub leader: NodeId,
    pub term: Term,
}

/// A read-index request that may proceed once the state machine has applied `index`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    pub request: u64,
    pub index: LogIndex,
}

/// A batch of work. The driver must, in this order:
/// 1. send `messages` (they do not depend on this node's disk),
/// 2. install `snapshot`, then persist `entries` (first deleting every stored entry at or
///    after the first one's index) and `hard_state`, with one fsync if [`Ready::must_sync`]
///    (a change of commit index alone may be written without one),
/// 3. send `messages_after_persist` (votes and acknowledgements that promise what is on disk;
///    when the term or vote changed, every message of the `Ready` is here),
/// 4. apply `committed_entries` in order, serve `read_states` once applied that far and fail
///    `failed_reads`,
/// 5. call [`super::Raft::advance`].
#[derive(Debug, Default)]
pub struct Ready {
    pub soft_state: Option<SoftState>,
    pub hard_state: Option<HardState>,
    pub snapshot: Option<Snapshot>,
    pub entries: Vec<Entry>,
    pub messages: Vec<Message>,
    pub messages_after_persist: Vec<Message>,
    pub committed_entries: Vec<Entry>,
    pub read_states: Vec<ReadState>,
    /// Read requests that can no longer be confirmed (leadership was lost).
    pub failed_reads: Vec<u64>,
    /// Whether the term or vote in `hard_state` changed: those are promises to other nodes
    /// and must be on disk before any message goes out (the core then puts every message in
    /// `messages_after_persist`).
    pub term_or_vote_changed: bool,
}

impl Ready {
    /// Whether anything must be written.
    pub fn must_persist(&self) -> bool {
        self.hard_state.is_some() || self.snapshot.is_some() || !self.entries.is_empty()
    }

    /// Whether the write must be fsynced before going on: it holds entries, a snapshot, or a
    /// new term or vote. A new commit index alone need not be (as in etcd's `MustSync`): losing
    /// it in a machine crash costs only re-learning it from the leader, since every committed
    /// entry is on a quorum's disks, and the state machine, written behind it in the same
    /// write-ahead log, can never be ahead of it after a crash.
    pub fn must_sync(&self) -> bool {
        self.term_or_vote_changed || self.snapshot.is_some() || !self.entries.is_empty()
    }
}
