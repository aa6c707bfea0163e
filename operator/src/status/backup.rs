//! What the status says about backups.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Backups of the cluster as the operator took them.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The schedule `lastScheduleTime` counts by: a changed schedule counts afresh.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,

    /// The schedule time the latest scheduled backup was started for (or when the schedule
    /// was first seen). The next one is due at the schedule's first time after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<Time>,

    /// The value of the `dengine.io/backup-requested` annotation last served: a different
    /// value asks for a backup now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_request: Option<String>,

    /// The backup being taken now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<RunningBackup>,

    /// The last backup that was written and checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful: Option<CompletedBackup>,

    /// The last backup that failed, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed: Option<FailedBackup>,
}

/// A backup in progress.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunningBackup {
    /// When it started.
    pub started: Time,
    /// `Scheduled` or `Requested`.
    pub reason: String,
}

/// A backup written to the destination and checked against the node's checksum.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CompletedBackup {
    /// Where it is: `s3://<bucket>/<object name>` (give it to `spec.restoreFrom`, or download
    /// it for `node --restore-from`), or `pvc://<claim>/<path>` for a backup in a claim.
    pub location: String,
    /// When it was complete.
    pub finished: Time,
    /// The key-value revision it holds (etcd's revision).
    pub revision: i64,
    /// The Raft log index it holds.
    pub index: u64,
    /// Its size, header included.
    pub size_bytes: u64,
}

/// A backup that did not complete. Nothing is left at the destination under its name.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailedBackup {
    /// When it failed.
    pub time: Time,
    /// The condition's reason: what kind of failure.
    pub reason: String,
    /// What went wrong.
    pub message: String,
}

/// What a cluster founded from a backup (`spec.restoreFrom`) was founded from.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// The backup.
    pub location: String,
    /// When pod 0 had downloaded and checked it; its node then founded the cluster from it.
    /// Unset while that has not happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fetched: Option<Time>,
    /// The key-value revision the backup holds: the cluster's revisions carry on from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The Raft log index the backup holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// The backup file's size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<u64>,
}
