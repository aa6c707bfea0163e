//! Starting and stopping a node: the data directory (`data_dir`), the event loop and the
//! servers (`listeners`), put together in [`start_with`].

use std::net::SocketAddr;
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use super::admin_service::{AdminAuth, AdminService};
use super::api::KvApi;
use super::config::{ConfigError, NodeConfig};
use super::data_dir::{self, Storage};
use super::etcd_auth::EtcdAuthService;
use super::etcd_cluster::EtcdClusterService;
use super::etcd_concurrency::{EtcdElectionService, EtcdLockService};
use super::etcd_lease::EtcdLeaseService;
use super::etcd_service::EtcdKvService;
use super::etcd_watch::{EtcdWatchService, WatchSettings};
use super::event_loop::EventLoop;
use super::frontend::{Frontend, FrontendTiming};
use super::kv_service::KvService;
use super::limits::Limits;
use super::listeners::ClientServices;
use super::listeners::{self, bind_if, Bound, Listeners};
use super::metrics::Metrics;
use super::peer_service::PeerService;
use super::probes::{ProbeState, Pulse};
use super::replica::{recover, Replica, ReplicaParts, ReplicaSettings, SystemClock};
use super::requests::ClientRequest;
use super::status::NodeStatus;
use super::transport::{ClusterId, Transport};
use crate::proto::admin_server::AdminServer;
use crate::raft::Config;
use crate::storage::{Engine, StorageError};

/// Client requests, and peer messages, queued for the event loop at most; beyond that their
/// senders wait, which pushes back on clients and peers instead of growing memory.
const QUEUE_CAPACITY: usize = 16 * 1024;
/// Watch events buffered for the slowest watcher; one that falls further behind is told it
/// lagged and resumes from a revision.
const EVENTS_CAPACITY: usize = 4096;
/// How long a client request may take in all (finding a leader, forwarding, committing)
/// before it fails with DEADLINE_EXCEEDED, unless the client asked for less.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The readiness probe fails once the event loop has not moved for this long, or for five
/// election timeouts if that is longer.
const MIN_STALL_LIMIT: Duration = Duration::from_secs(10);

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

fn raft_config(config: &NodeConfig) -> Config {
    let mut raft = Config::new(config.id);
    raft.election_ticks = config.election_ticks;
    raft.heartbeat_ticks = config.heartbeat_ticks;
    raft
}

/// Starts a node with every listener. Returns once it is listening; it elects or joins a
/// leader on its own.
pub async fn start(config: NodeConfig) -> Result<NodeHandle, NodeError> {
    start_with(config, Listeners::ALL).await
}

/// Starts a node that opens only the listeners asked for. Its client API is served in process
/// by [`NodeHandle::api`] whether or not the client listener is open.
///
/// In order: the data directory is opened (off the async runtime: RocksDB and the log are
/// read from disk), a founding member on an empty directory first asks its peers whether the
/// cluster already ran, the directory's identity is established or checked and the core
/// rebuilt from it, the listeners are bound, and the event loop and the servers start.
pub async fn start_with(
    mut config: NodeConfig,
    listeners: Listeners,
) -> Result<NodeHandle, NodeError> {
    config.validate()?;
    let tls = super::tls::Tls::load(&config)?;
    let storage = blocking({
        let config = config.clone();
        move || data_dir::open(&config)
    })
    .await?;
    if storage.store.identity()?.is_none() && !config.join && config.restore_from.is_none() {
        config.join = founding_is_unsafe(&config, tls.as_ref()).await?;
    }
    let (storage, cluster_id, recovered) = blocking({
        let config = config.clone();
        move || {
            let mut storage = storage;
            let cluster_id =
                data_dir::establish_identity(&config, &storage.store, &mut storage.kv)?;
            let recovered = recover(&storage.store, &storage.kv, raft_config(&config), seed())?;
            Ok((storage, ClusterId::new(cluster_id), recovered))
        }
    })
    .await?;
    let Storage { engine, store, kv } = storage;

    let client_listener = bind_if(listeners.client, config.client_listen).await?;
    let peer_listener = bind_if(listeners.peer, config.peer_listen).await?;
    let metrics_listener = bind_if(listeners.metrics, config.metrics_listen).await?;
    let address = |bound: &Option<Bound>| bound.as_ref().map(|(_, address)| *address);
    let (client_address, peer_address, metrics_address) = (
        address(&client_listener),
        address(&peer_listener),
        address(&metrics_listener),
    );
    if let Some(client_address) = client_address.filter(|a| !a.ip().is_loopback()) {
        tracing::warn!(%client_address, "the client API listens beyond loopback: anyone who can reach it can read and write every key");
    }

    let startup_commit = recovered.stored_commit;
    let metrics = Arc::new(Metrics::new());
    let pulse = Pulse::new();
    let kv = Arc::new(RwLock::new(kv));
    let (requests_tx, requests_rx) = mpsc::channel(QUEUE_CAPACITY);
    let (peer_tx, peer_rx) = mpsc::channel(QUEUE_CAPACITY);
    let (status_tx, status_rx) = watch::channel(NodeStatus {
        awaiting_admission: recovered.awaiting_admission,
        ..NodeStatus::initial(config.id, cluster_id.get())
    });
    let (events_tx, _) = broadcast::channel(EVENTS_CAPACITY);
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let transport = Transport::new(
        config.id,
        config.advertise_peer(),
        cluster_id.clone(),
        peer_tx.clone(),
        tls.clone(),
    );

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
            history_retention_period: Duration::from_millis(config.history_retention_ms),
            cluster_id: cluster_id.get(),
        },
        status: status_tx,
        events: events_tx.clone(),
        applied_membership: recovered.applied_membership,
        last_stored: recovered.last_stored,
    });
    let event_loop = EventLoop::new(replica, started, requests_rx, peer_rx, transport.clone());
    let event_loop = spawn_event_loop(event_loop, config.id, shutdown_rx.clone())?;

    let limits = Limits {
        max_key_bytes: config.max_key_bytes,
        max_value_bytes: config.max_value_bytes,
        max_request_bytes: config.max_request_bytes,
        max_scan_limit: config.max_scan_limit,
    };
    let election_timeout = Duration::from_millis(config.tick_ms * config.election_ticks);
    let frontend = Arc::new(Frontend::new(
        requests_tx.clone(),
        status_rx.clone(),
        limits,
        config.default_read_policy,
        FrontendTiming {
            // Long enough for an election or two; a request never waits longer for a leader.
            leader_wait: election_timeout * 3,
            request_timeout: REQUEST_TIMEOUT,
            election_timeout,
            member_id: config.id,
        },
        cluster_id.clone(),
        metrics.clone(),
        tls.clone(),
    ));
    let api = KvApi::new(
        frontend.clone(),
        kv.clone(),
        status_rx.clone(),
        events_tx,
        limits,
        shutdown_rx.clone(),
    );
    let admin_token = config.admin_token()?;
    let peer_links = transport.links();
    let admin_service = |bound: &Bound| AdminService {
        status: status_rx.clone(),
        frontend: frontend.clone(),
        auth: AdminAuth {
            token: admin_token.clone(),
            loopback: bound.1.ip().is_loopback(),
        },
        promote_max_lag: config.promote_max_lag,
        transfer_timeout: election_timeout * 2,
        links: peer_links.clone(),
    };
    let admin = |bound: &Bound| AdminServer::new(admin_service(bound));

    let mut servers = Vec::new();
    if let Some(bound) = client_listener {
        let services = ClientServices {
            kv: KvService { api: api.clone() },
            admin: admin(&bound),
            etcd_lease: EtcdLeaseService { api: api.clone() },
            etcd_lock: EtcdLockService { api: api.clone() },
            etcd_election: EtcdElectionService { api: api.clone() },
            etcd_kv: EtcdKvService {
                api: api.clone(),
                max_request_bytes: limits.max_request_bytes,
                max_txn_ops: config.max_txn_ops,
            },
            etcd_cluster: EtcdClusterService {
                api: api.clone(),
                admin: Arc::new(admin_service(&bound)),
                status: status_rx.clone(),
                peer_tls: tls.is_some(),
            },
            etcd_watch: EtcdWatchService {
                api: api.clone(),
                settings: WatchSettings {
                    progress_notify: Duration::from_millis(config.watch_progress_notify_ms),
                    fragment_bytes: limits.max_request_bytes,
                },
            },
            etcd_auth: EtcdAuthService { api: api.clone() },
        };
        servers.push(
            listeners::serve_client(
                bound,
                services,
                limits.transport_limit(),
                tls.as_ref(),
                shutdown_rx.clone(),
            )
            .await?,
        );
    }
    if let Some(bound) = peer_listener {
        let peer = PeerService {
            frontend: frontend.clone(),
            transport,
            links: peer_links.clone(),
            node_id: config.id,
            cluster_id,
            store: store.clone(),
            inputs: peer_tx,
            shutdown: shutdown_rx.clone(),
        };
        let admin = admin(&bound);
        servers.push(listeners::serve_peer(
            bound,
            peer,
            admin,
            tls.as_ref(),
            shutdown_rx.clone(),
        )?);
    }
    let probe_server = metrics_listener.map(|bound| {
        let probes = super::probes::router(ProbeState {
            status: status_rx.clone(),
            metrics,
            pulse,
            startup_commit,
            stall_limit: MIN_STALL_LIMIT.max(election_timeout * 5),
        });
        listeners::serve_probes(bound, probes, shutdown_rx.clone())
    });
    let shown = |address: Option<SocketAddr>| address.map_or("off".to_string(), |a| a.to_string());
    tracing::info!(
        id = config.id,
        client_address = %shown(client_address),
        peer_address = %shown(peer_address),
        metrics_address = %shown(metrics_address),
        data_dir = %config.data_dir().display(),
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
        storage: Arc::downgrade(&engine),
        shutdown: shutdown_tx,
        event_loop: Some(event_loop),
        servers,
        probe_server,
    })
}

/// Runs `work`, which blocks on the disk, on tokio's blocking pool, so that opening RocksDB
/// and reading the log do not hold a runtime worker (an embedding application's, too).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, NodeError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| NodeError::Server(format!("start-up task failed: {e}")))?
}

/// The event loop on a thread of its own, with a single-threaded runtime: the replica's work
/// (fsyncs included) never competes with the servers' tasks for a runtime worker.
fn spawn_event_loop(
    event_loop: EventLoop,
    id: u64,
    shutdown: watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<Result<(), StorageError>>, NodeError> {
    std::thread::Builder::new()
        .name(format!("raft-loop-{id}"))
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    StorageError::Engine(format!("cannot start the event loop runtime: {e}"))
                })?;
            runtime.block_on(event_loop.run(shutdown))
        })
        .map_err(|e| NodeError::Server(format!("cannot start the event loop thread: {e}")))
}

/// The seed of the core's randomness (election timeouts): different on every start.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ u64::from(std::process::id())
}
