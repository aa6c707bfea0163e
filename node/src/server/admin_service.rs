//! The admin API: status and membership as this node sees them.

use tokio::sync::watch;
use tonic::{Request, Response, Status};

use super::status::NodeStatus;
use crate::proto::admin_server::Admin;
use crate::proto::{
    Member, MemberListRequest, MemberListResponse, MemberRole, RaftRole, StatusRequest,
    StatusResponse,
};
use crate::raft::Role;

pub struct AdminService {
    pub status: watch::Receiver<NodeStatus>,
}

fn members(status: &NodeStatus) -> Vec<Member> {
    status
        .members
        .iter()
        .map(|m| Member {
            id: m.id,
            peer_address: m.address.clone(),
            role: if m.voter {
                MemberRole::Voter
            } else {
                MemberRole::Learner
            } as i32,
            match_index: m.matched,
            last_contact_ms: m.last_contact_ms,
        })
        .collect()
}

fn raft_role(status: &NodeStatus) -> RaftRole {
    match status.role {
        Role::Leader => RaftRole::Leader,
        Role::Candidate => RaftRole::Candidate,
        Role::PreCandidate => RaftRole::PreCandidate,
        Role::Follower if status.is_voter() => RaftRole::Follower,
        Role::Follower => RaftRole::Learner,
    }
}

#[tonic::async_trait]
impl Admin for AdminService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        let status = self.status.borrow().clone();
        Ok(Response::new(StatusResponse {
            cluster_id: status.cluster_id,
            member_id: status.id,
            leader_id: status.leader,
            term: status.term,
            role: raft_role(&status) as i32,
            commit_index: status.commit,
            applied_index: status.applied,
            last_log_index: status.last_index,
            revision: status.revision,
            snapshot_index: status.snapshot_index,
            version: env!("CARGO_PKG_VERSION").to_string(),
            members: members(&status),
        }))
    }

    async fn member_list(
        &self,
        _: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        let status = self.status.borrow().clone();
        Ok(Response::new(MemberListResponse {
            cluster_id: status.cluster_id,
            leader_id: status.leader,
            members: members(&status),
        }))
    }
}
