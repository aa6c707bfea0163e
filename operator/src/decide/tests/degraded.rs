//! Waiting that lasts too long is reported as Degraded, and never answered by removing members.

use std::time::Duration;

use super::fixtures::*;
use crate::decide::{DegradedReason, NextAction};
use crate::observed::NodeId;

#[test]
fn a_member_unhealthy_beyond_the_deadline_is_reported() {
    let down = healthy(3).pod(2, not_ready(TOO_LONG));
    assert_eq!(
        down.decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::MemberUnhealthy {
                id: NodeId(3),
                for_: Duration::from_secs(TOO_LONG)
            }
        }
    );
    let silent_member = healthy(3).member(2, silent(TOO_LONG));
    assert!(matches!(
        silent_member.decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::MemberUnhealthy { id: NodeId(2), .. }
        }
    ));
}

#[test]
fn at_the_deadline_it_is_still_waited_for() {
    let down = healthy(3).pod(2, not_ready(300));
    assert_eq!(down.decide(), NextAction::WaitForPod { ordinal: 2 });
}

#[test]
fn a_long_lost_member_is_never_removed_nor_its_pod_dropped() {
    for n in [3u32, 5, 7] {
        let lost = healthy(n)
            .no_pod(n - 1)
            .member(u64::from(n), silent(100_000));
        let action = lost.decide();
        assert!(
            matches!(action, NextAction::ReportDegraded { .. }),
            "{n} members: {action:?}"
        );
    }
}

#[test]
fn no_leader_beyond_the_deadline_is_reported() {
    let all_down = |seconds| {
        healthy(3)
            .no_leader()
            .pod(0, not_ready(seconds))
            .pod(1, not_ready(seconds + 5))
            .pod(2, not_ready(seconds + 9))
    };
    assert_eq!(all_down(100).decide(), NextAction::WaitForLeader);
    assert_eq!(
        all_down(TOO_LONG).decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::NoLeader {
                for_: Duration::from_secs(TOO_LONG)
            }
        }
    );
    assert_eq!(
        healthy(3).no_cluster_view().decide(),
        NextAction::WaitForLeader
    );
}

#[test]
fn the_reason_names_the_condition_and_says_what_happens() {
    let reason = DegradedReason::QuorumAtRisk {
        id: NodeId(5),
        healthy: 2,
        voters: 4,
    };
    assert_eq!(reason.reason(), "QuorumAtRisk");
    let message = reason.to_string();
    assert!(
        message.contains("member 5") && message.contains("2 healthy of 4"),
        "{message}"
    );
}
