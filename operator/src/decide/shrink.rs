//! Shrinking: each member beyond `spec.replicas`, highest first, loses leadership if it has it
//! and is removed from the Raft group; then the StatefulSet shrinks. A removal that would leave
//! fewer healthy voters than a quorum waits, reported as Degraded.

use super::action::NextAction;
use super::led::Led;

/// The highest member beyond `spec.replicas`: move leadership off it, then remove it.
pub(super) fn remove_member(led: &Led) -> Option<NextAction> {
    let member = led
        .view
        .members
        .iter()
        .filter(|m| !led.is_wanted(m.id))
        .max_by_key(|m| m.id)?;
    if member.id == led.leader {
        return Some(led.transfer_off(member.id, |id| led.is_wanted(id), |_| true));
    }
    if let Err(reason) = led.check_removal(member.id) {
        return Some(NextAction::ReportDegraded { reason });
    }
    Some(NextAction::RemoveMember { id: member.id })
}

/// No member is beyond `spec.replicas`: the pods beyond it can go.
pub(super) fn shrink_stateful_set(led: &Led) -> Option<NextAction> {
    let wanted = led.wanted();
    (led.o.stateful_set_replicas() > wanted).then_some(NextAction::ShrinkStatefulSet { to: wanted })
}
