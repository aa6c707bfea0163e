//! Embedded mode: a node inside the test process, used through its in-process client, alone
//! and as a member of a cluster whose other members are `node` processes.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use dengine::embedded::{
    Client, Compare, Embedded, EmbeddedNode, Error, EventKind, NodeConfig, PutOptions, ReadPolicy,
    RoleEvent, RoleStream, ScanRequest, WatchEvent, WatchRequest, WatchStream,
};
use dengine::proto::admin_client::AdminClient;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{GetRequest, TransferLeadershipRequest};
use tonic::transport::{Channel, Endpoint};

use common::{b, free_ports, get, is_retryable, put, wait_for, Cluster, DEADLINE};

const POLICIES: [ReadPolicy; 3] = [
    ReadPolicy::Linearizable,
    ReadPolicy::Lease,
    ReadPolicy::Eventual,
];

/// A single node in `dir`, with the test suite's quick ticks, started and ready.
async fn start_single(dir: &Path, change: impl FnOnce(&mut NodeConfig)) -> EmbeddedNode {
    let node = Embedded::single_node(dir)
        .configure(|config| {
            config.tick_ms = 20;
            change(config);
        })
        .start()
        .await
        .expect("start the embedded node");
    node.wait_ready(DEADLINE)
        .await
        .expect("the node gets ready");
    node
}

fn text(bytes: &Bytes) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The value of `key` under `policy`, as text; `None` if it does not exist.
async fn value_of(client: &Client, key: &str, policy: ReadPolicy) -> Option<String> {
    client
        .get_with(key, policy)
        .await
        .unwrap_or_else(|e| panic!("get {key:?} ({policy:?}): {e}"))
        .kv
        .map(|kv| text(&kv.value))
}

/// Every key under `prefix`, `page` keys at a time.
async fn scan_all(
    client: &Client,
    prefix: &str,
    policy: ReadPolicy,
    page: u32,
) -> BTreeMap<String, String> {
    let mut all = BTreeMap::new();
    let mut request = ScanRequest::prefix(prefix)
        .with_limit(page)
        .with_read_policy(policy);
    let mut pages = 0;
    loop {
        let response = client.scan(request.clone()).await.expect("scan");
        pages += 1;
        assert!(response.kvs.len() <= page as usize, "a page over its limit");
        all.extend(
            response
                .kvs
                .iter()
                .map(|kv| (text(&kv.key), text(&kv.value))),
        );
        if response.continuation.is_empty() {
            break;
        }
        assert!(pages < 1000, "the scan does not end");
        request = request.after(response.continuation);
    }
    all
}

/// The next `count` events of a watch, however they are batched.
async fn next_events(stream: &mut WatchStream, count: usize) -> Vec<WatchEvent> {
    let mut events = Vec::new();
    while events.len() < count {
        let response = tokio::time::timeout(DEADLINE, stream.recv())
            .await
            .unwrap_or_else(|_| panic!("no watch event within {DEADLINE:?}; got {events:?}"))
            .expect("the watch stream ended")
            .unwrap_or_else(|e| panic!("the watch failed: {e}"));
        assert_eq!(
            response.header.revision,
            response.events.last().expect("no empty batches").revision()
        );
        events.extend(response.events);
    }
    events
}

/// (kind, key, value, revision) of each event.
fn summary(events: &[WatchEvent]) -> Vec<(EventKind, String, String, i64)> {
    events
        .iter()
        .map(|e| (e.kind, text(&e.kv.key), text(&e.kv.value), e.revision()))
        .collect()
}

/// The next role event, within the deadline.
async fn next_role(roles: &mut RoleStream) -> RoleEvent {
    tokio::time::timeout(DEADLINE, roles.recv())
        .await
        .expect("a role event within the deadline")
        .expect("the role stream ended")
        .expect("a role event, not an error")
}

/// The stream's final error, after any items still queued.
async fn end_of<T, S>(stream: &mut S) -> Error
where
    S: futures::Stream<Item = Result<T, Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(DEADLINE, futures::StreamExt::next(stream)).await {
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return e,
            Ok(None) => panic!("the stream ended without an error"),
            Err(_) => panic!("the stream did not end within {DEADLINE:?}"),
        }
    }
}

/// A graceful shutdown, within the deadline.
async fn stop(node: EmbeddedNode) {
    tokio::time::timeout(DEADLINE, node.shutdown())
        .await
        .unwrap_or_else(|_| panic!("no shutdown within {DEADLINE:?}"))
        .expect("a graceful shutdown");
}

fn kv_client(address: &str) -> KvClient<Channel> {
    KvClient::new(
        Endpoint::from_shared(format!("http://{address}"))
            .expect("a loopback URI")
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(5))
            .connect_lazy(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_embedded_node_serves_the_whole_api_in_process() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let client_port = free_ports(1)[0];
    let node = Embedded::single_node(dir.path())
        .configure(|config| {
            config.tick_ms = 20;
            config.max_key_bytes = 64;
            config.max_value_bytes = 1024;
            config.client_listen = format!("127.0.0.1:{client_port}").parse().unwrap();
        })
        .client_listener(true)
        .start()
        .await
        .expect("start the embedded node");
    assert_eq!(
        node.peer_address(),
        None,
        "a single node opens no peer listener"
    );
    assert_eq!(node.metrics_address(), None);
    node.wait_ready(DEADLINE)
        .await
        .expect("the node gets ready");
    let client = node.client();

    // Its role: the leader of its own cluster, from the first event on.
    let role = client.role().expect("role");
    assert!(role.is_leader && role.leader_id == Some(1) && role.member_id == 1 && role.term >= 1);
    let mut roles = client.watch_role().await.expect("watch the role");
    assert_eq!(next_role(&mut roles).await, role);

    // Watches from now, on a prefix and on one key, opened before the writes.
    let mut prefix_watch = client
        .watch(WatchRequest::prefix("w/"))
        .await
        .expect("watch a prefix");
    let mut key_watch = client
        .watch(WatchRequest::key("w/1"))
        .await
        .expect("watch a key");

    // Put and get, under every policy.
    let first = client.put("w/1", "one").await.expect("put");
    assert!(first.header.revision >= 1 && first.prev_kv.is_none());
    assert_eq!(first.header.member_id, 1);
    for policy in POLICIES {
        let read = client.get_with("w/1", policy).await.expect("get");
        let kv = read.kv.expect("w/1 exists");
        assert_eq!(
            (text(&kv.value), kv.version, kv.mod_revision),
            ("one".to_string(), 1, first.header.revision),
            "{policy:?}"
        );
        assert!(read.header.revision >= first.header.revision, "{policy:?}");
    }
    assert!(client.get("missing").await.expect("get").kv.is_none());
    let second = client
        .put_with("w/1", "uno", PutOptions::new().with_prev_kv())
        .await
        .expect("put with prev_kv");
    assert_eq!(
        second.prev_kv.map(|kv| text(&kv.value)),
        Some("one".to_string())
    );
    assert_eq!(second.header.revision, first.header.revision + 1);

    // Compare-and-swap on value, on mod revision and on absence.
    let refused = client
        .compare_and_swap("w/1", Compare::Value(b("one")), "x")
        .await
        .expect("cas");
    assert!(!refused.succeeded);
    assert_eq!(
        refused.current.map(|kv| text(&kv.value)),
        Some("uno".into())
    );
    let swapped = client
        .compare_and_swap("w/1", Compare::Value(b("uno")), "eins")
        .await
        .expect("cas");
    assert!(swapped.succeeded);
    let by_revision = client
        .compare_and_swap("w/1", Compare::ModRevision(swapped.header.revision), "1")
        .await
        .expect("cas");
    assert!(by_revision.succeeded);
    let created = client
        .compare_and_swap("w/2", Compare::Absent, "two")
        .await
        .expect("cas");
    assert!(created.succeeded && created.current.is_none());
    let not_absent = client
        .compare_and_swap("w/2", Compare::Absent, "again")
        .await
        .expect("cas");
    assert!(!not_absent.succeeded);
    let missing = client
        .compare_and_swap("cas/present", Compare::Present, "x")
        .await
        .expect("cas");
    assert!(!missing.succeeded && missing.current.is_none());
    client.put("cas/present", "here").await.expect("put");
    let present = client
        .compare_and_swap("cas/present", Compare::Present, "still here")
        .await
        .expect("cas");
    assert!(present.succeeded);

    // Delete, of a key that exists and of one that does not.
    let deleted = client
        .delete_with("w/2", dengine::embedded::DeleteOptions { prev_kv: true })
        .await
        .expect("delete");
    assert!(deleted.deleted);
    assert_eq!(
        deleted.prev_kv.map(|kv| text(&kv.value)),
        Some("two".into())
    );
    let again = client.delete("w/2").await.expect("delete");
    assert!(!again.deleted && again.header.revision == deleted.header.revision);
    client.put("x/1", "not watched").await.expect("put");

    // The watches saw each change in order, the key watch only its key.
    let w1 = first.header.revision;
    let expected = vec![
        (EventKind::Put, "w/1".to_string(), "one".to_string(), w1),
        (EventKind::Put, "w/1".into(), "uno".into(), w1 + 1),
        (EventKind::Put, "w/1".into(), "eins".into(), w1 + 2),
        (EventKind::Put, "w/1".into(), "1".into(), w1 + 3),
        (EventKind::Put, "w/2".into(), "two".into(), w1 + 4),
        // Two writes to cas/present came between.
        (
            EventKind::Delete,
            "w/2".into(),
            "".into(),
            deleted.header.revision,
        ),
    ];
    assert_eq!(summary(&next_events(&mut prefix_watch, 6).await), expected);
    assert_eq!(
        summary(&next_events(&mut key_watch, 4).await),
        expected[..4].to_vec()
    );
    // A watch from a retained revision replays, then follows.
    let mut replay = client
        .watch(WatchRequest::prefix("w/").from_revision(w1 + 4))
        .await
        .expect("watch from a revision");
    assert_eq!(
        summary(&next_events(&mut replay, 2).await),
        expected[4..].to_vec()
    );
    let third = client.put("w/3", "three").await.expect("put");
    assert_eq!(
        summary(&next_events(&mut replay, 1).await),
        vec![(
            EventKind::Put,
            "w/3".into(),
            "three".into(),
            third.header.revision
        )]
    );

    // Scan, a page at a time, under every policy.
    let mut expected_scan = BTreeMap::new();
    for i in 0..25 {
        let (key, value) = (format!("scan/{i:02}"), format!("v{i}"));
        client.put(&key, &value).await.expect("put");
        expected_scan.insert(key, value);
    }
    for policy in POLICIES {
        assert_eq!(scan_all(&client, "scan/", policy, 10).await, expected_scan);
    }
    let page = client
        .scan(ScanRequest::prefix("scan/").with_limit(10))
        .await
        .expect("scan");
    assert_eq!(page.kvs.len(), 10);
    let misused = client
        .scan(ScanRequest::prefix("w/").after(page.continuation))
        .await
        .expect_err("a continuation of another prefix");
    assert!(
        matches!(misused, Error::InvalidArgument { limit: None, .. }),
        "{misused:?}"
    );

    // Bad input is refused with the limit named, as over gRPC.
    let long_key = "k".repeat(65);
    for (error, limit) in [
        (client.put("", "v").await.unwrap_err(), None),
        (client.get("").await.unwrap_err(), None),
        (
            client.put(&long_key, "v").await.unwrap_err(),
            Some("max_key_bytes"),
        ),
        (
            client.get(&long_key).await.unwrap_err(),
            Some("max_key_bytes"),
        ),
        (
            client.put("k", "v".repeat(1025)).await.unwrap_err(),
            Some("max_value_bytes"),
        ),
        (
            client
                .scan(ScanRequest::prefix(&long_key))
                .await
                .unwrap_err(),
            Some("max_key_bytes"),
        ),
    ] {
        match &error {
            Error::InvalidArgument { limit: named, .. } => assert_eq!(*named, limit, "{error}"),
            other => panic!("expected an invalid argument, got {other:?}"),
        }
        assert_eq!(error.code(), tonic::Code::InvalidArgument);
        if let Some(limit) = limit {
            assert!(error.to_string().contains(limit), "{error}");
        }
    }

    // A TTL: the key is there, then the leader deletes it through the log.
    client
        .put_with(
            "session",
            "alive",
            PutOptions::new().with_ttl(Duration::from_millis(300)),
        )
        .await
        .expect("put with a ttl");
    let session = client
        .get("session")
        .await
        .expect("get")
        .kv
        .expect("exists");
    assert!(session.expires_at_unix_ms > 0);
    wait_for("the key with a TTL to expire", || async {
        match value_of(&client, "session", ReadPolicy::Linearizable).await {
            None => Ok(()),
            Some(value) => Err(format!("still {value:?}")),
        }
    })
    .await;

    // The gRPC listener serves the same node: each side sees the other's writes.
    let mut grpc = kv_client(&format!("127.0.0.1:{client_port}"));
    assert_eq!(node.client_address().map(|a| a.port()), Some(client_port));
    let over_grpc = get(&mut grpc, "w/1", dengine::proto::ReadPolicy::Linearizable).await;
    assert_eq!(over_grpc.kv.map(|kv| text(&kv.value)), Some("1".into()));
    put(&mut grpc, "from-grpc", "hello").await;
    assert_eq!(
        value_of(&client, "from-grpc", ReadPolicy::Linearizable).await,
        Some("hello".into())
    );

    // Shutdown: clients fail with ShuttingDown, streams end with it.
    stop(node).await;
    assert_eq!(client.put("k", "v").await.unwrap_err(), Error::ShuttingDown);
    assert_eq!(client.get("k").await.unwrap_err(), Error::ShuttingDown);
    assert!(matches!(client.role(), Err(Error::ShuttingDown)));
    assert_eq!(end_of(&mut prefix_watch).await, Error::ShuttingDown);
    assert_eq!(end_of(&mut replay).await, Error::ShuttingDown);
    assert_eq!(end_of(&mut roles).await, Error::ShuttingDown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_compacted_history_is_refused_naming_the_oldest_retained_revision() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = start_single(dir.path(), |config| config.history_retention = 5).await;
    let client = node.client();
    let mut last = 0;
    for i in 0..20 {
        last = client
            .put("h/key", format!("v{i}"))
            .await
            .expect("put")
            .header
            .revision;
    }
    let refused = client
        .watch(WatchRequest::prefix("h/").from_revision(1))
        .await
        .err()
        .expect("history from revision 1 is gone");
    let oldest_retained = match &refused {
        Error::Compacted {
            oldest_retained, ..
        } => *oldest_retained,
        other => panic!("expected Compacted, got {other:?}"),
    };
    assert_eq!(refused.code(), tonic::Code::OutOfRange);
    assert!(refused.to_string().contains(&oldest_retained.to_string()));
    assert!(oldest_retained > 1 && oldest_retained <= last);
    // From the oldest retained revision on, the history is all there.
    let mut resumed = client
        .watch(WatchRequest::key("h/key").from_revision(oldest_retained))
        .await
        .expect("watch from the oldest retained revision");
    let events = next_events(&mut resumed, (last - oldest_retained + 1) as usize).await;
    assert_eq!(
        events.iter().map(WatchEvent::revision).collect::<Vec<_>>(),
        (oldest_retained..=last).collect::<Vec<_>>()
    );
    assert!(matches!(
        client
            .watch(WatchRequest::key("h/key").from_revision(-1))
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_from_the_same_data_directory_keeps_the_data() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = start_single(dir.path(), |_| {}).await;
    let client = node.client();
    let mut written = BTreeMap::new();
    let mut revision = 0;
    for i in 0..30 {
        let (key, value) = (format!("keep/{i:02}"), format!("v{i}"));
        revision = client.put(&key, &value).await.expect("put").header.revision;
        written.insert(key, value);
    }
    client.delete("keep/00").await.expect("delete");
    written.remove("keep/00");
    revision += 1;
    let term = node.role().term;
    stop(node).await;

    // Started again on the same directory: the same cluster, data and revisions.
    let node = start_single(dir.path(), |_| {}).await;
    let client = node.client();
    for policy in POLICIES {
        assert_eq!(scan_all(&client, "keep/", policy, 7).await, written);
    }
    let read = client.get("keep/05").await.expect("get");
    assert_eq!(read.header.revision, revision);
    assert!(
        node.role().term > term,
        "a restarted node is elected in a new term"
    );
    let next = client.put("keep/new", "after restart").await.expect("put");
    assert_eq!(next.header.revision, revision + 1);
    written.insert("keep/new".into(), "after restart".into());

    // Dropped without a shutdown, it stops in the background; once its storage is released
    // the directory opens again, with every acknowledged write.
    drop(node);
    assert_eq!(client.put("k", "v").await.unwrap_err(), Error::ShuttingDown);
    let node = wait_for("the dropped node to release its data directory", || async {
        Embedded::single_node(dir.path())
            .configure(|config| config.tick_ms = 20)
            .start()
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    node.wait_ready(DEADLINE).await.expect("ready");
    assert_eq!(
        scan_all(&node.client(), "keep/", ReadPolicy::Linearizable, 100).await,
        written
    );
    stop(node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_several_nodes_cannot_do_without_its_peer_listener() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = NodeConfig {
        id: 1,
        data_dir: Some(dir.path().to_path_buf()),
        initial_cluster: Some("1=127.0.0.1:1,2=127.0.0.1:2,3=127.0.0.1:3".into()),
        ..NodeConfig::default()
    };
    let refused = Embedded::from_config(config)
        .peer_listener(false)
        .start()
        .await
        .expect_err("no peer listener in a cluster of three");
    assert!(refused.to_string().contains("peer_listen"), "{refused}");
}

/// The admin client of whichever member `id` is: the embedded node's peer listener for node
/// 1 (the admin API is served there too), the client port of a `node` process otherwise.
fn admin_of(cluster: &Cluster, embedded: &EmbeddedNode, id: u64) -> AdminClient<Channel> {
    if id == embedded.id() {
        let address = embedded.peer_address().expect("a peer listener");
        AdminClient::new(
            Endpoint::from_shared(format!("http://{address}"))
                .expect("a loopback URI")
                .connect_timeout(Duration::from_secs(1))
                .timeout(Duration::from_secs(5))
                .connect_lazy(),
        )
    } else {
        cluster.node(id).admin()
    }
}

/// Waits until the embedded node and every running process agree on a leader at one term,
/// and returns the embedded node's view of it.
async fn agreed_leader(cluster: &Cluster, embedded: &EmbeddedNode) -> RoleEvent {
    wait_for(
        "the embedded node and the processes to agree on a leader",
        || async {
            let role = embedded.role();
            let Some(leader) = role.leader_id else {
                return Err(format!("the embedded node knows no leader: {role:?}"));
            };
            for node in cluster.nodes.iter().filter(|n| n.is_running()) {
                let status = node.status().await.map_err(|e| e.to_string())?;
                if status.leader_id != leader || status.term != role.term {
                    return Err(format!(
                        "embedded: leader {leader} term {}; node {}: leader {} term {}",
                        role.term, status.member_id, status.leader_id, status.term
                    ));
                }
            }
            Ok(role)
        },
    )
    .await
}

/// Hands leadership to `target` through the current leader's admin API, and waits until
/// the embedded node's role stream reports it (`last` is the last event read from it).
async fn move_leadership(
    cluster: &Cluster,
    embedded: &EmbeddedNode,
    roles: &mut RoleStream,
    last: RoleEvent,
    target: u64,
) -> RoleEvent {
    wait_for(format!("leadership to move to node {target}"), || async {
        let leader = agreed_leader(cluster, embedded).await;
        if leader.leader_id == Some(target) {
            return Ok(());
        }
        let from = leader.leader_id.expect("agreed on a leader");
        admin_of(cluster, embedded, from)
            .transfer_leadership(TransferLeadershipRequest { target_id: target })
            .await
            .map(|_| ())
            .map_err(|e| format!("transfer from {from}: {e}"))
    })
    .await;
    let mut event = last;
    loop {
        if event.leader_id == Some(target) {
            assert_eq!(event.is_leader, target == embedded.id(), "{event:?}");
            return event;
        }
        event = next_role(roles).await;
    }
}

/// A write through the embedded client, retried while the cluster is between leaders.
async fn put_retrying(client: &Client, key: &str, value: &str) -> i64 {
    wait_for(format!("put {key:?} through the embedded node"), || async {
        match client.put(key, value).await {
            Ok(response) => Ok(response.header.revision),
            Err(e) if e.is_retryable() => Err(e.to_string()),
            Err(e) => panic!("put {key:?} refused: {e}"),
        }
    })
    .await
}

/// The value of `key` on a `node` process, read with a linearizable read over gRPC (retried
/// while the cluster is between leaders).
async fn grpc_value(kv: KvClient<Channel>, key: &str) -> Option<String> {
    wait_for(format!("a linearizable read of {key:?} over gRPC"), || {
        let mut kv = kv.clone();
        async move {
            let request = GetRequest {
                key: b(key),
                read_policy: dengine::proto::ReadPolicy::Linearizable.into(),
                ..Default::default()
            };
            match kv.get(request).await {
                Ok(response) => Ok(response.into_inner().kv.map(|kv| text(&kv.value))),
                Err(e) if is_retryable(&e) => Err(e.to_string()),
                Err(e) => panic!("get {key:?} over gRPC: {e}"),
            }
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_member_works_with_node_processes_and_follows_leadership() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("info")
        .with_test_writer()
        .try_init();
    // Nodes 2 and 3 are processes; node 1, in its place in the member list, is embedded.
    let mut cluster = Cluster::new(3, &[]);
    for id in [2, 3] {
        cluster.node_mut(id).start().await;
    }
    let spec = cluster.node(1).spec.clone();
    let config = NodeConfig {
        id: 1,
        data_dir: Some(spec.data_dir.clone()),
        peer_listen: spec.peer_endpoint().parse().expect("a socket address"),
        initial_cluster: spec.initial_cluster.clone(),
        tick_ms: 20,
        ..NodeConfig::default()
    };
    let embedded = Embedded::from_config(config)
        .start()
        .await
        .expect("start the embedded member");
    assert_eq!(
        embedded.client_address(),
        None,
        "no client listener unless asked"
    );
    embedded.wait_ready(DEADLINE).await.expect("ready");
    let client = embedded.client();
    let mut roles = client.watch_role().await.expect("watch the role");
    let first = next_role(&mut roles).await;
    assert_eq!(first.member_id, 1);
    agreed_leader(&cluster, &embedded).await;

    // Writes through the embedded client are seen over gRPC on the processes, and the other
    // way round, under every policy.
    let mut watch = client
        .watch(WatchRequest::prefix("mix/"))
        .await
        .expect("watch");
    let revision = put_retrying(&client, "mix/from-embedded", "e1").await;
    for id in [2, 3] {
        assert_eq!(
            grpc_value(cluster.node(id).kv(), "mix/from-embedded").await,
            Some("e1".into()),
            "node {id}"
        );
    }
    let mut kv2 = cluster.node(2).kv();
    let over_grpc = put(&mut kv2, "mix/from-node-2", "n2").await;
    assert_eq!(
        value_of(&client, "mix/from-node-2", ReadPolicy::Linearizable).await,
        Some("n2".into())
    );
    wait_for(
        "the eventual read on the embedded node to catch up",
        || async {
            match value_of(&client, "mix/from-node-2", ReadPolicy::Eventual).await {
                Some(value) if value == "n2" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let events = next_events(&mut watch, 2).await;
    assert_eq!(
        summary(&events),
        vec![
            (
                EventKind::Put,
                "mix/from-embedded".into(),
                "e1".into(),
                revision
            ),
            (
                EventKind::Put,
                "mix/from-node-2".into(),
                "n2".into(),
                over_grpc.header.expect("a header").revision
            ),
        ]
    );

    // Leadership comes to the embedded node: it leads, and its writes are served in place.
    let led = move_leadership(&cluster, &embedded, &mut roles, first, 1).await;
    assert!(led.is_leader && led.term >= first.term);
    assert!(embedded.role().is_leader);
    put_retrying(&client, "mix/embedded-leads", "yes").await;
    let lease_read = wait_for("a lease read on the embedded leader", || async {
        client
            .get_with("mix/embedded-leads", ReadPolicy::Lease)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    assert_eq!(lease_read.kv.map(|kv| text(&kv.value)), Some("yes".into()));
    assert_eq!(
        grpc_value(cluster.node(3).kv(), "mix/embedded-leads").await,
        Some("yes".into())
    );

    // Leadership moves on to node 2: the embedded node follows and forwards its writes.
    let followed = move_leadership(&cluster, &embedded, &mut roles, led, 2).await;
    assert!(!followed.is_leader && followed.term > led.term);
    put_retrying(&client, "mix/forwarded", "to 2").await;
    assert_eq!(
        grpc_value(cluster.node(2).kv(), "mix/forwarded").await,
        Some("to 2".into())
    );

    // The leader is killed: the embedded node sees a new leader at a higher term and keeps
    // serving reads and writes.
    cluster.node_mut(2).kill();
    let after_kill = loop {
        let event = next_role(&mut roles).await;
        if event.leader_id.is_some_and(|leader| leader != 2) {
            break event;
        }
    };
    assert!(after_kill.term > followed.term);
    put_retrying(&client, "mix/after-kill", "still").await;
    assert_eq!(
        grpc_value(cluster.node(3).kv(), "mix/after-kill").await,
        Some("still".into())
    );
    assert_eq!(
        value_of(&client, "mix/from-node-2", ReadPolicy::Linearizable).await,
        Some("n2".into())
    );

    // Node 2 comes back and catches up on what it missed.
    cluster.node_mut(2).start().await;
    agreed_leader(&cluster, &embedded).await;
    let kv2 = cluster.node(2).kv();
    wait_for("node 2 to catch up after its restart", || async {
        match grpc_value(kv2.clone(), "mix/after-kill").await {
            Some(value) if value == "still" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    stop(embedded).await;
}

/// An embedded node stops through the same server shutdown as the `node` binary, which waits
/// for its connections to close. A member must stop even when a gRPC watch is open on it and
/// a peer (here the other follower) has nothing to send it: both streams are ended by the
/// shutdown rather than awaited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_process_stops_on_sigterm_with_a_watch_open_and_idle_peers() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let mut kv = cluster.node(follower).kv();
    let mut watch = kv
        .watch(dengine::proto::WatchRequest {
            key: b("any/"),
            prefix: true,
            start_revision: 0,
        })
        .await
        .expect("watch")
        .into_inner();
    let exit = cluster.node_mut(follower).terminate().await;
    assert!(exit.success(), "node {follower} exited with {exit}");
    let end = tokio::time::timeout(DEADLINE, watch.message())
        .await
        .expect("the watch ends with the node");
    assert!(
        !matches!(end, Ok(Some(_))),
        "no event was written, yet the watch sent {end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_application_holds_keys_with_a_lease() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let node = start_single(dir.path(), |_| {}).await;
    let client = node.client();

    let lease = client.grant_lease(30).await.expect("grant a lease");
    assert!(lease.id > 0);
    assert_eq!(lease.ttl, 30);
    client
        .put_with_lease("members/me", "here", lease.id)
        .await
        .expect("put with the lease");
    let got = client.get("members/me").await.unwrap().kv.unwrap();
    assert_eq!(got.lease, lease.id);
    let status = client
        .lease_time_to_live(lease.id)
        .await
        .unwrap()
        .expect("the lease exists");
    assert_eq!(status.granted_ttl, 30);
    assert_eq!(status.keys, vec![Bytes::from_static(b"members/me")]);
    assert_eq!(client.keep_lease_alive(lease.id).await.unwrap(), Some(30));

    // A lease id of one's own, once.
    let mine = client.grant_lease_with_id(60, 77).await.unwrap();
    assert_eq!(mine.id, 77);
    let again = client.grant_lease_with_id(60, 77).await.unwrap_err();
    assert!(
        again.to_string().contains("lease already exists"),
        "{again}"
    );

    client.revoke_lease(lease.id).await.expect("revoke");
    assert!(client.get("members/me").await.unwrap().kv.is_none());
    assert_eq!(client.keep_lease_alive(lease.id).await.unwrap(), None);
    assert!(client.lease_time_to_live(lease.id).await.unwrap().is_none());
    let gone = client
        .put_with_lease("members/late", "x", lease.id)
        .await
        .unwrap_err();
    assert!(
        gone.to_string().contains("requested lease not found"),
        "{gone}"
    );
    stop(node).await;
}
