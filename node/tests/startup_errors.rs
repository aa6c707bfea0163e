//! A node must refuse to start on a data directory that is not its own, or with a broken
//! configuration, saying why; and the refusal must leave the data as it was.

mod common;

use dengine::proto::ReadPolicy;

use common::{assert_same_state, key_value_map, put, scan_all, Cluster, Keys, NodeExit, NodeSpec};

/// A single node holding a few keys, stopped cleanly; returns the keys it holds.
async fn stopped_node_with_data() -> (Cluster, Keys) {
    let mut cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();
    let mut keys = Keys::new();
    for i in 0..20 {
        let (key, value) = (format!("precious/{i:02}"), format!("v{i}"));
        put(&mut kv, &key, &value).await;
        keys.insert(key, value);
    }
    let exit = cluster.nodes[0].terminate().await;
    assert!(
        exit.success(),
        "SIGTERM should stop the node cleanly, got {exit}"
    );
    (cluster, keys)
}

/// Starts `spec`, expects it to exit non-zero with an `Error:` line containing each of
/// `mentions`.
async fn assert_refused(spec: &NodeSpec, mentions: &[&str], what: &str) -> NodeExit {
    let exit = spec.run_to_exit().await;
    assert!(
        !exit.status.success(),
        "{what}: the node should refuse to start, but exited with {}\nstderr:\n{}",
        exit.status,
        exit.stderr
    );
    assert!(
        exit.stderr.contains("Error:"),
        "{what}: stderr should have an `Error:` line:\n{}",
        exit.stderr
    );
    eprintln!("{what}: refused with: {}", exit.stderr.trim_end());
    for mention in mentions {
        assert!(
            exit.stderr.contains(mention),
            "{what}: stderr should mention {mention:?}:\n{}",
            exit.stderr
        );
    }
    exit
}

/// Starts the original node again and reads every key it held.
async fn assert_data_intact(cluster: &mut Cluster, keys: &Keys) {
    cluster.nodes[0].start().await;
    cluster.wait_for_leader().await;
    let kvs = scan_all(&mut cluster.nodes[0].kv(), "", ReadPolicy::Linearizable, 0)
        .await
        .expect("scan after the refused starts");
    assert_same_state(
        "the original node after refused starts",
        &key_value_map(&kvs),
        keys,
    );
}

#[tokio::test]
async fn a_data_dir_of_another_cluster_is_refused() {
    let (mut cluster, keys) = stopped_node_with_data().await;
    let original = cluster.nodes[0].spec.clone();

    let other_token = NodeSpec {
        cluster_token: Some("another-cluster".into()),
        ..original.clone()
    };
    assert_refused(
        &other_token,
        &["cluster", "data directory"],
        "another cluster token",
    )
    .await;

    let other_members = NodeSpec {
        initial_cluster: Some(format!(
            "1={},2=127.0.0.1:{}",
            original.peer_endpoint(),
            common::free_ports(1)[0]
        )),
        ..original.clone()
    };
    assert_refused(
        &other_members,
        &["cluster", "data directory"],
        "another member list",
    )
    .await;

    assert_data_intact(&mut cluster, &keys).await;
}

#[tokio::test]
async fn a_data_dir_of_another_node_id_is_refused() {
    let (mut cluster, keys) = stopped_node_with_data().await;
    let other_id = NodeSpec {
        id: 2,
        ..cluster.nodes[0].spec.clone()
    };
    assert_refused(
        &other_id,
        &["node 1", "node 2", "data directory"],
        "another node id",
    )
    .await;
    assert_data_intact(&mut cluster, &keys).await;
}

#[tokio::test]
async fn a_malformed_config_file_is_refused_naming_the_setting() {
    let (mut cluster, keys) = stopped_node_with_data().await;
    let cases = [
        ("unknown-key.toml", "idd = 2\n", "idd"),
        ("bad-type.toml", "tick_ms = \"fast\"\n", "tick_ms"),
        (
            "bad-value.toml",
            "heartbeat_ticks = 50\n",
            "heartbeat_ticks",
        ),
        (
            "not-toml.toml",
            "history_retention = = 3\n",
            "history_retention",
        ),
    ];
    for (file, text, setting) in cases {
        let path = cluster.dir().join(file);
        std::fs::write(&path, text).expect("write the config file");
        let spec = NodeSpec {
            config_file: Some(path),
            ..cluster.nodes[0].spec.clone()
        };
        assert_refused(&spec, &[setting], &format!("config {text:?}")).await;
    }
    assert_data_intact(&mut cluster, &keys).await;
}
