//! The Event recorded on the DEngineCluster for each step that changes something.

use kube::runtime::events::{Event, EventType};

use crate::decide::NextAction;

/// The Event for `action`, if it changes the cluster or reports trouble; waiting records
/// nothing (the status says what the operator waits for).
pub fn event_for(action: &NextAction) -> Option<Event> {
    use EventType::{Normal, Warning};
    // The action names the step's target: kube's Recorder folds Events with the same reason
    // and action into one series, and each step should stay visible on its own.
    let (type_, reason, action, note) = match action {
        NextAction::Paused
        | NextAction::Done
        | NextAction::WaitForPod { .. }
        | NextAction::WaitForLeader
        | NextAction::WaitForCatchUp { .. } => return None,
        NextAction::ApplyObjects => (
            Normal,
            "AppliedObjects",
            "Apply".to_string(),
            "applied the StatefulSet, Services, ConfigMap and PodDisruptionBudget".to_string(),
        ),
        NextAction::Bootstrap => (
            Normal,
            "Bootstrapping",
            "SetReplicas1".to_string(),
            "started pod 0 to found a one-member cluster".to_string(),
        ),
        NextAction::ClaimVolume { ordinal } => (
            Normal,
            "ClaimedVolume",
            format!("ClaimVolumePod{ordinal}"),
            format!("marked pod {ordinal}'s volume as node {}'s", ordinal + 1),
        ),
        NextAction::RecordFounded => (
            Normal,
            "Founded",
            "RecordFounding".to_string(),
            "recorded the founding: every pod started from now on joins".to_string(),
        ),
        NextAction::AddLearner { ordinal } => (
            Normal,
            "AddedLearner",
            format!("AddLearnerNode{}", ordinal + 1),
            format!("added node {} (pod {ordinal}) as a learner", ordinal + 1),
        ),
        NextAction::PromoteLearner { id } => (
            Normal,
            "PromotedLearner",
            format!("PromoteNode{id}"),
            format!("promoted node {id} to voter: it caught up"),
        ),
        NextAction::GrowStatefulSet { to } => (
            Normal,
            "Grew",
            format!("SetReplicas{to}"),
            format!("set the StatefulSet to {to} pods"),
        ),
        NextAction::TransferLeadership { from, to } => (
            Normal,
            "TransferredLeadership",
            format!("TransferNode{from}ToNode{to}"),
            format!("moved leadership from node {from} to node {to}"),
        ),
        NextAction::RemoveMember { id } => (
            Normal,
            "RemovedMember",
            format!("RemoveNode{id}"),
            format!("removed node {id} from the cluster"),
        ),
        NextAction::ShrinkStatefulSet { to } => (
            Normal,
            "Shrank",
            format!("SetReplicas{to}"),
            format!("set the StatefulSet to {to} pods"),
        ),
        NextAction::ReplaceMember { ordinal } => (
            Warning,
            "ReplacingMember",
            format!("RemoveNode{}", ordinal + 1),
            format!(
                "pod {ordinal} came back with an empty volume: removed node {}'s old identity; \
                 it is added again as a learner",
                ordinal + 1
            ),
        ),
        NextAction::UpgradePod { ordinal } => (
            Normal,
            "UpgradedPod",
            format!("DeletePod{ordinal}"),
            format!("deleted pod {ordinal} to restart it on the new version"),
        ),
        NextAction::ReportDegraded { reason } => (
            Warning,
            reason.reason(),
            "Wait".to_string(),
            reason.without_durations(),
        ),
    };
    Some(Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action,
        secondary: None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::decide::DegradedReason;

    /// The API server folds a repeated Event into a series that keeps its first message: an
    /// Event saying "303s" while the condition says "348s" misleads. The growing number lives
    /// in the condition; the Event says the same thing whenever it repeats.
    #[test]
    fn a_repeated_degraded_event_says_the_same_whatever_the_duration() {
        let reasons = |for_| {
            [
                DegradedReason::NoLeader { for_ },
                DegradedReason::PodNotReady { ordinal: 2, for_ },
                DegradedReason::MemberUnhealthy {
                    id: crate::observed::NodeId(3),
                    for_,
                },
            ]
        };
        for (early, late) in reasons(Duration::from_secs(303))
            .into_iter()
            .zip(reasons(Duration::from_secs(348)))
        {
            let note = |reason| event_for(&NextAction::ReportDegraded { reason })?.note;
            assert_eq!(note(early.clone()), note(late.clone()));
            assert_ne!(
                early.to_string(),
                late.to_string(),
                "the condition keeps the number"
            );
            assert!(!note(late).unwrap_or_default().contains("348"));
        }
    }
}
