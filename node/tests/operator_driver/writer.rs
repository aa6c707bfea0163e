//! A writer that runs through membership changes and restarts: unique keys, each write
//! retried through whichever node leads until it is acknowledged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::common::{wait_for_writes, ClusterClients, Keys};

/// Writes unique keys under a prefix through whichever node leads, each retried until it is
/// acknowledged, and records every acknowledged write. It only stops between writes, so every
/// write it started was acknowledged and the cluster must hold exactly its record.
pub struct Writer {
    acked: Arc<AtomicU64>,
    /// The longest time between two acknowledgements: how long writes were unavailable.
    longest_gap: Arc<Mutex<Duration>>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<Keys, String>>,
}

impl Writer {
    pub fn spawn(clients: ClusterClients, prefix: &'static str) -> Self {
        let acked = Arc::new(AtomicU64::new(0));
        let longest_gap = Arc::new(Mutex::new(Duration::ZERO));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (acked, longest_gap, stop) = (acked.clone(), longest_gap.clone(), stop.clone());
            async move {
                let mut written = Keys::new();
                let mut last_ack = Instant::now();
                for seq in 0u64.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let (key, value) = (format!("{prefix}/{seq:06}"), format!("{prefix}-v{seq}"));
                    // Retried only on retryable codes (UNAVAILABLE and the like): a write
                    // refused for good, such as one refused during a leadership transfer
                    // with FAILED_PRECONDITION, fails the test.
                    clients.put_acknowledged(&key, &value).await?;
                    written.insert(key, value);
                    acked.fetch_add(1, Ordering::SeqCst);
                    let mut gap = longest_gap.lock().unwrap_or_else(|e| e.into_inner());
                    *gap = (*gap).max(last_ack.elapsed());
                    last_ack = Instant::now();
                }
                Ok(written)
            }
        });
        Writer {
            acked,
            longest_gap,
            stop,
            task,
        }
    }

    pub fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    pub fn longest_gap(&self) -> Duration {
        *self.longest_gap.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for `more` acknowledged writes; fails at once, with its error, if the writer gave
    /// up.
    pub async fn wait_progress(&mut self, more: u64, why: &str) {
        let target = self.acked() + more;
        wait_for_writes(&mut self.task, &self.acked, target, why).await;
    }

    pub async fn stop(self) -> Keys {
        self.stop.store(true, Ordering::SeqCst);
        match self.task.await {
            Ok(Ok(written)) => written,
            Ok(Err(error)) => panic!("the writer failed: {error}"),
            Err(panic) => panic!("the writer panicked: {panic}"),
        }
    }
}
