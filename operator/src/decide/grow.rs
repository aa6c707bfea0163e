//! Growing one member at a time: the StatefulSet gets one more pod, which starts in join mode;
//! its volume is marked, its node added as a learner, and promoted once caught up. Only then
//! does the StatefulSet grow again.

use super::action::NextAction;
use super::health;
use super::led::Led;
use crate::observed::{NodeId, Volume};

/// Members whose pods are beyond the StatefulSet (someone shrank it, or a crash left it so):
/// the pods come back. The membership is never cut down to the pods that are seen.
pub(super) fn restore_pods(led: &Led) -> Option<NextAction> {
    let replicas = led.o.stateful_set_replicas();
    let highest = led
        .view
        .members
        .iter()
        .filter_map(|m| m.id.ordinal())
        .filter(|&k| k >= replicas && k < led.wanted())
        .max()?;
    Some(NextAction::GrowStatefulSet { to: highest + 1 })
}

/// A learner that belongs: promote it once caught up.
pub(super) fn promote_learners(led: &Led) -> Option<NextAction> {
    let learner = led
        .learners()
        .filter(|m| led.is_wanted(m.id))
        .min_by_key(|m| m.id)?;
    if !led.is_healthy(learner.id) {
        return Some(health::wait_for_member(led, learner.id));
    }
    if let Err(reason) = led.check_promotion(learner.id) {
        return Some(NextAction::ReportDegraded { reason });
    }
    Some(NextAction::PromoteLearner { id: learner.id })
}

/// The lowest pod that should be a member but is not: mark its volume, then add it.
pub(super) fn add_learner(led: &Led) -> Option<NextAction> {
    let pods = led.o.stateful_set_replicas().min(led.wanted());
    let ordinal = (0..pods).find(|&k| led.member(NodeId::of_ordinal(k)).is_none())?;
    if let Some(wait) = health::wait_for_running(led.o, ordinal) {
        return Some(wait);
    }
    let volume = led.o.pod(ordinal).map(|p| p.volume);
    Some(match volume {
        Some(Volume::Fresh) => NextAction::ClaimVolume { ordinal },
        _ => NextAction::AddLearner { ordinal },
    })
}

/// Every pod is a voter: one more pod, if the spec asks for more and every voter is healthy.
pub(super) fn grow_stateful_set(led: &Led) -> Option<NextAction> {
    let replicas = led.o.stateful_set_replicas();
    if replicas >= led.wanted() {
        return None;
    }
    if let Some(id) = led.first_unhealthy_voter() {
        return Some(health::wait_for_member(led, id));
    }
    Some(NextAction::GrowStatefulSet { to: replicas + 1 })
}
