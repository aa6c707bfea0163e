//! Founding: one bootstrap, then the record that makes every later pod join.

use super::fixtures::*;
use crate::decide::NextAction;
use crate::observed::{MemberRole, ObjectsState};

/// The objects exist, the StatefulSet has no pods yet, nothing else.
fn created(replicas: i32) -> Fixture {
    fresh(replicas)
        .objects(ObjectsState::Current)
        .stateful_set(0)
}

#[test]
fn an_empty_stateful_set_with_no_sign_of_a_cluster_bootstraps() {
    assert_eq!(created(1).decide(), NextAction::Bootstrap);
    assert_eq!(
        created(3).decide(),
        NextAction::Bootstrap,
        "growth starts from one member"
    );
}

#[test]
fn pods_still_going_away_are_waited_for_before_bootstrapping() {
    let leftover = created(3).with_new_pod(2).pod(2, deleting);
    assert_eq!(leftover.decide(), NextAction::WaitForPod { ordinal: 2 });
}

#[test]
fn the_founder_is_waited_for_then_reported_if_it_never_comes_up() {
    let starting = created(1)
        .stateful_set(1)
        .with_new_pod(0)
        .pod(0, pending(20));
    assert_eq!(starting.decide(), NextAction::WaitForPod { ordinal: 0 });
    let stuck = created(1)
        .stateful_set(1)
        .with_new_pod(0)
        .pod(0, pending(TOO_LONG));
    assert!(matches!(stuck.decide(), NextAction::ReportDegraded { .. }));
}

#[test]
fn a_ready_founder_that_does_not_answer_is_waited_for() {
    let unreachable = created(1)
        .stateful_set(1)
        .with_new_pod(0)
        .pod(0, |p| p.ready = true);
    assert_eq!(unreachable.decide(), NextAction::WaitForLeader);
}

#[test]
fn the_founders_volume_is_marked_before_the_record() {
    let founded = created(3)
        .stateful_set(1)
        .with_new_pod(0)
        .pod(0, |p| p.ready = true)
        .with_member(1, MemberRole::Voter)
        .leader(1);
    assert_eq!(founded.decide(), NextAction::ClaimVolume { ordinal: 0 });
    let marked = founded.with_pod(0);
    assert_eq!(marked.decide(), NextAction::RecordFounded);
}

#[test]
fn any_sign_of_a_cluster_records_it_and_never_bootstraps_again() {
    // The ConfigMap was lost and made anew: the members are still there.
    assert_eq!(healthy(3).not_founded().decide(), NextAction::RecordFounded);
    // No member answers and the StatefulSet is gone, but the volumes are marked.
    let volumes_only = healthy(3).not_founded().no_cluster_view().stateful_set(0);
    assert_eq!(volumes_only.decide(), NextAction::RecordFounded);
}

#[test]
fn a_founded_cluster_with_no_pods_gets_its_pods_back_instead_of_a_bootstrap() {
    let emptied = healthy(3).stateful_set(0).no_cluster_view();
    let emptied = (0..3).fold(emptied, |f, k| f.no_pod(k));
    assert_eq!(emptied.decide(), NextAction::GrowStatefulSet { to: 3 });
}

#[test]
fn a_founded_one_member_cluster_is_done() {
    assert_eq!(healthy(1).decide(), NextAction::Done);
}
