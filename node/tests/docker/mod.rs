//! A harness for tests that run the node in Docker containers: the `docker` command line, the
//! images made from the test's own binaries, a cluster of node containers on a private
//! network, and a writer that records what was acknowledged.
//!
//! Everything a run creates (containers, volumes, the network, images) carries the label
//! `dengine-e2e.run=<run id>` and a name starting with the run id, and is removed when the
//! [`engine::Run`] is dropped, also when the test panics.

// Each part is used by the test crate that includes this harness.
#![allow(dead_code)]

pub mod cluster;
pub mod engine;
pub mod writer;

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

/// How long any condition may take: containers start, elect and catch up slower than processes,
/// and much slower on a loaded two-core machine. A condition that holds returns at once.
pub const DEADLINE: Duration = Duration::from_secs(60);
/// How often a condition is checked.
pub const POLL: Duration = Duration::from_millis(100);

/// Polls `probe` every [`POLL`] until it returns `Ok`, and returns that value. Panics after
/// [`DEADLINE`] with `what` and the last observation.
pub async fn wait_until<T, F, Fut>(what: impl Display, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    crate::common::wait_for_within(DEADLINE, what, probe).await
}
