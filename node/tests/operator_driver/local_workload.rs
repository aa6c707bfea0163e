//! The operator's [`Workload`] played by `node` processes on this machine, as the Kubernetes
//! workload plays it with pods:
//!
//! - pod `k` is a node process with id `k + 1`, on loopback ports of its own that it keeps
//!   across restarts, with its data directory (its "volume") in the test's temporary directory;
//! - the StatefulSet's replicas say which pods exist: `set_replicas` starts the missing
//!   ordinals and stops those beyond (all at once: the operator's StatefulSet uses the
//!   `Parallel` pod management policy), deleting their volumes as `whenScaled: Delete` does;
//! - every pod is started as the operator's StatefulSet starts it: with the founding member
//!   list `1=<pod 0's peer address>`, and with `--join` once the founding record is written
//!   (the ConfigMap's `join` key), so only pod 0 can found, and only before the record;
//! - a volume's claim mark (an annotation on the PersistentVolumeClaim in Kubernetes) is a
//!   file next to its data directory, not inside it;
//! - the template revision is a string: `apply_objects` gives the StatefulSet the revision the
//!   test asks for, and `delete_pod` stops the process with SIGTERM and starts it again at
//!   once from that revision, as an `OnDelete` StatefulSet recreates a deleted pod;
//! - readiness is the node's own `/readyz` on its metrics listener, asked at every
//!   observation; a process that exits unasked is started again (a kubelet's restart policy)
//!   and the exit is recorded, for the test to fail on.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use dengine::proto::admin_client::AdminClient;
use dengine::proto::kv_client::KvClient;
use dengine_operator::driver::{Workload, WorkloadView};
use dengine_operator::observed::{
    NodeId, ObjectsState, Ordinal, PodPhase, PodState, StatefulSetState, Volume,
};
use dengine_operator::Error;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Mutex;
use tonic::transport::{Channel, Endpoint};

use super::common::{free_ports, node_command, send_signal, ClusterClients, POLL};

/// The admin token every node is started with, and the operator calls with.
pub const ADMIN_TOKEN: &str = "operator-driver-test-token";

/// Raft ticks of 50 ms (elections after 0.5-1 s): slower than the harness's 20 ms, so that a
/// busy machine does not stall heartbeats into elections that would move leadership behind
/// the operator's back and blur what the test checks about who restarts last.
const TICK_MS: &str = "50";

/// How long a deleted pod's process may take to stop after SIGTERM before it is killed. The
/// operator's StatefulSet leaves Kubernetes' default of 30 s; this is shorter to keep the test
/// short, and still far longer than a node needs to stop.
const GRACE_PERIOD: Duration = Duration::from_secs(10);

/// Where pod `ordinal` lives, for the whole test: ports, volume, claim mark and log.
struct Slot {
    ordinal: Ordinal,
    client_port: u16,
    peer_port: u16,
    metrics_port: u16,
    data_dir: PathBuf,
    claim_mark: PathBuf,
    log_path: PathBuf,
}

impl Slot {
    fn node_id(&self) -> NodeId {
        NodeId::of_ordinal(self.ordinal)
    }

    fn peer_address(&self) -> String {
        format!("127.0.0.1:{}", self.peer_port)
    }

    fn channel(&self) -> Channel {
        Endpoint::from_shared(format!("http://127.0.0.1:{}", self.client_port))
            .expect("a loopback URI is valid")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .connect_lazy()
    }

    fn note(&self, line: &str) {
        if let Ok(mut log) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
        {
            let _ = writeln!(log, "{line}");
        }
    }

    fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read(&self.log_path).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// A pod that exists: its process, and what the operator sees of it.
struct Pod {
    child: Child,
    revision: String,
    created: Instant,
    last_ready: Option<Instant>,
}

struct State {
    /// `apply_objects` was called: the owned objects (and the StatefulSet) exist.
    applied: bool,
    /// The template revision the spec asks for; the StatefulSet has it once applied.
    wanted_revision: String,
    /// The StatefulSet's `updateRevision`.
    update_revision: String,
    /// The ConfigMap's founding record.
    founded: bool,
    /// The StatefulSet's `spec.replicas`.
    replicas: u32,
    pods: BTreeMap<Ordinal, Pod>,
    /// Processes that exited without being asked to, with their output.
    unexpected_exits: Vec<String>,
}

pub struct LocalWorkload {
    dir: Option<TempDir>,
    token_file: PathBuf,
    config_file: PathBuf,
    slots: Vec<Slot>,
    state: Mutex<State>,
    /// Pods whose process had to be killed after the grace period, in order.
    sigkilled: std::sync::Mutex<Vec<Ordinal>>,
}

impl LocalWorkload {
    /// Room for `pods` pods, none existing, no objects applied; template revision `revision`.
    pub fn new(pods: u32, revision: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("operator-driver-")
            .tempdir()
            .expect("create a temporary directory");
        let token_file = dir.path().join("admin-token");
        std::fs::write(&token_file, ADMIN_TOKEN).expect("write the admin token file");
        // Snapshots every 100 entries with 10 kept behind: a learner, or a pod restarted while
        // the writer runs, catches up from a snapshot rather than from the log, as in a
        // cluster that has been running for a while.
        let config_file = dir.path().join("node.toml");
        std::fs::write(
            &config_file,
            "snapshot_every = 100\nsnapshot_keep_entries = 10\n",
        )
        .expect("write the node config file");
        let slots = (0..pods)
            .map(|ordinal| {
                let ports = free_ports(3);
                Slot {
                    ordinal,
                    client_port: ports[0],
                    peer_port: ports[1],
                    metrics_port: ports[2],
                    data_dir: dir.path().join(format!("volume-{ordinal}")),
                    claim_mark: dir.path().join(format!("claim-{ordinal}")),
                    log_path: dir.path().join(format!("pod-{ordinal}.log")),
                }
            })
            .collect();
        LocalWorkload {
            dir: Some(dir),
            token_file,
            config_file,
            slots,
            state: Mutex::new(State {
                applied: false,
                wanted_revision: revision.to_string(),
                update_revision: String::new(),
                founded: false,
                replicas: 0,
                pods: BTreeMap::new(),
                unexpected_exits: Vec::new(),
            }),
            sigkilled: std::sync::Mutex::default(),
        }
    }

    /// A new pod template, as a changed spec (a new version) would make: the objects are
    /// outdated until the operator applies them, and pods restart only when it deletes them.
    pub async fn set_template_revision(&self, revision: &str) {
        self.state.lock().await.wanted_revision = revision.to_string();
    }

    /// Clients of every pod's node, whether it runs or not, for a writer that finds the leader.
    pub fn clients(&self) -> ClusterClients {
        ClusterClients::new(
            self.slots
                .iter()
                .map(|s| {
                    let channel = s.channel();
                    (
                        s.node_id().0,
                        KvClient::new(channel.clone()),
                        AdminClient::new(channel),
                    )
                })
                .collect(),
        )
    }

    pub fn kv(&self, ordinal: Ordinal) -> KvClient<Channel> {
        KvClient::new(self.slot(ordinal).channel())
    }

    /// Pods whose process ignored SIGTERM for the whole grace period and was killed.
    pub fn sigkilled(&self) -> Vec<Ordinal> {
        self.sigkilled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn unexpected_exits(&self) -> Vec<String> {
        self.state.lock().await.unexpected_exits.clone()
    }

    /// The last lines of every pod's log (all its runs), for a failing test.
    pub fn log_tails(&self, lines: usize) -> String {
        self.slots
            .iter()
            .map(|s| {
                format!(
                    "\n---------- pod {} (node {}) log {}, last {lines} lines ----------\n{}",
                    s.ordinal,
                    s.node_id(),
                    s.log_path.display(),
                    s.log_tail(lines)
                )
            })
            .collect()
    }

    /// Writes `contents` into the test's directory, which a failing test keeps.
    pub fn keep_file(&self, name: &str, contents: &str) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::write(dir.path().join(name), contents);
        }
    }

    fn slot(&self, ordinal: Ordinal) -> &Slot {
        self.slots.get(ordinal as usize).unwrap_or_else(|| {
            panic!(
                "the operator asked for pod {ordinal}; this test has room for {} pods",
                self.slots.len()
            )
        })
    }

    /// Starts pod `ordinal`'s node as the StatefulSet's pod template would.
    fn spawn(&self, ordinal: Ordinal, founded: bool, revision: &str) -> Pod {
        let slot = self.slot(ordinal);
        let founder = self.slot(0).peer_address();
        let mut args: Vec<String> = vec![
            "--id".into(),
            slot.node_id().to_string(),
            "--data-dir".into(),
            slot.data_dir.display().to_string(),
            "--client-listen".into(),
            format!("127.0.0.1:{}", slot.client_port),
            "--peer-listen".into(),
            slot.peer_address(),
            "--advertise-peer".into(),
            slot.peer_address(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", slot.metrics_port),
            "--initial-cluster".into(),
            format!("1={founder}"),
            "--cluster-token".into(),
            "operator-driver".into(),
            "--admin-token-file".into(),
            self.token_file.display().to_string(),
            "--tick-ms".into(),
            TICK_MS.into(),
            "--config".into(),
            self.config_file.display().to_string(),
        ];
        if founded {
            args.push("--join".into());
        }
        slot.note(&format!(
            "===== operator_driver: starting pod {ordinal} at revision {revision}: {args:?}"
        ));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&slot.log_path)
            .expect("open the pod's log file");
        let stderr = log.try_clone().expect("clone the log file handle");
        let mut command = node_command();
        command.args(&args);
        let child = command
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .expect("spawn the node binary");
        Pod {
            child,
            revision: revision.to_string(),
            created: Instant::now(),
            last_ready: None,
        }
    }

    /// SIGTERM, as a pod deletion sends, then waits for the process to exit; SIGKILL once
    /// [`GRACE_PERIOD`] is over.
    async fn terminate(&self, ordinal: Ordinal, mut pod: Pod) {
        let slot = self.slot(ordinal);
        slot.note(&format!(
            "===== operator_driver: SIGTERM to pod {ordinal} (pid {})",
            pod.child.id()
        ));
        send_signal(pod.child.id(), "TERM");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = pod.child.try_wait() {
                slot.note(&format!(
                    "===== operator_driver: pod {ordinal} exited: {status}"
                ));
                return;
            }
            if start.elapsed() > GRACE_PERIOD {
                slot.note(&format!(
                    "===== operator_driver: pod {ordinal} still running {GRACE_PERIOD:?} after SIGTERM; SIGKILL"
                ));
                self.sigkilled
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(ordinal);
                let _ = pod.child.kill();
                let _ = pod.child.wait();
                return;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts the processes that exited unasked again, recording each exit.
    fn restart_exited(&self, state: &mut State) {
        let exited: Vec<(Ordinal, String)> = state
            .pods
            .iter_mut()
            .filter_map(|(&k, pod)| {
                let status = pod.child.try_wait().ok()??;
                Some((k, status.to_string()))
            })
            .collect();
        for (ordinal, status) in exited {
            let slot = self.slot(ordinal);
            slot.note(&format!(
                "===== operator_driver: pod {ordinal} exited unasked ({status}); restarting it"
            ));
            state.unexpected_exits.push(format!(
                "pod {ordinal} exited unasked ({status}):\n{}",
                slot.log_tail(30)
            ));
            let revision = state.pods[&ordinal].revision.clone();
            let pod = self.spawn(ordinal, state.founded, &revision);
            state.pods.insert(ordinal, pod);
        }
    }
}

/// Asks a node's `/readyz`, as the kubelet's readiness probe does (one second to answer).
async fn probe_ready(metrics_port: u16) -> bool {
    let attempt = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port))
            .await
            .ok()?;
        stream
            .write_all(b"GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(response.starts_with(b"HTTP/1.1 200"))
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

impl Workload for LocalWorkload {
    async fn observe(&self) -> Result<WorkloadView, Error> {
        let mut state = self.state.lock().await;
        self.restart_exited(&mut state);
        let mut view = WorkloadView {
            objects: match (
                state.applied,
                state.wanted_revision == state.update_revision,
            ) {
                (false, _) => ObjectsState::Missing,
                (true, false) => ObjectsState::Outdated,
                (true, true) => ObjectsState::Current,
            },
            founded: state.founded,
            stateful_set: None,
            pods: Vec::new(),
            admin_endpoints: BTreeMap::new(),
            versions: BTreeMap::new(),
            // Local processes have no certificates the operator issued.
            certificate_serials: BTreeMap::new(),
        };
        for (&ordinal, pod) in state.pods.iter_mut() {
            let slot = self.slot(ordinal);
            let ready = probe_ready(slot.metrics_port).await;
            let now = Instant::now();
            if ready {
                pod.last_ready = Some(now);
            }
            let unready_since = pod.last_ready.unwrap_or(pod.created);
            let marked = std::fs::read_to_string(&slot.claim_mark)
                .is_ok_and(|mark| mark == slot.node_id().to_string());
            view.pods.push(PodState {
                ordinal,
                revision: pod.revision.clone(),
                phase: PodPhase::Running,
                ready,
                unready_for: if ready {
                    Duration::ZERO
                } else {
                    now.duration_since(unready_since)
                },
                deleting: false,
                volume: if marked {
                    Volume::Claimed
                } else {
                    Volume::Fresh
                },
            });
            view.admin_endpoints
                .insert(slot.node_id(), slot.peer_address());
            view.versions.insert(ordinal, pod.revision.clone());
        }
        if state.applied {
            view.stateful_set = Some(StatefulSetState {
                replicas: state.replicas,
                ready_replicas: view.pods.iter().filter(|p| p.ready).count() as u32,
                update_revision: state.update_revision.clone(),
            });
        }
        Ok(view)
    }

    async fn apply_objects(&self, _seen: &WorkloadView) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        state.applied = true;
        state.update_revision = state.wanted_revision.clone();
        Ok(())
    }

    async fn set_replicas(&self, replicas: u32) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        state.replicas = replicas;
        for ordinal in 0..replicas {
            if !state.pods.contains_key(&ordinal) {
                let revision = state.update_revision.clone();
                let pod = self.spawn(ordinal, state.founded, &revision);
                state.pods.insert(ordinal, pod);
            }
        }
        let beyond: Vec<Ordinal> = state
            .pods
            .keys()
            .copied()
            .filter(|&k| k >= replicas)
            .collect();
        for ordinal in beyond {
            let pod = state.pods.remove(&ordinal).expect("listed just now");
            self.terminate(ordinal, pod).await;
            // The example spec does not retain volumes on scale-down (`whenScaled: Delete`):
            // the claim goes, with its mark.
            let slot = self.slot(ordinal);
            let _ = std::fs::remove_dir_all(&slot.data_dir);
            let _ = std::fs::remove_file(&slot.claim_mark);
            slot.note(&format!(
                "===== operator_driver: pod {ordinal} scaled away; its volume deleted"
            ));
        }
        Ok(())
    }

    async fn claim_volume(&self, ordinal: Ordinal) -> Result<(), Error> {
        let slot = self.slot(ordinal);
        std::fs::write(&slot.claim_mark, slot.node_id().to_string())
            .map_err(|e| Error::Invalid(format!("writing the claim mark of pod {ordinal}: {e}")))
    }

    async fn record_founded(&self) -> Result<(), Error> {
        self.state.lock().await.founded = true;
        Ok(())
    }

    async fn delete_pod(&self, ordinal: Ordinal) -> Result<(), Error> {
        let mut state = self.state.lock().await;
        let Some(pod) = state.pods.remove(&ordinal) else {
            return Ok(());
        };
        self.terminate(ordinal, pod).await;
        if ordinal < state.replicas {
            let revision = state.update_revision.clone();
            let pod = self.spawn(ordinal, state.founded, &revision);
            state.pods.insert(ordinal, pod);
        }
        Ok(())
    }

    fn peer_address(&self, ordinal: Ordinal) -> String {
        self.slot(ordinal).peer_address()
    }
}

impl Drop for LocalWorkload {
    fn drop(&mut self) {
        let state = self.state.get_mut();
        for pod in state.pods.values_mut() {
            let _ = pod.child.kill();
            let _ = pod.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(60));
            if let Some(dir) = self.dir.take() {
                eprintln!("pod logs and data kept in {}", dir.keep().display());
            }
        }
    }
}
