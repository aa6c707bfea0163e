//! Scheduled backups to object storage.

use kube::KubeSchema;

use super::S3Access;
use serde::{Deserialize, Serialize};

/// The annotation that asks for a backup now: set it to any new value (a timestamp, say) and
/// the operator takes one backup, then records the value it served in
/// `status.backup.lastRequest`.
///
/// ```sh
/// kubectl annotate denginecluster orders dengine.io/backup-requested="$(date +%s)" --overwrite
/// ```
pub const BACKUP_REQUEST_ANNOTATION: &str = "dengine.io/backup-requested";

/// Backups of the cluster, taken by the operator from the leader's admin `Backup` API and
/// written to object storage as they stream in, each checked against the checksum the node
/// computed before it is kept.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// When to take a backup: a cron expression of five fields (minute, hour, day of month,
    /// month, day of week), in UTC; for example `0 */6 * * *` for every six hours. A backup
    /// missed while the operator was down is taken once when it is back, not once per miss.
    #[schemars(length(min = 9, max = 128), pattern(r"^\S+( \S+){4}$"))]
    pub schedule: String,

    /// How many backups to keep: after each successful one, the oldest beyond this count are
    /// deleted from the destination (only objects this cluster's backups are named as).
    #[serde(default = "default_keep")]
    #[schemars(range(min = 1, max = 1000))]
    pub keep: u32,

    /// Where the backups go.
    pub s3: S3Destination,
}

fn default_keep() -> u32 {
    7
}

/// An S3 bucket, or a bucket of any S3-compatible store (MinIO, Ceph, and others) at
/// `endpoint`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Destination {
    /// The bucket, which must exist.
    #[schemars(length(min = 3, max = 63), pattern(r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$"))]
    pub bucket: String,

    /// Where in the bucket: object names start with this (then `<namespace>.<cluster>-<time>`).
    /// Defaults to `<namespace>/<cluster>/`. Path segments of letters, digits, `.`, `_` and
    /// `-`, separated by single slashes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), pattern(r"^([A-Za-z0-9._-]+/)*[A-Za-z0-9._-]*$"))]
    pub prefix: Option<String>,

    /// The store and the credentials.
    #[serde(flatten)]
    pub access: S3Access,
}

impl S3Destination {
    /// The prefix object names start with, ending in `/` unless empty.
    pub fn prefix_for(&self, namespace: &str, cluster: &str) -> String {
        let prefix = self
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{namespace}/{cluster}/"));
        match prefix.is_empty() || prefix.ends_with('/') {
            true => prefix,
            false => format!("{prefix}/"),
        }
    }
}
