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

use super::{client_service, config_map, disruption_budget, peer_service, stateful_set_for, Names};
use crate::crd::DEngineCluster;

/// What the operator decided, besides the spec, that the owned objects are built from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decided {
    /// The StatefulSet's replicas (left out of its spec hash).
    pub replicas: u32,
    /// Whether the founding is recorded (left out of the ConfigMap's spec hash; in the
    /// StatefulSet's only for a cluster restored from a claim, which pod 0 lets go of then).
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

/// A unit type per kind, its [`Component`] impl naming the object by `Names::$name` and
/// building it with `$build`.
macro_rules! component {
    ($(#[$doc:meta])* $component:ident: $object:ty, $name:ident, $build:expr) => {
        $(#[$doc])*
        pub struct $component;

        impl Component for $component {
            type Object = $object;

            fn name(names: &Names) -> String {
                names.$name()
            }

            fn build(cluster: &DEngineCluster, decided: Decided) -> Option<$object> {
                let build: fn(&DEngineCluster, Decided) -> Option<$object> = $build;
                build(cluster, decided)
            }
        }
    };
}

component!(
    /// The StatefulSet running the members.
    Members: StatefulSet,
    stateful_set,
    |cluster, decided| Some(stateful_set_for(cluster, decided))
);
component!(
    /// The ConfigMap carrying the founding record.
    FoundingRecord: ConfigMap,
    config_map,
    |cluster, decided| Some(config_map(cluster, decided.founded))
);
component!(
    /// The headless Service through which peers find each other.
    PeerService: Service,
    peer_service,
    |cluster, _| Some(peer_service(cluster))
);
component!(
    /// The client Service, present only when the pods run the node alone.
    ClientService: Service,
    client_service,
    |cluster, _| client_service(cluster)
);
component!(
    /// The PodDisruptionBudget keeping a quorum through drains.
    DisruptionBudget: PodDisruptionBudget,
    disruption_budget,
    |cluster, _| Some(disruption_budget(cluster))
);
