//! The admin API: status and membership as this node sees them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::frontend::Frontend;
use super::peer_links::PeerLinks;
use super::requests::{CapturedSnapshot, ClientRequest, MembershipRequest};
use super::status::NodeStatus;
use super::vocabulary::ApiError;
use crate::proto::admin_server::Admin;
use crate::proto::{
    AddLearnerRequest, BackupChunk, BackupHeader, BackupRequest, Member, MemberListRequest,
    MemberListResponse, MemberRole, MembershipResponse, PromoteLearnerRequest, RaftRole,
    RemoveMemberRequest, SnapshotMetadata, SnapshotRequest, SnapshotResponse, StatusRequest,
    StatusResponse, TransferLeadershipRequest, TransferLeadershipResponse,
};
use crate::raft::{NodeId, Role};

/// Who may change the cluster through this listener.
#[derive(Clone)]
pub struct AdminAuth {
    /// The shared admin token (from a Kubernetes Secret), if configured.
    pub token: Option<String>,
    /// This listener is bound to loopback only.
    pub loopback: bool,
}

impl AdminAuth {
    /// Without a token, changes are accepted only over loopback, from this machine or pod.
    fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let Some(token) = &self.token else {
            return match self.loopback {
                true => Ok(()),
                false => Err(Status::permission_denied(
                    "membership changes on this listener need an admin token; configure admin_token_file",
                )),
            };
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match presented {
            Some(p) if constant_time_eq(p.as_bytes(), token.as_bytes()) => Ok(()),
            Some(_) => Err(Status::unauthenticated("the admin token does not match")),
            None => Err(Status::unauthenticated(
                "this call needs the admin token in metadata `authorization: Bearer <token>`",
            )),
        }
    }
}

/// Compares without an early exit, so response times do not reveal how much of a guess matched
/// (the length of the token is not a secret).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

pub struct AdminService {
    pub status: watch::Receiver<NodeStatus>,
    pub frontend: Arc<Frontend>,
    pub auth: AdminAuth,
    /// Default for PromoteLearner's max_lag.
    pub promote_max_lag: u64,
    /// How long a leadership transfer may take before the call reports failure.
    pub transfer_timeout: Duration,
    /// How reaching each peer fares: the members' connection errors.
    pub links: Arc<PeerLinks>,
}

/// Backup data goes out in pieces of this size.
const BACKUP_CHUNK_BYTES: usize = 1 << 20;

impl AdminService {
    /// The state machine as it is now, encoded (off the event loop); with `compact`, the log
    /// it covers is dropped.
    async fn capture_snapshot(&self, compact: bool) -> Result<(SnapshotMetadata, Vec<u8>), Status> {
        self.capture_snapshot_at_revision(compact)
            .await
            .map(|(metadata, data, _)| (metadata, data))
    }

    /// [`Self::capture_snapshot`], with the key-value revision the state is at.
    async fn capture_snapshot_at_revision(
        &self,
        compact: bool,
    ) -> Result<(SnapshotMetadata, Vec<u8>, i64), Status> {
        let captured: CapturedSnapshot = self
            .frontend
            .event_loop
            .ask(|reply| ClientRequest::Snapshot { compact, reply })
            .await
            .map_err(Status::from)?;
        let revision = captured.state.revision();
        let (metadata, data) = captured
            .encode()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok((metadata, data, revision))
    }

    async fn change(
        &self,
        change: MembershipRequest,
    ) -> Result<Response<MembershipResponse>, Status> {
        let index = self
            .frontend
            .event_loop
            .ask(|reply| ClientRequest::ChangeMembership { change, reply })
            .await
            .map_err(not_leader_is_precondition)?;
        // The answer was sent while applying; the status with the change follows at once.
        let mut status_rx = self.status.clone();
        let status = match status_rx.wait_for(|s| s.applied >= index).await {
            Ok(status) => status.clone(),
            Err(_) => return Err(ApiError::ShuttingDown.into()),
        };
        Ok(Response::new(MembershipResponse {
            index,
            members: members(&status, &self.links),
        }))
    }
}

/// Admin calls are not forwarded: the caller (operator, CLI) should talk to the leader it is
/// told about.
fn not_leader_is_precondition(e: ApiError) -> Status {
    match e {
        ApiError::NotLeader { .. } => Status::failed_precondition(e.to_string()),
        other => other.into(),
    }
}

fn check_id(id: NodeId) -> Result<(), Status> {
    match id {
        0 => Err(Status::invalid_argument("node_id must be at least 1")),
        _ => Ok(()),
    }
}

fn members(status: &NodeStatus, links: &PeerLinks) -> Vec<Member> {
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
            // Lag is known where match indexes are: on the leader.
            lag: match status.role {
                Role::Leader => status.last_index.saturating_sub(m.matched),
                _ => 0,
            },
            connection_error: links.last_error(m.id).unwrap_or_default(),
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
            members: members(&status, &self.links),
            awaiting_admission: status.awaiting_admission,
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
            members: members(&status, &self.links),
        }))
    }

    async fn add_learner(
        &self,
        request: Request<AddLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.auth.check(&request)?;
        let request = request.into_inner();
        check_id(request.node_id)?;
        if request.peer_address.is_empty() || !request.peer_address.contains(':') {
            return Err(Status::invalid_argument(format!(
                "peer_address must be host:port, got `{}`",
                request.peer_address
            )));
        }
        self.change(MembershipRequest::AddLearner {
            id: request.node_id,
            address: request.peer_address,
        })
        .await
    }

    async fn promote_learner(
        &self,
        request: Request<PromoteLearnerRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.auth.check(&request)?;
        let request = request.into_inner();
        check_id(request.node_id)?;
        let max_lag = match request.max_lag {
            0 => self.promote_max_lag,
            n => n,
        };
        self.change(MembershipRequest::Promote {
            id: request.node_id,
            max_lag,
        })
        .await
    }

    async fn remove_member(
        &self,
        request: Request<RemoveMemberRequest>,
    ) -> Result<Response<MembershipResponse>, Status> {
        self.auth.check(&request)?;
        let request = request.into_inner();
        check_id(request.node_id)?;
        self.change(MembershipRequest::Remove {
            id: request.node_id,
            force: request.force,
        })
        .await
    }

    async fn transfer_leadership(
        &self,
        request: Request<TransferLeadershipRequest>,
    ) -> Result<Response<TransferLeadershipResponse>, Status> {
        self.auth.check(&request)?;
        let request = request.into_inner();
        let target = self
            .frontend
            .event_loop
            .ask(|reply| ClientRequest::TransferLeadership {
                target: request.target_id,
                reply,
            })
            .await
            .map_err(not_leader_is_precondition)?;
        let mut status = self.status.clone();
        let moved = async move {
            status
                .wait_for(|s| s.leader == target)
                .await
                .map(|s| s.term)
        };
        match tokio::time::timeout(self.transfer_timeout, moved).await {
            Ok(Ok(term)) => Ok(Response::new(TransferLeadershipResponse {
                leader_id: target,
                term,
            })),
            _ => Err(Status::deadline_exceeded(format!(
                "leadership did not move to node {target} in time; it may be behind or unreachable"
            ))),
        }
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<SnapshotResponse>, Status> {
        self.auth.check(&request)?;
        let (meta, data) = self.capture_snapshot(true).await?;
        Ok(Response::new(SnapshotResponse {
            index: meta.index,
            bytes: data.len() as u64,
        }))
    }

    type BackupStream = ReceiverStream<Result<BackupChunk, Status>>;

    async fn backup(
        &self,
        request: Request<BackupRequest>,
    ) -> Result<Response<Self::BackupStream>, Status> {
        self.auth.check(&request)?;
        // The state as this node has applied it now.
        let (metadata, data, revision) = self.capture_snapshot_at_revision(false).await?;
        let header = BackupHeader {
            format: dengine_proto::backup::FORMAT,
            cluster_id: self.status.borrow().cluster_id,
            metadata: Some(metadata),
            data_bytes: data.len() as u64,
            checksum: dengine_proto::backup::checksum(&data),
            revision,
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            let data = bytes::Bytes::from(data);
            let first = BackupChunk {
                header: Some(header),
                data: bytes::Bytes::new(),
            };
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            let mut offset = 0;
            while offset < data.len() {
                let end = (offset + BACKUP_CHUNK_BYTES).min(data.len());
                let chunk = BackupChunk {
                    header: None,
                    data: data.slice(offset..end),
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    return;
                }
                offset = end;
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
