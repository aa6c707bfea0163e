//! etcd's v3 Cluster and Maintenance services on the client port: what `etcdctl member ...`,
//! `etcdctl endpoint status|health|hashkv`, `snapshot save`, `defrag` and `move-leader` call.
//!
//! Membership changes and leadership moves go through the Admin service's rules and safety
//! checks, and its authorization: with an admin token configured they need it (etcd clients
//! send none, so they are refused with a message that says so); without one, only over
//! loopback. A voter joins d-engine as a learner first: `member add` without `--learner` is
//! refused with a message saying how.

use std::pin::Pin;
use std::sync::Arc;

use dengine_proto::etcd::etcdserverpb as pb;
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tonic::{Code, Request, Response, Status};

use dengine_proto::backup::EtcdTrailer;

use super::admin_service::AdminService;
use super::api::{ApiError, KvApi};
use super::etcd_service::etcd_header;
use super::status::NodeStatus;
use crate::proto::admin_server::Admin;
use crate::proto::{
    AddLearnerRequest, BackupRequest, PromoteLearnerRequest, RemoveMemberRequest,
    TransferLeadershipRequest,
};

/// The etcd API version d-engine serves: etcd 3.5's messages and behaviour.
pub const ETCD_API_VERSION: &str = "3.5.0";

/// The Cluster and Maintenance services of etcd's v3 API.
#[derive(Clone)]
pub struct EtcdClusterService {
    pub api: KvApi,
    pub admin: Arc<AdminService>,
    pub status: watch::Receiver<NodeStatus>,
    /// Whether peers are reached over TLS: the scheme of the peer URLs listed.
    pub peer_tls: bool,
}

/// A request to the Admin service carrying the caller's metadata (its authorization).
fn as_admin<T, U>(request: &Request<T>, message: U) -> Request<U> {
    let mut forwarded = Request::new(message);
    *forwarded.metadata_mut() = request.metadata().clone();
    forwarded
}

impl EtcdClusterService {
    fn header(&self) -> pb::ResponseHeader {
        let status = self.status.borrow();
        pb::ResponseHeader {
            cluster_id: status.cluster_id,
            member_id: status.id,
            revision: status.revision,
            raft_term: status.term,
        }
    }

    fn members(&self) -> Vec<pb::Member> {
        let status = self.status.borrow().clone();
        let scheme = if self.peer_tls { "https" } else { "http" };
        status
            .members
            .iter()
            .map(|member| pb::Member {
                id: member.id,
                name: format!("node-{}", member.id),
                peer_ur_ls: vec![format!("{scheme}://{}", member.address)],
                client_ur_ls: Vec::new(),
                is_learner: !member.voter,
            })
            .collect()
    }

    /// An answer carrying the header and the member list as they are now.
    fn with_members<T>(
        &self,
        make: impl FnOnce(Option<pb::ResponseHeader>, Vec<pb::Member>) -> T,
    ) -> Result<Response<T>, Status> {
        Ok(Response::new(make(Some(self.header()), self.members())))
    }

    fn member(&self, id: u64) -> Option<pb::Member> {
        self.members().into_iter().find(|member| member.id == id)
    }
}

/// How long a member added as a voter may take to catch up before this node stops trying to
/// promote it (it stays a learner; `member promote` it then).
const VOTER_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(600);

/// Promotes the learner `promote` names as soon as the leader finds it caught up (the Admin
/// API's rule: within `promote_max_lag` entries and heard from lately), trying every second
/// for [`VOTER_CATCH_UP`]; stops if it is removed or promoted meanwhile.
async fn promote_once_caught_up(
    admin: Arc<AdminService>,
    status: watch::Receiver<NodeStatus>,
    promote: Request<PromoteLearnerRequest>,
) {
    let id = promote.get_ref().node_id;
    let deadline = tokio::time::Instant::now() + VOTER_CATCH_UP;
    while tokio::time::Instant::now() < deadline {
        let still_learner = status
            .borrow()
            .members
            .iter()
            .any(|member| member.id == id && !member.voter);
        if !still_learner {
            return;
        }
        let attempt = as_admin(&promote, *promote.get_ref());
        match admin.promote_learner(attempt).await {
            Ok(_) => {
                tracing::info!(
                    member = id,
                    "promoted the member added as a voter, now caught up"
                );
                return;
            }
            Err(status) => {
                tracing::debug!(member = id, %status, "member added as a voter is not promoted yet")
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    tracing::warn!(
        member = id,
        "the member added as a voter did not catch up within {VOTER_CATCH_UP:?}; it stays a \
         learner until `member promote`"
    );
}

/// The `host:port` of an etcd peer URL (`http://host:port`).
fn peer_address(url: &str) -> Result<String, ApiError> {
    let address = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url)
        .trim_end_matches('/');
    match address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(address.to_string())
        }
        _ => Err(ApiError::invalid(format!(
            "peer URL {url:?} must be http://host:port"
        ))),
    }
}

#[tonic::async_trait]
impl pb::cluster_server::Cluster for EtcdClusterService {
    async fn member_add(
        &self,
        request: Request<pb::MemberAddRequest>,
    ) -> Result<Response<pb::MemberAddResponse>, Status> {
        let add = request.get_ref();
        let [url] = add.peer_ur_ls.as_slice() else {
            return Err(ApiError::invalid("member add takes exactly one peer URL").into());
        };
        let address = peer_address(url)?;
        // etcd picks the new member's id; d-engine's ids are small numbers, the next free one.
        let id = self.members().iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let learner = AddLearnerRequest {
            node_id: id,
            peer_address: address,
        };
        self.admin.add_learner(as_admin(&request, learner)).await?;
        if !add.is_learner {
            // d-engine admits a voter only as a learner that caught up: this one is promoted
            // once it has, by this node, as `member promote` would.
            let promote = PromoteLearnerRequest {
                node_id: id,
                max_lag: 0,
            };
            tokio::spawn(promote_once_caught_up(
                self.admin.clone(),
                self.status.clone(),
                as_admin(&request, promote),
            ));
        }
        let member = self.member(id);
        Ok(Response::new(pb::MemberAddResponse {
            header: Some(self.header()),
            member,
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        request: Request<pb::MemberRemoveRequest>,
    ) -> Result<Response<pb::MemberRemoveResponse>, Status> {
        let remove = RemoveMemberRequest {
            node_id: request.get_ref().id,
            force: false,
        };
        self.admin.remove_member(as_admin(&request, remove)).await?;
        self.with_members(|header, members| pb::MemberRemoveResponse { header, members })
    }

    async fn member_update(
        &self,
        _: Request<pb::MemberUpdateRequest>,
    ) -> Result<Response<pb::MemberUpdateResponse>, Status> {
        Err(ApiError::FailedPrecondition(
            "d-engine does not move a member to another peer address in place: remove it and \
             add it back as a learner at the new address"
                .into(),
        )
        .into())
    }

    async fn member_list(
        &self,
        _: Request<pb::MemberListRequest>,
    ) -> Result<Response<pb::MemberListResponse>, Status> {
        self.with_members(|header, members| pb::MemberListResponse { header, members })
    }

    async fn member_promote(
        &self,
        request: Request<pb::MemberPromoteRequest>,
    ) -> Result<Response<pb::MemberPromoteResponse>, Status> {
        let promote = PromoteLearnerRequest {
            node_id: request.get_ref().id,
            max_lag: 0,
        };
        self.admin
            .promote_learner(as_admin(&request, promote))
            .await?;
        self.with_members(|header, members| pb::MemberPromoteResponse { header, members })
    }
}

type SnapshotStream = Pin<Box<dyn Stream<Item = Result<pb::SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl pb::maintenance_server::Maintenance for EtcdClusterService {
    /// d-engine raises no alarms (no space quota, no corruption alarm): a GET lists none.
    async fn alarm(
        &self,
        request: Request<pb::AlarmRequest>,
    ) -> Result<Response<pb::AlarmResponse>, Status> {
        use pb::alarm_request::AlarmAction;
        match request.get_ref().action() {
            AlarmAction::Get => Ok(Response::new(pb::AlarmResponse {
                header: Some(self.header()),
                alarms: Vec::new(),
            })),
            _ => Err(ApiError::invalid(
                "d-engine raises no alarms, so there is none to activate or deactivate",
            )
            .into()),
        }
    }

    async fn status(
        &self,
        _: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let size = self.api.storage_bytes()? as i64;
        let status = self.status.borrow().clone();
        Ok(Response::new(pb::StatusResponse {
            header: Some(self.header()),
            version: ETCD_API_VERSION.to_string(),
            db_size: size,
            leader: status.leader,
            raft_index: status.commit,
            raft_term: status.term,
            raft_applied_index: status.applied,
            errors: Vec::new(),
            db_size_in_use: size,
            is_learner: !status.is_voter(),
            storage_version: String::new(),
            db_size_quota: 0,
            downgrade_info: None,
        }))
    }

    async fn defragment(
        &self,
        _: Request<pb::DefragmentRequest>,
    ) -> Result<Response<pb::DefragmentResponse>, Status> {
        let header = self.api.etcd_defragment().await?;
        Ok(Response::new(pb::DefragmentResponse {
            header: Some(etcd_header(header)),
        }))
    }

    async fn hash(
        &self,
        _: Request<pb::HashRequest>,
    ) -> Result<Response<pb::HashResponse>, Status> {
        let (header, hashed) = self.api.etcd_hash_kv(0)?;
        Ok(Response::new(pb::HashResponse {
            header: Some(etcd_header(header)),
            hash: hashed.hash,
        }))
    }

    async fn hash_kv(
        &self,
        request: Request<pb::HashKvRequest>,
    ) -> Result<Response<pb::HashKvResponse>, Status> {
        let (header, hashed) = self.api.etcd_hash_kv(request.get_ref().revision)?;
        Ok(Response::new(pb::HashKvResponse {
            header: Some(etcd_header(header)),
            hash: hashed.hash,
            compact_revision: hashed.compacted_revision,
            hash_revision: hashed.revision,
        }))
    }

    type SnapshotStream = SnapshotStream;

    /// A backup of this node's state, in d-engine's backup format (what `dengine snapshot
    /// save` writes and `node restore` reads), streamed as etcd streams its database file.
    async fn snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotStream>, Status> {
        let mut chunks = self
            .admin
            .backup(as_admin(&request, BackupRequest {}))
            .await?
            .into_inner();
        let header = self.header();
        let first = chunks
            .next()
            .await
            .ok_or_else(|| Status::internal("the backup ended before its header"))??;
        let backup_header = first
            .header
            .ok_or_else(|| Status::internal("the backup's first piece has no header"))?;
        let blob = dengine_proto::backup::file_start(&backup_header);
        let mut trailer = EtcdTrailer::default();
        trailer.update(&blob);
        let response = move |remaining: u64, blob: Vec<u8>| pb::SnapshotResponse {
            header: Some(header),
            remaining_bytes: remaining,
            blob,
            version: ETCD_API_VERSION.to_string(),
        };
        let mut remaining = backup_header.data_bytes;
        let start = response(remaining, blob);
        // The data as it comes, then etcd's padding and SHA-256 once it has all come.
        let mut trailer = Some(trailer);
        let data = chunks
            .map(Some)
            .chain(futures::stream::once(async { None }))
            .filter_map(move |chunk| {
                let answer = match chunk {
                    Some(Ok(chunk)) => {
                        remaining = remaining.saturating_sub(chunk.data.len() as u64);
                        if let Some(trailer) = trailer.as_mut() {
                            trailer.update(&chunk.data);
                        }
                        Some(Ok(response(remaining, chunk.data.to_vec())))
                    }
                    Some(Err(status)) => Some(Err(status)),
                    None => trailer.take().map(|t| Ok(response(0, t.finish()))),
                };
                std::future::ready(answer)
            });
        Ok(Response::new(Box::pin(
            futures::stream::once(async move { Ok(start) }).chain(data),
        )))
    }

    async fn move_leader(
        &self,
        request: Request<pb::MoveLeaderRequest>,
    ) -> Result<Response<pb::MoveLeaderResponse>, Status> {
        let transfer = TransferLeadershipRequest {
            target_id: request.get_ref().target_id,
        };
        self.admin
            .transfer_leadership(as_admin(&request, transfer))
            .await
            .map_err(|status| match status.code() {
                // etcd's answer when the member asked is not the leader.
                Code::FailedPrecondition if status.message().contains("not the leader") => {
                    ApiError::Etcd {
                        code: Code::FailedPrecondition,
                        message: "etcdserver: not leader",
                    }
                    .into()
                }
                _ => status,
            })?;
        Ok(Response::new(pb::MoveLeaderResponse {
            header: Some(self.header()),
        }))
    }

    async fn downgrade(
        &self,
        _: Request<pb::DowngradeRequest>,
    ) -> Result<Response<pb::DowngradeResponse>, Status> {
        Err(ApiError::FailedPrecondition(
            "d-engine has no cluster version to downgrade: roll back by deploying the older \
             node image (see docs/operator.md)"
                .into(),
        )
        .into())
    }
}
