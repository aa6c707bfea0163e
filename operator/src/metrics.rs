//! The operator's Prometheus metrics.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::Error;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    error: &'static str,
}

/// What the operator counts.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ActionLabel, Counter>,
    failures: Family<ErrorLabel, Counter>,
    duration: Histogram,
    /// Status writes: one per change, so a steady cluster adds none.
    pub status_writes: Counter,
    /// 1 while this replica holds the leader-election Lease.
    pub leader: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dengine_operator");
        let reconciles = Family::<ActionLabel, Counter>::default();
        let failures = Family::<ErrorLabel, Counter>::default();
        let duration = Histogram::new(exponential_buckets(0.005, 2.0, 12));
        let status_writes = Counter::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles, by the step taken",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_failures",
            "Reconciles that failed, by error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time to observe, decide and take one step",
            duration.clone(),
        );
        registry.register(
            "status_writes",
            "DEngineCluster status writes",
            status_writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader-election Lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            duration,
            status_writes,
            leader,
        }
    }

    pub fn observe_reconcile(&self, action: &'static str, took: Duration) {
        self.reconciles.get_or_create(&ActionLabel { action }).inc();
        self.duration.observe(took.as_secs_f64());
    }

    pub fn observe_failure(&self, error: &Error) {
        self.failures
            .get_or_create(&ErrorLabel {
                error: error.metric_label(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if prometheus_client::encoding::text::encode(&mut text, &self.registry).is_err() {
            text.clear();
        }
        text
    }
}
