//! Crashes and disk errors at exact points in the node, through failpoints (the test suite
//! builds the node with the `failpoints` feature).
//!
//! The node reads `FAILPOINTS` from its environment, which it inherits from this test process.
//! That is why this file holds a single test: the variable is process-wide, and scenarios run
//! one after another with it set only while their node starts.
//!
//! Runs only when built with `--features failpoints` (as `scripts/test` does).

#![cfg(feature = "failpoints")]

mod common;

use std::time::Duration;

use common::{get, wait_for, Cluster};
use dengine::proto::{PutRequest, ReadPolicy};

/// Starts `cluster`'s only node with `failpoints` configured.
async fn start_with(cluster: &mut Cluster, failpoints: &str) {
    std::env::set_var("FAILPOINTS", failpoints);
    cluster.nodes[0].start().await;
    std::env::remove_var("FAILPOINTS");
}

/// Stops the node (crashed or not) and starts it again with no failpoints, until it leads.
async fn restart_without_failpoints(cluster: &mut Cluster) {
    cluster.nodes[0].kill();
    cluster.nodes[0].start().await;
    cluster.wait_for_leader().await;
}

/// Starts the node with `failpoints`, writes keys named `prefix...` until the failpoint
/// crashes it (after at least `at_least` acknowledged writes), and restarts it without
/// failpoints. Returns the keys whose writes were acknowledged.
async fn crash_at(
    cluster: &mut Cluster,
    failpoints: &str,
    prefix: &str,
    at_least: usize,
) -> Vec<String> {
    start_with(cluster, failpoints).await;
    let acked = write_until_failure(cluster, prefix).await;
    assert!(
        acked.len() >= at_least,
        "{failpoints}: only {} writes before the crash",
        acked.len()
    );
    restart_without_failpoints(cluster).await;
    acked
}

/// Writes keys until a write fails; returns the keys whose writes were acknowledged.
async fn write_until_failure(cluster: &Cluster, prefix: &str) -> Vec<String> {
    let mut kv = cluster.nodes[0].kv();
    let mut acknowledged = Vec::new();
    for i in 0..10_000 {
        let key = format!("{prefix}{i:05}");
        let mut request = tonic::Request::new(PutRequest {
            key: key.clone().into(),
            value: key.clone().into(),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(5));
        match kv.put(request).await {
            Ok(_) => acknowledged.push(key),
            Err(_) => return acknowledged,
        }
    }
    panic!("the failpoint never fired");
}

async fn assert_all_present(cluster: &Cluster, keys: &[String]) {
    let mut kv = cluster.nodes[0].kv();
    for key in keys {
        let found = get(&mut kv, key, ReadPolicy::Linearizable).await;
        assert_eq!(
            found.kv.map(|kv| kv.value.to_vec()),
            Some(key.as_bytes().to_vec()),
            "acknowledged key {key} is missing after the restart"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_and_disk_errors_at_exact_points_lose_no_acknowledged_write() {
    let mut cluster = Cluster::new(1, &[]);

    // 1. A crash after entries are durable, before they are applied: the write in flight is
    //    not acknowledged; everything acknowledged before it survives.
    let acked = crash_at(&mut cluster, "apply=40*off->return(crash)", "apply-", 10).await;
    assert_all_present(&cluster, &acked).await;

    // 2. A crash right after the fsync, before acknowledgements go out.
    cluster.nodes[0].kill();
    start_with(&mut cluster, "after_log_append=30*off->return(crash)").await;
    let acked_after_fsync = write_until_failure(&cluster, "fsync-").await;
    restart_without_failpoints(&mut cluster).await;
    assert_all_present(&cluster, &acked).await;
    assert_all_present(&cluster, &acked_after_fsync).await;

    // 3. The disk fails on a log append (as when it is full): the node stops serving rather
    //    than acknowledge what it could not store, and exits with an error.
    cluster.nodes[0].kill();
    start_with(&mut cluster, "log_append=30*off->return").await;
    let acked_before_error = write_until_failure(&cluster, "disk-").await;
    let status = cluster.nodes[0].terminate().await;
    assert!(
        !status.success(),
        "a node whose disk failed must exit with an error, got {status}"
    );
    let log = cluster.nodes[0].log_tail(50);
    assert!(
        log.contains("storage failure") || log.contains("failpoint"),
        "{log}"
    );
    cluster.nodes[0].start().await;
    cluster.wait_for_leader().await;
    assert_all_present(&cluster, &acked).await;
    assert_all_present(&cluster, &acked_before_error).await;
    // 4. A crash as the log is compacted (the compaction point written, the log before it
    //    dropped): everything acknowledged is still there after the restart.
    cluster.nodes[0].kill();
    let config = cluster.dir().join("compact-often.toml");
    std::fs::write(&config, "snapshot_every = 20\nsnapshot_keep_entries = 5\n").unwrap();
    cluster.nodes[0].spec.config_file = Some(config);
    // Two compactions before the crash.
    let acked_before_compaction = crash_at(
        &mut cluster,
        "snapshot_take=2*off->return(crash)",
        "compact-",
        20,
    )
    .await;
    assert_all_present(&cluster, &acked).await;
    assert_all_present(&cluster, &acked_before_compaction).await;

    wait_for("writes to work again after the restart", || async {
        let mut kv = cluster.nodes[0].kv();
        kv.put(PutRequest {
            key: "again".into(),
            value: "ok".into(),
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    })
    .await;
}
