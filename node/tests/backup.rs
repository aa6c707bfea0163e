//! Backups: `dengine snapshot save` from a running node, then a new three-node cluster founded
//! from that file with `node --restore-from`, serving the same keys and revisions.

mod common;

use common::{dengine, get, put, scan_all, Cluster};
use dengine::proto::ReadPolicy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_founds_a_new_cluster_with_the_same_data() {
    let source = Cluster::start(1, &[]).await;
    let mut kv = source.nodes[0].kv();
    let mut last_revision = 0;
    for i in 0..50 {
        last_revision = put(&mut kv, &format!("app/{i:02}"), &format!("v{i}"))
            .await
            .header
            .unwrap()
            .revision;
    }
    let file = source.dir().join("cluster.backup");
    let file_arg = file.display().to_string();
    let endpoint = source.nodes[0].spec.client_endpoint();
    dengine(&["--endpoints", &endpoint, "snapshot", "save", &file_arg])
        .await
        .expect_success("snapshot save");
    dengine(&["snapshot", "status", &file_arg])
        .await
        .expect_success("snapshot status");

    // Damage is refused before anything is restored.
    let damaged = source.dir().join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&damaged, &bytes).unwrap();
    let run = dengine(&["snapshot", "status", &damaged.display().to_string()]).await;
    run.expect_code(1, "a truncated backup");
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);

    let restored = Cluster::start(3, &["--restore-from", &file_arg]).await;
    let leader = restored.wait_for_leader().await;
    let mut kv = restored.node(leader).kv();
    let keys = scan_all(&mut kv, "app/", ReadPolicy::Linearizable, 20)
        .await
        .unwrap();
    assert_eq!(keys.len(), 50);
    let found = get(&mut kv, "app/07", ReadPolicy::Linearizable).await;
    assert_eq!(found.kv.unwrap().value.as_ref(), b"v7");
    // Revisions carry on from the backup's.
    let next = put(&mut kv, "app/new", "x").await.header.unwrap().revision;
    assert_eq!(next, last_revision + 1);
    // Every member holds the restored state.
    for node in &restored.nodes {
        let mut kv = node.kv();
        let found = get(&mut kv, "app/42", ReadPolicy::Eventual).await;
        assert_eq!(
            found.kv.unwrap().value.as_ref(),
            b"v42",
            "node {}",
            node.id()
        );
    }
}
