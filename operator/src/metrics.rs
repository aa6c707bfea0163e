//! The operator's Prometheus metrics.

use std::collections::HashSet;
use std::sync::Mutex;
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

/// One DEngineCluster. The names are `namespace` and `cluster`, as on the nodes' series
/// (whose scrape relabels `app.kubernetes.io/instance` to `cluster`), so that the dashboard
/// and the alerts join them; the operator's ServiceMonitor keeps them (`honorLabels`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabels {
    pub namespace: String,
    pub cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackupLabels {
    namespace: String,
    cluster: String,
    result: &'static str,
}

/// What the operator counts.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ActionLabel, Counter>,
    failures: Family<ErrorLabel, Counter>,
    duration: Histogram,
    cluster_degraded: Family<ClusterLabels, Gauge>,
    cluster_ready_members: Family<ClusterLabels, Gauge>,
    cluster_desired_members: Family<ClusterLabels, Gauge>,
    backups: Family<BackupLabels, Counter>,
    backup_last_success: Family<ClusterLabels, Gauge>,
    backup_last_size: Family<ClusterLabels, Gauge>,
    backup_failing: Family<ClusterLabels, Gauge>,
    /// The clusters that have series (a family cannot list its own).
    clusters: Mutex<HashSet<ClusterLabels>>,
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
        let cluster_degraded = Family::<ClusterLabels, Gauge>::default();
        let cluster_ready_members = Family::<ClusterLabels, Gauge>::default();
        let cluster_desired_members = Family::<ClusterLabels, Gauge>::default();
        let backups = Family::<BackupLabels, Counter>::default();
        let backup_last_success = Family::<ClusterLabels, Gauge>::default();
        let backup_last_size = Family::<ClusterLabels, Gauge>::default();
        let backup_failing = Family::<ClusterLabels, Gauge>::default();
        registry.register(
            "cluster_degraded",
            "1 while the cluster's Degraded condition is True",
            cluster_degraded.clone(),
        );
        registry.register(
            "cluster_ready_members",
            "Members whose pod is ready",
            cluster_ready_members.clone(),
        );
        registry.register(
            "cluster_desired_members",
            "Members the spec asks for (spec.replicas)",
            cluster_desired_members.clone(),
        );
        registry.register(
            "backups",
            "Backups taken, by result (succeeded or failed)",
            backups.clone(),
        );
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When the last successful backup finished, in seconds since the Unix epoch",
            backup_last_success.clone(),
        );
        registry.register(
            "backup_last_size_bytes",
            "The size of the last successful backup",
            backup_last_size.clone(),
        );
        registry.register(
            "backup_failing",
            "1 while the cluster's BackupFailed condition is True: the last backup failed, or the schedule does not parse",
            backup_failing.clone(),
        );
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
            cluster_degraded,
            cluster_ready_members,
            cluster_desired_members,
            backups,
            backup_last_success,
            backup_last_size,
            backup_failing,
            clusters: Mutex::default(),
        }
    }

    /// The gauges of one cluster, from the status just reported.
    pub fn observe_cluster(
        &self,
        cluster: &ClusterLabels,
        degraded: bool,
        ready: i64,
        desired: i64,
    ) {
        self.cluster_degraded
            .get_or_create(cluster)
            .set(i64::from(degraded));
        self.cluster_ready_members.get_or_create(cluster).set(ready);
        self.cluster_desired_members
            .get_or_create(cluster)
            .set(desired);
        self.known_clusters().insert(cluster.clone());
    }

    /// A backup of `cluster` succeeded: `bytes` long, finished at `unix_seconds`.
    pub fn backup_succeeded(&self, cluster: &ClusterLabels, bytes: u64, unix_seconds: i64) {
        self.backups
            .get_or_create(&backup_labels(cluster, "succeeded"))
            .inc();
        self.last_backup(cluster, bytes, unix_seconds);
    }

    /// `cluster` takes backups: its counters exist from 0, so that the first failure is an
    /// increase an alert sees, not a series that appears at 1; `failing` is its BackupFailed
    /// condition.
    pub fn backups_configured(&self, cluster: &ClusterLabels, failing: bool) {
        for result in ["succeeded", "failed"] {
            // Creating the series is the point; the guard it returns is not needed.
            drop(self.backups.get_or_create(&backup_labels(cluster, result)));
        }
        self.backup_failing
            .get_or_create(cluster)
            .set(i64::from(failing));
    }

    /// `cluster` takes no backups (any more): no series says anything about its backups, so
    /// that no alert fires for backups nobody asked for.
    pub fn forget_backups(&self, cluster: &ClusterLabels) {
        self.backup_last_success.remove(cluster);
        self.backup_last_size.remove(cluster);
        self.backup_failing.remove(cluster);
        for result in ["succeeded", "failed"] {
            self.backups.remove(&backup_labels(cluster, result));
        }
    }

    /// The last successful backup, as the status records it: a new operator (a restart, a
    /// standby taking over) reports its age from the first reconcile.
    pub fn last_backup(&self, cluster: &ClusterLabels, bytes: u64, unix_seconds: i64) {
        self.backup_last_success
            .get_or_create(cluster)
            .set(unix_seconds);
        self.backup_last_size
            .get_or_create(cluster)
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A backup of `cluster` failed.
    pub fn backup_failed(&self, cluster: &ClusterLabels) {
        self.backups
            .get_or_create(&backup_labels(cluster, "failed"))
            .inc();
    }

    /// Every cluster of `namespace` (every namespace when `None`) but `present` is gone: their
    /// series go.
    pub fn forget_clusters_except(&self, namespace: Option<&str>, present: &[ClusterLabels]) {
        let gone: Vec<ClusterLabels> = self
            .known_clusters()
            .iter()
            .filter(|c| namespace.is_none_or(|ns| ns == c.namespace) && !present.contains(c))
            .cloned()
            .collect();
        for cluster in gone {
            self.forget_cluster(&cluster);
        }
    }

    fn known_clusters(&self) -> std::sync::MutexGuard<'_, HashSet<ClusterLabels>> {
        self.clusters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `cluster` is gone: its series go too, so that no alert fires for it.
    pub fn forget_cluster(&self, cluster: &ClusterLabels) {
        self.known_clusters().remove(cluster);
        self.cluster_degraded.remove(cluster);
        self.cluster_ready_members.remove(cluster);
        self.cluster_desired_members.remove(cluster);
        self.forget_backups(cluster);
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

fn backup_labels(cluster: &ClusterLabels, result: &'static str) -> BackupLabels {
    BackupLabels {
        namespace: cluster.namespace.clone(),
        cluster: cluster.cluster.clone(),
        result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(namespace: &str, name: &str) -> ClusterLabels {
        ClusterLabels {
            namespace: namespace.into(),
            cluster: name.into(),
        }
    }

    /// A cluster deleted without a last reconcile must not keep reporting (an alert on a
    /// backup too old would fire for it for ever).
    #[test]
    fn series_of_clusters_that_are_gone_are_dropped_in_their_namespace_only() {
        let metrics = Metrics::new();
        for c in [
            cluster("shop", "orders"),
            cluster("shop", "carts"),
            cluster("ops", "audit"),
        ] {
            metrics.observe_cluster(&c, false, 3, 3);
            metrics.backups_configured(&c, false);
            metrics.backup_succeeded(&c, 10, 1_800_000_000);
        }
        metrics.forget_clusters_except(Some("shop"), &[cluster("shop", "orders")]);
        let text = metrics.encode();
        assert!(text.contains("cluster=\"orders\""), "{text}");
        assert!(!text.contains("cluster=\"carts\""), "{text}");
        assert!(
            text.contains("cluster=\"audit\""),
            "another namespace's scope: {text}"
        );

        // Backups turned off: their series go, the cluster's stay.
        metrics.forget_backups(&cluster("shop", "orders"));
        let text = metrics.encode();
        assert!(
            !text.contains("backup_last_success_timestamp_seconds{namespace=\"shop\""),
            "{text}"
        );
        assert!(
            text.contains("cluster_ready_members{namespace=\"shop\",cluster=\"orders\"} 3"),
            "{text}"
        );
    }
}
