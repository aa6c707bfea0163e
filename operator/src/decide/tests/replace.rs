//! A member whose pod came back with an empty volume: old identity out, in again as a learner.

use super::fixtures::*;
use crate::decide::{DegradedReason, NextAction};
use crate::observed::{MemberRole, NodeId, Volume};

#[test]
fn replacing_a_member_takes_each_step_in_order() {
    let wiped = healthy(3).pod(1, fresh_volume);
    let steps = [
        (
            healthy(3).pod(1, fresh_volume),
            NextAction::ReplaceMember { ordinal: 1 },
        ),
        (
            // The empty node may already look healthy (a leader reached it and sent it the
            // log); the unmarked volume alone decides.
            healthy(3).pod(1, fresh_volume).pod(1, not_ready(5)),
            NextAction::ReplaceMember { ordinal: 1 },
        ),
        (wiped.no_member(2), NextAction::ClaimVolume { ordinal: 1 }),
        (
            healthy(3).no_member(2).pod(1, |p| p.ready = false),
            NextAction::AddLearner { ordinal: 1 },
        ),
        (
            healthy(3).member(2, |m| m.role = MemberRole::Learner),
            NextAction::PromoteLearner { id: NodeId(2) },
        ),
        (healthy(3), NextAction::Done),
    ];
    for (i, (observed, expected)) in steps.iter().enumerate() {
        assert_eq!(&observed.decide(), expected, "step {i}");
    }
}

#[test]
fn a_replacement_that_would_risk_the_quorum_is_reported() {
    let two_down = healthy(3).pod(1, fresh_volume).pod(2, not_ready(10));
    assert_eq!(
        two_down.decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::QuorumAtRisk {
                id: NodeId(2),
                healthy: 1,
                voters: 2
            }
        }
    );
}

#[test]
fn a_learner_with_an_empty_volume_is_replaced_too() {
    let learner = healthy(2)
        .want(3)
        .stateful_set(3)
        .with_new_pod(2)
        .with_member(3, MemberRole::Learner);
    assert_eq!(learner.decide(), NextAction::ReplaceMember { ordinal: 2 });
}

#[test]
fn a_leader_with_an_empty_volume_hands_leadership_over_first() {
    let leader = healthy(3).pod(0, fresh_volume);
    assert_eq!(
        leader.decide(),
        NextAction::TransferLeadership {
            from: NodeId(1),
            to: NodeId(2)
        }
    );
}

#[test]
fn a_fresh_volume_beyond_the_spec_is_left_to_the_shrink() {
    let leaving = healthy(3).want(2).pod(2, fresh_volume);
    assert_eq!(leaving.decide(), NextAction::RemoveMember { id: NodeId(3) });
}

#[test]
fn the_volume_state_of_a_pod_being_deleted_is_not_trusted() {
    let going = healthy(3).pod(1, |p| {
        p.volume = Volume::Fresh;
        p.deleting = true;
    });
    assert_eq!(going.decide(), NextAction::WaitForPod { ordinal: 1 });
}
