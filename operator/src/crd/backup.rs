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

/// Backups of the cluster, taken from the leader's admin `Backup` API and written as they
/// stream in, each checked against the checksum the node computed before it takes its name:
/// to an S3 bucket by the operator itself, or into a PersistentVolumeClaim by a Job the
/// operator runs (the node image's `dengine snapshot save-into`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.s3) != has(self.persistentVolumeClaim)")
        .message("say where backups go: set exactly one of s3 and persistentVolumeClaim")
)]
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

    /// Backups go to this bucket, written by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Destination>,

    /// Backups go into this claim, written by a Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<VolumeDestination>,
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
    #[x_kube(validation = Rule::new("!self.matches('(^|/)[.][.]?(/|$)')")
        .message("prefix must not hold . or .. path segments"))]
    pub prefix: Option<String>,

    /// The store and the credentials.
    #[serde(flatten)]
    pub access: S3Access,
}

impl S3Destination {
    /// The prefix object names start with, ending in `/` unless empty.
    pub fn prefix_for(&self, namespace: &str, cluster: &str) -> String {
        prefix_or_default(self.prefix.as_deref(), namespace, cluster)
    }
}

/// A PersistentVolumeClaim in the cluster's namespace. Each backup is taken by a Job of the
/// node image that mounts the claim, streams the backup from the leader into a file there and
/// deletes the oldest beyond `keep`; one Job runs at a time, so a ReadWriteOnce claim does.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VolumeDestination {
    /// The claim, which must exist (the operator does not make it: its size and class are
    /// yours to choose, and it outlives the cluster).
    #[schemars(
        length(min = 1, max = 253),
        pattern(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub claim_name: String,

    /// The directory in the volume: file names start with this (then
    /// `<namespace>.<cluster>-<time>`). Defaults to `<namespace>/<cluster>/`, as for S3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 512), pattern(r"^([A-Za-z0-9._-]+/)*[A-Za-z0-9._-]*$"))]
    #[x_kube(validation = Rule::new("!self.matches('(^|/)[.][.]?(/|$)')")
        .message("prefix must not hold . or .. path segments"))]
    pub prefix: Option<String>,
}

impl VolumeDestination {
    /// The directory file names start with, ending in `/` unless empty.
    pub fn prefix_for(&self, namespace: &str, cluster: &str) -> String {
        prefix_or_default(self.prefix.as_deref(), namespace, cluster)
    }
}

/// `prefix`, or `<namespace>/<cluster>/`, ending in `/` unless empty.
fn prefix_or_default(prefix: Option<&str>, namespace: &str, cluster: &str) -> String {
    let prefix = prefix.map_or_else(|| format!("{namespace}/{cluster}/"), str::to_string);
    match prefix.is_empty() || prefix.ends_with('/') {
        true => prefix,
        false => format!("{prefix}/"),
    }
}
