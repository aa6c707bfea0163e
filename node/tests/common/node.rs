//! One `node` process: how it is started, stopped, crashed and restarted, and its clients.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use dengine::proto::admin_client::AdminClient;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{StatusRequest, StatusResponse};
use tonic::transport::{Channel, Endpoint};

use super::wait::{DEADLINE, POLL};

/// Everything a node is started with. Restarting reuses it unchanged; a test that starts the
/// same data directory with other settings clones and edits it.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    pub id: u64,
    pub client_port: u16,
    pub peer_port: u16,
    pub data_dir: PathBuf,
    /// Standard output and error of every run, appended.
    pub log_path: PathBuf,
    pub initial_cluster: Option<String>,
    pub cluster_token: Option<String>,
    pub config_file: Option<PathBuf>,
    /// Further flags, e.g. `--history-retention 5`.
    pub extra_args: Vec<String>,
}

/// How a node that was expected to refuse to start ended.
#[derive(Debug)]
pub struct NodeExit {
    pub status: ExitStatus,
    pub stderr: String,
}

impl NodeSpec {
    pub fn client_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn peer_endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.peer_port)
    }

    pub fn args(&self) -> Vec<String> {
        let mut args: Vec<String> = vec![
            "--id".into(),
            self.id.to_string(),
            "--data-dir".into(),
            self.data_dir.display().to_string(),
            "--client-listen".into(),
            self.client_endpoint(),
            "--peer-listen".into(),
            self.peer_endpoint(),
            // Probes and metrics on a free port: several nodes share this machine.
            "--metrics-listen".into(),
            "127.0.0.1:0".into(),
            // Elections in 200-400 ms instead of seconds: a test waits on them often.
            "--tick-ms".into(),
            "20".into(),
        ];
        if let Some(list) = &self.initial_cluster {
            args.extend(["--initial-cluster".into(), list.clone()]);
        }
        if let Some(token) = &self.cluster_token {
            args.extend(["--cluster-token".into(), token.clone()]);
        }
        if let Some(path) = &self.config_file {
            args.extend(["--config".into(), path.display().to_string()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    /// The command line, isolated from settings in the environment of whoever runs the tests.
    fn command(&self) -> Command {
        let mut command = node_command();
        command.args(self.args());
        command
    }

    /// Runs a node that is expected to stop by itself (a refused start), and returns how it
    /// ended. Panics if it is still running after [`DEADLINE`].
    pub async fn run_to_exit(&self) -> NodeExit {
        let mut command = tokio::process::Command::from(self.command());
        command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(DEADLINE, command.output())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "node {} with {:?} was expected to stop by itself, but kept running",
                    self.id,
                    self.args()
                )
            })
            .expect("run the node binary");
        NodeExit {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

/// Lazy channels: creating one never fails, a call to a stopped node fails with UNAVAILABLE,
/// and the channel reconnects by itself once the node is back.
fn channel(port: u16) -> Channel {
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a loopback URI is valid")
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5))
        .connect_lazy()
}

/// A node process (running or not) and gRPC clients for its client port.
pub struct Node {
    pub spec: NodeSpec,
    child: Option<Child>,
    kv: KvClient<Channel>,
    admin: AdminClient<Channel>,
    channel: Channel,
}

impl Node {
    pub fn new(spec: NodeSpec) -> Self {
        let channel = channel(spec.client_port);
        Self {
            spec,
            child: None,
            kv: KvClient::new(channel.clone()),
            admin: AdminClient::new(channel.clone()),
            channel,
        }
    }

    pub fn id(&self) -> u64 {
        self.spec.id
    }

    pub fn kv(&self) -> KvClient<Channel> {
        self.kv.clone()
    }

    /// A channel to this node's client port.
    pub fn etcd_channel(&self) -> Channel {
        self.channel.clone()
    }

    /// A client of etcd's v3 KV service on this node's client port.
    pub fn etcd_kv(&self) -> dengine_proto::etcd::etcdserverpb::kv_client::KvClient<Channel> {
        dengine_proto::etcd::etcdserverpb::kv_client::KvClient::new(self.channel.clone())
    }

    pub fn admin(&self) -> AdminClient<Channel> {
        self.admin.clone()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub async fn status(&self) -> Result<StatusResponse, tonic::Status> {
        self.admin()
            .status(StatusRequest {})
            .await
            .map(|r| r.into_inner())
    }

    /// Starts the process and returns once it answers Admin.Status. A node that exits instead
    /// fails the test with its output, except when one of its ports is taken (by a process
    /// that grabbed it while the node was down): that is retried for a while.
    pub async fn start(&mut self) {
        assert!(
            self.child.is_none(),
            "node {} is already running",
            self.id()
        );
        const ATTEMPTS: usize = 5;
        for attempt in 1..=ATTEMPTS {
            let offset = self.log_len();
            self.spawn(attempt);
            match self.wait_serving().await {
                Ok(()) => return,
                Err(status) => {
                    let output = self.log_since(offset);
                    if output.contains("cannot listen on") && attempt < ATTEMPTS {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    panic!(
                        "node {} exited at start ({status}) with {:?}:\n{output}",
                        self.id(),
                        self.spec.args()
                    );
                }
            }
        }
    }

    fn spawn(&mut self, attempt: usize) {
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log_path)
            .expect("open the node's log file");
        let _ = writeln!(
            log,
            "===== harness: starting node {} (attempt {attempt}): {:?}",
            self.id(),
            self.spec.args()
        );
        let stderr = log.try_clone().expect("clone the log file handle");
        let child = self
            .spec
            .command()
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .expect("spawn the node binary");
        self.child = Some(child);
    }

    /// Ok once the node answers, Err with its exit status if it stops first.
    async fn wait_serving(&mut self) -> Result<(), ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return Err(status);
            }
            if self.status().await.is_ok_and(|s| self.is_itself(&s)) {
                return Ok(());
            }
            assert!(
                start.elapsed() < DEADLINE,
                "node {} did not answer Admin.Status within {DEADLINE:?}",
                self.id()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Whether a status comes from this node rather than from a stranger on its port (another
    /// test's node, should the port have been taken while this one was down): it names this
    /// node's id, and lists that id, if at all, at this node's peer address. (A joining node
    /// lists no members until it is added; a removed one no longer lists itself.)
    fn is_itself(&self, status: &StatusResponse) -> bool {
        let peer = self.spec.peer_endpoint();
        status.member_id == self.spec.id
            && status
                .members
                .iter()
                .filter(|m| m.id == self.spec.id)
                .all(|m| m.peer_address == peer)
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait().expect("poll the node process") {
            Some(status) => {
                self.child = None;
                Some(status)
            }
            None => None,
        }
    }

    /// `kill -9`: the process gets no chance to flush or clean up.
    pub fn kill(&mut self) {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("node {} is not running", self.spec.id));
        let _ = child.kill();
        let _ = child.wait();
        self.note(&format!(
            "===== harness: node {} killed with SIGKILL",
            self.id()
        ));
    }

    /// SIGTERM, then waits for the process to exit; returns its exit status.
    pub async fn terminate(&mut self) -> ExitStatus {
        let pid = self
            .child
            .as_ref()
            .unwrap_or_else(|| panic!("node {} is not running", self.spec.id))
            .id();
        self.note(&format!(
            "===== harness: sending SIGTERM to node {}",
            self.id()
        ));
        send_signal(pid, "TERM");
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                return status;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "node {} did not exit within {DEADLINE:?} of SIGTERM",
                self.id()
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// This node's log file, over all its runs.
    pub fn log(&self) -> LogFile<'_> {
        LogFile(&self.spec.log_path)
    }

    fn note(&self, line: &str) {
        self.log().note(line);
    }

    fn log_len(&self) -> u64 {
        self.log().len()
    }

    fn log_since(&self, offset: u64) -> String {
        self.log().since(offset)
    }

    /// The last `lines` lines of everything the node has written, over all its runs.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log().tail(lines)
    }
}

/// A node's log file: what the node writes over all its runs, with the tests' own notes (a
/// fault injected, a restart) between its lines.
#[derive(Debug, Clone, Copy)]
pub struct LogFile<'a>(pub &'a std::path::Path);

impl LogFile<'_> {
    /// Appends a line of the test's own.
    pub fn note(&self, line: &str) {
        if let Ok(mut log) = OpenOptions::new().create(true).append(true).open(self.0) {
            let _ = writeln!(log, "{line}");
        }
    }

    /// Its length now: an offset to read what comes after.
    pub fn len(&self) -> u64 {
        std::fs::metadata(self.0).map_or(0, |m| m.len())
    }

    /// What was written after `offset`.
    pub fn since(&self, offset: u64) -> String {
        let log = std::fs::read(self.0).unwrap_or_default();
        let start = usize::try_from(offset).unwrap_or(0).min(log.len());
        String::from_utf8_lossy(&log[start..]).into_owned()
    }

    /// The last `lines` lines.
    pub fn tail(&self, lines: usize) -> String {
        let log = self.since(0);
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        super::ports::release(&[self.spec.client_port, self.spec.peer_port]);
    }
}

/// The `node` binary as a command, isolated from settings in the environment of whoever runs
/// the tests (`DENGINE_*`, `POD_NAME`), with no colour in its logs and no standard input.
pub fn node_command() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_node"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DENGINE_") {
            command.env_remove(name);
        }
    }
    command
        .env_remove("POD_NAME")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    command
}

/// `kill -<signal> <pid>`, failing the test if it cannot be sent.
pub fn send_signal(pid: u32, signal: &str) {
    let sent = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .expect("run kill");
    assert!(sent.success(), "kill -{signal} {pid} failed: {sent}");
}
