//! Starting, waiting for and stopping an embedded node.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::client::{Client, Shared};
use crate::raft::NodeId;
use crate::server::api::{ApiError, RoleEvent};
use crate::server::config::ConfigError;
use crate::server::probes::not_ready_reason;
use crate::server::{Listeners, NodeConfig, NodeError, NodeHandle};

/// How long [`EmbeddedNode::shutdown`] waits for the last user of the storage (a request in
/// flight, a peer connection winding down) to let go of it.
const STORAGE_CLOSE_LIMIT: Duration = Duration::from_secs(10);

/// The default of [`Embedded::request_timeout`]: the gRPC client listener's.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How to start an embedded node: its configuration and which listeners it opens.
#[derive(Debug, Clone)]
pub struct Embedded {
    config: NodeConfig,
    listeners: Listeners,
    request_timeout: Duration,
}

impl Embedded {
    /// A one-member cluster in `data_dir`: founded on the first start, restarted from the
    /// directory after that. Node id 1, every other setting at its default, no listener at
    /// all (nothing to reach it but its [`Client`]s).
    pub fn single_node(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            config: NodeConfig {
                id: 1,
                data_dir: Some(data_dir.into()),
                ..NodeConfig::default()
            },
            listeners: Listeners::NONE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// A node run from `config` as the `node` binary would run it: a founding member
    /// (`initial_cluster`), a node joining a cluster (`join`), a restart, a restore. It opens
    /// the peer listener (`peer_listen`, where the other members reach it) and neither the
    /// client nor the metrics listener unless asked. Its id must be set (0 is not resolved
    /// here: see [`NodeConfig::resolve_id`]).
    pub fn from_config(config: NodeConfig) -> Self {
        Self {
            config,
            listeners: Listeners {
                client: false,
                peer: true,
                metrics: false,
            },
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    /// Also serve the gRPC client API (Kv, Admin, health, reflection) on `client_listen`,
    /// for tools such as the `dengine` CLI or processes other than this one.
    pub fn client_listener(mut self, open: bool) -> Self {
        self.listeners.client = open;
        self
    }

    /// Open the peer listener on `peer_listen`. A member of a cluster of several nodes
    /// cannot do without it; a single node does not need it until it is grown into a
    /// cluster.
    pub fn peer_listener(mut self, open: bool) -> Self {
        self.listeners.peer = open;
        self
    }

    /// Serve probes (`/livez`, `/readyz`, `/startupz`) and Prometheus `/metrics` on
    /// `metrics_listen`.
    pub fn metrics_listener(mut self, open: bool) -> Self {
        self.listeners.metrics = open;
        self
    }

    /// The longest a [`Client`] request may take before it fails with
    /// [`DeadlineExceeded`](ApiError::DeadlineExceeded) (a write may still be applied), as
    /// the gRPC server bounds every request. Default: [`DEFAULT_REQUEST_TIMEOUT`].
    /// Requests that wait for a leader give up sooner, after three election timeouts.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Changes settings of the configuration, e.g. timing or limits.
    pub fn configure(mut self, change: impl FnOnce(&mut NodeConfig)) -> Self {
        change(&mut self.config);
        self
    }

    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Opens the data directory (checking that it belongs to this node and cluster, founding
    /// the cluster if it is new), replays it, starts the event loop on a thread of its own and
    /// opens the listeners asked for. Returns once that is done, before a leader is known:
    /// see [`EmbeddedNode::wait_ready`].
    ///
    /// Must be called inside a Tokio runtime, which then runs the node's listeners and peer
    /// connections; a multi-threaded one suits a cluster member best.
    pub async fn start(self) -> Result<EmbeddedNode, NodeError> {
        let several = self.config.join
            || self
                .config
                .founding_members()
                .is_ok_and(|members| members.len() > 1);
        if several && !self.listeners.peer {
            return Err(NodeError::Config(ConfigError::Invalid {
                setting: "peer_listen",
                message: "a member of a cluster of several nodes needs its peer listener: the \
                          other members reach it there"
                    .into(),
            }));
        }
        let handle = crate::server::start_with(self.config, self.listeners).await?;
        let shared = Arc::new(Shared {
            api: RwLock::new(handle.api().cloned()),
            request_timeout: self.request_timeout,
        });
        Ok(EmbeddedNode { handle, shared })
    }
}

/// A node running inside this process. Get [`Client`]s from it; stop it with
/// [`shutdown`](Self::shutdown).
///
/// Dropping it without `shutdown` stops it too, in the background: new requests fail with
/// [`ShuttingDown`](ApiError::ShuttingDown) at once, the listeners close, and the event loop
/// stops after the batch it is on. Every acknowledged write is already durable (writes are
/// acknowledged only after their fsync), so nothing acknowledged is lost either way; but the
/// storage may still be open for a moment after the drop, so reopening the same data
/// directory in this process right away needs `shutdown().await` instead.
pub struct EmbeddedNode {
    handle: NodeHandle,
    shared: Arc<Shared>,
}

impl EmbeddedNode {
    /// Shorthand for [`Embedded::single_node`]`(data_dir).start()`.
    pub async fn start(data_dir: impl Into<PathBuf>) -> Result<EmbeddedNode, NodeError> {
        Embedded::single_node(data_dir).start().await
    }

    pub fn id(&self) -> NodeId {
        self.handle.id
    }

    /// A handle on the KV API; as many as wanted, all cheap.
    pub fn client(&self) -> Client {
        Client::new(self.shared.clone())
    }

    /// This node's view of leadership now.
    pub fn role(&self) -> RoleEvent {
        RoleEvent::from(&*self.handle.status.borrow())
    }

    /// Where the gRPC client API listens, if it was asked for.
    pub fn client_address(&self) -> Option<SocketAddr> {
        self.handle.client_address
    }

    /// Where the peer API listens, if open.
    pub fn peer_address(&self) -> Option<SocketAddr> {
        self.handle.peer_address
    }

    /// Where probes and metrics are served, if asked for.
    pub fn metrics_address(&self) -> Option<SocketAddr> {
        self.handle.metrics_address
    }

    /// Waits until the node is ready to serve: it is a member, knows a leader, and has
    /// applied everything it knows to be committed (what `/readyz` reports). Fails with
    /// [`DeadlineExceeded`](ApiError::DeadlineExceeded), saying what it was waiting for,
    /// after `timeout`, or with [`ShuttingDown`](ApiError::ShuttingDown) if the node stopped.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<(), ApiError> {
        let mut status = self.handle.status.clone();
        let ready = async {
            status
                .wait_for(|s| not_ready_reason(s).is_none())
                .await
                .map(|_| ())
        };
        let outcome = tokio::time::timeout(timeout, ready).await;
        match outcome {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ApiError::ShuttingDown),
            Err(_) => {
                let reason = not_ready_reason(&self.handle.status.borrow())
                    .unwrap_or_else(|| "ready just now".into());
                Err(ApiError::DeadlineExceeded(format!(
                    "node {} not ready after {timeout:?}: {reason}",
                    self.id()
                )))
            }
        }
    }

    /// Stops the node gracefully: new requests fail with
    /// [`ShuttingDown`](ApiError::ShuttingDown), requests in flight are answered (writes not
    /// yet committed with `ShuttingDown`: they may still commit through the rest of the
    /// cluster), the listeners close, the event loop finishes the batch it is on, and the
    /// storage is synced and closed. Once this returns, the data directory can be opened
    /// again. Watch streams end with `ShuttingDown`.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        self.shared.close();
        let result = self.handle.shutdown().await;
        if !self.handle.wait_storage_closed(STORAGE_CLOSE_LIMIT).await {
            return Err(NodeError::Server(format!(
                "node {} stopped, but its storage was still in use {STORAGE_CLOSE_LIMIT:?} later",
                self.id()
            )));
        }
        result
    }
}

impl Drop for EmbeddedNode {
    fn drop(&mut self) {
        self.shared.close();
        self.handle.signal_shutdown();
    }
}

impl std::fmt::Debug for EmbeddedNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedNode")
            .field("id", &self.id())
            .field("role", &self.role())
            .field("client_address", &self.client_address())
            .field("peer_address", &self.peer_address())
            .finish()
    }
}
