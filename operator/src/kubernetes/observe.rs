//! Reading pods and their claims into the operator's plain view of them.

use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;

use crate::crd::NODE_CONTAINER_NAME;
use crate::objects::{Names, CLAIM_MARK};
use crate::observed::{NodeId, PodPhase, PodState, Volume};

/// The label the StatefulSet controller puts on each pod: the template revision it was made
/// from.
const REVISION_LABEL: &str = "controller-revision-hash";

/// One pod as the operator sees it, with its claim (if it exists yet); `None` for a pod that
/// is not one of this cluster's ordinals.
pub fn pod_state(
    names: &Names,
    pod: &Pod,
    claim: Option<&PersistentVolumeClaim>,
    now: Timestamp,
) -> Option<PodState> {
    let ordinal = names.ordinal_of(pod.metadata.name.as_deref()?)?;
    let status = pod.status.as_ref();
    let phase = match status.and_then(|s| s.phase.as_deref()) {
        Some("Running") => PodPhase::Running,
        Some("Succeeded") => PodPhase::Succeeded,
        Some("Failed") => PodPhase::Failed,
        Some("Pending") => PodPhase::Pending,
        _ => PodPhase::Unknown,
    };
    let ready_condition = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
    let ready = ready_condition.is_some_and(|c| c.status == "True");
    let unready_since = ready_condition
        .and_then(|c| c.last_transition_time.as_ref())
        .or(pod.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    let unready_for = match (ready, unready_since) {
        (false, Some(since)) => {
            let seconds = now.duration_since(since).as_secs();
            Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
        }
        _ => Duration::ZERO,
    };
    let node_id = NodeId::of_ordinal(ordinal);
    let marked = claim
        .and_then(|c| c.metadata.annotations.as_ref())
        .and_then(|a| a.get(CLAIM_MARK))
        .is_some_and(|mark| *mark == node_id.to_string());
    Some(PodState {
        ordinal,
        revision: pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(REVISION_LABEL))
            .cloned()
            .unwrap_or_default(),
        phase,
        ready,
        unready_for,
        deleting: pod.metadata.deletion_timestamp.is_some(),
        volume: if marked {
            Volume::Claimed
        } else {
            Volume::Fresh
        },
    })
}

/// The node version a pod runs: the tag of its node container's image.
pub fn pod_version(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let node = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .find(|c| c.name == NODE_CONTAINER_NAME)?;
    let image = node.image.as_deref()?;
    let name = image.rsplit('/').next()?;
    name.split_once(':').map(|(_, tag)| tag.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names() -> Names {
        Names::new("orders", "shop")
    }

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).expect("a pod")
    }

    fn claim(mark: Option<&str>) -> PersistentVolumeClaim {
        let annotations = mark.map(|m| json!({ CLAIM_MARK: m })).unwrap_or(json!({}));
        serde_json::from_value(json!({
            "metadata": { "name": "data-orders-2", "annotations": annotations }
        }))
        .expect("a claim")
    }

    fn now() -> Timestamp {
        "2026-11-23T12:10:00Z".parse().expect("a timestamp")
    }

    #[test]
    fn a_running_ready_pod_with_its_marked_claim() {
        let p = pod(json!({
            "metadata": {
                "name": "orders-2",
                "labels": { "controller-revision-hash": "orders-abc" },
                "creationTimestamp": "2026-11-23T12:00:00Z",
            },
            "spec": {
                "initContainers": [{ "name": "dengine", "image": "registry:5000/d-engine/dengine:0.2.0" }],
                "containers": [{ "name": "app", "image": "app:1" }],
            },
            "status": {
                "phase": "Running",
                "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": "2026-11-23T12:01:00Z" }],
            },
        }));
        let state = pod_state(&names(), &p, Some(&claim(Some("3"))), now()).expect("ours");
        assert_eq!(state.ordinal, 2);
        assert_eq!(state.revision, "orders-abc");
        assert_eq!(state.phase, PodPhase::Running);
        assert!(state.ready);
        assert_eq!(state.unready_for, Duration::ZERO);
        assert!(!state.deleting);
        assert_eq!(state.volume, Volume::Claimed);
        assert_eq!(pod_version(&p).as_deref(), Some("0.2.0"));
    }

    #[test]
    fn an_unready_pod_counts_from_its_last_transition_or_its_creation() {
        let flipped = pod(json!({
            "metadata": { "name": "orders-2", "creationTimestamp": "2026-11-23T11:00:00Z" },
            "status": {
                "phase": "Running",
                "conditions": [{ "type": "Ready", "status": "False", "lastTransitionTime": "2026-11-23T12:09:00Z" }],
            },
        }));
        let state = pod_state(&names(), &flipped, None, now()).expect("ours");
        assert_eq!(state.unready_for, Duration::from_secs(60));
        let never = pod(json!({
            "metadata": { "name": "orders-2", "creationTimestamp": "2026-11-23T12:00:00Z",
                          "deletionTimestamp": "2026-11-23T12:09:59Z" },
            "status": { "phase": "Pending" },
        }));
        let state = pod_state(&names(), &never, None, now()).expect("ours");
        assert_eq!(state.unready_for, Duration::from_secs(600));
        assert_eq!(state.phase, PodPhase::Pending);
        assert!(state.deleting);
    }

    #[test]
    fn a_claim_marked_for_another_node_or_unmarked_is_fresh() {
        let p = pod(json!({ "metadata": { "name": "orders-2" } }));
        for c in [claim(None), claim(Some("2"))] {
            let state = pod_state(&names(), &p, Some(&c), now()).expect("ours");
            assert_eq!(state.volume, Volume::Fresh);
        }
    }

    #[test]
    fn pods_of_another_cluster_are_not_ours() {
        for name in ["orders-db-0", "payments-1", "orders-x"] {
            let p = pod(json!({ "metadata": { "name": name } }));
            assert!(pod_state(&names(), &p, None, now()).is_none(), "{name}");
        }
    }
}
