//! How to reach a bucket of S3 or an S3-compatible store: the same for backups and restores.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The store and the credentials of a bucket (the bucket itself is named beside them).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct S3Access {
    /// The store's URL, for a store other than AWS S3 (for example `http://minio.storage:9000`);
    /// AWS's endpoint for `region` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 8, max = 512))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') || self.startsWith('http://')")
        .message("endpoint must be a URL starting with https:// or http://"))]
    pub endpoint: Option<String>,

    /// The bucket's region.
    #[serde(default = "default_region")]
    #[schemars(length(min = 1, max = 64))]
    pub region: String,

    /// Address the bucket as `<bucket>.<endpoint host>` instead of `<endpoint>/<bucket>`. AWS
    /// supports both; many S3-compatible stores only the path style, the default.
    #[serde(default)]
    pub virtual_hosted_style: bool,

    /// The Secret, in the cluster's namespace, holding the keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` for temporary credentials). Unset, the
    /// credentials of the environment are used (an IAM role for the service account, an
    /// instance profile): the operator's for backups, pod 0's for a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: Option<String>,
}

fn default_region() -> String {
    "us-east-1".to_string()
}

impl Default for S3Access {
    fn default() -> Self {
        S3Access {
            endpoint: None,
            region: default_region(),
            virtual_hosted_style: false,
            credentials_secret: None,
        }
    }
}
