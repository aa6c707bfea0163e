//! A client task that writes unique keys for as long as the test runs, through whichever node
//! leads, and records every write's outcome: acknowledged (it must survive everything that
//! follows) or unknown (it gave up retrying; the write may or may not have taken effect).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use super::wait_until;
use crate::common::{ClusterClients, Keys};

/// What the writer did.
#[derive(Debug, Default, Clone)]
pub struct WriteLog {
    /// Every acknowledged write: key and value. Each key is written once, with a value that
    /// names it.
    pub acknowledged: Keys,
    /// Writes whose outcome is unknown: retried until the client gave up.
    pub unknown: BTreeSet<String>,
    /// The highest revision acknowledged.
    pub max_revision: i64,
    /// Why each unknown write was given up, in order.
    pub errors: Vec<String>,
}

pub struct Writer {
    log: Arc<Mutex<WriteLog>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

/// A pause between writes, so the writer does not take the whole of a small machine.
const PAUSE: Duration = Duration::from_millis(5);

fn record(log: &Mutex<WriteLog>, key: String, value: String, outcome: Result<i64, String>) {
    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
    match outcome {
        Ok(revision) => {
            log.max_revision = log.max_revision.max(revision);
            log.acknowledged.insert(key, value);
        }
        Err(error) => {
            log.errors.push(error);
            log.unknown.insert(key);
        }
    }
}

impl Writer {
    /// Starts writing `<prefix>00000001`, `<prefix>00000002`, ... with values `value-<n>`.
    pub fn start(clients: ClusterClients, prefix: &str) -> Self {
        let log = Arc::new(Mutex::new(WriteLog::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let log = log.clone();
            let stop = stop.clone();
            let prefix = prefix.to_string();
            tokio::spawn(async move {
                let mut sequence = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    sequence += 1;
                    let key = format!("{prefix}{sequence:08}");
                    let value = format!("value-{sequence}");
                    // Retries on other nodes (whichever leads) until acknowledged, or gives up
                    // after the harness's deadline.
                    let outcome = clients.put_acknowledged(&key, &value).await;
                    record(&log, key, value, outcome);
                    tokio::time::sleep(PAUSE).await;
                }
            })
        };
        Self { log, stop, task }
    }

    /// A copy of the log so far.
    pub fn snapshot(&self) -> WriteLog {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many writes were acknowledged so far.
    pub fn acknowledged(&self) -> usize {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .acknowledged
            .len()
    }

    /// Waits until `writes` more writes are acknowledged than now: the cluster makes progress.
    pub async fn wait_progress(&self, after: &str, writes: usize) {
        let target = self.acknowledged() + writes;
        wait_until(
            format!("{writes} more acknowledged writes after {after}"),
            || async {
                let log = self.snapshot();
                match log.acknowledged.len() >= target {
                    true => Ok(()),
                    false => Err(format!(
                        "{} acknowledged of {target}; last error: {}",
                        log.acknowledged.len(),
                        log.errors.last().map_or("none", String::as_str)
                    )),
                }
            },
        )
        .await;
    }

    /// Stops after the write in progress and returns the log.
    pub async fn stop(self) -> WriteLog {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("the writer task does not panic");
        Arc::try_unwrap(self.log)
            .map(|m| m.into_inner().unwrap_or_else(|e| e.into_inner()))
            .unwrap_or_else(|log| log.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }
}
