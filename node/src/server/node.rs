//! Starting and stopping a node: storage, identity checks, the event loop and the servers.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;

use super::admin_service::{AdminAuth, AdminService};
use super::api::KvApi;
use super::config::{ConfigError, NodeConfig};
use super::event_loop::EventLoop;
use super::frontend::{Frontend, FrontendTiming};
use super::kv_service::KvService;
use super::limits::Limits;
use super::metrics::Metrics;
use super::peer_service::PeerService;
use super::probes::{ProbeState, Pulse};
use super::raft_store::{Identity, RaftStore};
use super::replica::{recover, Replica, ReplicaParts, ReplicaSettings, SystemClock};
use super::requests::ClientRequest;
use super::status::NodeStatus;
use super::transport::{ClusterId, Transport};
use crate::kv::KvStore;
use crate::proto::admin_server::AdminServer;
use crate::proto::kv_server::KvServer;
use crate::proto::raft_server::RaftServer;
use crate::proto::HardState;
use crate::raft::{Config, Raft};
use crate::storage::{Durability, Engine, RocksEngine, StorageError, WriteBatch};

/// Why a node could not start. Each says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot use data directory {path}: {message}")]
    DataDir { path: String, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}")]
    Identity(String),
    #[error("server failed: {0}")]
    Server(String),
    #[error("TLS: {0}")]
    Tls(#[from] super::tls::TlsError),
}

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

/// A running node.
pub struct NodeHandle {
    pub id: u64,
    /// Where each listener listens, if it was opened.
    pub client_address: Option<SocketAddr>,
    pub peer_address: Option<SocketAddr>,
    pub metrics_address: Option<SocketAddr>,
    pub status: watch::Receiver<NodeStatus>,
    pub requests: mpsc::Sender<ClientRequest>,
    api: Option<KvApi>,
    /// The storage engine, to tell when everything using it has let go after a shutdown.
    storage: Weak<dyn Engine>,
    shutdown: watch::Sender<bool>,
    event_loop: Option<std::thread::JoinHandle<Result<(), StorageError>>>,
    servers: Vec<JoinHandle<Result<(), tonic::transport::Error>>>,
    probe_server: Option<JoinHandle<std::io::Result<()>>>,
}

impl NodeHandle {
    /// The node's client API, in process; `None` once it was shut down.
    pub fn api(&self) -> Option<&KvApi> {
        self.api.as_ref()
    }

    /// Tells the node to stop without waiting for it: the servers stop accepting, the event
    /// loop stops after the batch it is on. [`shutdown`](Self::shutdown) waits for all that.
    pub fn signal_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Whether the storage is still open: something (a request in flight, a peer task
    /// winding down, a clone of [`api`](Self::api)) still holds it.
    pub fn storage_open(&self) -> bool {
        self.storage.strong_count() > 0
    }

    /// After [`shutdown`](Self::shutdown): waits up to `limit` for the storage to be closed,
    /// so that the data directory can be opened again. Returns whether it was.
    pub async fn wait_storage_closed(&self, limit: Duration) -> bool {
        let started = Instant::now();
        while self.storage_open() {
            if started.elapsed() >= limit {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Resolves when the node stops by itself (a storage failure or a server error).
    pub async fn stopped(&mut self) -> Result<(), NodeError> {
        let mut shutdown = self.shutdown.subscribe();
        loop {
            if self.event_loop.as_ref().is_none_or(|t| t.is_finished()) {
                break;
            }
            if self.servers.iter().any(|s| s.is_finished()) {
                break;
            }
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
        self.shutdown().await
    }

    /// Stops serving, lets the event loop finish its current batch and closes storage (once
    /// no clone of [`api`](Self::api) is left: see [`wait_storage_closed`](Self::wait_storage_closed)).
    pub async fn shutdown(&mut self) -> Result<(), NodeError> {
        self.api = None;
        let _ = self.shutdown.send(true);
        let mut result = Ok(());
        for server in self.servers.drain(..) {
            match server.await {
                Ok(Err(e)) => result = Err(NodeError::Server(e.to_string())),
                Err(e) if !e.is_cancelled() => result = Err(NodeError::Server(e.to_string())),
                _ => {}
            }
        }
        if let Some(probes) = self.probe_server.take() {
            if let Ok(Err(e)) = probes.await {
                result = Err(NodeError::Server(format!("probe server: {e}")));
            }
        }
        if let Some(thread) = self.event_loop.take() {
            let joined = tokio::task::spawn_blocking(move || thread.join())
                .await
                .map_err(|e| NodeError::Server(e.to_string()))?;
            match joined {
                Ok(Err(e)) => result = Err(NodeError::Storage(e)),
                Err(_) => result = Err(NodeError::Server("the event loop panicked".into())),
                Ok(Ok(())) => {}
            }
        }
        result
    }
}

/// Checks the data directory's identity against the configuration, initialising a new one.
/// Returns the cluster id (0 for a joining node that has not been contacted yet).
fn establish_identity(
    config: &NodeConfig,
    store: &RaftStore,
    kv: &mut KvStore,
) -> Result<u64, NodeError> {
    let data_dir = config.data_dir().display().to_string();
    match store.identity()? {
        Some(identity) => {
            if identity.node_id != config.id {
                return Err(NodeError::Identity(format!(
                    "data directory {data_dir} belongs to node {}, but this node is configured as node {}; \
                     use that node's id or another data directory",
                    identity.node_id, config.id
                )));
            }
            if !config.join && identity.cluster_id != 0 {
                let configured = config.new_cluster_id()?;
                if configured != identity.cluster_id {
                    return Err(NodeError::Identity(format!(
                        "data directory {data_dir} belongs to cluster {:x}, but initial_cluster and cluster_token \
                         describe cluster {configured:x}; refusing to mix two clusters' data \
                         (start with --join to keep serving the existing cluster, or use a new data directory)",
                        identity.cluster_id
                    )));
                }
            }
            Ok(identity.cluster_id)
        }
        None if config.join => {
            store.record_awaiting_admission()?;
            store.record_identity(Identity {
                cluster_id: 0,
                node_id: config.id,
            })?;
            Ok(0)
        }
        None if config.restore_from.is_some() => restore(config, store, kv),
        None => {
            let cluster_id = config.new_cluster_id()?;
            let members: Vec<(u64, String)> = config.founding_members()?.into_iter().collect();
            let entries = Raft::bootstrap_entries(&members);
            let hard_state = HardState {
                term: 1,
                vote: 0,
                commit: entries.len() as u64,
            };
            store.initialise(
                Identity {
                    cluster_id,
                    node_id: config.id,
                },
                hard_state,
                &entries,
            )?;
            tracing::info!(
                cluster_id = format!("{cluster_id:x}"),
                members = members.len(),
                "bootstrapped a new cluster"
            );
            Ok(cluster_id)
        }
    }
}

/// Whether this founding member, about to found on an empty data directory, must wait to be
/// admitted instead, because the other founding members say the cluster has already run (see
/// [`super::founding`]).
async fn founding_is_unsafe(
    config: &NodeConfig,
    tls: Option<&super::tls::Tls>,
) -> Result<bool, NodeError> {
    let founding_entries = 2 * config.founding_members()?.len() as u64;
    let views = super::founding::ask_founding_members(config, tls).await;
    let cluster_id = config.new_cluster_id()?;
    match super::founding::evidence_of_a_running_cluster(&views, cluster_id, founding_entries) {
        None => Ok(false),
        Some(evidence) => {
            tracing::warn!(
                %evidence,
                "this founding member's data directory is empty but its cluster has already run: \
                 it lost its data or was started late. It starts waiting to be admitted and \
                 will not vote until the cluster removes it and adds it back as a learner \
                 (`dengine member remove {id}`, then `dengine member add {id} <peer address>`, \
                 then `dengine member promote {id}`)",
                id = config.id
            );
            Ok(true)
        }
    }
}

/// Founds a new cluster whose state is a backup's: every founding member restores the same
/// file, so they start identical, at the backup's index, with the new membership.
fn restore(config: &NodeConfig, store: &RaftStore, kv: &mut KvStore) -> Result<u64, NodeError> {
    let path = config
        .restore_from
        .as_deref()
        .expect("checked by the caller");
    let (header, data) =
        dengine_proto::backup::read(path).map_err(|e| NodeError::Identity(e.to_string()))?;
    let backup = header.metadata.unwrap_or_default();
    let members = config.founding_members()?;
    let meta = crate::proto::SnapshotMetadata {
        index: backup.index,
        term: backup.term,
        conf_state: Some(crate::proto::ConfState {
            voters: members.keys().copied().collect(),
            learners: Vec::new(),
        }),
        addresses: members.clone().into_iter().collect(),
    };
    let cluster_id = config.new_cluster_id()?;
    // The state machine and Raft's founding state in one write: a crash leaves an empty data
    // directory or a restored one, never half of each.
    let mut batch = WriteBatch::new();
    let staged = kv
        .stage_restore(&mut batch, &data, meta.index)
        .map_err(|e| NodeError::Identity(format!("restoring {}: {e}", path.display())))?;
    store.stage_initialise_from_snapshot(
        &mut batch,
        Identity {
            cluster_id,
            node_id: config.id,
        },
        HardState {
            term: meta.term.max(1),
            vote: 0,
            commit: meta.index,
        },
        &meta,
    );
    store.write(batch, Durability::Sync)?;
    kv.finish_restore(staged);
    tracing::info!(
        backup = %path.display(),
        index = meta.index,
        revision = kv.revision(),
        cluster_id = format!("{cluster_id:x}"),
        "founded a new cluster from a backup"
    );
    Ok(cluster_id)
}

/// Founds a data directory from a backup without starting a node (`dengine snapshot
/// restore`): the node started on it later serves the restored state. Returns the cluster id.
pub fn restore_data_dir(config: &NodeConfig) -> Result<u64, NodeError> {
    config.validate()?;
    if config.restore_from.is_none() {
        return Err(NodeError::Identity("no backup file given".into()));
    }
    let data_dir = config.data_dir();
    let occupied = std::fs::read_dir(&data_dir).is_ok_and(|mut entries| entries.next().is_some());
    if occupied {
        return Err(NodeError::DataDir {
            path: data_dir.display().to_string(),
            message: "it is not empty; restore founds a new member and needs an empty directory"
                .into(),
        });
    }
    std::fs::create_dir_all(&data_dir).map_err(|e| NodeError::DataDir {
        path: data_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let engine: Arc<dyn Engine> = Arc::new(RocksEngine::open(&data_dir)?);
    let store = RaftStore::new(engine.clone());
    let mut kv = KvStore::open(engine, config.history_retention)?;
    restore(config, &store, &mut kv)
}

fn raft_config(config: &NodeConfig) -> Config {
    let mut raft = Config::new(config.id);
    raft.election_ticks = config.election_ticks;
    raft.heartbeat_ticks = config.heartbeat_ticks;
    raft
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

async fn bind(address: SocketAddr) -> Result<TcpListener, NodeError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| NodeError::Bind { address, source })
}

/// Starts a node with every listener. Returns once it is listening; it elects or joins a
/// leader on its own.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    start_with(config, Listeners::ALL).await
}

async fn bind_if(
    open: bool,
    address: SocketAddr,
) -> Result<Option<(TcpListener, SocketAddr)>, NodeError> {
    if !open {
        return Ok(None);
    }
    let listener = bind(address).await?;
    let local = listener
        .local_addr()
        .map_err(|source| NodeError::Bind { address, source })?;
    Ok(Some((listener, local)))
}

/// Starts a node that opens only the listeners asked for. Its client API is served in process
/// by [`NodeHandle::api`] whether or not the client listener is open.
pub async fn start_with(
    mut config: NodeConfig,
    listeners: Listeners,
) -> Result<NodeHandle, NodeError> {
    config.validate()?;
    let tls = super::tls::Tls::load(&config)?;
    let data_dir = config.data_dir();
    std::fs::create_dir_all(&data_dir).map_err(|e| NodeError::DataDir {
        path: data_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let engine: Arc<dyn Engine> =
        Arc::new(
            RocksEngine::open(&data_dir).map_err(|e| NodeError::DataDir {
                path: data_dir.display().to_string(),
                message: e.to_string(),
            })?,
        );
    let storage = Arc::downgrade(&engine);
    let store = RaftStore::new(engine.clone());
    let mut kv = KvStore::open(engine.clone(), config.history_retention)?;
    if store.identity()?.is_none() && !config.join && config.restore_from.is_none() {
        config.join = founding_is_unsafe(&config, tls.as_ref()).await?;
    }
    let cluster_id = ClusterId::new(establish_identity(&config, &store, &mut kv)?);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id());
    let recovered = recover(&store, &kv, raft_config(&config), seed)?;

    let client_listener = bind_if(listeners.client, config.client_listen).await?;
    let peer_listener = bind_if(listeners.peer, config.peer_listen).await?;
    let metrics_listener = bind_if(listeners.metrics, config.metrics_listen).await?;
    let client_address = client_listener.as_ref().map(|(_, address)| *address);
    let peer_address = peer_listener.as_ref().map(|(_, address)| *address);
    let metrics_address = metrics_listener.as_ref().map(|(_, address)| *address);
    if let Some(client_address) = client_address.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(%client_address, "the client API listens beyond loopback: anyone who can reach it can read and write every key");
    }

    let startup_commit = recovered.stored_commit;
    let metrics = Arc::new(Metrics::new());
    let pulse = Pulse::new();
    let kv = Arc::new(RwLock::new(kv));
    let (requests_tx, requests_rx) = mpsc::channel(16 * 1024);
    let (peer_tx, peer_rx) = mpsc::channel(16 * 1024);
    let (status_tx, status_rx) = watch::channel(NodeStatus {
        awaiting_admission: recovered.awaiting_admission,
        ..NodeStatus::initial(config.id, cluster_id.get())
    });
    let (events_tx, _) = broadcast::channel(4096);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let transport = Transport::new(
        config.id,
        config.advertise_peer(),
        cluster_id.clone(),
        peer_tx.clone(),
        tls.clone(),
    );

    let peer_transport = transport.clone();
    let clock = SystemClock::starting_now();
    let started = clock.started();
    let replica = Replica::new(ReplicaParts {
        awaiting_admission_stored: recovered.awaiting_admission,
        metrics: metrics.clone(),
        pulse: pulse.clone(),
        raft: recovered.raft,
        kv: kv.clone(),
        store: store.clone(),
        outbox: Box::new(transport.clone()),
        clock: Box::new(clock),
        settings: ReplicaSettings {
            tick: Duration::from_millis(config.tick_ms),
            lease_ticks: config.lease_ticks,
            election_ticks: config.election_ticks,
            snapshot_every: config.snapshot_every,
            snapshot_keep_entries: config.snapshot_keep_entries,
            cluster_id: cluster_id.get(),
        },
        status: status_tx,
        events: events_tx.clone(),
        applied_membership: recovered.applied_membership,
        last_stored: recovered.last_stored,
    });
    let event_loop = EventLoop::new(replica, started, requests_rx, peer_rx, transport);
    let loop_shutdown = shutdown_rx.clone();
    let event_loop = std::thread::Builder::new()
        .name(format!("raft-loop-{}", config.id))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    StorageError::Engine(format!("cannot start the event loop runtime: {e}"))
                })?;
            runtime.block_on(event_loop.run(loop_shutdown))
        })
        .map_err(|e| NodeError::Server(format!("cannot start the event loop thread: {e}")))?;

    let limits = Limits {
        max_key_bytes: config.max_key_bytes,
        max_value_bytes: config.max_value_bytes,
        max_request_bytes: config.max_request_bytes,
        max_scan_limit: config.max_scan_limit,
    };
    let election_timeout = Duration::from_millis(config.tick_ms * config.election_ticks);
    let frontend = Arc::new(
        Frontend::new(
            requests_tx.clone(),
            status_rx.clone(),
            limits,
            config.default_read_policy,
            FrontendTiming {
                // Long enough for an election or two; a request never waits longer for a leader.
                leader_wait: election_timeout * 3,
                request_timeout: Duration::from_secs(10),
            },
            cluster_id.clone(),
            metrics.clone(),
        )
        .with_peer_tls(tls.clone()),
    );
    let api = KvApi::new(
        frontend.clone(),
        kv.clone(),
        status_rx.clone(),
        events_tx,
        limits,
        shutdown_rx.clone(),
    );
    let admin_token = config.admin_token()?;
    let admin = |loopback: bool| {
        AdminServer::new(AdminService {
            status: status_rx.clone(),
            frontend: frontend.clone(),
            auth: AdminAuth {
                token: admin_token.clone(),
                loopback,
            },
            promote_max_lag: config.promote_max_lag,
            transfer_timeout: election_timeout * 2,
        })
    };

    let mut servers = Vec::new();
    if let Some((client_listener, client_address)) = client_listener {
        let kv_service = KvServer::new(KvService { api: api.clone() })
            .max_decoding_message_size(limits.transport_limit());
        let client_admin = admin(client_address.ip().is_loopback());
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter.set_serving::<KvServer<KvService>>().await;
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| NodeError::Server(e.to_string()))?;
        let mut client_shutdown = shutdown_rx.clone();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = tls.as_ref().filter(|t| t.client) {
            builder = builder
                .tls_config(tls.client_server())
                .map_err(|e| NodeError::Server(format!("client listener TLS: {e}")))?;
        }
        servers.push(tokio::spawn(
            builder
                .timeout(Duration::from_secs(60))
                .add_service(kv_service)
                .add_service(client_admin)
                .add_service(health_service)
                .add_service(reflection)
                .serve_with_incoming_shutdown(without_nagle(client_listener), async move {
                    let _ = client_shutdown.changed().await;
                }),
        ));
    }
    if let Some((peer_listener, peer_address)) = peer_listener {
        let peer_admin = admin(peer_address.ip().is_loopback());
        let peer = RaftServer::new(PeerService {
            frontend: frontend.clone(),
            transport: peer_transport,
            node_id: config.id,
            cluster_id,
            store: store.clone(),
            inputs: peer_tx,
            shutdown: shutdown_rx.clone(),
        })
        .max_decoding_message_size(64 << 20);
        let mut peer_shutdown = shutdown_rx.clone();
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &tls {
            builder = builder
                .tls_config(tls.peer_server())
                .map_err(|e| NodeError::Server(format!("peer listener TLS: {e}")))?;
        }
        servers.push(tokio::spawn(
            builder
                .add_service(peer)
                .add_service(peer_admin)
                .serve_with_incoming_shutdown(without_nagle(peer_listener), async move {
                    let _ = peer_shutdown.changed().await;
                }),
        ));
    }
    let probe_server = metrics_listener.map(|(metrics_listener, _)| {
        let probes = super::probes::router(ProbeState {
            status: status_rx.clone(),
            metrics,
            pulse,
            startup_commit,
            stall_limit: Duration::from_secs(10).max(election_timeout * 5),
        });
        let mut probes_shutdown = shutdown_tx.subscribe();
        tokio::spawn(async move {
            axum::serve(metrics_listener, probes)
                .with_graceful_shutdown(async move {
                    let _ = probes_shutdown.changed().await;
                })
                .await
        })
    });
    let shown = |address: Option<SocketAddr>| address.map_or("off".to_string(), |a| a.to_string());
    tracing::info!(
        id = config.id,
        client_address = %shown(client_address),
        peer_address = %shown(peer_address),
        metrics_address = %shown(metrics_address),
        data_dir = %data_dir.display(),
        "node started"
    );
    Ok(NodeHandle {
        id: config.id,
        client_address,
        peer_address,
        metrics_address,
        status: status_rx,
        requests: requests_tx,
        api: Some(api),
        storage,
        shutdown: shutdown_tx,
        event_loop: Some(event_loop),
        servers,
        probe_server,
    })
}
