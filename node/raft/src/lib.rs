//! The Raft consensus core: a deterministic state machine with no I/O.
//!
//! Inputs are [`Raft::tick`] (logical time), [`Raft::step`] (a message from a peer) and
//! proposals; outputs come out of [`Raft::ready`] as a [`Ready`]: entries and hard state to
//! persist, messages to send, committed entries to apply, a snapshot to install, reads that may
//! proceed. There are no sockets, clocks or threads in here, and randomness comes from a seed,
//! so the same core serves the node's event loop and the simulator, and a simulation is a pure
//! function of its seed.
//!
//! The protocol follows the Raft paper and dissertation, with the refinements etcd's raft
//! proved in production: pre-vote and check-quorum (§9.6), fast log back-off by term,
//! pipelined replication with flow control, read-index reads (§6.4), leadership transfer
//! (§3.10) and single-server membership changes with learners (§4.1).

/// The messages, entries and states the core takes and hands out (`dengine.v1`).
pub use dengine_proto::v1 as proto;

mod core;
mod election;
mod follower;
mod log;
mod membership;
mod progress;
mod ready;
mod replication;
mod rng;
pub mod simulation_seeds;
#[cfg(test)]
mod tests;

pub use self::core::{PeerStatus, Raft, RaftStatus};
pub use self::log::RaftLog;
pub use self::membership::{Membership, MembershipError};
pub use self::progress::{Progress, ProgressState};
pub use self::ready::{ReadState, Ready, SoftState};
pub use self::rng::Rng;

/// A node's id; 0 means "none".
pub type NodeId = u64;
/// A Raft term.
pub type Term = u64;
/// A position in the log; the first entry has index 1.
pub type LogIndex = u64;

/// The role a node plays in the current term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Follower,
    /// Asking whether it could win an election, without disturbing the term (§9.6).
    PreCandidate,
    Candidate,
    Leader,
}

/// Tuning of the core, in ticks. The node decides how long a tick is.
#[derive(Debug, Clone)]
pub struct Config {
    pub id: NodeId,
    /// A follower that hears nothing from a leader for between this and twice this many
    /// ticks starts an election.
    pub election_ticks: u64,
    /// The leader sends heartbeats this often.
    pub heartbeat_ticks: u64,
    /// Upper bound of entry bytes in one append message.
    pub max_append_bytes: usize,
    /// Upper bound of entries in one append message.
    pub max_append_entries: usize,
    /// Appends in flight to one follower before the leader waits for answers.
    pub max_inflight: usize,
    /// Upper bound of entry bytes handed out for applying in one `Ready`.
    pub max_apply_bytes: usize,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// A node that joined with an empty log neither votes nor campaigns until the latest
    /// configuration it holds lists it as a learner. Under an id that is still a voter (its
    /// disk was lost and it came back empty) it would otherwise vote without the votes and
    /// log it once had.
    pub awaiting_admission: bool,
}

impl Config {
    pub fn new(id: NodeId) -> Self {
        Self {
            id,
            election_ticks: 10,
            heartbeat_ticks: 1,
            max_append_bytes: 1 << 20,
            max_append_entries: 4096,
            max_inflight: 64,
            max_apply_bytes: 4 << 20,
            pre_vote: true,
            check_quorum: true,
            awaiting_admission: false,
        }
    }
}

/// Why a proposal was not accepted. Nothing was appended in any of these cases.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    #[error("not the leader{}", leader_hint(*.leader))]
    NotLeader { leader: Option<NodeId> },
    #[error("leadership is being transferred to node {0}")]
    TransferInProgress(NodeId),
    #[error("another membership change is still in progress")]
    ConfChangeInProgress,
    #[error(transparent)]
    Membership(#[from] MembershipError),
    #[error("node {0} is not a voter and cannot take over leadership")]
    NotAVoter(NodeId),
}

fn leader_hint(leader: Option<NodeId>) -> String {
    match leader {
        Some(id) => format!(" (the leader is node {id})"),
        None => " (no leader is known)".to_string(),
    }
}

/// The context of a vote request that a leadership transfer forced: voters grant it even while
/// they believe a leader is alive.
pub(crate) const TRANSFER_CONTEXT: &[u8] = b"transfer";
