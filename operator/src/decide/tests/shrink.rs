//! Shrinking: leadership off, removal from Raft, then the StatefulSet; never below a quorum.

use super::fixtures::*;
use crate::decide::{DegradedReason, NextAction};
use crate::observed::{MemberRole, NodeId};

#[test]
fn shrinking_three_to_one_takes_each_step_in_order() {
    let steps = [
        (
            healthy(3).want(1).leader(3),
            NextAction::TransferLeadership {
                from: NodeId(3),
                to: NodeId(1),
            },
        ),
        (
            healthy(3).want(1),
            NextAction::RemoveMember { id: NodeId(3) },
        ),
        (
            healthy(3).want(1).no_member(3),
            NextAction::RemoveMember { id: NodeId(2) },
        ),
        (
            healthy(3).want(1).no_member(3).no_member(2),
            NextAction::ShrinkStatefulSet { to: 1 },
        ),
        (healthy(1), NextAction::Done),
    ];
    for (i, (observed, expected)) in steps.iter().enumerate() {
        assert_eq!(&observed.decide(), expected, "step {i}");
    }
}

#[test]
fn leadership_goes_to_a_member_that_stays() {
    // Node 2 is the most up to date, but it is going too.
    let leader_going = healthy(5)
        .want(3)
        .leader(5)
        .member(4, |m| m.match_index = COMMIT + 10);
    assert_eq!(
        leader_going.decide(),
        NextAction::TransferLeadership {
            from: NodeId(5),
            to: NodeId(1)
        }
    );
    let prefer_fresh = healthy(5).want(3).leader(5).member(1, behind(10));
    assert_eq!(
        prefer_fresh.decide(),
        NextAction::TransferLeadership {
            from: NodeId(5),
            to: NodeId(2)
        }
    );
}

#[test]
fn a_removal_that_would_leave_no_healthy_quorum_is_reported_not_made() {
    // Five voters shrinking to three; 2 and 3 are down. Removing 5 would leave 2 healthy of 4.
    let risky = healthy(5)
        .want(3)
        .pod(1, not_ready(10))
        .pod(2, not_ready(10));
    assert_eq!(
        risky.decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::QuorumAtRisk {
                id: NodeId(5),
                healthy: 2,
                voters: 4
            }
        }
    );
}

#[test]
fn an_unhealthy_member_beyond_the_spec_may_go_when_the_rest_are_a_quorum() {
    let dead = healthy(3)
        .want(2)
        .pod(2, not_ready(TOO_LONG))
        .member(3, silent(TOO_LONG));
    assert_eq!(dead.decide(), NextAction::RemoveMember { id: NodeId(3) });
}

#[test]
fn a_learner_beyond_the_spec_is_removed_without_a_quorum_check() {
    // Growth to 4 was under way, then the spec went back to 3.
    let learner = healthy(3)
        .stateful_set(4)
        .with_pod(3)
        .with_member(4, MemberRole::Learner)
        .pod(1, not_ready(10))
        .pod(2, not_ready(10));
    assert_eq!(learner.decide(), NextAction::RemoveMember { id: NodeId(4) });
}

#[test]
fn no_healthy_voter_to_take_leadership_is_reported() {
    let alone = healthy(2).want(1).leader(2).pod(0, not_ready(10));
    assert_eq!(
        alone.decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::NoTransferTarget { from: NodeId(2) }
        }
    );
}

#[test]
fn the_stateful_set_shrinks_only_after_the_members_are_gone() {
    let removed = healthy(5).want(3).no_member(5).no_member(4);
    assert_eq!(removed.decide(), NextAction::ShrinkStatefulSet { to: 3 });
    let one_left = healthy(5).want(3).no_member(5);
    assert_eq!(
        one_left.decide(),
        NextAction::RemoveMember { id: NodeId(4) }
    );
}

#[test]
fn no_membership_change_without_a_leader() {
    let leaderless = healthy(3)
        .want(1)
        .no_leader()
        .pod(0, not_ready(10))
        .pod(1, not_ready(10))
        .pod(2, not_ready(10));
    assert_eq!(leaderless.decide(), NextAction::WaitForLeader);
}
