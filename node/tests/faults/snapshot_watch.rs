//! One scenario the randomized run stumbles on, made deterministic: a member cut off long
//! enough to need a snapshot, with a watch open on it the whole time.
//!
//! The watch promises every event of the prefix in revision order. When the member installs
//! the snapshot, the events the snapshot covers never happened on it one by one; the watch
//! must still deliver them, or end with OUT_OF_RANGE so the client can resynchronize — not
//! carry on silently from the revision after the snapshot.

use std::time::Duration;

use dengine::proto::kv_client::KvClient;
use tokio::sync::watch;

use super::cluster::FaultCluster;
use super::common::put;
use super::history::Clock;
use super::member::channel;
use super::proxy::Mode;
use super::watcher;
use super::NODE_CONFIG;

/// More writes than `snapshot_every` + `snapshot_keep_entries` in `NODE_CONFIG`: the member
/// cut off cannot catch up from the log.
const WRITES_WHILE_CUT_OFF: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_on_a_member_that_catches_up_by_snapshot_misses_no_event() {
    let cluster = FaultCluster::start(3, &[], NODE_CONFIG).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (leader + 1) % cluster.members.len();
    let clock = Clock::start();
    let (finish, finish_watch) = watch::channel(None);
    let watch_task = tokio::spawn(watcher::run(
        cluster.members[follower].id(),
        cluster.members[follower].spec.client_port,
        clock,
        finish_watch,
        Duration::from_secs(10),
    ));
    let mut kv = KvClient::new(channel(
        cluster.members[leader].spec.client_port,
        Duration::from_secs(5),
    ));
    put(&mut kv, "f/before", "1").await;

    cluster.proxies[follower].set(Mode::Refuse);
    for i in 0..WRITES_WHILE_CUT_OFF {
        put(&mut kv, &format!("f/k{}", i % 7), &i.to_string()).await;
    }
    let snapshot_before = cluster.members[follower]
        .status()
        .await
        .expect("the follower answers")
        .snapshot_index;
    cluster.proxies[follower].set(Mode::Forward);
    let revision = cluster.wait_converged().await;
    let snapshot_after = cluster.members[follower]
        .status()
        .await
        .expect("the follower answers")
        .snapshot_index;

    finish.send_replace(Some(revision));
    let log = watch_task.await.expect("the watcher panicked");
    // Ending the watch with OUT_OF_RANGE, so that the client resynchronizes, keeps the promise.
    let refused = log
        .ended
        .as_ref()
        .is_some_and(|e| e.starts_with("resume from"));
    assert!(
        log.anomalies.is_empty() && (log.ended.is_none() || refused),
        "the watch on node {} (snapshot index {snapshot_before} before the cut, {snapshot_after} \
         after) saw {} events up to revision {revision}: {:?}; ended early: {:?}",
        cluster.members[follower].id(),
        log.events.len(),
        log.anomalies,
        log.ended
    );
}
