//! The Admin API over gRPC, with the admin token as a bearer token.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use dengine_client::{is_connection_failure, Dial, EndpointAddr};
use tonic::transport::Channel;
use tonic::Request;

use super::channels::{tls_fingerprint, AdminChannels, ChannelKey};
use super::proto::admin_client::AdminClient;
use super::proto::{
    AddLearnerRequest, BackupChunk, BackupRequest, PromoteLearnerRequest, RemoveMemberRequest,
    StatusRequest, TransferLeadershipRequest,
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
    tls: Option<AdminTls>,
    /// How every call dials, built from the above once: an admin token a header cannot
    /// carry is kept as the error every call reports.
    dial: Result<Dial, String>,
    /// Channels kept across reconciles; without, every call dials.
    channels: Option<AdminChannels>,
}

/// Mutual TLS to the nodes' peer listeners, which serve the Admin API.
#[derive(Clone)]
pub struct AdminTls {
    ca: Vec<u8>,
    identity: (Vec<u8>, Vec<u8>),
    /// Tells this material from a rotated one, for the channel cache.
    fingerprint: u64,
    /// The name node `id`'s certificate is checked against: the operator dials pod IPs,
    /// which certificates do not name, so it checks the pod's stable DNS name instead.
    server_name: Arc<dyn Fn(NodeId) -> String + Send + Sync>,
}

impl AdminTls {
    /// From PEM: the CA, and the certificate and key to present.
    pub fn new(
        ca: Vec<u8>,
        cert: Vec<u8>,
        key: Vec<u8>,
        server_name: impl Fn(NodeId) -> String + Send + Sync + 'static,
    ) -> Self {
        AdminTls {
            fingerprint: tls_fingerprint([&ca, &cert, &key]),
            ca,
            identity: (cert, key),
            server_name: Arc::new(server_name),
        }
    }
}

impl GrpcMembership {
    /// `token`: the cluster's admin token; calls that change membership need it.
    pub fn new(token: Option<String>, timeout: Duration) -> Self {
        let mut membership = GrpcMembership {
            token,
            timeout,
            tls: None,
            dial: Err(String::new()),
            channels: None,
        };
        membership.dial = membership.build_dial();
        membership
    }

    /// Calls over mutual TLS.
    pub fn with_tls(mut self, tls: Option<AdminTls>) -> Self {
        self.tls = tls;
        self.dial = self.build_dial();
        self
    }

    /// Reuses the channels `channels` keeps, and keeps the ones it dials there.
    pub fn with_channels(mut self, channels: AdminChannels) -> Self {
        self.channels = Some(channels);
        self
    }

    fn build_dial(&self) -> Result<Dial, String> {
        let dial = Dial::new(self.timeout)
            .with_token(self.token.as_deref())
            .map_err(|e| e.to_string())?;
        Ok(match &self.tls {
            Some(tls) => dial.with_tls(tls.ca.clone(), Some(tls.identity.clone())),
            None => dial,
        })
    }

    fn dial(&self, endpoint: &str) -> Result<&Dial, Error> {
        self.dial.as_ref().map_err(|e| admin_error(endpoint, e))
    }

    fn channel_key(&self, id: NodeId, endpoint: &str) -> ChannelKey {
        let server_name = self.tls.as_ref().map(|tls| (tls.server_name)(id));
        let fingerprint = self.tls.as_ref().map_or(0, |tls| tls.fingerprint);
        ChannelKey::new(endpoint, server_name, fingerprint)
    }

    async fn client(&self, id: NodeId, endpoint: &str) -> Result<AdminClient<Channel>, Error> {
        let key = self.channel_key(id, endpoint);
        if let Some(channel) = self.channels.as_ref().and_then(|c| c.get(&key)) {
            return Ok(AdminClient::new(channel));
        }
        let address = EndpointAddr::parse(endpoint).map_err(|e| admin_error(endpoint, e))?;
        let channel = self
            .dial(endpoint)?
            .connect(&address, key.server_name.as_deref())
            .await
            .map_err(|failure| admin_error(endpoint, failure.reason))?;
        if let Some(channels) = &self.channels {
            channels.insert(key, channel.clone());
        }
        Ok(AdminClient::new(channel))
    }

    /// After a failed call: a failure of the connection itself (not an answer) drops the
    /// cached channel, so the next call dials again.
    fn after_failure(&self, id: NodeId, endpoint: &str, status: &tonic::Status) {
        if let (true, Some(channels)) = (is_connection_failure(status), &self.channels) {
            channels.forget(&self.channel_key(id, endpoint));
        }
    }

    fn request<T>(&self, endpoint: &str, message: T) -> Result<Request<T>, Error> {
        Ok(self.dial(endpoint)?.request(message))
    }

    /// Asks node `id` at `endpoint` for a backup: its header, then its data, as the node
    /// streams them. The stream may run for `limit` (a large state takes a while to send);
    /// connecting is bounded by the usual timeout.
    ///
    /// The stream gets a channel of its own: the shared ones give every call the short admin
    /// timeout, up to the answer's headers, and a node sends those only once it has encoded
    /// the whole state. HTTP/2 keepalives end a stream whose node went away mid-way.
    pub async fn backup(
        &self,
        id: NodeId,
        endpoint: &str,
        limit: Duration,
    ) -> Result<tonic::Streaming<BackupChunk>, Error> {
        let address = EndpointAddr::parse(endpoint).map_err(|e| admin_error(endpoint, e))?;
        let key = self.channel_key(id, endpoint);
        let channel_endpoint = self
            .dial(endpoint)?
            .endpoint(&address, key.server_name.as_deref())
            .map_err(|failure| admin_error(endpoint, failure.reason))?
            .timeout(limit)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let channel = tokio::time::timeout(self.timeout, channel_endpoint.connect())
            .await
            .map_err(|_| {
                admin_error(
                    endpoint,
                    format!("connecting timed out after {:?}", self.timeout),
                )
            })?
            .map_err(|e| admin_error(endpoint, e))?;
        let mut request = self.request(endpoint, BackupRequest {})?;
        request.set_timeout(limit);
        AdminClient::new(channel)
            .backup(request)
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| status_error(endpoint, status))
    }

    async fn status(&self, id: NodeId, endpoint: &str) -> Option<super::proto::StatusResponse> {
        let mut client = match self.client(id, endpoint).await {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(%error, "cannot reach a node");
                return None;
            }
        };
        let request = match self.request(endpoint, StatusRequest {}) {
            Ok(request) => request,
            Err(error) => {
                tracing::warn!(%error, "cannot ask a node for its status");
                return None;
            }
        };
        match client.status(request).await {
            Ok(response) => Some(response.into_inner()),
            Err(status) => {
                tracing::debug!(endpoint, %status, "status call failed");
                self.after_failure(id, endpoint, &status);
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
        for (&id, endpoint) in endpoints {
            let Some(status) = self.status(id, endpoint).await else {
                continue;
            };
            if let Some(view) = cluster_view(&status) {
                return Some(view);
            }
            // Ask the leader this node names; only the leader's view is used.
            let leader = NodeId(status.leader_id);
            if let Some(leader_endpoint) = endpoints.get(&leader) {
                if let Some(view) = self
                    .status(leader, leader_endpoint)
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

    async fn change(
        &self,
        leader: NodeId,
        leader_endpoint: &str,
        change: &MembershipChange,
    ) -> Result<(), Error> {
        let mut client = self.client(leader, leader_endpoint).await?;
        let result = match change {
            MembershipChange::AddLearner { id, peer_address } => client
                .add_learner(self.request(
                    leader_endpoint,
                    AddLearnerRequest {
                        node_id: id.0,
                        peer_address: peer_address.clone(),
                    },
                )?)
                .await
                .map(drop),
            MembershipChange::Promote { id } => client
                .promote_learner(self.request(
                    leader_endpoint,
                    PromoteLearnerRequest {
                        node_id: id.0,
                        max_lag: 0,
                    },
                )?)
                .await
                .map(drop),
            MembershipChange::Remove { id } => client
                .remove_member(self.request(
                    leader_endpoint,
                    RemoveMemberRequest {
                        node_id: id.0,
                        force: false,
                    },
                )?)
                .await
                .map(drop),
            MembershipChange::TransferLeadership { to } => client
                .transfer_leadership(self.request(
                    leader_endpoint,
                    TransferLeadershipRequest { target_id: to.0 },
                )?)
                .await
                .map(drop),
        };
        result.map_err(|status| {
            self.after_failure(leader, leader_endpoint, &status);
            status_error(leader_endpoint, status)
        })
    }
}
