//! The operator's own membership driver (`dengine_operator::driver::step`, deciding with the
//! pure `decide`) pointed at real `node` processes on this machine instead of a StatefulSet:
//! it founds a one-member cluster, grows it to three one member at a time, restarts every pod
//! for a new template revision (followers first, the leader last), and shrinks it back to one,
//! all while a writer runs. The membership calls go through the operator's real Admin API
//! client with the admin token. No acknowledged write may be lost.
//!
//! See `operator_driver/local_workload.rs` for how pods, volumes, the founding record and
//! the template revision are played by local processes and files.

#[path = "operator_driver/checks.rs"]
mod checks;
mod common;
#[path = "operator_driver/driving.rs"]
mod driving;
#[path = "operator_driver/local_workload.rs"]
mod local_workload;
#[path = "operator_driver/writer.rs"]
mod writer;

use std::time::{Duration, Instant};

use dengine_operator::crd::DEngineClusterSpec;
use dengine_operator::decide::NextAction;
use dengine_operator::observed::Limits;

use checks::{assert_growth, assert_nodes_hold, assert_rollout, assert_shrink, changes, shape};
use driving::Driver;
use local_workload::LocalWorkload;
use writer::Writer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_driver_grows_restarts_and_shrinks_real_nodes_without_losing_a_write() {
    let limits = Limits {
        // Short enough that a stall shows in the recorded steps as ReportDegraded, with its
        // reason, well before the phase deadline.
        degraded_after: Duration::from_secs(30),
        ..Limits::default()
    };
    let mut driver = Driver::new(LocalWorkload::new(3, "v1"), limits);
    let started = Instant::now();

    // 1. A one-member cluster: objects, bootstrap, the founder's volume claimed, the record.
    let bootstrap = changes(
        driver
            .run_until("bootstrap", &DEngineClusterSpec::example(1), shape(1, "v1"))
            .await,
    );
    assert_eq!(
        bootstrap,
        [
            NextAction::ApplyObjects,
            NextAction::Bootstrap,
            NextAction::ClaimVolume { ordinal: 0 },
            NextAction::RecordFounded
        ]
    );

    let mut writer = Writer::spawn(driver.workload.clients(), "w");
    writer.wait_progress(20, "before the growth").await;

    // 2. Three members, one at a time, with the writer running.
    assert_growth(
        driver
            .run_until("grow", &DEngineClusterSpec::example(3), shape(3, "v1"))
            .await,
    );
    writer.wait_progress(20, "after the growth").await;

    // 3. A new template: every pod restarted, the leader's last.
    driver.workload.set_template_revision("v2").await;
    let before_rollout = writer.acked();
    assert_rollout(
        driver
            .run_until("rollout", &DEngineClusterSpec::example(3), shape(3, "v2"))
            .await,
    );
    let during_rollout = writer.acked() - before_rollout;
    assert!(
        during_rollout > 0,
        "no write was acknowledged during the rollout"
    );
    writer.wait_progress(50, "after the rollout").await;
    eprintln!(
        "writes acknowledged during the rollout: {during_rollout}; longest wait for an acknowledgement so far: {:?}",
        writer.longest_gap()
    );
    let mut acknowledged = writer.stop().await;
    assert_nodes_hold(&driver.workload, &[0, 1, 2], &acknowledged).await;
    eprintln!(
        "{} acknowledged writes on all three nodes after the rollout",
        acknowledged.len()
    );

    // 4. Back to one member, with another writer running.
    let mut writer = Writer::spawn(driver.workload.clients(), "s");
    writer.wait_progress(20, "before the shrink").await;
    assert_shrink(
        driver
            .run_until("shrink", &DEngineClusterSpec::example(1), shape(1, "v2"))
            .await,
    );
    writer.wait_progress(20, "after the shrink").await;
    acknowledged.extend(writer.stop().await);
    assert_nodes_hold(&driver.workload, &[0], &acknowledged).await;

    // The whole run.
    let all = changes(&driver.journal);
    let bootstraps = all.iter().filter(|a| **a == NextAction::Bootstrap).count();
    assert_eq!(bootstraps, 1, "a cluster is founded exactly once");
    assert!(
        !all.iter()
            .any(|a| matches!(a, NextAction::ReplaceMember { .. })),
        "no volume was lost, so no member may be replaced: {all:?}"
    );
    let exits: Vec<String> = driver
        .workload
        .unexpected_exits()
        .await
        .into_iter()
        .filter(|e| !e.contains("cannot listen on"))
        .collect();
    assert!(
        exits.is_empty(),
        "nodes exited unasked:\n{}",
        exits.join("\n")
    );
    let degraded = driver
        .journal
        .iter()
        .filter(|e| {
            e.outcome
                .as_ref()
                .is_ok_and(|s| matches!(s.action, NextAction::ReportDegraded { .. }))
        })
        .count();
    let failed = driver.journal.iter().filter(|e| e.outcome.is_err()).count();
    eprintln!(
        "{} steps ({failed} failed, {degraded} reported Degraded), {} acknowledged writes, in {:.1} s",
        driver.journal.len(),
        acknowledged.len(),
        started.elapsed().as_secs_f64()
    );
    // A stopped pod must stop within its grace period: a node that waits for its peers'
    // connections to close would be killed by Kubernetes at every rolling restart.
    let sigkilled = driver.workload.sigkilled();
    assert!(
        sigkilled.is_empty(),
        "pods {sigkilled:?} did not stop within the grace period after SIGTERM and were killed"
    );
    eprintln!("{}", driver.describe());
}
