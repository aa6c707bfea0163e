//! A founded cluster with no leader in sight: change no membership, bring back the pods the
//! spec asks for, and report it if it lasts.

use std::time::Duration;

use super::action::{DegradedReason, NextAction};
use crate::observed::Observed;

/// The next step for a founded cluster whose leader did not answer.
pub(super) fn decide(o: &Observed) -> NextAction {
    let wanted = o.spec.member_count();
    let replicas = o.stateful_set_replicas();
    if replicas < wanted {
        // `spec.replicas` is the truth. Pods that come back with their volumes resume as the
        // members they were and may restore the quorum; new ones wait in join mode.
        return NextAction::GrowStatefulSet { to: wanted };
    }
    // Every node answers not-ready while it knows no leader, so the leader has been missing
    // at least as long as the pod that was ready last.
    let since_last_ready = o
        .pods
        .iter()
        .filter(|p| p.ordinal < replicas)
        .map(|p| {
            if p.ready {
                Duration::ZERO
            } else {
                p.unready_for
            }
        })
        .min()
        .unwrap_or(Duration::ZERO);
    if since_last_ready > o.limits.degraded_after {
        return NextAction::ReportDegraded {
            reason: DegradedReason::NoLeader {
                for_: since_last_ready,
            },
        };
    }
    NextAction::WaitForLeader
}
