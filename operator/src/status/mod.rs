//! What the operator reports in a DEngineCluster's status: the phase, the leader, each member,
//! the versions, and the `Available`, `Progressing` and `Degraded` conditions.

mod backup;
mod conditions;
mod report;
mod stale_certificates;

pub use backup::{BackupStatus, CompletedBackup, FailedBackup, RestoreStatus, RunningBackup};
pub use conditions::{set_condition, ConditionType};
pub use report::{report, report_error};
pub use stale_certificates::stale_certificates;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The observed state of a DEngineCluster, written by the operator only.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DEngineClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Where the cluster is in its life.
    #[serde(default)]
    pub phase: Phase,

    /// The current leader, when one is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leader: Option<LeaderStatus>,

    /// How many members are voters or learners whose pod is ready.
    #[serde(default)]
    pub ready_members: i32,

    /// Every member of the Raft group, by node id.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["nodeId"]))]
    pub members: Vec<MemberStatus>,

    /// The node version every member runs; unset while members run different versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,

    /// The node version being rolled out (`spec.version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_version: Option<String>,

    /// Backups: the last one taken and the last failure, when `spec.backup` is set or a
    /// backup was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,

    /// The certificates the operator issued, with `spec.tls.generate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificates: Option<CertificatesStatus>,

    /// What the cluster was founded from, when `spec.restoreFrom` names a backup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<RestoreStatus>,

    /// `Available`, `Progressing` and `Degraded`, each with a reason and a message,
    /// `BackupFailed` on clusters that take backups and `RestoreFailed` on clusters founded
    /// from one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

/// Where a cluster is in its life.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// Nothing is running yet: the owned objects are being created.
    #[default]
    Pending,
    /// The first member is founding the cluster.
    Bootstrapping,
    /// Members are being added, promoted or removed to reach `spec.replicas`.
    Scaling,
    /// Pods are being restarted one at a time on a new version.
    Upgrading,
    /// Every member is a healthy voter on the requested version.
    Running,
    /// Something has been wrong for longer than the operator waits: see the Degraded condition.
    Degraded,
    /// `spec.paused` is set: the operator changes nothing.
    Paused,
}

/// The current leader.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LeaderStatus {
    /// The leader's node id.
    pub node_id: u64,
    /// The leader's pod.
    pub pod: String,
}

/// One member of the Raft group.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MemberStatus {
    /// The member's pod.
    pub pod: String,
    /// The member's node id: its pod's StatefulSet ordinal + 1.
    pub node_id: u64,
    /// Voter or learner.
    pub role: MemberRole,
    /// Whether its pod is ready.
    pub ready: bool,
    /// How many committed log entries it lacks, as the leader sees it.
    pub lag: u64,
    /// Why the leader cannot reach it, while it cannot: the leader's last connection error
    /// (for example a name that does not resolve yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection_error: Option<String>,
}

/// A member's part in the Raft group.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum MemberRole {
    /// Votes in elections and counts towards commit.
    Voter,
    /// Receives the log but does not vote: how every member starts.
    Learner,
}

/// The members' and the operator's certificates, as the operator issued them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CertificatesStatus {
    /// When they were issued.
    pub issued: Time,
    /// When they are renewed (a rolling restart follows).
    pub renews: Time,
    /// When they expire.
    pub expires: Time,
    /// A random name of this issue, which the pod template carries: a renewal changes it, and
    /// so restarts the pods the safe way.
    pub serial: String,
    /// When the cluster's CA expires (ten years after it was issued; the operator does not
    /// rotate it). Unknown for a CA issued by an operator older than this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_expires: Option<Time>,
}
