//! What the gRPC services ask of the event loop, and how it answers.

use tokio::sync::oneshot;

use crate::kv::{Command, CommandOutcome};
use crate::proto::SnapshotMetadata;
use crate::raft::NodeId;
use crate::server::vocabulary::ApiError;

/// A read that needs the event loop's help to be consistent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBarrier {
    /// Read-index: confirm leadership with a quorum, then wait until applied.
    Linearizable,
    /// Serve from the leader's state while its lease holds.
    Lease,
}

pub enum ClientRequest {
    /// Replicate a command; the answer comes once it is applied here.
    Propose {
        command: Command,
        reply: oneshot::Sender<Result<Applied, ApiError>>,
    },
    /// Leader only: answers with the index a read under `barrier` must wait for, once
    /// leadership is confirmed (a quorum round, or the lease).
    ReadIndex {
        barrier: ReadBarrier,
        reply: oneshot::Sender<Result<u64, ApiError>>,
    },
    /// Leader only: proposes a membership change; answers with its log index once applied.
    ChangeMembership {
        change: MembershipRequest,
        reply: oneshot::Sender<Result<u64, ApiError>>,
    },
    /// Leader only: starts handing leadership to `target` (0: the most up-to-date voter);
    /// answers with the target chosen.
    TransferLeadership {
        target: NodeId,
        reply: oneshot::Sender<Result<NodeId, ApiError>>,
    },
    /// Encodes the state machine as it is now; with `compact`, also moves the compaction point
    /// there, dropping the log it covers.
    Snapshot {
        compact: bool,
        reply: oneshot::Sender<Result<CapturedSnapshot, ApiError>>,
    },
    /// Answers once this node's state machine has applied `index`.
    WaitApplied {
        index: u64,
        reply: oneshot::Sender<Result<(), ApiError>>,
    },
    /// Leader only: renews a lease or reports on it; `None` when it does not exist (or just
    /// expired).
    Lease {
        query: LeaseQuery,
        reply: oneshot::Sender<Result<Option<LeaseStatus>, ApiError>>,
    },
}

/// A keepalive (`renew`), or a look at a lease's TTL (with its keys if `keys`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseQuery {
    pub id: i64,
    pub renew: bool,
    pub keys: bool,
}

/// A lease as the leader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseStatus {
    pub id: i64,
    /// The TTL granted, in seconds.
    pub granted_ttl: i64,
    /// Seconds left (after a renewal, the whole TTL).
    pub remaining_ttl: i64,
    /// The keys attached, in key order, when asked for.
    pub keys: Vec<bytes::Bytes>,
}

/// The state machine at one applied index, captured without copying it: what a follower
/// behind the compacted log is sent, and what a backup holds. The event loop only captures it
/// (a point-in-time view, taken in microseconds); encoding it takes a while (about 200 ms for
/// 29 MB on two cores) and happens off the loop, in [`CapturedSnapshot::encode`].
#[derive(Clone)]
pub struct CapturedSnapshot {
    pub meta: SnapshotMetadata,
    pub state: crate::kv::KvView,
    /// Told the size of the encoded snapshot.
    pub size_gauge: prometheus_client::metrics::gauge::Gauge,
    /// Counts the snapshots being encoded.
    pub encoding_gauge: prometheus_client::metrics::gauge::Gauge,
}

impl std::fmt::Debug for CapturedSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapturedSnapshot")
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

impl CapturedSnapshot {
    /// Encodes the captured state on a blocking thread.
    pub async fn encode(self) -> Result<(SnapshotMetadata, Vec<u8>), crate::storage::StorageError> {
        let Self {
            meta,
            state,
            size_gauge,
            encoding_gauge,
        } = self;
        let encoding = super::metrics::InProgress::enter(&encoding_gauge);
        let encoded = tokio::task::spawn_blocking(move || state.snapshot_data()).await;
        drop(encoding);
        let data = encoded.map_err(|e| {
            crate::storage::StorageError::Engine(format!("encoding the snapshot: {e}"))
        })??;
        size_gauge.set(data.len() as i64);
        Ok((meta, data))
    }
}

/// A membership change asked for through the admin API.
#[derive(Debug, Clone)]
pub enum MembershipRequest {
    AddLearner {
        id: NodeId,
        address: String,
    },
    /// Refused unless the learner is within `max_lag` entries of the commit index and was
    /// heard from within an election timeout.
    Promote {
        id: NodeId,
        max_lag: u64,
    },
    /// Refused when the healthy voters left would be fewer than a quorum, unless forced.
    Remove {
        id: NodeId,
        force: bool,
    },
}

/// The result of a command, with the term it committed in.
#[derive(Debug)]
pub struct Applied {
    pub outcome: CommandOutcome,
    pub term: u64,
}
