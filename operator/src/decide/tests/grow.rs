//! Growth, one member at a time: pod, marked volume, learner, caught up, voter, next pod.

use super::fixtures::*;
use crate::decide::{DegradedReason, NextAction};
use crate::observed::{MemberRole, NodeId};

#[test]
fn growing_from_one_to_three_takes_each_step_in_order() {
    let steps = [
        (healthy(1).want(3), NextAction::GrowStatefulSet { to: 2 }),
        (
            healthy(1).want(3).stateful_set(2),
            NextAction::WaitForPod { ordinal: 1 },
        ),
        (
            healthy(1)
                .want(3)
                .stateful_set(2)
                .with_new_pod(1)
                .pod(1, pending(3)),
            NextAction::WaitForPod { ordinal: 1 },
        ),
        (
            healthy(1).want(3).stateful_set(2).with_new_pod(1),
            NextAction::ClaimVolume { ordinal: 1 },
        ),
        (
            healthy(1)
                .want(3)
                .stateful_set(2)
                .with_new_pod(1)
                .pod(1, |p| p.volume = crate::observed::Volume::Claimed),
            NextAction::AddLearner { ordinal: 1 },
        ),
        (
            healthy(2)
                .want(3)
                .member(2, |m| m.role = MemberRole::Learner)
                .member(2, behind(40_000)),
            NextAction::WaitForCatchUp { id: NodeId(2) },
        ),
        (
            healthy(2)
                .want(3)
                .member(2, |m| m.role = MemberRole::Learner),
            NextAction::PromoteLearner { id: NodeId(2) },
        ),
        (healthy(2).want(3), NextAction::GrowStatefulSet { to: 3 }),
        (healthy(3), NextAction::Done),
    ];
    for (i, (observed, expected)) in steps.iter().enumerate() {
        assert_eq!(&observed.decide(), expected, "step {i}");
    }
}

#[test]
fn a_learner_within_the_allowed_lag_is_promoted() {
    let close = healthy(2)
        .want(3)
        .member(2, |m| m.role = MemberRole::Learner)
        .member(2, behind(1_000));
    assert_eq!(close.decide(), NextAction::PromoteLearner { id: NodeId(2) });
    let far = healthy(2)
        .want(3)
        .member(2, |m| m.role = MemberRole::Learner)
        .member(2, behind(1_001));
    assert_eq!(far.decide(), NextAction::WaitForCatchUp { id: NodeId(2) });
}

#[test]
fn a_learner_the_leader_has_not_heard_from_is_not_promoted() {
    let quiet = healthy(2)
        .want(3)
        .member(2, |m| m.role = MemberRole::Learner)
        .member(2, silent(10));
    assert_eq!(quiet.decide(), NextAction::WaitForCatchUp { id: NodeId(2) });
}

#[test]
fn a_learner_whose_pod_is_down_is_waited_for() {
    let down = healthy(2)
        .want(3)
        .member(2, |m| m.role = MemberRole::Learner)
        .pod(1, not_ready(20));
    assert_eq!(down.decide(), NextAction::WaitForPod { ordinal: 1 });
}

#[test]
fn the_next_pod_waits_until_every_voter_is_healthy() {
    let sick = healthy(3).want(5).pod(1, not_ready(20));
    assert_eq!(sick.decide(), NextAction::WaitForPod { ordinal: 1 });
    let lagging = healthy(3).want(5).member(3, behind(9_000));
    assert_eq!(
        lagging.decide(),
        NextAction::WaitForCatchUp { id: NodeId(3) }
    );
}

#[test]
fn only_one_learner_at_a_time() {
    // A crash left two memberless pods: the lower one is added and promoted first.
    let two_new = healthy(1).want(3).stateful_set(3).with_pod(1).with_pod(2);
    assert_eq!(two_new.decide(), NextAction::AddLearner { ordinal: 1 });
    let one_learner = two_new
        .with_member(2, MemberRole::Learner)
        .member(2, behind(20_000));
    assert_eq!(
        one_learner.decide(),
        NextAction::WaitForCatchUp { id: NodeId(2) }
    );
}

#[test]
fn a_marked_volume_is_added_without_marking_again() {
    // A crash after marking, before adding; or a volume kept from an earlier shrink.
    let kept = healthy(2)
        .want(3)
        .stateful_set(3)
        .with_pod(2)
        .pod(2, |p| p.ready = false);
    assert_eq!(kept.decide(), NextAction::AddLearner { ordinal: 2 });
}

#[test]
fn spec_replicas_is_the_truth_a_lost_member_never_shrinks_the_stateful_set() {
    // Someone scaled the StatefulSet down: member 3 lost its pod, and it comes back.
    let cut = healthy(3).stateful_set(2).no_pod(2).member(3, silent(600));
    assert_eq!(cut.decide(), NextAction::GrowStatefulSet { to: 3 });
    // A pod missing for a long time is reported, never removed.
    let gone = healthy(3).no_pod(2).member(3, silent(TOO_LONG));
    assert!(matches!(
        gone.decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::MemberUnhealthy { id: NodeId(3), .. }
        }
    ));
}

#[test]
fn promotion_that_would_leave_no_healthy_quorum_is_reported() {
    // Three voters, two of them down: a fourth voter would need three healthy of four.
    let risky = healthy(3)
        .want(4)
        .stateful_set(4)
        .with_pod(3)
        .with_member(4, MemberRole::Learner)
        .pod(1, not_ready(10))
        .pod(2, not_ready(10));
    assert!(matches!(
        risky.decide(),
        NextAction::ReportDegraded {
            reason: DegradedReason::QuorumAtRisk {
                id: NodeId(4),
                healthy: 2,
                voters: 4
            }
        }
    ));
}
