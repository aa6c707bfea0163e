//! One `node` process whose peers reach it through a proxy, and what the nemesis does to it.
//!
//! The harness's `Node` cannot be used here: it always passes `--peer-listen` at the address
//! the cluster lists for the node (the proxy's), and checks that the member list shows the node
//! there. A proxied node listens on a port of its own and advertises the proxy. So this type
//! starts the process itself, from a `NodeSpec` whose peer port is the proxy's, with the
//! listen address swapped for the real one.

use std::fs::OpenOptions;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dengine::proto::admin_client::AdminClient;
use dengine::proto::{StatusRequest, StatusResponse};
use tonic::transport::{Channel, Endpoint};

use super::common::{node_command, send_signal, LogFile, NodeSpec, DEADLINE, POLL};
use super::senders::Senders;

/// What the nemesis has done to a member, as far as it knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Running,
    /// SIGSTOP: the process exists, holds its ports, and does nothing.
    Paused,
    /// SIGKILL: gone until restarted.
    Killed,
}

pub struct Member {
    /// Peer port = the proxy's: what the cluster knows this node by.
    pub spec: NodeSpec,
    /// Where the process really listens for peers.
    pub listen_port: u16,
    child: Option<Child>,
    condition: Condition,
    /// How many times the process was started; clients read it around each request to tell
    /// answers from different lifetimes apart.
    lifetime: Arc<AtomicU64>,
    admin: AdminClient<Channel>,
    /// Told which process runs this node, so that proxies can tell its connections apart.
    senders: Senders,
}

/// A lazy channel to a loopback port: a call to a stopped node fails, and the channel
/// reconnects by itself once the node is back.
pub fn channel(port: u16, timeout: Duration) -> Channel {
    Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("a loopback URI is valid")
        .connect_timeout(Duration::from_secs(1))
        .timeout(timeout)
        .tcp_nodelay(true)
        .connect_lazy()
}

impl Member {
    pub fn new(spec: NodeSpec, listen_port: u16, senders: Senders) -> Self {
        let admin = AdminClient::new(channel(spec.client_port, Duration::from_secs(2)));
        Self {
            spec,
            listen_port,
            child: None,
            condition: Condition::Killed,
            lifetime: Arc::new(AtomicU64::new(0)),
            admin,
            senders,
        }
    }

    pub fn id(&self) -> u64 {
        self.spec.id
    }

    pub fn condition(&self) -> Condition {
        self.condition
    }

    pub fn lifetime(&self) -> Arc<AtomicU64> {
        self.lifetime.clone()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The harness's flags for the spec, listening on the real port and advertising the proxy.
    pub fn args(&self) -> Vec<String> {
        let mut args = self.spec.args();
        let listen = args
            .iter()
            .position(|a| a == "--peer-listen")
            .expect("the harness passes --peer-listen");
        args[listen + 1] = format!("127.0.0.1:{}", self.listen_port);
        args.extend(["--advertise-peer".into(), self.spec.peer_endpoint()]);
        args
    }

    /// An admin client for this node's client port (2 s per request).
    pub fn admin(&self) -> AdminClient<Channel> {
        self.admin.clone()
    }

    pub async fn status(&self) -> Result<StatusResponse, tonic::Status> {
        self.admin
            .clone()
            .status(StatusRequest {})
            .await
            .map(|r| r.into_inner())
    }

    /// Starts the process and returns once it answers as itself. Retries when a port was
    /// taken for a moment (another process's outgoing connection may borrow it while the node
    /// is down); any other early exit fails the test with the node's output.
    pub async fn start(&mut self) {
        if let Err((status, output)) = self.start_with_failpoints(None).await {
            panic!(
                "node {} exited at start ({status}) with {:?}:\n{output}",
                self.id(),
                self.args()
            );
        }
    }

    /// As [`Member::start`], with `FAILPOINTS` set for this run of the process; an exit at
    /// start (a failpoint that crashes it) is returned with the node's output of this run.
    pub async fn start_with_failpoints(
        &mut self,
        failpoints: Option<&str>,
    ) -> Result<(), (ExitStatus, String)> {
        assert!(
            self.child.is_none(),
            "node {} is already running",
            self.id()
        );
        const ATTEMPTS: usize = 5;
        let mut attempt = 1;
        loop {
            let offset = self.log_len();
            self.spawn(attempt, failpoints);
            match self.wait_serving().await {
                Ok(()) => return Ok(()),
                Err(status) => {
                    let output = self.log_since(offset);
                    if output.contains("cannot listen on") && attempt < ATTEMPTS {
                        attempt += 1;
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                    return Err((status, output));
                }
            }
        }
    }

    /// How the process ended, if it did by itself (a failing disk, a crashing failpoint);
    /// the member then counts as killed.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        self.condition = Condition::Killed;
        self.announce(&format!("exited by itself: {status}"));
        Some(status)
    }

    /// Waits (up to `limit`) for the process to end by itself.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }

    /// Deletes the data directory of a member that is not running: its disk is lost.
    pub fn lose_data(&mut self) {
        assert!(self.child.is_none(), "node {} is running", self.id());
        let _ = std::fs::remove_dir_all(&self.spec.data_dir);
        self.announce("lost its data directory");
    }

    /// Steps this running node's wall clock to `offset_seconds` from the real one, as NTP
    /// stepping the machine's clock would (a test build's debug endpoint); its monotonic
    /// clock is not touched.
    pub async fn step_wall_clock(&self, offset_seconds: i64) {
        let body = (offset_seconds * 1_000).to_string();
        match super::common::http(
            self.metrics_address(),
            "PUT",
            "/debug/wall-clock-step",
            &body,
        )
        .await
        {
            Ok((200, _)) => self.announce(&format!("wall clock stepped to {offset_seconds:+} s")),
            other => panic!("node {}: stepping its wall clock: {other:?}", self.id()),
        }
    }

    fn spawn(&mut self, attempt: usize, failpoints: Option<&str>) {
        self.note(&format!(
            "===== faults: starting node {} (attempt {attempt}): {:?}",
            self.id(),
            self.args()
        ));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log_path)
            .expect("open the node's log file");
        let stderr = log.try_clone().expect("clone the log file handle");
        let mut command = node_command();
        command.args(self.args());
        if let Some(failpoints) = failpoints {
            command.env("FAILPOINTS", failpoints);
        }
        let child = command
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .expect("spawn the node binary");
        self.senders.started(child.id(), self.id());
        self.child = Some(child);
        self.condition = Condition::Running;
        self.lifetime.fetch_add(1, Ordering::SeqCst);
    }

    async fn wait_serving(&mut self) -> Result<(), ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    self.condition = Condition::Killed;
                    return Err(status);
                }
            }
            if self.status().await.is_ok_and(|s| s.member_id == self.id()) {
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

    /// `kill -9`.
    pub fn kill(&mut self) {
        let mut child = self
            .child
            .take()
            .unwrap_or_else(|| panic!("node {} is not running", self.id()));
        let _ = child.kill();
        let _ = child.wait();
        self.condition = Condition::Killed;
        self.announce("killed with SIGKILL");
    }

    /// SIGSTOP: the process freezes mid-whatever, sockets open.
    pub fn pause(&mut self) {
        self.signal("STOP");
        self.condition = Condition::Paused;
        self.announce("paused (SIGSTOP)");
    }

    /// SIGCONT.
    pub fn resume(&mut self) {
        self.signal("CONT");
        self.condition = Condition::Running;
        self.announce("resumed (SIGCONT)");
    }

    fn signal(&self, name: &str) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("node {} is not running", self.id()));
        send_signal(pid, name);
    }

    fn log(&self) -> LogFile<'_> {
        LogFile(&self.spec.log_path)
    }

    /// Notes what a fault did to this node, as `===== faults: node N <what>`.
    fn announce(&self, what: &str) {
        self.note(&format!("===== faults: node {} {what}", self.id()));
    }

    pub fn note(&self, line: &str) {
        self.log().note(line);
    }

    fn log_len(&self) -> u64 {
        self.log().len()
    }

    fn log_since(&self, offset: u64) -> String {
        self.log().since(offset)
    }

    /// Where this run of the node serves probes, metrics and (test builds) failpoints.
    pub fn metrics_address(&self) -> std::net::SocketAddr {
        super::common::metrics_address(&self.log_since(0))
            .unwrap_or_else(|| panic!("node {} logged no metrics address", self.id()))
    }

    /// Sets failpoint `name` of this running node to `action` (`off` to disable it).
    pub async fn failpoint(&self, name: &str, action: &str) {
        let path = format!("/debug/failpoints/{name}");
        match super::common::http(self.metrics_address(), "PUT", &path, action).await {
            Ok((200, _)) => self.note(&format!("===== faults: failpoint {name}={action}")),
            other => panic!(
                "node {}: setting failpoint {name}={action}: {other:?}",
                self.id()
            ),
        }
    }

    /// The value of metric `name` on this node now.
    pub async fn metric(&self, name: &str) -> Result<f64, String> {
        let (_, body) = super::common::http(self.metrics_address(), "GET", "/metrics", "").await?;
        super::common::metric_value(&body, name).ok_or_else(|| format!("no metric {name}"))
    }

    /// The last `lines` lines of everything the node has written, over all its runs.
    pub fn log_tail(&self, lines: usize) -> String {
        self.log().tail(lines)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
