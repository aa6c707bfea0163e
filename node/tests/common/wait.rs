//! Waiting on conditions with a generous deadline.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long any condition may take before the test fails. Generous: the machine running the
/// tests may be slow and busy, and a condition that holds returns at once anyway.
pub const DEADLINE: Duration = Duration::from_secs(30);
/// How often a condition is checked.
pub const POLL: Duration = Duration::from_millis(50);

/// Polls `probe` every [`POLL`] until it returns `Ok`, and returns that value. Panics after
/// [`DEADLINE`] with `what` and the last observation (the `Err` of the last probe), so a
/// timeout says what was seen instead of only what was expected.
pub async fn wait_for<T, F, Fut>(what: impl Display, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    wait_for_within(DEADLINE, what, probe).await
}

/// [`wait_for`] with another deadline (containers are slower than processes).
pub async fn wait_for_within<T, F, Fut>(deadline: Duration, what: impl Display, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(observed) if start.elapsed() >= deadline => {
                panic!("timed out after {deadline:?} waiting for {what}; last observed: {observed}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

/// Waits until a background writer has `target` acknowledged writes (`acked` counts them);
/// fails at once, with its error, if the writer's `task` ended first (gave up, panicked, or
/// stopped unasked).
pub async fn wait_for_writes<T>(
    task: &mut tokio::task::JoinHandle<Result<T, String>>,
    acked: &std::sync::atomic::AtomicU64,
    target: u64,
    why: &str,
) {
    use std::sync::atomic::Ordering;
    wait_for(format!("{target} acknowledged writes ({why})"), || async {
        if task.is_finished() {
            return Ok(());
        }
        match acked.load(Ordering::SeqCst) {
            n if n >= target => Ok(()),
            n => Err(format!("{n} acknowledged")),
        }
    })
    .await;
    if task.is_finished() {
        match task.await {
            Ok(Err(error)) => panic!("the writer failed ({why}): {error}"),
            Err(panic) => panic!("the writer panicked ({why}): {panic}"),
            Ok(Ok(_)) => panic!("the writer stopped unasked ({why})"),
        }
    }
}
