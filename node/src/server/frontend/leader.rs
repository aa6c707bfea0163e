//! Who leads, as this node knows it, and a peer connection to the leader: what a follower
//! needs to forward a write or ask for a read index.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tonic::transport::Channel;

use super::super::status::NodeStatus;
use super::super::tls::Tls;
use super::super::vocabulary::ApiError;
use crate::proto::raft_client::RaftClient;
use crate::raft::{NodeId, Role};

/// How long a peer connection to the leader may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the leader is.
pub enum Leader {
    /// This node leads.
    Here,
    /// Another node leads, reached through this client.
    Remote(NodeId, RaftClient<Channel>),
}

pub struct LeaderLink {
    status: watch::Receiver<NodeStatus>,
    /// How long a request waits for a leader to be known before failing with UNAVAILABLE.
    leader_wait: Duration,
    /// Mutual TLS to the leader, when configured.
    tls: Option<Tls>,
    /// Peer clients by address, kept: the leader rarely changes.
    clients: Mutex<HashMap<String, RaftClient<Channel>>>,
}

impl LeaderLink {
    pub fn new(
        status: watch::Receiver<NodeStatus>,
        leader_wait: Duration,
        tls: Option<Tls>,
    ) -> Self {
        Self {
            status,
            leader_wait,
            tls,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this node leads now.
    pub fn is_leader(&self) -> bool {
        self.status.borrow().role == Role::Leader
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.status.borrow().id
    }

    /// Waits until this node no longer leads (a transfer succeeded) or, if the transfer is
    /// abandoned, until the leader wait has passed.
    pub async fn wait_out_transfer(&self) {
        let mut status = self.status.clone();
        let stepped_down = status.wait_for(|s| s.role != Role::Leader);
        let _ = tokio::time::timeout(self.leader_wait, stepped_down).await;
    }

    /// Where the leader is, once one is known: this node, or another with a peer client to
    /// it. Waits up to `leader_wait` for an election to finish.
    pub async fn find(&self) -> Result<Leader, ApiError> {
        let mut status = self.status.clone();
        let known = async {
            let current = status.wait_for(|s| s.leader != 0).await.ok()?;
            Some((
                current.leader,
                current.id,
                current.address_of(current.leader),
            ))
        };
        let Ok(Some((leader, me, address))) = tokio::time::timeout(self.leader_wait, known).await
        else {
            return Err(ApiError::NotLeader {
                leader: None,
                address: None,
            });
        };
        if leader == me {
            // This node won an election meanwhile: the caller executes the request here.
            return Ok(Leader::Here);
        }
        let address = address.ok_or(ApiError::NotLeader {
            leader: Some(leader),
            address: None,
        })?;
        let mut leaders = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = leaders.get(&address) {
            return Ok(Leader::Remote(leader, client.clone()));
        }
        let endpoint = super::super::tls::peer_endpoint(&address, self.tls.as_ref())
            .map_err(|e| {
                ApiError::FailedPrecondition(format!("bad leader address {address}: {e}"))
            })?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        let client = RaftClient::new(endpoint.connect_lazy());
        leaders.insert(address, client.clone());
        Ok(Leader::Remote(leader, client))
    }
}
