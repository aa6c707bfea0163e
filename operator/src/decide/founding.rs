//! Founding: pod 0 bootstraps a one-member cluster, exactly once.
//!
//! Until the founding record is in the ConfigMap, pod 0 starts as a founding member; from then
//! on every pod joins. So the record must be written as soon as a cluster exists, and nothing
//! may bootstrap while there is any sign of one: a member seen through the Admin API, a marked
//! volume, or the record itself.

use super::action::NextAction;
use super::health;
use crate::observed::{NodeId, Observed, Volume};

/// The next step while the founding record is not written.
pub(super) fn decide(o: &Observed) -> NextAction {
    if o.cluster_exists() {
        return record(o);
    }
    if o.stateful_set_replicas() == 0 {
        // Pods left from an earlier StatefulSet may still be going away; only an empty
        // StatefulSet with no pods is a clean start.
        return match o.pods.iter().map(|p| p.ordinal).min() {
            None => NextAction::Bootstrap,
            Some(ordinal) => NextAction::WaitForPod { ordinal },
        };
    }
    if let Some(wait) = health::wait_for_ready(o, 0) {
        return wait;
    }
    // Pod 0 is ready, so it knows a leader; the operator has yet to reach it.
    NextAction::WaitForLeader
}

/// A cluster exists: mark the founder's volume, then write the record.
fn record(o: &Observed) -> NextAction {
    // The founder's volume first: once the record is written, a member whose volume is not
    // marked counts as one that lost its volume, and would be replaced.
    let founder_is_member = o
        .cluster
        .as_ref()
        .is_some_and(|c| c.members.iter().any(|m| m.id == NodeId::of_ordinal(0)));
    let founder_unmarked = o
        .pod(0)
        .is_some_and(|p| p.volume == Volume::Fresh && !p.deleting);
    if founder_is_member && founder_unmarked {
        return NextAction::ClaimVolume { ordinal: 0 };
    }
    NextAction::RecordFounded
}
