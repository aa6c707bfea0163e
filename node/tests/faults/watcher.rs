//! A watcher per node on the workload's whole prefix, resuming after every disconnect from
//! the revision after the last one it saw. Watchers on even node ids go through etcd's Watch
//! service with `prev_kv`, the others through `dengine.v1`: each etcd event's previous
//! key-value must be what that watcher last saw of the key (its last put, or nothing after a
//! delete), which says the node paired every event with the version before it.
//!
//! Every write of the run is under the prefix and every write takes exactly one revision, so
//! the events one watcher receives, over all its reconnections, must carry consecutive
//! revisions from 1 on: no gap, no duplicate, nothing out of order. A resume refused with
//! OUT_OF_RANGE (the history asked for was compacted) is allowed, and ends that watcher. So
//! does the removal of its node from the cluster (`Watchers::retire`).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use dengine::proto::admin_client::AdminClient;
use dengine::proto::event::EventType;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{StatusRequest, WatchRequest};
use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::mvccpb;
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
    /// Whether it watched through etcd's Watch service.
    pub etcd: bool,
    /// etcd events whose `prev_kv` was checked against what this watcher saw before.
    pub prev_kvs_checked: usize,
}

/// One event as either API delivers it.
struct Delivered {
    revision: i64,
    key: Bytes,
    /// `None` for a delete.
    value: Option<Bytes>,
    /// etcd only: the key before the event, `(mod revision, value)`; `None` when it did not
    /// exist.
    prev: Option<Option<(i64, Bytes)>>,
}

/// A watch stream of either API, opened from a revision.
enum Stream {
    Native(tonic::Streaming<dengine::proto::WatchResponse>),
    Etcd {
        // Kept open: closing it ends the watch.
        _requests: tokio::sync::mpsc::Sender<pb::WatchRequest>,
        answers: tonic::Streaming<pb::WatchResponse>,
    },
}

/// Why a stream could not be opened or went on.
enum Broken {
    /// The history asked for is compacted: the watcher ends.
    Compacted(String),
    /// Anything else: reconnect.
    Retry,
}

impl Stream {
    async fn open(etcd: bool, channel: &Channel, from: i64) -> Result<Self, Broken> {
        if !etcd {
            let request = WatchRequest {
                key: Bytes::new(),
                prefix: true,
                start_revision: from,
            };
            return match KvClient::new(channel.clone()).watch(request).await {
                Ok(response) => Ok(Stream::Native(response.into_inner())),
                Err(status) if status.code() == Code::OutOfRange => {
                    Err(Broken::Compacted(status.message().to_string()))
                }
                Err(_) => Err(Broken::Retry),
            };
        }
        let (requests, outgoing) = tokio::sync::mpsc::channel(1);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: vec![0],
                    range_end: vec![0],
                    start_revision: from,
                    prev_kv: true,
                    ..Default::default()
                },
            )),
        };
        requests.send(create).await.map_err(|_| Broken::Retry)?;
        let answers = pb::watch_client::WatchClient::new(channel.clone())
            .watch(tokio_stream::wrappers::ReceiverStream::new(outgoing))
            .await
            .map_err(|_| Broken::Retry)?
            .into_inner();
        Ok(Stream::Etcd {
            _requests: requests,
            answers,
        })
    }

    /// The next events (possibly none: a creation or progress answer).
    async fn next(&mut self) -> Result<Vec<Delivered>, Broken> {
        match self {
            Stream::Native(answers) => {
                let Ok(Some(response)) = answers.message().await else {
                    return Err(Broken::Retry);
                };
                Ok(response
                    .events
                    .into_iter()
                    .map(|event| {
                        let deleted = event.event_type() == EventType::Delete;
                        let kv = event.kv.unwrap_or_default();
                        Delivered {
                            revision: kv.mod_revision,
                            key: kv.key,
                            value: (!deleted).then_some(kv.value),
                            prev: None,
                        }
                    })
                    .collect())
            }
            Stream::Etcd { answers, .. } => {
                let Ok(Some(response)) = answers.message().await else {
                    return Err(Broken::Retry);
                };
                if response.canceled {
                    return Err(match response.compact_revision {
                        0 => Broken::Retry,
                        at => Broken::Compacted(format!(
                            "canceled: compacted at revision {at} ({})",
                            response.cancel_reason
                        )),
                    });
                }
                Ok(response
                    .events
                    .into_iter()
                    .map(|event| {
                        let deleted = event.r#type == mvccpb::event::EventType::Delete as i32;
                        let kv = event.kv.unwrap_or_default();
                        Delivered {
                            revision: kv.mod_revision,
                            key: Bytes::from(kv.key),
                            value: (!deleted).then(|| Bytes::from(kv.value)),
                            prev: Some(
                                event
                                    .prev_kv
                                    .map(|p| (p.mod_revision, Bytes::from(p.value))),
                            ),
                        }
                    })
                    .collect())
            }
        }
    }
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
    let watch_channel = channel(client_port, Duration::from_secs(3_600));
    let mut admin = AdminClient::new(channel(client_port, Duration::from_secs(1)));
    let mut log = WatchLog {
        node,
        from,
        etcd: node % 2 == 0,
        ..WatchLog::default()
    };
    // What this watcher last saw of each key: its last put, or `None` after a delete.
    let mut last_seen: HashMap<Bytes, Option<(i64, Bytes)>> = HashMap::new();
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
        let opened = tokio::time::timeout(
            Duration::from_secs(2),
            Stream::open(log.etcd, &watch_channel, next),
        )
        .await;
        let mut stream = match opened {
            Ok(Ok(stream)) => stream,
            Ok(Err(Broken::Compacted(why))) => {
                log.ended = Some(format!("resume from {next} refused: {why}"));
                return log;
            }
            Ok(Err(Broken::Retry)) | Err(_) => {
                log.reconnects += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        loop {
            if done(next, &mut log) {
                return log;
            }
            let delivered = tokio::select! {
                delivered = stream.next() => delivered,
                // Wake up now and then to notice the end of the run.
                _ = tokio::time::sleep(Duration::from_millis(200)) => continue,
            };
            let events = match delivered {
                Ok(events) => events,
                Err(Broken::Compacted(why)) => {
                    log.ended = Some(format!("resume from {next} refused: {why}"));
                    return log;
                }
                Err(Broken::Retry) => {
                    log.reconnects += 1;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
            };
            for event in events {
                let seen = Seen {
                    revision: event.revision,
                    key: String::from_utf8_lossy(&event.key).into_owned(),
                    value: event.value.as_deref().map(parse_value),
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
                if let Some(prev) = &event.prev {
                    check_prev_kv(node, &mut log, &last_seen, &event.key, seen.revision, prev);
                }
                last_seen.insert(
                    event.key.clone(),
                    event.value.clone().map(|v| (seen.revision, v)),
                );
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

/// An etcd event's `prev_kv` against what the watcher last saw of the key: its last put
/// (revision and value), or nothing after a delete. A key the watcher has not seen since it
/// started (it started after revision 1) cannot be judged.
fn check_prev_kv(
    node: u64,
    log: &mut WatchLog,
    last_seen: &HashMap<Bytes, Option<(i64, Bytes)>>,
    key: &Bytes,
    revision: i64,
    prev: &Option<(i64, Bytes)>,
) {
    let expected = match last_seen.get(key) {
        Some(last) => last,
        None if log.from == 1 => &None,
        None => return,
    };
    log.prev_kvs_checked += 1;
    if prev != expected {
        log.anomalies.push(format!(
            "node {node}: the event of {} at revision {revision} says the key was {:?} before, \
             but this watcher last saw it as {:?}",
            String::from_utf8_lossy(key),
            prev.as_ref().map(|(r, v)| (r, String::from_utf8_lossy(v))),
            expected
                .as_ref()
                .map(|(r, v)| (r, String::from_utf8_lossy(v))),
        ));
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
