//! Prometheus metrics of a node.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::status::NodeStatus;
use crate::raft::Role;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: String,
}

/// Every metric, shared by the event loop and the services.
pub struct Metrics {
    registry: Registry,
    pub term: Gauge,
    pub is_leader: Gauge,
    pub has_leader: Gauge,
    /// Times this node saw a new leader (from none or from another), as etcd's
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes_seen: Counter,
    pub commit_index: Gauge,
    pub applied_index: Gauge,
    pub proposals: Counter,
    pub proposal_seconds: Family<OperationLabels, Histogram>,
    pub forwarded: Counter,
    pub read_index_seconds: Histogram,
    pub fsync_seconds: Histogram,
    pub fsync_batch_entries: Histogram,
    pub log_compactions: Counter,
    pub snapshot_bytes: Gauge,
    pub peer_lag: Family<PeerLabels, Gauge>,
    pub loop_requests_waiting: Gauge,
    pub snapshots_encoding: Gauge,
    pub watch_history_reads: Gauge,
    pub loop_iteration_seconds: Histogram,
    pub apply_seconds: Histogram,
}

/// Counts one thing in progress in a gauge for as long as it lives, however it ends.
pub struct InProgress(Gauge);

impl InProgress {
    pub fn enter(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.dec();
    }
}

fn latency() -> Histogram {
    // 50 µs to about 6.5 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 18))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dengine");
        let metrics = Self {
            term: Gauge::default(),
            is_leader: Gauge::default(),
            has_leader: Gauge::default(),
            leader_changes_seen: Counter::default(),
            commit_index: Gauge::default(),
            applied_index: Gauge::default(),
            proposals: Counter::default(),
            proposal_seconds: Family::new_with_constructor(latency),
            forwarded: Counter::default(),
            read_index_seconds: latency(),
            fsync_seconds: latency(),
            fsync_batch_entries: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            log_compactions: Counter::default(),
            snapshot_bytes: Gauge::default(),
            peer_lag: Family::default(),
            loop_requests_waiting: Gauge::default(),
            snapshots_encoding: Gauge::default(),
            watch_history_reads: Gauge::default(),
            loop_iteration_seconds: latency(),
            apply_seconds: latency(),
            registry: Registry::default(),
        };
        registry.register("raft_term", "The current Raft term", metrics.term.clone());
        registry.register(
            "raft_is_leader",
            "1 if this node leads",
            metrics.is_leader.clone(),
        );
        registry.register(
            "raft_has_leader",
            "1 if this node knows a leader",
            metrics.has_leader.clone(),
        );
        registry.register(
            "raft_leader_changes_seen",
            "Times this node saw a new leader",
            metrics.leader_changes_seen.clone(),
        );
        registry.register(
            "raft_commit_index",
            "The commit index",
            metrics.commit_index.clone(),
        );
        registry.register(
            "raft_applied_index",
            "The applied index",
            metrics.applied_index.clone(),
        );
        registry.register(
            "proposals",
            "Commands proposed by this node as leader",
            metrics.proposals.clone(),
        );
        registry.register(
            "client_write_seconds",
            "Latency of client writes, end to end",
            metrics.proposal_seconds.clone(),
        );
        registry.register(
            "forwarded_writes",
            "Writes forwarded to the leader",
            metrics.forwarded.clone(),
        );
        registry.register(
            "read_index_seconds",
            "Time to confirm a linearizable read",
            metrics.read_index_seconds.clone(),
        );
        registry.register(
            "fsync_seconds",
            "Latency of one log fsync",
            metrics.fsync_seconds.clone(),
        );
        registry.register(
            "fsync_batch_entries",
            "Log entries persisted per fsync (group commit)",
            metrics.fsync_batch_entries.clone(),
        );
        registry.register(
            "log_compactions",
            "Times the compaction point moved and the log before it was dropped",
            metrics.log_compactions.clone(),
        );
        registry.register(
            "snapshot_bytes",
            "Size of the latest snapshot encoded for a follower or a backup",
            metrics.snapshot_bytes.clone(),
        );
        registry.register(
            "peer_lag_entries",
            "Leader only: entries each peer is behind the leader's log",
            metrics.peer_lag.clone(),
        );
        registry.register(
            "event_loop_requests_waiting",
            "Client and admin requests handed to the event loop and not yet answered",
            metrics.loop_requests_waiting.clone(),
        );
        registry.register(
            "snapshots_encoding",
            "Snapshots being encoded now, for a follower or a backup (off the event loop)",
            metrics.snapshots_encoding.clone(),
        );
        registry.register(
            "watch_history_reads",
            "Watches reading retained history now (from a view, not under the state machine's lock)",
            metrics.watch_history_reads.clone(),
        );
        registry.register(
            "event_loop_iteration_seconds",
            "Time the event loop spends carrying out the core's work after each wake-up (persist, send, apply)",
            metrics.loop_iteration_seconds.clone(),
        );
        registry.register(
            "apply_seconds",
            "Time to apply one batch of committed entries to the state machine",
            metrics.apply_seconds.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }

    /// Gauges that mirror the published status.
    pub fn observe_status(&self, status: &NodeStatus) {
        self.term.set(status.term as i64);
        self.is_leader.set(i64::from(status.role == Role::Leader));
        self.has_leader.set(i64::from(status.leader != 0));
        self.commit_index.set(status.commit as i64);
        self.applied_index.set(status.applied as i64);
        if status.role == Role::Leader {
            for member in status.members.iter().filter(|m| m.id != status.id) {
                self.peer_lag
                    .get_or_create(&PeerLabels {
                        peer: member.id.to_string(),
                    })
                    .set(status.last_index.saturating_sub(member.matched) as i64);
            }
        } else {
            self.peer_lag.clear();
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_metrics_carry_the_prefix_and_values() {
        let metrics = Metrics::new();
        metrics.term.set(7);
        metrics.fsync_seconds.observe(0.002);
        let text = metrics.render();
        assert!(text.contains("dengine_raft_term 7"), "{text}");
        assert!(text.contains("dengine_fsync_seconds_count 1"), "{text}");
    }
}
