//! From the leader's `Status` answer to the operator's [`ClusterView`].

use std::time::Duration;

use super::proto::{MemberRole as ProtoRole, StatusResponse};
use crate::observed::{ClusterView, MemberRole, MemberView, NodeId};

/// The view in a `Status` answer, when the node that answered leads; a follower's members lack
/// match indexes and contact times, which only the leader knows.
pub fn cluster_view(status: &StatusResponse) -> Option<ClusterView> {
    if status.leader_id == 0 || status.leader_id != status.member_id {
        return None;
    }
    let members = status
        .members
        .iter()
        .map(|m| MemberView {
            id: NodeId(m.id),
            role: if m.role == ProtoRole::Learner as i32 {
                MemberRole::Learner
            } else {
                MemberRole::Voter
            },
            match_index: m.match_index,
            last_contact: if m.id == status.member_id {
                Some(Duration::ZERO)
            } else {
                Some(Duration::from_millis(m.last_contact_ms))
            },
            connection_error: Some(m.connection_error.clone()).filter(|e| !e.is_empty()),
        })
        .collect();
    Some(ClusterView {
        leader: Some(NodeId(status.leader_id)),
        commit_index: status.commit_index,
        members,
    })
}
