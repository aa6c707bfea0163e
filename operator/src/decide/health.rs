//! Waiting, and when waiting has lasted too long, reporting Degraded.
//!
//! A member that stays unhealthy is never removed for it: removing a voter that might come
//! back only lowers the number of failures the cluster survives, and `spec.replicas` says how
//! many members there should be. The operator reports it and waits.

use super::action::{DegradedReason, NextAction};
use super::led::Led;
use crate::observed::{NodeId, Observed, Ordinal, PodState};

/// The last check: every voter healthy means done.
pub(super) fn settled(led: &Led) -> NextAction {
    match led.first_unhealthy_voter() {
        Some(id) => wait_for_member(led, id),
        None => NextAction::Done,
    }
}

/// Waits for member `id` to be healthy, or reports it once it has not been for too long.
pub(super) fn wait_for_member(led: &Led, id: NodeId) -> NextAction {
    let for_ = led.unhealthy_for(id);
    if for_ > led.o.limits.degraded_after {
        return NextAction::ReportDegraded {
            reason: DegradedReason::MemberUnhealthy { id, for_ },
        };
    }
    let pod_ready = id
        .ordinal()
        .and_then(|k| led.o.pod(k))
        .is_some_and(|p| p.is_running() && p.ready);
    match id.ordinal() {
        Some(ordinal) if !pod_ready => NextAction::WaitForPod { ordinal },
        _ => NextAction::WaitForCatchUp { id },
    }
}

/// Waits for pod `ordinal` to run (a node in join mode runs but is not ready until added), or
/// reports it once it has not been running for too long. `None` when it runs.
pub(super) fn wait_for_running(o: &Observed, ordinal: Ordinal) -> Option<NextAction> {
    wait_for_pod(o, ordinal, |pod| pod.is_running())
}

/// Waits for pod `ordinal` to be ready, or reports it once it has not been for too long.
/// `None` when it is.
pub(super) fn wait_for_ready(o: &Observed, ordinal: Ordinal) -> Option<NextAction> {
    wait_for_pod(o, ordinal, |pod| pod.is_running() && pod.ready)
}

/// Waits for pod `ordinal` to be as `done` says, reporting the cluster degraded once it has
/// not been ready for longer than the limit. `None` when it is done.
fn wait_for_pod(
    o: &Observed,
    ordinal: Ordinal,
    done: impl Fn(&PodState) -> bool,
) -> Option<NextAction> {
    match o.pod(ordinal) {
        Some(pod) if done(pod) => None,
        Some(pod) if pod.unready_for > o.limits.degraded_after => {
            Some(NextAction::ReportDegraded {
                reason: DegradedReason::PodNotReady {
                    ordinal,
                    for_: pod.unready_for,
                },
            })
        }
        _ => Some(NextAction::WaitForPod { ordinal }),
    }
}
