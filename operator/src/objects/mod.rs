//! The Kubernetes objects a DEngineCluster owns, built from its spec: one file per kind.
//!
//! Every builder is a pure function of the resource (and, for the StatefulSet and ConfigMap, of
//! the two things the operator decides: replicas and the founding record). Each object carries
//! a hash of what was built in an annotation, so the reconciler can tell an object that is as
//! the spec asks from one that is outdated without comparing fields the API server defaults.

mod backup_job;
mod component;
mod config_map;
mod disruption_budget;
mod names;
mod services;
mod spec_hash;
mod stateful_set;

pub use backup_job::{
    backup_job, backup_job_name, BACKUP_CONTAINER_NAME, BACKUP_JOB_DEADLINE_SECONDS,
    BACKUP_JOB_LABEL,
};
pub use component::{
    ClientService, Component, Decided, DisruptionBudget, FoundingRecord, Members, PeerService,
};
pub use config_map::{config_map, JOIN_KEY, RESTORE_KEY};
pub use disruption_budget::disruption_budget;
pub use names::{Names, CLAIM_MARK, DATA_DIR, DATA_VOLUME, RESTORE_FILE};
pub use services::{client_service, peer_service};
pub use spec_hash::{spec_hash, with_spec_hash, SPEC_HASH};
pub use stateful_set::{
    pod_spec, stateful_set, stateful_set_for, CERTIFICATES_ANNOTATION, RESTORE_CONTAINER_NAME,
};

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;

use crate::crd::DEngineCluster;

/// The operator's name as a field manager and in `app.kubernetes.io/managed-by`.
pub const MANAGER: &str = "dengine-operator";

/// The labels that select one cluster's pods: the StatefulSet's selector, the Services' and the
/// PodDisruptionBudget's. They never change, since a StatefulSet's selector cannot.
pub fn selector_labels(cluster: &DEngineCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "dengine".to_string()),
        (
            "app.kubernetes.io/instance".to_string(),
            cluster.metadata.name.clone().unwrap_or_default(),
        ),
    ])
}

/// The selector labels as a label selector query (`key=value,...`).
pub fn selector_query(cluster: &DEngineCluster) -> String {
    selector_labels(cluster)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The labels of every owned object.
pub fn labels(cluster: &DEngineCluster) -> BTreeMap<String, String> {
    let mut labels = selector_labels(cluster);
    labels.insert(
        "app.kubernetes.io/managed-by".to_string(),
        MANAGER.to_string(),
    );
    labels
}

/// Metadata of an owned object: its name, the cluster's namespace, labels, and an owner
/// reference to the cluster, so that deleting the cluster deletes it.
pub fn owned_meta(cluster: &DEngineCluster, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cluster.metadata.namespace.clone(),
        labels: Some(labels(cluster)),
        owner_references: owner_reference(cluster).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// The controller owner reference to `cluster`; `None` for an object the API server has not
/// stored yet (it has no uid), which never happens to one the operator reconciles.
fn owner_reference(cluster: &DEngineCluster) -> Option<OwnerReference> {
    cluster.controller_owner_ref(&())
}

#[cfg(test)]
mod tests;
