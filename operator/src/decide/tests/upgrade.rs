//! Rolling upgrade: one outdated pod per step, followers first, the leader last.

use super::fixtures::*;
use crate::decide::{DegradedReason, NextAction};
use crate::observed::{MemberRole, NodeId};

/// A healthy cluster of three whose StatefulSet template moved to `r2`.
fn rolling() -> Fixture {
    healthy(3).update_revision("r2")
}

#[test]
fn followers_go_first_from_the_highest_then_the_leader_after_a_transfer() {
    let steps = [
        (rolling(), NextAction::UpgradePod { ordinal: 2 }),
        (
            rolling().pod(2, at_revision("r2")),
            NextAction::UpgradePod { ordinal: 1 },
        ),
        (
            rolling()
                .pod(2, at_revision("r2"))
                .pod(1, at_revision("r2")),
            NextAction::TransferLeadership {
                from: NodeId(1),
                to: NodeId(2),
            },
        ),
        (
            rolling()
                .pod(2, at_revision("r2"))
                .pod(1, at_revision("r2"))
                .leader(2),
            NextAction::UpgradePod { ordinal: 0 },
        ),
        (
            rolling()
                .pod(2, at_revision("r2"))
                .pod(1, at_revision("r2"))
                .pod(0, at_revision("r2")),
            NextAction::Done,
        ),
    ];
    for (i, (observed, expected)) in steps.iter().enumerate() {
        assert_eq!(&observed.decide(), expected, "step {i}");
    }
}

#[test]
fn leadership_goes_to_the_most_up_to_date_upgraded_voter() {
    let observed = healthy(5)
        .update_revision("r2")
        .pod(1, at_revision("r2"))
        .pod(2, at_revision("r2"))
        .pod(3, at_revision("r2"))
        .pod(4, at_revision("r2"))
        .member(4, |m| m.match_index = COMMIT + 5);
    assert_eq!(
        observed.decide(),
        NextAction::TransferLeadership {
            from: NodeId(1),
            to: NodeId(4)
        }
    );
    // With one follower still outdated, that follower goes before the leader.
    let one_follower_left = observed.pod(2, at_revision("r1"));
    assert_eq!(
        one_follower_left.decide(),
        NextAction::UpgradePod { ordinal: 2 }
    );
}

#[test]
fn the_restarted_pod_must_be_back_and_caught_up_before_the_next() {
    let restarting = rolling().pod(2, at_revision("r2")).pod(2, pending(20));
    assert_eq!(restarting.decide(), NextAction::WaitForPod { ordinal: 2 });
    let catching_up = rolling()
        .pod(2, at_revision("r2"))
        .member(3, behind(30_000));
    assert_eq!(
        catching_up.decide(),
        NextAction::WaitForCatchUp { id: NodeId(3) }
    );
    let being_deleted = rolling().pod(2, deleting);
    assert_eq!(
        being_deleted.decide(),
        NextAction::WaitForPod { ordinal: 2 }
    );
}

#[test]
fn a_restarted_pod_that_does_not_come_back_stops_the_rollout() {
    let broken = rolling()
        .pod(2, at_revision("r2"))
        .pod(2, not_ready(TOO_LONG));
    assert!(matches!(
        broken.decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::MemberUnhealthy { id: NodeId(3), .. }
        }
    ));
}

#[test]
fn rolling_back_replaces_the_broken_pod_first() {
    // The spec went back to the old version: r1 again. The pod on r2 is down, the others
    // healthy, so it goes at once (it is down already).
    let back = healthy(3)
        .pod(2, at_revision("r2"))
        .pod(2, not_ready(TOO_LONG));
    assert_eq!(back.decide(), NextAction::UpgradePod { ordinal: 2 });
}

#[test]
fn an_outdated_pod_that_is_down_goes_before_the_healthy_ones() {
    let down = rolling().pod(0, not_ready(10)).leader(2);
    assert_eq!(down.decide(), NextAction::UpgradePod { ordinal: 0 });
}

#[test]
fn nothing_restarts_while_another_voter_is_unhealthy() {
    let sick = rolling().pod(1, at_revision("r2")).pod(1, not_ready(10));
    assert_eq!(sick.decide(), NextAction::WaitForPod { ordinal: 1 });
    let quiet = rolling().member(3, silent(10)).pod(2, at_revision("r2"));
    assert_eq!(quiet.decide(), NextAction::WaitForCatchUp { id: NodeId(3) });
}

#[test]
fn a_single_member_restarts_in_place() {
    assert_eq!(
        healthy(1).update_revision("r2").decide(),
        NextAction::UpgradePod { ordinal: 0 }
    );
}

#[test]
fn membership_settles_before_any_upgrade() {
    let growing = healthy(3).update_revision("r2").want(5);
    assert_eq!(growing.decide(), NextAction::GrowStatefulSet { to: 4 });
    let learner = healthy(3)
        .update_revision("r2")
        .member(3, |m| m.role = MemberRole::Learner);
    assert_eq!(
        learner.decide(),
        NextAction::PromoteLearner { id: NodeId(3) }
    );
    let shrinking = healthy(3).update_revision("r2").want(1);
    assert_eq!(
        shrinking.decide(),
        NextAction::RemoveMember { id: NodeId(3) }
    );
}

#[test]
fn the_leader_goes_last_wherever_it_is() {
    let led_by_the_highest = healthy(3).update_revision("r2").leader(3);
    assert_eq!(
        led_by_the_highest.decide(),
        NextAction::UpgradePod { ordinal: 1 }
    );
    let then = led_by_the_highest.pod(1, at_revision("r2"));
    assert_eq!(then.decide(), NextAction::UpgradePod { ordinal: 0 });
    let last = then.pod(0, at_revision("r2"));
    assert_eq!(
        last.decide(),
        NextAction::TransferLeadership {
            from: NodeId(3),
            to: NodeId(1)
        }
    );
}
