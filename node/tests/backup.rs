//! Backups: `dengine snapshot save` from a running node, then a new three-node cluster founded
//! from that file with `node --restore-from`, and another with `node restore` run offline on
//! each member's data directory, both serving the same keys and revisions.

mod common;

use common::{dengine, get, node_command, put, scan_all, Cluster};
use dengine::proto::kv_client::KvClient;
use dengine::proto::ReadPolicy;
use tonic::transport::Channel;

/// A client of `cluster`'s leader, once it serves the 50 keys the source cluster was given.
async fn leader_holding_the_fifty_keys(cluster: &Cluster) -> KvClient<Channel> {
    let leader = cluster.wait_for_leader().await;
    let mut kv = cluster.node(leader).kv();
    let keys = scan_all(&mut kv, "app/", ReadPolicy::Linearizable, 20)
        .await
        .unwrap();
    assert_eq!(keys.len(), 50);
    kv
}

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
    let status = dengine(&["snapshot", "status", &file_arg]).await;
    status.expect_success("snapshot status");
    // The header records the key-value revision the backup holds.
    assert!(
        status
            .stdout
            .contains(&format!("revision {last_revision},")),
        "{}",
        status.stdout
    );

    // Damage is refused before anything is restored.
    let damaged = source.dir().join("damaged.backup");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes.truncate(bytes.len() - 3);
    std::fs::write(&damaged, &bytes).unwrap();
    let run = dengine(&["snapshot", "status", &damaged.display().to_string()]).await;
    run.expect_code(1, "a truncated backup");
    assert!(run.stderr.contains("truncated"), "{}", run.stderr);

    let restored = Cluster::start(3, &["--restore-from", &file_arg]).await;
    let mut kv = leader_holding_the_fifty_keys(&restored).await;
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

    // Offline, as `etcdutl snapshot restore`: `node restore` on each member's empty data
    // directory, then the nodes started on them with the same member list.
    let mut offline = Cluster::new(3, &[]);
    for node in &offline.nodes {
        let spec = &node.spec;
        let output = node_command()
            .arg("restore")
            .arg(&file)
            .arg("--data-dir")
            .arg(&spec.data_dir)
            .args(["--id", &spec.id.to_string()])
            .args([
                "--initial-cluster",
                spec.initial_cluster.as_deref().unwrap(),
            ])
            .output()
            .expect("run node restore");
        assert!(
            output.status.success(),
            "node restore for member {}: {}",
            spec.id,
            String::from_utf8_lossy(&output.stderr)
        );
        let said = String::from_utf8_lossy(&output.stdout);
        assert!(said.contains(&format!("member {}", spec.id)), "{said}");
    }
    // A directory that is not empty is refused, and left as it was.
    let again = node_command()
        .arg("restore")
        .arg(&file)
        .arg("--data-dir")
        .arg(&offline.nodes[0].spec.data_dir)
        .args(["--id", "1"])
        .output()
        .expect("run node restore");
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    offline.start_stopped().await;
    let mut kv = leader_holding_the_fifty_keys(&offline).await;
    let next = put(&mut kv, "app/new", "x").await.header.unwrap().revision;
    assert_eq!(next, last_revision + 1);
}
