//! Founding a cluster from a backup.

use kube::KubeSchema;

use super::S3Access;
use serde::{Deserialize, Serialize};

/// A backup in S3 (or an S3-compatible store) that a new cluster is founded from: pod 0
/// downloads and checks it before its node starts, founds the cluster with the backup's keys,
/// values and revisions, and every member added after receives that state from it. Fixed at
/// creation. A cluster that lost every volume comes back this way, as a new DEngineCluster
/// naming its last backup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreFrom {
    /// The backup: `s3://<bucket>/<object name>`, as a backed-up cluster's
    /// `status.backup.lastSuccessful.location` reports it.
    #[schemars(
        length(min = 8, max = 1024),
        pattern(r"^s3://[a-z0-9][a-z0-9.-]*[a-z0-9]/.+$")
    )]
    pub location: String,

    /// The store and the credentials (given to pod 0's restore container).
    #[serde(flatten)]
    pub access: S3Access,
}
