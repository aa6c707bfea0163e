//! The node's state as the services and probes see it, published by the event loop.

use crate::raft::{Membership, NodeId, Raft, Role};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    pub id: NodeId,
    pub address: String,
    pub voter: bool,
    /// Leader only: the highest index the member is known to hold.
    pub matched: u64,
    /// Leader only: milliseconds since the member was last heard from.
    pub last_contact_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: NodeId,
    pub cluster_id: u64,
    pub term: u64,
    pub leader: NodeId,
    pub role: Role,
    pub commit: u64,
    pub applied: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    pub revision: i64,
    pub members: Vec<MemberStatus>,
    /// This node came back (or started) without the log it may have acknowledged and does not
    /// vote until the cluster removes it and adds it back as a learner.
    pub awaiting_admission: bool,
}

impl NodeStatus {
    pub fn initial(id: NodeId, cluster_id: u64) -> Self {
        Self {
            id,
            cluster_id,
            term: 0,
            leader: 0,
            role: Role::Follower,
            commit: 0,
            applied: 0,
            last_index: 0,
            snapshot_index: 0,
            revision: 0,
            members: Vec::new(),
            awaiting_admission: false,
        }
    }

    pub fn capture(raft: &Raft, cluster_id: u64, revision: i64, tick_ms: u64) -> Self {
        let status = raft.status();
        let members = members(&status.membership, |id| {
            status
                .peers
                .iter()
                .find(|p| p.id == id)
                .map(|p| match id == status.id {
                    true => (p.matched, 0),
                    false => (p.matched, p.ticks_since_contact * tick_ms),
                })
                .unwrap_or((0, 0))
        });
        Self {
            id: status.id,
            cluster_id,
            term: status.term,
            leader: status.leader,
            role: status.role,
            commit: status.commit,
            applied: status.applied,
            last_index: status.last_index,
            snapshot_index: status.snapshot_index,
            revision,
            members,
            awaiting_admission: raft.awaiting_admission(),
        }
    }

    pub fn is_voter(&self) -> bool {
        self.members.iter().any(|m| m.id == self.id && m.voter)
    }

    pub fn address_of(&self, id: NodeId) -> Option<String> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.address.clone())
    }
}

fn members(membership: &Membership, progress: impl Fn(NodeId) -> (u64, u64)) -> Vec<MemberStatus> {
    membership
        .members()
        .map(|id| {
            let (matched, last_contact_ms) = progress(id);
            MemberStatus {
                id,
                address: membership.address(id).unwrap_or_default().to_string(),
                voter: membership.is_voter(id),
                matched,
                last_contact_ms,
            }
        })
        .collect()
}
