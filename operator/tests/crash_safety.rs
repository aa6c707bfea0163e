//! Crash safety of the real reconciler: the operator is stopped by a failpoint just before or
//! just after each step of growing a cluster from nothing to three members (so between every
//! pair of steps, including between adding a learner and growing the StatefulSet), a new
//! operator takes over, and the job still finishes with one founding and no member lost.
//!
//! Needs the `failpoints` feature (`cargo test -p dengine-operator --features failpoints`).
#![cfg(feature = "failpoints")]

mod mock;

use dengine_operator::crd::DEngineClusterSpec;
use dengine_operator::driver::MembershipChange;
use mock::world::{World, NAME, NS};

/// Grows to three with the operator dying at failpoint `point` on its `k`-th pass; returns
/// whether the failpoint fired (false once `k` is past the last step).
async fn grow_with_crash(point: &str, k: usize) -> bool {
    fail::cfg(point, &format!("{k}*off->1*return")).expect("failpoint config");
    let mut world = World::new(DEngineClusterSpec::example(1));
    let mut crashed = false;
    let mut grown = false;
    for _ in 0..200 {
        if let Err(error) = world.reconcile().await {
            assert!(error.contains("failpoint"), "unexpected error: {error}");
            crashed = true;
            // The operator died; a new one, with nothing in memory, takes over.
            world.ctx = World::operator_for(&world);
        }
        if !grown && world.running_with(1) {
            world.set_spec(&DEngineClusterSpec::example(3));
            grown = true;
        }
        if grown && world.running_with(3) {
            break;
        }
    }
    fail::remove(point);
    assert!(
        world.running_with(3),
        "{point} at pass {k}: not settled; events {:?}",
        world.event_reasons()
    );
    let group = world.group.lock().unwrap();
    assert_eq!(group.foundings, 1, "{point} at pass {k}: a second founding");
    assert_eq!(group.voters(), [1, 2, 3], "{point} at pass {k}");
    assert!(
        !group
            .changes
            .iter()
            .any(|c| matches!(c, MembershipChange::Remove { .. })),
        "{point} at pass {k}: a member was removed: {:?}",
        group.changes
    );
    // The StatefulSet only ever grew, one pod at a time.
    let store = world.store.lock().unwrap();
    let replicas: Vec<u64> = store
        .writes_to(&format!("statefulsets/{NAME}"))
        .iter()
        .filter(|w| w.kind == "merge")
        .filter_map(|w| w.body["spec"]["replicas"].as_u64())
        .collect();
    assert!(
        replicas
            .windows(2)
            .all(|w| w[1] == w[0] || w[1] == w[0] + 1),
        "{point} at pass {k}: replicas went {replicas:?}"
    );
    assert_eq!(
        store.get("configmaps", NS, "orders-config").unwrap()["data"]["join"],
        "true"
    );
    crashed
}

#[tokio::test]
async fn the_next_operator_finishes_the_job_after_a_crash_between_any_two_steps() {
    let mut crashes = 0;
    for point in ["operator::before_action", "operator::after_action"] {
        for k in 0.. {
            if !grow_with_crash(point, k).await {
                break;
            }
            crashes += 1;
        }
    }
    // Bootstrap to three members takes well over ten steps; every one was interrupted.
    assert!(crashes > 20, "only {crashes} crash points");
}
