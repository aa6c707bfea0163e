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
