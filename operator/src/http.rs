//! The operator's HTTP endpoints: `/livez`, `/readyz` and `/metrics`.
//!
//! `/livez` answers while the process serves. `/readyz` answers once the replica has either
//! started its controller (it holds the Lease) or is standing by with a working connection to
//! the API server; a replica that lost the Lease exits instead, so a failed one never looks
//! ready.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;

/// Shared with the endpoints.
#[derive(Clone)]
pub struct Health {
    pub ready: Arc<AtomicBool>,
    pub metrics: Arc<Metrics>,
}

/// Serves the endpoints on `listen` until the task is dropped.
pub async fn serve(listen: SocketAddr, health: Health) -> std::io::Result<()> {
    let app = Router::new()
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(health);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await
}

async fn readyz(State(health): State<Health>) -> (StatusCode, &'static str) {
    if health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    }
}

async fn metrics(State(health): State<Health>) -> String {
    health.metrics.encode()
}
