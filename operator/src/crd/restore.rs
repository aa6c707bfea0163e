//! Founding a cluster from a backup.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// A backup in S3 (or an S3-compatible store) that a new cluster is founded from: pod 0
/// downloads and checks it before its node starts, founds the cluster with the backup's keys,
/// values and revisions, and every member added after receives that state from it. Fixed at
/// creation. A cluster that lost every volume comes back this way, as a new DEngineCluster
/// naming its last backup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.endpoint) || self.endpoint.startsWith('https://') || self.endpoint.startsWith('http://')")
    .message("endpoint must be a URL starting with https:// or http://")
    .field_path(".endpoint"))]
pub struct RestoreFrom {
    /// The backup: `s3://<bucket>/<object name>`, as a backed-up cluster's
    /// `status.backup.lastSuccessful.location` reports it.
    #[schemars(
        length(min = 8, max = 1024),
        pattern(r"^s3://[a-z0-9][a-z0-9.-]*[a-z0-9]/.+$")
    )]
    pub location: String,

    /// The store's URL, for a store other than AWS S3; AWS's endpoint for `region` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 512))]
    pub endpoint: Option<String>,

    /// The bucket's region.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,

    /// Address the bucket as `<bucket>.<endpoint host>` instead of `<endpoint>/<bucket>`.
    #[serde(default)]
    pub virtual_hosted_style: bool,

    /// The Secret, in the cluster's namespace, with `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` if present), given to pod 0's restore
    /// container. Unset, the pod's own environment must provide credentials (an IAM role for
    /// its service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
}

fn default_region() -> String {
    "us-east-1".to_string()
}
