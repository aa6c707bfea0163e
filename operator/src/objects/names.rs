//! The names of a cluster's objects and the addresses of its nodes.

use crate::observed::{NodeId, Ordinal};

/// Where the node keeps its data inside the pod: the volume claim template's mount.
pub const DATA_DIR: &str = "/var/lib/dengine";

/// The volume claim template's name; each pod's claim is `data-<pod>`.
pub const DATA_VOLUME: &str = "data";

/// Where pod 0 puts the backup a cluster is founded from (`spec.restoreFrom`), on its data
/// volume; removed once the cluster is founded.
pub const RESTORE_FILE: &str = "/var/lib/dengine/restore.dengine-backup";

/// The annotation the operator puts on a pod's claim before its node becomes a member, holding
/// the node id. A member whose claim lacks it lost its volume (see
/// [`crate::observed::Volume`]).
pub const CLAIM_MARK: &str = "dengine.io/member";

/// The names derived from one DEngineCluster's name and namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    pub cluster: String,
    pub namespace: String,
}

impl Names {
    pub fn new(cluster: impl Into<String>, namespace: impl Into<String>) -> Self {
        Names {
            cluster: cluster.into(),
            namespace: namespace.into(),
        }
    }

    /// The names of `cluster`'s objects (empty parts for a resource the API server has not
    /// stored, which the operator never reconciles).
    pub fn of(cluster: &crate::crd::DEngineCluster) -> Self {
        Names::new(
            cluster.metadata.name.clone().unwrap_or_default(),
            cluster.metadata.namespace.clone().unwrap_or_default(),
        )
    }

    /// The StatefulSet: named like the cluster, so pods are `<cluster>-<ordinal>` and a node
    /// derives its id from its pod name.
    pub fn stateful_set(&self) -> String {
        self.cluster.clone()
    }

    /// The headless Service giving each pod a stable DNS name for its peers.
    pub fn peer_service(&self) -> String {
        format!("{}-peers", self.cluster)
    }

    /// The client Service, made only when the pods run the node alone.
    pub fn client_service(&self) -> String {
        format!("{}-client", self.cluster)
    }

    /// The Secret with the CA of `spec.tls.generate` and the operator's own certificate: read
    /// by the operator only, never mounted into a pod.
    pub fn ca_secret(&self) -> String {
        format!("{}-ca", self.cluster)
    }

    /// The ConfigMap publishing the CA's certificate of `spec.tls.generate` for clients (as
    /// `kube-root-ca.crt` publishes the cluster's).
    pub fn ca_bundle(&self) -> String {
        format!("{}-ca.crt", self.cluster)
    }

    /// The host pod `ordinal` is reached at by its peers: what its certificate names.
    pub fn peer_host(&self, ordinal: Ordinal) -> String {
        format!("{}.{}", self.pod(ordinal), self.peer_domain())
    }

    /// The client Service's host, which a certificate names when the pods run the node alone.
    pub fn client_host(&self) -> String {
        format!("{}.{}.svc", self.client_service(), self.namespace)
    }

    pub fn config_map(&self) -> String {
        format!("{}-config", self.cluster)
    }

    pub fn disruption_budget(&self) -> String {
        self.cluster.clone()
    }

    pub fn pod(&self, ordinal: Ordinal) -> String {
        format!("{}-{ordinal}", self.cluster)
    }

    /// The PersistentVolumeClaim the StatefulSet makes for pod `ordinal`.
    pub fn claim(&self, ordinal: Ordinal) -> String {
        format!("{DATA_VOLUME}-{}", self.pod(ordinal))
    }

    /// The DNS suffix of the pods' stable names.
    fn peer_domain(&self) -> String {
        format!("{}.{}.svc", self.peer_service(), self.namespace)
    }

    /// The peer address a node in pod `ordinal` advertises (and is added to the cluster under).
    pub fn peer_address(&self, ordinal: Ordinal, peer_port: i32) -> String {
        format!("{}.{}:{peer_port}", self.pod(ordinal), self.peer_domain())
    }

    /// The advertised address as the pod template writes it: the node's own pod name comes from
    /// the downward API.
    pub fn advertised_peer_template(&self, peer_port: i32) -> String {
        format!("$(POD_NAME).{}:{peer_port}", self.peer_domain())
    }

    /// The token that makes this cluster's id differ from every other cluster's: its namespace
    /// and name, so a cluster recreated under the same name with its volumes kept is the same
    /// cluster.
    pub fn cluster_token(&self) -> String {
        format!("{}/{}", self.namespace, self.cluster)
    }

    /// The ordinal of one of this cluster's pods, from its name.
    pub fn ordinal_of(&self, pod_name: &str) -> Option<Ordinal> {
        pod_name
            .strip_prefix(&self.cluster)?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    /// The pod of node `id`.
    pub fn pod_of(&self, id: NodeId) -> Option<String> {
        id.ordinal().map(|k| self.pod(k))
    }
}
