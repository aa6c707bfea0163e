//! Replacing a member whose pod came back with an empty volume.
//!
//! Its node starts with an empty log under an id the cluster knows. As a voter it would vote
//! as if it still held the entries it once acknowledged, and a committed entry could be lost.
//! So its old identity is removed first; the pod is then added again as a learner and promoted
//! once caught up, like any new member (see `grow`).

use super::action::NextAction;
use super::led::Led;
use crate::observed::Volume;

/// Removes the identity of the first member whose pod's volume is not marked.
pub(super) fn decide(led: &Led) -> Option<NextAction> {
    let mut pods: Vec<_> = led
        .o
        .pods
        .iter()
        .filter(|p| p.ordinal < led.wanted() && p.volume == Volume::Fresh && !p.deleting)
        .collect();
    pods.sort_by_key(|p| p.ordinal);
    let (pod, member) = pods
        .into_iter()
        .find_map(|p| led.member(p.node_id()).map(|m| (p, m)))?;
    if member.id == led.leader {
        return Some(led.transfer_off(member.id, |_| true, |id| led.is_wanted(id)));
    }
    if let Err(reason) = led.check_removal(member.id) {
        return Some(NextAction::ReportDegraded { reason });
    }
    Some(NextAction::ReplaceMember {
        ordinal: pod.ordinal,
    })
}
