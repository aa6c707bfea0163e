//! HTTP endpoints for Kubernetes probes and Prometheus.
//!
//! - `/livez`: the event loop is ticking (it stalls only if the node is wedged).
//! - `/startupz`: the node has replayed its log up to the commit index it had on disk.
//! - `/readyz`: the node is a member, knows a leader, and has applied everything it knows to
//!   be committed. A learner that is catching up reports ready once it has applied what it
//!   holds; promotion is decided by its lag as the leader sees it, not by this probe.
//! - `/metrics`: Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use super::metrics::Metrics;
use super::status::NodeStatus;

/// The event loop's pulse: milliseconds since `origin` at its latest tick.
#[derive(Clone)]
pub struct Pulse {
    origin: Instant,
    last_tick_ms: Arc<AtomicU64>,
}

impl Pulse {
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            last_tick_ms: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn beat(&self) {
        self.last_tick_ms
            .store(self.origin.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_tick_ms.load(Ordering::Relaxed)))
    }
}

impl Default for Pulse {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone)]
pub struct ProbeState {
    pub status: watch::Receiver<NodeStatus>,
    pub metrics: Arc<Metrics>,
    pub pulse: Pulse,
    /// The commit index on disk at start: replayed once applied reaches it.
    pub startup_commit: u64,
    /// Longest silence of the event loop still considered alive.
    pub stall_limit: Duration,
}

type Answer = (StatusCode, String);

async fn livez(State(state): State<ProbeState>) -> Answer {
    let silent = state.pulse.silent_for();
    if silent > state.stall_limit {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("event loop silent for {} ms\n", silent.as_millis()),
        );
    }
    (StatusCode::OK, "ok\n".into())
}

async fn startupz(State(state): State<ProbeState>) -> Answer {
    let applied = state.status.borrow().applied;
    if applied < state.startup_commit {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "replaying the log: applied {applied} of {}\n",
                state.startup_commit
            ),
        );
    }
    (StatusCode::OK, "ok\n".into())
}

/// Why a node is not ready, or `None` when it is.
pub fn not_ready_reason(status: &NodeStatus) -> Option<String> {
    if !status.members.iter().any(|m| m.id == status.id) {
        return Some("not a member of the cluster (yet)".into());
    }
    if status.leader == 0 {
        return Some("no leader is known".into());
    }
    if status.applied < status.commit {
        return Some(format!(
            "applied {} of {} committed",
            status.applied, status.commit
        ));
    }
    None
}

async fn readyz(State(state): State<ProbeState>) -> Answer {
    match not_ready_reason(&state.status.borrow()) {
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        None => (StatusCode::OK, "ok\n".into()),
    }
}

async fn metrics(State(state): State<ProbeState>) -> Answer {
    state.metrics.observe_status(&state.status.borrow());
    (StatusCode::OK, state.metrics.render())
}

pub fn router(state: ProbeState) -> Router {
    let router = Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/startupz", get(startupz))
        .route("/metrics", get(metrics));
    #[cfg(feature = "failpoints")]
    let router = router
        .route(
            "/debug/failpoints/{name}",
            axum::routing::put(failpoints::set).delete(failpoints::remove),
        )
        .route(
            "/debug/wall-clock-step",
            axum::routing::put(failpoints::step_wall_clock),
        );
    router.with_state(state)
}

/// Test builds only (the `failpoints` feature): failpoints set and cleared while the node
/// runs, so that a test can stall or fail one node at the moment it chooses, e.g.
/// `curl -X PUT -d pause .../debug/failpoints/log_append`, later `-X DELETE`. (TiKV's status
/// server offers the same.)
#[cfg(feature = "failpoints")]
mod failpoints {
    use axum::extract::Path;
    use axum::http::StatusCode;

    pub async fn set(Path(name): Path<String>, action: String) -> (StatusCode, String) {
        match fail::cfg(&name, action.trim()) {
            Ok(()) => (StatusCode::OK, format!("{name}={}\n", action.trim())),
            Err(e) => (StatusCode::BAD_REQUEST, format!("{e}\n")),
        }
    }

    /// The body: milliseconds to add to the wall clock from now on (0 undoes every step).
    pub async fn step_wall_clock(offset: String) -> (StatusCode, String) {
        match offset.trim().parse::<i64>() {
            Ok(offset_ms) => {
                crate::server::replica::step_wall_clock(offset_ms);
                (
                    StatusCode::OK,
                    format!("wall clock stepped {offset_ms:+} ms\n"),
                )
            }
            Err(e) => (
                StatusCode::BAD_REQUEST,
                format!("the body must be a number of milliseconds: {e}\n"),
            ),
        }
    }

    pub async fn remove(Path(name): Path<String>) -> (StatusCode, String) {
        fail::remove(&name);
        (StatusCode::OK, format!("{name} removed\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::status::MemberStatus;

    fn member(id: u64) -> MemberStatus {
        MemberStatus {
            id,
            address: String::new(),
            voter: true,
            matched: 0,
            last_contact_ms: 0,
        }
    }

    #[test]
    fn readiness_needs_membership_a_leader_and_applied_commit() {
        let mut status = NodeStatus::initial(2, 9);
        assert!(not_ready_reason(&status).unwrap().contains("member"));
        status.members = vec![member(1), member(2)];
        assert!(not_ready_reason(&status).unwrap().contains("leader"));
        status.leader = 1;
        status.commit = 10;
        status.applied = 8;
        assert!(not_ready_reason(&status)
            .unwrap()
            .contains("applied 8 of 10"));
        status.applied = 10;
        assert_eq!(not_ready_reason(&status), None);
    }
}
