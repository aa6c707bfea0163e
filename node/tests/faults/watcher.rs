//! A watcher per node on the workload's whole prefix, resuming after every disconnect from
//! the revision after the last one it saw.
//!
//! Every write of the run is under the prefix and every write takes exactly one revision, so
//! the events one watcher receives, over all its reconnections, must carry consecutive
//! revisions from 1 on: no gap, no duplicate, nothing out of order. A resume refused with
//! OUT_OF_RANGE (the history asked for was compacted) is allowed, and ends that watcher. So
//! does the removal of its node from the cluster (`Watchers::retire`).

use std::time::Duration;

use bytes::Bytes;
use dengine::proto::admin_client::AdminClient;
use dengine::proto::event::EventType;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{StatusRequest, WatchRequest};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::Code;

use super::history::{parse_value, Clock, Millis, Nanos, Value};
use super::leases::LEASE_PREFIX;
use super::member::channel;
use super::workload::PREFIX;

/// One event as a watcher saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub revision: i64,
    pub key: String,
    /// `None` for a delete.
    pub value: Option<Value>,
    pub at: Nanos,
}

#[derive(Debug, Default)]
pub struct WatchLog {
    pub node: u64,
    pub events: Vec<Seen>,
    /// Broken promises: gaps, duplicates, reordering.
    pub anomalies: Vec<String>,
    pub reconnects: usize,
    /// The revision it started from: 1 for a watcher there from the start, later for one on
    /// a node that joined during the run.
    pub from: i64,
    /// Why the watcher ended early, if it did (a compacted resume).
    pub ended: Option<String>,
    /// Deletions of lease sessions' keys (`faults/leases.rs`): the key, and when it was seen.
    pub session_deletes: Vec<(String, Nanos)>,
}

/// The run's watchers, one per node of the cluster as it is now, and those that ended with
/// the removal of their node.
pub struct Watchers {
    clock: Clock,
    finish: watch::Receiver<Option<i64>>,
    grace: Duration,
    running: Vec<(u64, watch::Sender<bool>, JoinHandle<WatchLog>)>,
}

impl Watchers {
    pub fn new(clock: Clock, finish: watch::Receiver<Option<i64>>, grace: Duration) -> Self {
        Self {
            clock,
            finish,
            grace,
            running: Vec::new(),
        }
    }

    /// Starts a watcher through the node `node` at `client_port`, from revision `from`.
    pub fn start(&mut self, node: u64, client_port: u16, from: i64) {
        let (retire, retired) = watch::channel(false);
        let task = tokio::spawn(run_until_retired(
            node,
            client_port,
            self.clock,
            self.finish.clone(),
            self.grace,
            retired,
            from,
        ));
        self.running.push((node, retire, task));
    }

    /// Ends the watcher on `node`, which left the cluster.
    pub fn retire(&mut self, node: u64) {
        for (id, retire, _) in &self.running {
            if *id == node {
                retire.send_replace(true);
            }
        }
    }

    /// Every watcher's log, once each has finished.
    pub async fn finish(self) -> Vec<WatchLog> {
        let mut logs = Vec::new();
        for (_, _retire, task) in self.running {
            logs.push(task.await.expect("a watcher task panicked"));
        }
        logs
    }
}

/// Watches through the node at `client_port` until `finish` names a revision and every event
/// up to it has arrived, or `grace` has passed since it named one.
pub async fn run(
    node: u64,
    client_port: u16,
    clock: Clock,
    finish: watch::Receiver<Option<i64>>,
    grace: Duration,
) -> WatchLog {
    let (_retire, retired) = watch::channel(false);
    run_until_retired(node, client_port, clock, finish, grace, retired, 1).await
}

/// As `run` from revision `from`, and ends early once `retired` turns true.
pub async fn run_until_retired(
    node: u64,
    client_port: u16,
    clock: Clock,
    finish: watch::Receiver<Option<i64>>,
    grace: Duration,
    retired: watch::Receiver<bool>,
    from: i64,
) -> WatchLog {
    // No request timeout on the channel: a watch is a stream that lives as long as it likes.
    let mut kv = KvClient::new(channel(client_port, Duration::from_secs(3_600)));
    let mut admin = AdminClient::new(channel(client_port, Duration::from_secs(1)));
    let mut log = WatchLog {
        node,
        from,
        ..WatchLog::default()
    };
    let mut next: i64 = from;
    let mut finish_by: Option<tokio::time::Instant> = None;
    // Whether to stop now: everything up to the final revision arrived, or time is up.
    let mut done = |next: i64, log: &mut WatchLog| {
        if *retired.borrow() {
            log.ended = Some(format!(
                "its node left the cluster, at revision {}",
                next - 1
            ));
            return true;
        }
        let Some(target) = *finish.borrow() else {
            return false;
        };
        if next > target {
            return true;
        }
        let deadline = *finish_by.get_or_insert_with(|| tokio::time::Instant::now() + grace);
        if tokio::time::Instant::now() < deadline {
            return false;
        }
        log.ended = Some(format!(
            "still at revision {} of {target} when the run ended",
            next - 1
        ));
        true
    };
    loop {
        if done(next, &mut log) {
            return log;
        }
        // Every key: revisions must follow one another without a gap. Events under PREFIX
        // are kept for the checks, and the deletions of lease sessions' keys for theirs (the
        // TTL writer's keys live beside them).
        let request = WatchRequest {
            key: Bytes::new(),
            prefix: true,
            start_revision: next,
        };
        let opened = tokio::time::timeout(Duration::from_secs(2), kv.watch(request)).await;
        let mut stream = match opened {
            Ok(Ok(response)) => response.into_inner(),
            Ok(Err(status)) if status.code() == Code::OutOfRange => {
                log.ended = Some(format!("resume from {next} refused: {}", status.message()));
                return log;
            }
            Ok(Err(_)) | Err(_) => {
                log.reconnects += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            if done(next, &mut log) {
                return log;
            }
            let message = tokio::select! {
                message = stream.message() => message,
                // Wake up now and then to notice the end of the run.
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            };
            let Ok(Some(response)) = message else {
                log.reconnects += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                break;
            };
            for event in response.events {
                let kv = event.kv.clone().unwrap_or_default();
                let seen = Seen {
                    revision: kv.mod_revision,
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    value: match event.event_type() {
                        EventType::Put => Some(parse_value(&kv.value)),
                        EventType::Delete => None,
                    },
                    at: clock.now(),
                };
                if seen.revision != next {
                    let status = node_status(&mut admin).await;
                    log.anomalies.push(format!(
                        "node {node}: expected revision {next} next, got {} ({} {:?}) after {} events, at {} ms",
                        seen.revision,
                        seen.key,
                        seen.value,
                        log.events.len(),
                        Millis(seen.at)
                    ) + &status);
                }
                next = next.max(seen.revision + 1);
                if seen.key.starts_with(PREFIX) {
                    log.events.push(seen);
                } else if seen.key.starts_with(LEASE_PREFIX) && seen.value.is_none() {
                    log.session_deletes.push((seen.key, seen.at));
                }
            }
        }
    }
}

/// The node's snapshot and applied index, to tell a gap that came with a snapshot install.
async fn node_status(admin: &mut AdminClient<Channel>) -> String {
    match admin.status(StatusRequest {}).await {
        Ok(status) => {
            let status = status.into_inner();
            format!(
                "; the node now reports snapshot index {}, applied index {}, revision {}",
                status.snapshot_index, status.applied_index, status.revision
            )
        }
        Err(e) => format!("; the node's status is unavailable: {}", e.code()),
    }
}
