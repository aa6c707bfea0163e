//! The checks before any membership: paused, owned objects, done.

use super::fixtures::*;
use crate::decide::NextAction;
use crate::observed::ObjectsState;

#[test]
fn paused_changes_nothing_whatever_the_state() {
    assert_eq!(fresh(3).paused().decide(), NextAction::Paused);
    assert_eq!(healthy(3).want(5).paused().decide(), NextAction::Paused);
    assert_eq!(
        healthy(3).pod(1, not_ready(TOO_LONG)).paused().decide(),
        NextAction::Paused
    );
}

#[test]
fn missing_or_outdated_objects_are_applied_first() {
    assert_eq!(fresh(3).decide(), NextAction::ApplyObjects);
    assert_eq!(
        healthy(3).objects(ObjectsState::Missing).decide(),
        NextAction::ApplyObjects
    );
    assert_eq!(
        healthy(3).objects(ObjectsState::Outdated).decide(),
        NextAction::ApplyObjects
    );
    assert_eq!(
        healthy(3).no_stateful_set().decide(),
        NextAction::ApplyObjects
    );
}

#[test]
fn a_healthy_cluster_as_asked_is_done() {
    for n in 1..=7 {
        assert_eq!(healthy(n).decide(), NextAction::Done, "{n} members");
    }
}

#[test]
fn a_follower_that_is_briefly_unhealthy_is_waited_for() {
    assert_eq!(
        healthy(3).pod(2, not_ready(10)).decide(),
        NextAction::WaitForPod { ordinal: 2 }
    );
    let lagging = healthy(3).member(2, behind(5_000));
    assert_eq!(
        lagging.decide(),
        NextAction::WaitForCatchUp {
            id: crate::observed::NodeId(2)
        }
    );
}
