//! Each member's persistent volume.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Each member's persistent volume: one PersistentVolumeClaim per pod, from the StatefulSet's
/// volume claim template. The template cannot change once the StatefulSet exists, so neither
/// can the class nor the size here.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(
        "has(self.storageClassName) == has(oldSelf.storageClassName) && \
         (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)"
    )
    .message("storageClassName cannot change after creation: each member's volume already exists")
    .field_path(".storageClassName"),
    validation = Rule::new("self.size == oldSelf.size")
        .message("size cannot change after creation: the StatefulSet's volume claim template is immutable")
        .field_path(".size")
)]
pub struct Storage {
    /// The volume's size, as a Kubernetes quantity (for example `10Gi`).
    // A regular expression rather than CEL's quantity library: Kubernetes 1.28 compiles new
    // CRD rules at the 1.27 library level, which has no `quantity()`, and 1.28 (with the
    // SidecarContainers gate) is supported.
    #[x_kube(validation = Rule::new(
        "self.matches('^(0*[1-9][0-9]*([.][0-9]+)?|0*[.][0-9]*[1-9][0-9]*)(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$')"
    )
    .message("must be a positive size such as 10Gi or 500M: a number and an optional suffix k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei"))]
    #[schemars(length(min = 1, max = 64))]
    pub size: String,

    /// The StorageClass of the volumes; the cluster's default class when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,

    /// Keep a member's volume when the cluster shrinks and its pod goes. A kept volume holds a
    /// removed member's data: if the cluster grows again, that member is added back as a
    /// learner and brought up to date like any new one.
    #[serde(default)]
    pub retain_on_scale_down: bool,

    /// Keep the volumes when the DEngineCluster is deleted.
    #[serde(default = "default_true")]
    pub retain_on_delete: bool,
}

fn default_true() -> bool {
    true
}
