//! The `DEngineCluster` custom resource (`dengine.io/v1alpha1`): what a user asks for.
//!
//! Validation lives in the schema, so that the API server refuses a bad object before the
//! operator sees it: ranges, lengths and patterns as plain OpenAPI, and CEL rules
//! (`x-kubernetes-validations`) for what a plain schema cannot say, such as fields that may not
//! change after creation or fields that must differ from each other.

mod app;
mod auth;
mod backup;
mod ports;
mod read_policy;
mod restore;
mod s3;
mod scheduling;
mod storage;
#[cfg(test)]
mod tests;
mod tls;

pub use app::{AppTemplate, NODE_CONTAINER_NAME};
pub use auth::{Auth, SecretKeyRef};
pub use backup::{BackupSpec, S3Destination, VolumeDestination, BACKUP_REQUEST_ANNOTATION};
pub use ports::Ports;
pub use read_policy::ReadPolicy;
pub use restore::{RestoreFrom, RestoreSource};
pub use s3::S3Access;
pub use scheduling::{Scheduling, ZoneSpread};
pub use storage::Storage;
pub use tls::Tls;

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::status::DEngineClusterStatus;

/// The most members a cluster may have. Seven voters tolerate three failures; more only slow
/// every write down (each needs a majority of fsyncs).
pub const MAX_REPLICAS: i32 = 7;

/// A d-engine cluster: `replicas` pods, each running the node as a sidecar beside the
/// application's containers, forming one Raft group.
// Clippy reads the `printcolumn(...)` lists below as one attribute and takes their repeated
// `type_` values for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "dengine.io",
    version = "v1alpha1",
    kind = "DEngineCluster",
    namespaced,
    shortname = "dec",
    status = "DEngineClusterStatus",
    derive = "PartialEq",
    doc = "A d-engine cluster: a Raft group whose nodes run as sidecars beside an application",
    printcolumn(
        name = "Desired",
        type_ = "integer",
        json_path = ".spec.replicas",
        description = "members asked for"
    ),
    printcolumn(
        name = "Ready",
        type_ = "integer",
        json_path = ".status.readyMembers",
        description = "members that are ready"
    ),
    printcolumn(
        name = "Leader",
        type_ = "string",
        json_path = ".status.leader.pod",
        description = "the pod of the current leader"
    ),
    printcolumn(
        name = "Version",
        type_ = "string",
        json_path = ".status.currentVersion",
        description = "the node version every member runs"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.tls) == has(oldSelf.tls)")
        .message("tls cannot be turned on or off after creation: during the rolling restart, members with and without TLS could not talk to each other")
        .field_path(".tls"),
    validation = Rule::new("has(self.restoreFrom) == has(oldSelf.restoreFrom) && (!has(self.restoreFrom) || self.restoreFrom == oldSelf.restoreFrom)")
        .message("restoreFrom is fixed at creation: it says what the cluster was founded from; to restore again, create a new DEngineCluster")
        .field_path(".restoreFrom")
)]
pub struct DEngineClusterSpec {
    /// How many members the cluster has: one pod and one Raft voter each. The operator adds
    /// and removes members one at a time; an odd number tolerates the most failures for its
    /// size.
    #[schemars(range(min = 1, max = 7))]
    pub replicas: i32,

    /// The node's container image, without a tag or digest (for example
    /// `ghcr.io/d-engine/dengine`); the tag is `version`.
    #[schemars(length(min = 1, max = 512), pattern(r"^([^/@\s]+/)*[^/:@\s]+$"))]
    pub image: String,

    /// The node version to run: the image tag. Changing it (or `image`) rolls the pods one at a
    /// time, followers first and the leader last; setting the old value back rolls back the
    /// same way.
    #[schemars(length(min = 1, max = 128), pattern(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$"))]
    pub version: String,

    /// When the kubelet pulls the node's image: `Always`, `IfNotPresent` or `Never`. Unset,
    /// Kubernetes decides (`Always` for a `latest` tag, `IfNotPresent` otherwise). `Never` or
    /// `IfNotPresent` run an image loaded onto the nodes without a registry (`kind load`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<ImagePullPolicy>,

    /// Each member's persistent volume.
    pub storage: Storage,

    /// Compute resources of the node container.
    #[serde(default)]
    pub resources: ResourceRequirements,

    /// The application's pod template: its containers run beside the node, which serves them
    /// on `127.0.0.1`. Without it the pods run the node alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppTemplate>,

    /// The node's listening ports.
    #[serde(default)]
    pub ports: Ports,

    /// The read policy for requests that name none.
    #[serde(default)]
    pub default_read_policy: ReadPolicy,

    /// Credentials of the admin API.
    pub auth: Auth,

    /// Mutual TLS between members and with the operator; plain gRPC when unset. Fixed at
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<Tls>,

    /// Where the pods may run.
    #[serde(default)]
    pub scheduling: Scheduling,

    /// Found the cluster from this backup instead of empty. Fixed at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreFrom>,

    /// Scheduled backups to object storage; none when unset. A backup on demand: the
    /// `dengine.io/backup-requested` annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,

    /// Stops the operator from changing anything in this cluster until set back to false.
    #[serde(default)]
    pub paused: bool,
}

/// When the kubelet pulls an image (a container's `imagePullPolicy`).
#[derive(Serialize, Deserialize, schemars::JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImagePullPolicy {
    /// Before every container start.
    Always,
    /// Only when the node does not hold the image.
    IfNotPresent,
    /// Never: the image must already be on the node.
    Never,
}

impl ImagePullPolicy {
    /// The value of a container's `imagePullPolicy`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImagePullPolicy::Always => "Always",
            ImagePullPolicy::IfNotPresent => "IfNotPresent",
            ImagePullPolicy::Never => "Never",
        }
    }
}

impl DEngineClusterSpec {
    /// The node container's image reference: `image:version`.
    pub fn node_image(&self) -> String {
        format!("{}:{}", self.image, self.version)
    }

    /// `replicas` as a count; the schema keeps it within 1..=7.
    pub fn member_count(&self) -> u32 {
        u32::try_from(self.replicas.clamp(1, MAX_REPLICAS)).unwrap_or(1)
    }
}

impl DEngineClusterSpec {
    /// A small, valid spec with `replicas` members: the shape examples and tests start from.
    pub fn example(replicas: i32) -> Self {
        DEngineClusterSpec {
            replicas,
            image: "ghcr.io/d-engine/dengine".to_string(),
            version: "0.1.0".to_string(),
            image_pull_policy: None,
            storage: Storage {
                size: "1Gi".to_string(),
                storage_class_name: None,
                retain_on_scale_down: false,
                retain_on_delete: true,
            },
            resources: Default::default(),
            app: None,
            ports: Ports::default(),
            default_read_policy: ReadPolicy::Linearizable,
            auth: Auth {
                admin_token_secret: SecretKeyRef {
                    name: "admin".to_string(),
                    key: "token".to_string(),
                },
            },
            tls: None,
            scheduling: Scheduling::default(),
            backup: None,
            restore_from: None,
            paused: false,
        }
    }
}
