//! Acknowledged data survives a node's restarts: a graceful stop (SIGTERM) and a crash
//! (`kill -9`), with revisions and TTLs carrying on where they were.

mod common;

use std::collections::BTreeMap;

use dengine::proto::kv_client::KvClient;
use dengine::proto::{DeleteRequest, PutRequest, ReadPolicy};
use tonic::transport::Channel;

use common::{
    assert_same_state, b, get, key_value_map, now_unix_ms, put, revision_of, scan_all,
    store_revision, wait_for, Cluster, Keys,
};

/// Writes `count` keys under `prefix`, then overwrites and deletes some, recording what the
/// store must hold afterwards. Returns the revision of the last write.
async fn write_and_record(
    kv: &mut KvClient<Channel>,
    prefix: &str,
    count: usize,
    expected: &mut Keys,
) -> i64 {
    for i in 0..count {
        let key = format!("{prefix}/{i:03}");
        put(kv, &key, &format!("v{i}")).await;
        expected.insert(key, format!("v{i}"));
    }
    for i in (0..count).step_by(7) {
        let key = format!("{prefix}/{i:03}");
        put(kv, &key, &format!("rewritten{i}")).await;
        expected.insert(key, format!("rewritten{i}"));
    }
    let mut last_revision = 0;
    for i in (3..count).step_by(11) {
        let key = format!("{prefix}/{i:03}");
        let deleted = kv
            .delete(DeleteRequest {
                key: b(&key),
                prev_kv: false,
            })
            .await
            .unwrap_or_else(|e| panic!("delete {key}: {e}"))
            .into_inner();
        assert!(deleted.deleted, "{key} existed");
        last_revision = revision_of(deleted.header.as_ref());
        expected.remove(&key);
    }
    last_revision
}

async fn assert_holds_after_restart(
    cluster: &Cluster,
    expected: &Keys,
    last_revision: i64,
    when: &str,
) {
    cluster.wait_for_leader().await;
    let mut kv = cluster.nodes[0].kv();
    // A linearizable read: it must wait for everything committed before the restart.
    let kvs = scan_all(&mut kv, "", ReadPolicy::Linearizable, 50)
        .await
        .unwrap_or_else(|e| panic!("scan after {when}: {e}"));
    assert_same_state(
        &format!("the node after {when}"),
        &key_value_map(&kvs),
        expected,
    );
    assert_eq!(
        store_revision(&mut kv).await,
        last_revision,
        "the revision after {when}"
    );
    let next = revision_of(put(&mut kv, "probe", "after restart").await.header.as_ref());
    assert_eq!(next, last_revision + 1, "revisions go on after {when}");
    kv.delete(DeleteRequest {
        key: b("probe"),
        prev_kv: false,
    })
    .await
    .expect("delete probe");
}

#[tokio::test]
async fn acknowledged_writes_survive_a_sigterm_restart_and_a_kill_9_restart() {
    let mut cluster = Cluster::start(1, &[]).await;
    let mut expected = BTreeMap::new();
    let mut kv = cluster.nodes[0].kv();
    let revision = write_and_record(&mut kv, "first", 60, &mut expected).await;

    let exit = cluster.nodes[0].terminate().await;
    assert!(
        exit.success(),
        "SIGTERM should stop the node cleanly, got {exit}"
    );
    cluster.nodes[0].start().await;
    assert_holds_after_restart(&cluster, &expected, revision, "a SIGTERM restart").await;

    let revision = write_and_record(&mut kv, "second", 60, &mut expected).await;
    // No pause: the last write was acknowledged a moment ago.
    cluster.nodes[0].kill();
    cluster.nodes[0].start().await;
    assert_holds_after_restart(&cluster, &expected, revision, "a kill -9 restart").await;
}

#[tokio::test]
async fn a_ttl_runs_out_across_a_crash() {
    let mut cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();
    kv.put(PutRequest {
        key: b("lease/1"),
        value: b("held"),
        ttl_ms: 3000,
        prev_kv: false,
    })
    .await
    .expect("put with a TTL");
    put(&mut kv, "lease/none", "kept").await;
    let expires_at = get(&mut kv, "lease/1", ReadPolicy::Linearizable)
        .await
        .kv
        .expect("the key exists right after its write")
        .expires_at_unix_ms;

    cluster.nodes[0].kill();
    cluster.nodes[0].start().await;
    cluster.wait_for_leader().await;
    // A slow restart may outlast the TTL; what must never happen is losing the key early or
    // forgetting its deadline.
    match get(&mut kv, "lease/1", ReadPolicy::Linearizable).await.kv {
        Some(lease) => assert_eq!(
            lease.expires_at_unix_ms, expires_at,
            "the TTL deadline survives the crash"
        ),
        None => assert!(
            now_unix_ms() >= expires_at,
            "lease/1 was lost in the crash before its deadline {expires_at}"
        ),
    }

    wait_for("lease/1 to expire after the restart", || {
        let mut kv = kv.clone();
        async move {
            match get(&mut kv, "lease/1", ReadPolicy::Linearizable).await.kv {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        }
    })
    .await;
    assert!(now_unix_ms() >= expires_at, "expired before its deadline");
    assert!(
        get(&mut kv, "lease/none", ReadPolicy::Linearizable)
            .await
            .kv
            .is_some(),
        "a key without a TTL stays"
    );
}
