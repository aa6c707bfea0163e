//! The owned objects as components, as etcd-druid's component operators: each kind says what it
//! is called and what the spec builds, and nothing else. Reading one, telling whether it is as
//! the spec asks, and writing or deleting it are the same for every kind, and live once in the
//! Kubernetes workload.

use std::fmt::Debug;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{client_service, config_map, disruption_budget, peer_service, stateful_set, Names};
use crate::crd::DEngineCluster;

/// What the operator decided, besides the spec, that the owned objects are built from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decided {
    /// The StatefulSet's replicas (left out of its spec hash).
    pub replicas: u32,
    /// Whether the founding is recorded (left out of the ConfigMap's spec hash).
    pub founded: bool,
}

/// One kind of object a DEngineCluster owns.
pub trait Component {
    /// The Kubernetes kind.
    type Object: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned;

    /// The object's name in the cluster's namespace.
    fn name(names: &Names) -> String;

    /// The object as the spec asks for it, or `None` when the spec asks for none (an object
    /// found then is deleted).
    fn build(cluster: &DEngineCluster, decided: Decided) -> Option<Self::Object>;
}

/// The StatefulSet running the members.
pub struct Members;

impl Component for Members {
    type Object = StatefulSet;

    fn name(names: &Names) -> String {
        names.stateful_set()
    }

    fn build(cluster: &DEngineCluster, decided: Decided) -> Option<StatefulSet> {
        Some(stateful_set(cluster, decided.replicas))
    }
}

/// The ConfigMap carrying the founding record.
pub struct FoundingRecord;

impl Component for FoundingRecord {
    type Object = ConfigMap;

    fn name(names: &Names) -> String {
        names.config_map()
    }

    fn build(cluster: &DEngineCluster, decided: Decided) -> Option<ConfigMap> {
        Some(config_map(cluster, decided.founded))
    }
}

/// The headless Service through which peers find each other.
pub struct PeerService;

impl Component for PeerService {
    type Object = Service;

    fn name(names: &Names) -> String {
        names.peer_service()
    }

    fn build(cluster: &DEngineCluster, _: Decided) -> Option<Service> {
        Some(peer_service(cluster))
    }
}

/// The client Service, present only when the pods run the node alone.
pub struct ClientService;

impl Component for ClientService {
    type Object = Service;

    fn name(names: &Names) -> String {
        names.client_service()
    }

    fn build(cluster: &DEngineCluster, _: Decided) -> Option<Service> {
        client_service(cluster)
    }
}

/// The PodDisruptionBudget keeping a quorum through drains.
pub struct DisruptionBudget;

impl Component for DisruptionBudget {
    type Object = PodDisruptionBudget;

    fn name(names: &Names) -> String {
        names.disruption_budget()
    }

    fn build(cluster: &DEngineCluster, _: Decided) -> Option<PodDisruptionBudget> {
        Some(disruption_budget(cluster))
    }
}
