//! Founding a cluster from a backup.

use kube::KubeSchema;

use super::S3Access;
use serde::{Deserialize, Serialize};

/// A backup a new cluster is founded from: pod 0 copies and checks it before its node starts,
/// founds the cluster with the backup's keys, values and revisions, and every member added
/// after receives that state from it. Fixed at creation. A cluster that lost every volume comes
/// back this way, as a new DEngineCluster naming its last backup.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!self.location.startsWith('pvc://') || (!has(self.endpoint) && !has(self.credentialsSecret))")
        .message("a backup in a claim (pvc://) is read from the volume: endpoint and credentialsSecret are for s3:// locations")
        .field_path(".location"),
    validation = Rule::new("!self.location.matches('(^|/)[.][.]?(/|$)')")
        .message("location must not hold . or .. path segments")
        .field_path(".location")
)]
pub struct RestoreFrom {
    /// The backup, as a backed-up cluster's `status.backup.lastSuccessful.location` reports
    /// it: `s3://<bucket>/<object name>` in S3 or an S3-compatible store, or
    /// `pvc://<claim>/<path>` in a PersistentVolumeClaim of the cluster's namespace, which pod
    /// 0 mounts read-only until the cluster is founded (its node restarts once then, to let go
    /// of the claim).
    #[schemars(
        length(min = 8, max = 1024),
        pattern(r"^(s3://[a-z0-9][a-z0-9.-]*[a-z0-9]|pvc://[a-z0-9]([-a-z0-9.]*[a-z0-9])?)/.+$")
    )]
    pub location: String,

    /// The store and the credentials (given to pod 0's restore container), for `s3://`.
    #[serde(flatten)]
    pub access: S3Access,
}

/// Where a restore reads its backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RestoreSource<'a> {
    /// `s3://...`, as written.
    S3(&'a str),
    /// `pvc://<claim>/<path>`.
    Volume { claim: &'a str, path: &'a str },
}

impl RestoreFrom {
    /// Where the backup is. The CRD's pattern admits only the two forms; anything else is
    /// taken for S3, whose fetch then says what is wrong with it.
    pub fn source(&self) -> RestoreSource<'_> {
        match self
            .location
            .strip_prefix("pvc://")
            .and_then(|rest| rest.split_once('/'))
        {
            Some((claim, path)) => RestoreSource::Volume { claim, path },
            None => RestoreSource::S3(&self.location),
        }
    }
}
