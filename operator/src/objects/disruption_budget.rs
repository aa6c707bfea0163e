//! The PodDisruptionBudget: voluntary evictions (node drains) keep a quorum of pods.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{owned_meta, selector_labels, with_spec_hash, Names};
use crate::crd::DEngineCluster;
use crate::observed::quorum;

/// minAvailable is a quorum of `spec.replicas`: a drain may take the pods beyond it, never the
/// quorum itself. The operator's own restarts delete pods, which budgets do not limit; it
/// guards the quorum itself.
pub fn disruption_budget(cluster: &DEngineCluster) -> PodDisruptionBudget {
    let names = Names::of(cluster);
    let members = cluster.spec.member_count() as usize;
    with_spec_hash(PodDisruptionBudget {
        metadata: owned_meta(cluster, names.disruption_budget()),
        spec: Some(PodDisruptionBudgetSpec {
            min_available: Some(IntOrString::Int(quorum(members) as i32)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
