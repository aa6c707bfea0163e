//! A watcher per node on the workload's whole prefix, resuming after every disconnect from
//! the revision after the last one it saw.
//!
//! Every write of the run is under the prefix and every write takes exactly one revision, so
//! the events one watcher receives, over all its reconnections, must carry consecutive
//! revisions from 1 on: no gap, no duplicate, nothing out of order. A resume refused with
//! OUT_OF_RANGE (the history asked for was compacted) is allowed, and ends that watcher.

use std::time::Duration;

use bytes::Bytes;
use dengine::proto::admin_client::AdminClient;
use dengine::proto::event::EventType;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{StatusRequest, WatchRequest};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::Code;

use super::history::{parse_value, Clock, Millis, Nanos, Value};
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
    /// Why the watcher ended early, if it did (a compacted resume).
    pub ended: Option<String>,
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
    // No request timeout on the channel: a watch is a stream that lives as long as it likes.
    let mut kv = KvClient::new(channel(client_port, Duration::from_secs(3_600)));
    let mut admin = AdminClient::new(channel(client_port, Duration::from_secs(1)));
    let mut log = WatchLog {
        node,
        ..WatchLog::default()
    };
    let mut next: i64 = 1;
    let mut finish_by: Option<tokio::time::Instant> = None;
    // Whether to stop now: everything up to the final revision arrived, or time is up.
    let mut done = |next: i64, log: &mut WatchLog| {
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
        let request = WatchRequest {
            key: Bytes::from_static(PREFIX.as_bytes()),
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
                log.events.push(seen);
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
