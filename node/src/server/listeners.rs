//! The node's three listeners: binding them, and serving on each what belongs there.
//!
//! - client (`client_listen`, loopback by default): the Kv and Admin APIs, gRPC health and
//!   reflection;
//! - peer (`peer_listen`): the Raft API other members talk to, and the Admin API again (the
//!   operator and `dengine member ...` reach the leader there);
//! - metrics (`metrics_listen`): probes and Prometheus metrics over HTTP.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use super::admin_service::AdminService;
use super::etcd_auth::EtcdAuthService;
use super::etcd_cluster::EtcdClusterService;
use super::etcd_concurrency::{EtcdElectionService, EtcdLockService};
use super::etcd_lease::EtcdLeaseService;
use super::etcd_service::EtcdKvService;
use super::etcd_watch::EtcdWatchService;
use super::kv_service::KvService;
use super::node::NodeError;
use super::peer_service::PeerService;
use super::tls::Tls;
use crate::proto::admin_server::AdminServer;
use crate::proto::kv_server::KvServer;
use crate::proto::raft_server::RaftServer;
use dengine_proto::etcd::etcdserverpb::auth_server::AuthServer;
use dengine_proto::etcd::etcdserverpb::cluster_server::ClusterServer;
use dengine_proto::etcd::etcdserverpb::kv_server::KvServer as EtcdKvServer;
use dengine_proto::etcd::etcdserverpb::lease_server::LeaseServer;
use dengine_proto::etcd::etcdserverpb::maintenance_server::MaintenanceServer;
use dengine_proto::etcd::etcdserverpb::watch_server::WatchServer;
use dengine_proto::etcd::v3electionpb::election_server::ElectionServer;
use dengine_proto::etcd::v3lockpb::lock_server::LockServer;

/// The client listener's bound on one call, streams aside: a call the node has not answered
/// by then (it waits for a leader or a commit at most `REQUEST_TIMEOUT`, see
/// [`super::node`]) is cut off rather than left holding a connection.
const CLIENT_CALL_LIMIT: Duration = Duration::from_secs(60);
/// The largest message a peer may send: a snapshot chunk or an append batch with its
/// envelope (appends are cut at 1 MiB of entries; chunks are smaller).
const PEER_MESSAGE_LIMIT: usize = 64 << 20;

/// Which listeners a node opens. The `node` binary opens all three; an embedded node
/// (see [`crate::embedded`]) chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listeners {
    /// The client API (KV, admin, health, reflection) on `client_listen`.
    pub client: bool,
    /// The peer Raft and admin API on `peer_listen`: every member of a cluster of more than
    /// one node needs it, since that is where the others reach it.
    pub peer: bool,
    /// Probes and Prometheus metrics over HTTP on `metrics_listen`.
    pub metrics: bool,
}

impl Listeners {
    pub const ALL: Listeners = Listeners {
        client: true,
        peer: true,
        metrics: true,
    };
    pub const NONE: Listeners = Listeners {
        client: false,
        peer: false,
        metrics: false,
    };
}

/// A bound listener and the address it got (the port, when 0 was asked for).
pub type Bound = (TcpListener, SocketAddr);

/// Binds `address` if `open`.
pub async fn bind_if(open: bool, address: SocketAddr) -> Result<Option<Bound>, NodeError> {
    if !open {
        return Ok(None);
    }
    let listener = TcpListener::bind(address)
        .await
        .map_err(|source| NodeError::Bind { address, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| NodeError::Bind { address, source })?;
    Ok(Some((listener, local)))
}

/// The services of the client port: d-engine's own and etcd's v3 API.
pub struct ClientServices {
    pub kv: KvService,
    pub admin: AdminServer<AdminService>,
    pub etcd_kv: EtcdKvService,
    pub etcd_lease: EtcdLeaseService,
    pub etcd_lock: EtcdLockService,
    pub etcd_election: EtcdElectionService,
    /// etcd's Cluster and Maintenance services.
    pub etcd_cluster: EtcdClusterService,
    pub etcd_watch: EtcdWatchService,
    pub etcd_auth: EtcdAuthService,
}

/// Serves the client API on `listener` until `shutdown` changes.
pub async fn serve_client(
    (listener, _): Bound,
    services: ClientServices,
    transport_limit: usize,
    tls: Option<&Tls>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, NodeError> {
    let ClientServices {
        kv,
        admin,
        etcd_kv,
        etcd_lease,
        etcd_lock,
        etcd_election,
        etcd_cluster,
        etcd_watch,
        etcd_auth,
    } = services;
    let kv = KvServer::new(kv).max_decoding_message_size(transport_limit);
    let etcd_kv = EtcdKvServer::new(etcd_kv).max_decoding_message_size(transport_limit);
    let etcd_maintenance = MaintenanceServer::new(etcd_cluster.clone());
    let etcd_cluster = ClusterServer::new(etcd_cluster);
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<KvServer<KvService>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Server(e.to_string()))?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls.filter(|t| t.client) {
        builder = builder
            .tls_config(tls.client_server())
            .map_err(|e| NodeError::Server(format!("client listener TLS: {e}")))?;
    }
    Ok(tokio::spawn(
        builder
            .timeout(CLIENT_CALL_LIMIT)
            .add_service(kv)
            .add_service(etcd_kv)
            .add_service(etcd_cluster)
            .add_service(etcd_maintenance)
            .add_service(WatchServer::new(etcd_watch))
            .add_service(AuthServer::new(etcd_auth))
            .add_service(LeaseServer::new(etcd_lease))
            .add_service(LockServer::new(etcd_lock))
            .add_service(ElectionServer::new(etcd_election))
            .add_service(admin)
            .add_service(health_service)
            .add_service(reflection)
            .serve_with_incoming_shutdown(without_nagle(listener), async move {
                let _ = shutdown.changed().await;
            }),
    ))
}

/// Serves the peer API on `listener` until `shutdown` changes.
pub fn serve_peer(
    (listener, _): Bound,
    peer: PeerService,
    admin: AdminServer<AdminService>,
    tls: Option<&Tls>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<JoinHandle<Result<(), tonic::transport::Error>>, NodeError> {
    let peer = RaftServer::new(peer).max_decoding_message_size(PEER_MESSAGE_LIMIT);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls.peer_server())
            .map_err(|e| NodeError::Server(format!("peer listener TLS: {e}")))?;
    }
    Ok(tokio::spawn(
        builder
            .add_service(peer)
            .add_service(admin)
            .serve_with_incoming_shutdown(without_nagle(listener), async move {
                let _ = shutdown.changed().await;
            }),
    ))
}

/// Serves probes and metrics on `listener` until `shutdown` changes.
pub fn serve_probes(
    (listener, _): Bound,
    probes: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<()>> {
    tokio::spawn(async move {
        axum::serve(listener, probes)
            .with_graceful_shutdown(async move {
                let _ = shutdown.changed().await;
            })
            .await
    })
}

/// The connections `listener` accepts, with Nagle's algorithm off. A gRPC answer often leaves
/// in two small writes (headers, then data); with Nagle on, the second waits for the client's
/// delayed ACK, 40 ms, on every request. (tonic's `tcp_nodelay` does not apply to incoming
/// streams given to it, so it is set here.)
fn without_nagle(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use futures::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        if let Ok(stream) = &accepted {
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, "cannot turn Nagle's algorithm off");
            }
        }
        accepted
    })
}
