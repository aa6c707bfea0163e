//! The Admin API over gRPC, with the admin token as a bearer token.

use std::collections::BTreeMap;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::Request;

use super::proto::admin_client::AdminClient;
use super::proto::{
    AddLearnerRequest, PromoteLearnerRequest, RemoveMemberRequest, StatusRequest,
    TransferLeadershipRequest,
};
use super::view::cluster_view;
use crate::driver::{Membership, MembershipChange};
use crate::observed::{ClusterView, NodeId};
use crate::Error;

/// Talks to nodes' Admin API, each call bounded by a timeout so that an unreachable node costs
/// one timeout and not a stuck reconcile.
#[derive(Clone)]
pub struct GrpcMembership {
    token: Option<String>,
    timeout: Duration,
}

impl GrpcMembership {
    /// `token`: the cluster's admin token; calls that change membership need it.
    pub fn new(token: Option<String>, timeout: Duration) -> Self {
        GrpcMembership { token, timeout }
    }

    async fn client(&self, endpoint: &str) -> Result<AdminClient<Channel>, Error> {
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))
            .map_err(|e| admin_error(endpoint, e))?
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .connect()
            .await
            .map_err(|e| admin_error(endpoint, e))?;
        Ok(AdminClient::new(channel))
    }

    fn request<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        if let Some(token) = &self.token {
            if let Ok(value) = MetadataValue::try_from(format!("Bearer {token}")) {
                request.metadata_mut().insert("authorization", value);
            }
        }
        request
    }

    async fn status(&self, endpoint: &str) -> Option<super::proto::StatusResponse> {
        let mut client = self.client(endpoint).await.ok()?;
        match client.status(self.request(StatusRequest {})).await {
            Ok(response) => Some(response.into_inner()),
            Err(status) => {
                tracing::debug!(endpoint, %status, "status call failed");
                None
            }
        }
    }
}

fn admin_error(endpoint: &str, e: impl std::fmt::Display) -> Error {
    Error::Admin {
        endpoint: endpoint.to_string(),
        message: e.to_string(),
    }
}

fn status_error(endpoint: &str, status: tonic::Status) -> Error {
    Error::Admin {
        endpoint: endpoint.to_string(),
        message: format!("{:?}: {}", status.code(), status.message()),
    }
}

impl Membership for GrpcMembership {
    async fn view(&self, endpoints: &BTreeMap<NodeId, String>) -> Option<ClusterView> {
        for endpoint in endpoints.values() {
            let Some(status) = self.status(endpoint).await else {
                continue;
            };
            if let Some(view) = cluster_view(&status) {
                return Some(view);
            }
            // Ask the leader this node names; only the leader's view is used.
            let leader = NodeId(status.leader_id);
            if let Some(leader_endpoint) = endpoints.get(&leader) {
                if let Some(view) = self
                    .status(leader_endpoint)
                    .await
                    .as_ref()
                    .and_then(cluster_view)
                {
                    return Some(view);
                }
            }
        }
        None
    }

    async fn change(&self, leader_endpoint: &str, change: &MembershipChange) -> Result<(), Error> {
        let mut client = self.client(leader_endpoint).await?;
        let result = match change {
            MembershipChange::AddLearner { id, peer_address } => client
                .add_learner(self.request(AddLearnerRequest {
                    node_id: id.0,
                    peer_address: peer_address.clone(),
                }))
                .await
                .map(drop),
            MembershipChange::Promote { id } => client
                .promote_learner(self.request(PromoteLearnerRequest {
                    node_id: id.0,
                    max_lag: 0,
                }))
                .await
                .map(drop),
            MembershipChange::Remove { id } => client
                .remove_member(self.request(RemoveMemberRequest {
                    node_id: id.0,
                    force: false,
                }))
                .await
                .map(drop),
            MembershipChange::TransferLeadership { to } => client
                .transfer_leadership(self.request(TransferLeadershipRequest { target_id: to.0 }))
                .await
                .map(drop),
        };
        result.map_err(|status| status_error(leader_endpoint, status))
    }
}
