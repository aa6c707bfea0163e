//! Rolling upgrade (and rollback) with an `OnDelete` StatefulSet: the operator deletes at most
//! one outdated pod per step, and only when every other voter is healthy. Followers go first;
//! the leader goes last, after handing leadership to an upgraded voter. A restarted pod must be
//! back, ready and caught up before the next one goes; one that is not within the deadline
//! stops the rollout, reported as Degraded, and nothing more is restarted.

use std::cmp::Reverse;

use super::action::NextAction;
use super::health;
use super::led::Led;
use crate::observed::PodState;

/// Runs only once the membership is settled: every wanted pod a voter, nothing else.
pub(super) fn decide(led: &Led) -> Option<NextAction> {
    let update_revision = &led.o.stateful_set.as_ref()?.update_revision;
    let is_outdated = |p: &PodState| p.revision != *update_revision;
    let target = led
        .o
        .pods
        .iter()
        .filter(|p| p.ordinal < led.wanted() && !p.deleting && is_outdated(p))
        // Pods that are down already first, then followers from the highest ordinal down
        // (as the StatefulSet controller would), the leader last.
        .min_by_key(|p| {
            (
                p.node_id() == led.leader,
                led.is_healthy(p.node_id()),
                Reverse(p.ordinal),
            )
        })?;
    let target_id = target.node_id();
    let unhealthy_other = led
        .voters()
        .map(|m| m.id)
        .filter(|&id| id != target_id)
        .find(|&id| !led.is_healthy(id));
    if let Some(id) = unhealthy_other {
        return Some(health::wait_for_member(led, id));
    }
    if target_id == led.leader && led.voters().count() > 1 {
        let upgraded = |id: crate::observed::NodeId| {
            id.ordinal()
                .and_then(|k| led.o.pod(k))
                .is_some_and(|p| !is_outdated(p))
        };
        return Some(led.transfer_off(target_id, |_| true, upgraded));
    }
    Some(NextAction::UpgradePod {
        ordinal: target.ordinal,
    })
}
