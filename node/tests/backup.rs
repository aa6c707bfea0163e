//! Backups: `dengine snapshot save` from a running node, then a new three-node cluster founded
//! from that file with `node --restore-from`, and another with `node restore` run offline on
//! each member's data directory, both serving the same keys and revisions. And
//! `dengine snapshot save-into`, as the operator's backup Jobs run it against a volume: named,
//! checked, kept to a count, and nothing left behind when it fails.

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

/// The cluster's backups in `dir`, oldest first (their names go on with the year).
fn backups_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("shop.orders-2"))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_saved_into_a_directory_are_named_checked_and_kept_to_a_count() {
    // A node with an admin token, as every node the operator runs: a backup holds every key,
    // so it is asked for with the token.
    let secrets = tempfile::tempdir().unwrap();
    let token_file = secrets.path().join("admin-token");
    std::fs::write(&token_file, "backup-s3cret\n").unwrap();
    let token_arg = token_file.display().to_string();
    let source = Cluster::start(1, &["--admin-token-file", &token_arg]).await;
    let mut kv = source.nodes[0].kv();
    let volume = source.dir().join("volume");
    let kept_in = volume.join("shop/orders");
    std::fs::create_dir_all(&kept_in).unwrap();
    // Not this cluster's: a user's file, and a cluster whose name starts the same.
    let others = [
        "notes.txt",
        "shop.orders-eu-20200101T000000.000Z.dengine-backup",
    ];
    for name in others {
        std::fs::write(kept_in.join(name), b"keep me").unwrap();
    }
    // What a backup killed mid-write leaves (the store's staging name): removed by the next.
    let leftover = kept_in.join("shop.orders-20261201T000000.000Z.dengine-backup#3");
    std::fs::write(&leftover, b"half a backup").unwrap();
    // Another cluster's, whose name starts the same, may be in use by its own backup: kept.
    let theirs = kept_in.join("shop.orders-eu-20261201T000000.000Z.dengine-backup#4");
    std::fs::write(&theirs, b"another cluster's, being written").unwrap();
    let report = source.dir().join("report.json");
    // The admin API on the peer listener, as a backup Job reaches the leader.
    let endpoint = format!("http://{}", source.nodes[0].spec.peer_endpoint());
    let save_into_with = |endpoint: String, token: Option<String>| {
        let volume = volume.display().to_string();
        let report = report.display().to_string();
        async move {
            let mut args: Vec<String> = Vec::new();
            if let Some(token) = token {
                args.extend(["--admin-token-file".to_string(), token]);
            }
            args.extend(
                [
                    "--endpoints",
                    &endpoint,
                    "snapshot",
                    "save-into",
                    &volume,
                    "--cluster",
                    "shop/orders",
                    "--prefix",
                    "shop/orders/",
                    "--keep",
                    "2",
                    "--report-to",
                    &report,
                ]
                .map(str::to_string),
            );
            dengine(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
        }
    };
    let save_into = |endpoint: String| save_into_with(endpoint, Some(token_arg.clone()));
    let read_report = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap()
    };

    // Without the token the node refuses, and nothing is written.
    let refused = save_into_with(endpoint.clone(), None).await;
    refused.expect_code(1, "no admin token");
    let said = read_report();
    assert_eq!(said["reason"], "SourceFailed", "{said}");
    assert!(
        said["message"].as_str().unwrap().contains("admin token"),
        "{said}"
    );
    assert!(backups_in(&kept_in).is_empty());
    // `snapshot save` asks with the token too.
    let saved = source.dir().join("saved.backup").display().to_string();
    dengine(&[
        "--admin-token-file",
        &token_arg,
        "--endpoints",
        &endpoint,
        "snapshot",
        "save",
        &saved,
    ])
    .await
    .expect_success("snapshot save with the admin token");

    let mut written = Vec::new();
    let mut revision = 0;
    for round in 0..3 {
        revision = put(&mut kv, &format!("app/{round}"), "v")
            .await
            .header
            .unwrap()
            .revision;
        save_into(endpoint.clone())
            .await
            .expect_success("snapshot save-into");
        let said = read_report();
        assert_eq!(said["ok"], true, "{said}");
        assert_eq!(said["revision"], revision, "{said}");
        let object = said["object"].as_str().unwrap().to_string();
        assert!(object.starts_with("shop/orders/shop.orders-"), "{object}");
        // The file is a whole, checked backup of that revision.
        let file = volume.join(&object).display().to_string();
        let status = dengine(&["snapshot", "status", &file]).await;
        status.expect_success("snapshot status");
        assert!(
            status.stdout.contains(&format!("revision {revision},")),
            "{}",
            status.stdout
        );
        if round == 2 {
            assert_eq!(said["deleted"], serde_json::json!([written[0]]), "{said}");
            assert_eq!(said["deleted_count"], 1, "{said}");
        }
        written.push(object);
    }
    let names = |objects: &[String]| -> Vec<String> {
        objects
            .iter()
            .map(|o| o.rsplit('/').next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        backups_in(&kept_in),
        names(&written[1..]),
        "the newest two kept"
    );
    assert!(
        !leftover.exists(),
        "the staging file of a killed backup removed"
    );
    assert!(theirs.exists(), "another cluster's staging file kept");
    for name in others {
        assert_eq!(
            std::fs::read(kept_in.join(name)).unwrap(),
            b"keep me",
            "{name}"
        );
    }

    // A node that cannot be reached: a failure report, no new file, no staging file.
    std::fs::remove_file(&report).unwrap();
    let closed = format!(
        "http://{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    );
    let run = save_into(closed).await;
    run.expect_code(1, "an unreachable node");
    let said = read_report();
    assert_eq!(said["ok"], false, "{said}");
    assert_eq!(said["reason"], "SourceFailed", "{said}");
    let mut everything: Vec<String> = std::fs::read_dir(&kept_in)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    everything.sort();
    let mut expected: Vec<String> = names(&written[1..]);
    expected.extend(others.iter().map(|s| s.to_string()));
    expected.push(theirs.file_name().unwrap().to_string_lossy().into_owned());
    expected.sort();
    assert_eq!(everything, expected);

    // The restore path reads a file as it reads an object: checked, then named.
    let fetched = source.dir().join("fetched.backup");
    dengine(&[
        "snapshot",
        "fetch",
        &volume.join(&written[2]).display().to_string(),
        &fetched.display().to_string(),
    ])
    .await
    .expect_success("snapshot fetch from a file");
    let (header, _) = dengine_proto::backup::read(&fetched).unwrap();
    assert_eq!(header.revision, revision);
}
