//! Three real `node` processes on loopback: leader failover under a steady stream of writes,
//! a crashed node catching up, and the whole cluster crashing at once. The measure is always
//! the same: every acknowledged write is on every node afterwards.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use tokio::task::JoinHandle;

use common::{
    assert_same_state, eventual_state, wait_for, wait_for_writes, Cluster, ClusterClients, Keys,
};

/// Writes through whichever node leads, retrying each write until it is acknowledged, and
/// records every acknowledged write. A write is retried with the same value, so one that did
/// apply before its answer was lost changes nothing; and a writer only stops between writes,
/// so every write it started is acknowledged and the cluster must hold exactly its record.
struct Writer {
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<Acknowledged, String>>,
}

/// Acknowledged writes: each key's last acknowledged value, and the highest revision a write
/// was acknowledged at.
#[derive(Debug, Default)]
struct Acknowledged {
    values: Keys,
    revision: i64,
}

impl Acknowledged {
    fn record(&mut self, key: String, value: String, revision: i64) {
        self.values.insert(key, value);
        self.revision = self.revision.max(revision);
    }

    fn merge(&mut self, other: Acknowledged) {
        self.values.extend(other.values);
        self.revision = self.revision.max(other.revision);
    }
}

impl Writer {
    /// `keys` distinct keys under `prefix`, overwritten in turn.
    fn spawn(clients: ClusterClients, prefix: &'static str, keys: u64) -> Self {
        let acked = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let (acked, stop) = (acked.clone(), stop.clone());
            async move {
                let mut written = Acknowledged::default();
                let mut seq = 0u64;
                while !stop.load(Ordering::SeqCst) {
                    let key = format!("{prefix}/{:03}", seq % keys);
                    let value = format!("w{seq}");
                    let revision = clients.put_acknowledged(&key, &value).await?;
                    written.record(key, value, revision);
                    acked.fetch_add(1, Ordering::SeqCst);
                    seq += 1;
                }
                Ok(written)
            }
        });
        Self { acked, stop, task }
    }

    fn acked(&self) -> u64 {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits until `count` writes are acknowledged; fails at once, with its error, if the
    /// writer gave up.
    async fn wait_acked(&mut self, count: u64, why: &str) {
        wait_for_writes(&mut self.task, &self.acked, count, why).await;
    }

    /// Stops after the write in progress is acknowledged; returns every acknowledged write.
    async fn stop(self) -> Acknowledged {
        self.stop.store(true, Ordering::SeqCst);
        match self.task.await {
            Ok(Ok(written)) => written,
            Ok(Err(error)) => panic!("the writer failed: {error}"),
            Err(panic) => panic!("the writer panicked: {panic}"),
        }
    }
}

/// Three nodes that snapshot every 50 applied entries and keep only 10 entries behind a
/// snapshot, so a node that was down for a few hundred writes must catch up from a snapshot
/// rather than from the log, and crashes land between snapshots.
async fn start_snapshotting_cluster() -> Cluster {
    let mut cluster = Cluster::new(3, &[]);
    let config = cluster.dir().join("snapshots.toml");
    std::fs::write(&config, "snapshot_every = 50\nsnapshot_keep_entries = 10\n")
        .expect("write the config file");
    for node in &mut cluster.nodes {
        node.spec.config_file = Some(config.clone());
    }
    cluster.start_stopped().await;
    cluster.wait_for_leader().await;
    cluster
}

/// Writes `count` keys under `prefix`, 16 at a time, through whichever node leads.
async fn write_many(clients: &ClusterClients, prefix: &str, count: usize) -> Acknowledged {
    let results: Vec<Result<(String, String, i64), String>> = futures::stream::iter(0..count)
        .map(|i| {
            let clients = clients.clone();
            let (key, value) = (format!("{prefix}/{i:03}"), format!("v{i}"));
            async move {
                let revision = clients.put_acknowledged(&key, &value).await?;
                Ok((key, value, revision))
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut acknowledged = Acknowledged::default();
    for result in results {
        let (key, value, revision) = result.unwrap_or_else(|e| panic!("{e}"));
        acknowledged.record(key, value, revision);
    }
    acknowledged
}

/// Waits until every running node has applied all the leader committed, then reads every
/// node's state with an eventual read and compares it with `acknowledged`.
async fn assert_every_node_holds(cluster: &Cluster, acknowledged: &Acknowledged) {
    eprintln!(
        "{} keys acknowledged, up to revision {}",
        acknowledged.values.len(),
        acknowledged.revision
    );
    let commit = cluster.wait_caught_up(acknowledged.revision).await;
    for node in &cluster.nodes {
        let state = eventual_state(node.kv())
            .await
            .unwrap_or_else(|e| panic!("eventual scan of node {}: {e}", node.id()));
        assert_same_state(
            &format!("node {} (caught up to index {commit})", node.id()),
            &state,
            &acknowledged.values,
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_leader_is_replaced_and_catches_up_without_losing_a_write() {
    let mut cluster = start_snapshotting_cluster().await;
    let clients = cluster.clients();
    let mut acknowledged = write_many(&clients, "init", 200).await;

    let mut writer = Writer::spawn(clients.clone(), "live", 40);
    writer.wait_acked(20, "before the crash").await;
    let old_leader = cluster.wait_for_leader().await;
    cluster.node_mut(old_leader).kill();

    let at_crash = writer.acked();
    // Enough writes for several snapshots, so the log the old leader needs is gone.
    writer
        .wait_acked(at_crash + 200, "a new leader takes writes")
        .await;
    let new_leader = cluster.wait_for_leader().await;
    assert_ne!(new_leader, old_leader, "the killed node cannot lead");
    eprintln!(
        "leader {old_leader} killed after {at_crash} live writes; node {new_leader} leads at {}",
        writer.acked()
    );

    cluster.node_mut(old_leader).start().await;
    let at_restart = writer.acked();
    writer
        .wait_acked(at_restart + 30, "with the old leader back")
        .await;
    acknowledged.merge(writer.stop().await);

    assert_every_node_holds(&cluster, &acknowledged).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_nodes_killed_at_once_keep_every_acknowledged_write() {
    let mut cluster = start_snapshotting_cluster().await;
    let clients = cluster.clients();
    let mut writers: Vec<Writer> = ["a", "b", "c", "d"]
        .into_iter()
        .map(|prefix| Writer::spawn(clients.clone(), prefix, 1000))
        .collect();
    let total = |writers: &[Writer]| writers.iter().map(Writer::acked).sum::<u64>();
    wait_for("100 acknowledged writes before the crash", || async {
        match total(&writers) {
            n if n >= 100 => Ok(()),
            n => Err(format!("{n} acknowledged")),
        }
    })
    .await;

    // Writes are in flight on every writer; none of the nodes gets to flush or say goodbye.
    for node in &mut cluster.nodes {
        node.kill();
    }
    let at_crash = total(&writers);
    cluster.start_stopped().await;
    cluster.wait_for_leader().await;
    for writer in &mut writers {
        writer
            .wait_acked(writer.acked() + 10, "after the restart")
            .await;
    }
    assert!(total(&writers) > at_crash);
    eprintln!(
        "all nodes killed after {at_crash} writes; {} after the restart",
        total(&writers)
    );

    let mut acknowledged = Acknowledged::default();
    for writer in writers {
        acknowledged.merge(writer.stop().await);
    }
    assert_every_node_holds(&cluster, &acknowledged).await;
}
