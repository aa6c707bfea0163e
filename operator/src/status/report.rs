//! The status a step reports: what the operator saw and what it is doing about it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{
    set_condition, ConditionType, DEngineClusterStatus, LeaderStatus, MemberStatus, Phase,
};
use crate::decide::NextAction;
use crate::driver::Step;
use crate::objects::Names;
use crate::observed::{quorum, MemberRole};

/// The status after `step`, starting from the `previous` one so that conditions keep their
/// transition times while they hold.
pub fn report(
    previous: Option<&DEngineClusterStatus>,
    step: &Step,
    names: &Names,
    generation: Option<i64>,
    now: Time,
) -> DEngineClusterStatus {
    let observed = &step.observed;
    let view = observed.cluster.as_ref();
    let leader = view.and_then(|v| v.leader);
    let members: Vec<MemberStatus> = view
        .map(|v| {
            v.members
                .iter()
                .filter_map(|m| {
                    let pod = names.pod_of(m.id)?;
                    let ready =
                        m.id.ordinal()
                            .and_then(|k| observed.pod(k))
                            .is_some_and(|p| p.ready && !p.deleting);
                    let lag = if Some(m.id) == leader {
                        0
                    } else {
                        v.commit_index.saturating_sub(m.match_index)
                    };
                    Some(MemberStatus {
                        pod,
                        node_id: m.id.0,
                        role: m.role,
                        ready,
                        lag,
                        connection_error: m.connection_error.clone(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let voters = members
        .iter()
        .filter(|m| m.role == MemberRole::Voter)
        .count();
    let ready_voters = members
        .iter()
        .filter(|m| m.role == MemberRole::Voter && m.ready)
        .count();
    let mut versions = step.workload.versions.values();
    let current_version = versions.next().filter(|first| {
        step.workload.versions.len() == observed.pods.len() && versions.all(|v| v == *first)
    });

    let mut status = DEngineClusterStatus {
        observed_generation: generation,
        phase: phase(step),
        leader: leader.and_then(|id| {
            Some(LeaderStatus {
                node_id: id.0,
                pod: names.pod_of(id)?,
            })
        }),
        ready_members: i32::try_from(members.iter().filter(|m| m.ready).count()).unwrap_or(0),
        members,
        current_version: current_version.cloned(),
        target_version: Some(observed.spec.version.clone()),
        // Backups are recorded after the step (kubernetes::backups), over what was.
        backup: previous.and_then(|p| p.backup.clone()),
        restore: previous.and_then(|p| p.restore.clone()),
        certificates: previous.and_then(|p| p.certificates.clone()),
        conditions: previous.map(|p| p.conditions.clone()).unwrap_or_default(),
    };

    let available = leader.is_some() && voters > 0 && ready_voters >= quorum(voters);
    let (reason, message) = if available {
        (
            "QuorumReady",
            format!(
                "{ready_voters} of {voters} voters ready; leader is node {}",
                leader.map_or(0, |l| l.0)
            ),
        )
    } else if leader.is_none() {
        ("NoLeader", "no member answered as the leader".to_string())
    } else {
        (
            "QuorumNotReady",
            format!("{ready_voters} of {voters} voters ready, fewer than a quorum"),
        )
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Available,
        available,
        reason,
        &message,
        generation,
        now.clone(),
    );

    let (progressing, reason, message) = progress(&step.action);
    set_condition(
        &mut status.conditions,
        ConditionType::Progressing,
        progressing,
        reason,
        &message,
        generation,
        now.clone(),
    );

    let (degraded, reason, message) = match &step.action {
        NextAction::ReportDegraded { reason } => (true, reason.reason(), reason.to_string()),
        _ => (false, "Healthy", String::new()),
    };
    set_condition(
        &mut status.conditions,
        ConditionType::Degraded,
        degraded,
        reason,
        &message,
        generation,
        now,
    );
    status
}

/// The status when the operator cannot take a step because of `error` (a missing Secret, say):
/// Degraded, with the error as the message, the rest as before.
pub fn report_error(
    previous: Option<&DEngineClusterStatus>,
    reason: &str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) -> DEngineClusterStatus {
    let mut status = previous.cloned().unwrap_or_default();
    status.observed_generation = generation;
    status.phase = Phase::Degraded;
    set_condition(
        &mut status.conditions,
        ConditionType::Degraded,
        true,
        reason,
        message,
        generation,
        now,
    );
    status
}

fn phase(step: &Step) -> Phase {
    let observed = &step.observed;
    match &step.action {
        NextAction::Paused => return Phase::Paused,
        NextAction::ReportDegraded { .. } => return Phase::Degraded,
        NextAction::Done => return Phase::Running,
        NextAction::UpgradePod { .. } => return Phase::Upgrading,
        _ => {}
    }
    if !observed.founded {
        return if observed.stateful_set_replicas() == 0 {
            Phase::Pending
        } else {
            Phase::Bootstrapping
        };
    }
    let outdated = observed.stateful_set.as_ref().is_some_and(|s| {
        observed
            .pods
            .iter()
            .any(|p| !p.deleting && p.revision != s.update_revision)
    });
    let members = observed.cluster.as_ref().map_or(0, |c| c.members.len());
    let settled = members == observed.spec.member_count() as usize
        && observed.stateful_set_replicas() == observed.spec.member_count();
    if settled && (outdated || matches!(step.action, NextAction::TransferLeadership { .. })) {
        Phase::Upgrading
    } else {
        Phase::Scaling
    }
}

/// The Progressing condition for an action: whether the operator is changing the cluster,
/// and what it is doing or waiting for.
fn progress(action: &NextAction) -> (bool, &'static str, String) {
    match action {
        NextAction::Paused => (false, "Paused", "spec.paused is set".to_string()),
        NextAction::Done => (
            false,
            "Settled",
            "every member is a healthy voter".to_string(),
        ),
        NextAction::ReportDegraded { reason } => (false, reason.reason(), reason.to_string()),
        NextAction::ApplyObjects => (true, "ApplyingObjects", "applying the owned objects".into()),
        NextAction::Bootstrap => (
            true,
            "Bootstrapping",
            "pod 0 founds a one-member cluster".into(),
        ),
        NextAction::ClaimVolume { ordinal } => (
            true,
            "ClaimingVolume",
            format!("marking pod {ordinal}'s volume before its node joins"),
        ),
        NextAction::RecordFounded => (
            true,
            "RecordingFounding",
            "recording that the cluster exists: pods join from now on".into(),
        ),
        NextAction::WaitForPod { ordinal } => (
            true,
            "WaitingForPod",
            format!("waiting for pod {ordinal} to run and be ready"),
        ),
        NextAction::WaitForLeader => (true, "WaitingForLeader", "waiting for a leader".into()),
        NextAction::AddLearner { ordinal } => (
            true,
            "AddingLearner",
            format!("adding node {} (pod {ordinal}) as a learner", ordinal + 1),
        ),
        NextAction::WaitForCatchUp { id } => (
            true,
            "WaitingForCatchUp",
            format!("waiting for node {id} to catch up with the leader"),
        ),
        NextAction::PromoteLearner { id } => (
            true,
            "PromotingLearner",
            format!("promoting learner {id} to voter"),
        ),
        NextAction::GrowStatefulSet { to } => (
            true,
            "Growing",
            format!("growing the StatefulSet to {to} pods"),
        ),
        NextAction::TransferLeadership { from, to } => (
            true,
            "TransferringLeadership",
            format!("moving leadership from node {from} to node {to}"),
        ),
        NextAction::RemoveMember { id } => (
            true,
            "RemovingMember",
            format!("removing node {id} from the cluster"),
        ),
        NextAction::ShrinkStatefulSet { to } => (
            true,
            "Shrinking",
            format!("shrinking the StatefulSet to {to} pods"),
        ),
        NextAction::ReplaceMember { ordinal } => (
            true,
            "ReplacingMember",
            format!(
                "pod {ordinal} lost its volume: removing node {}'s old identity to add it again",
                ordinal + 1
            ),
        ),
        NextAction::UpgradePod { ordinal } => (
            true,
            "UpgradingPod",
            format!("restarting pod {ordinal} on the new version"),
        ),
    }
}
