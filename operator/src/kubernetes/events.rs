//! The Event recorded on the DEngineCluster for each step that changes something.

use kube::runtime::events::{Event, EventType};

use crate::decide::NextAction;

/// The Event for `action`, if it changes the cluster or reports trouble; waiting records
/// nothing (the status says what the operator waits for).
pub fn event_for(action: &NextAction) -> Option<Event> {
    let (type_, reason, note) = match action {
        NextAction::Paused
        | NextAction::Done
        | NextAction::WaitForPod { .. }
        | NextAction::WaitForLeader
        | NextAction::WaitForCatchUp { .. } => return None,
        NextAction::ApplyObjects => (EventType::Normal, "AppliedObjects", "applied the StatefulSet, Services, ConfigMap and PodDisruptionBudget".to_string()),
        NextAction::Bootstrap => (EventType::Normal, "Bootstrapping", "started pod 0 to found a one-member cluster".to_string()),
        NextAction::ClaimVolume { ordinal } => (EventType::Normal, "ClaimedVolume", format!("marked pod {ordinal}'s volume as node {}'s", ordinal + 1)),
        NextAction::RecordFounded => (EventType::Normal, "Founded", "recorded the founding: every pod started from now on joins".to_string()),
        NextAction::AddLearner { ordinal } => (EventType::Normal, "AddedLearner", format!("added node {} (pod {ordinal}) as a learner", ordinal + 1)),
        NextAction::PromoteLearner { id } => (EventType::Normal, "PromotedLearner", format!("promoted node {id} to voter: it caught up")),
        NextAction::GrowStatefulSet { to } => (EventType::Normal, "Grew", format!("set the StatefulSet to {to} pods")),
        NextAction::TransferLeadership { from, to } => (EventType::Normal, "TransferredLeadership", format!("moved leadership from node {from} to node {to}")),
        NextAction::RemoveMember { id } => (EventType::Normal, "RemovedMember", format!("removed node {id} from the cluster")),
        NextAction::ShrinkStatefulSet { to } => (EventType::Normal, "Shrank", format!("set the StatefulSet to {to} pods")),
        NextAction::ReplaceMember { ordinal } => (EventType::Warning, "ReplacingMember", format!("pod {ordinal} came back with an empty volume: removed node {}'s old identity; it is added again as a learner", ordinal + 1)),
        NextAction::UpgradePod { ordinal } => (EventType::Normal, "UpgradedPod", format!("deleted pod {ordinal} to restart it on the new version")),
        NextAction::ReportDegraded { reason } => (EventType::Warning, reason.reason(), reason.to_string()),
    };
    Some(Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: reason.to_string(),
        secondary: None,
    })
}
