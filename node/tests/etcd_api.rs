//! etcd's v3 KV service on a node's client port, called as etcd's clients call it: ranges with
//! every option, puts, range deletes, transactions, compaction, etcd's errors word for word,
//! and a follower that forwards writes to the leader.

mod common;

use dengine::proto::ReadPolicy;
use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::etcdserverpb::kv_client::KvClient;
use pb::compare::{CompareResult, CompareTarget, TargetUnion};
use pb::range_request::{SortOrder, SortTarget};
use pb::request_op::Request as Op;
use pb::response_op::Response as Answer;
use tonic::transport::Channel;
use tonic::Code;

use common::{assert_etcd_error, get, Cluster};

async fn put(kv: &mut KvClient<Channel>, key: &str, value: &str) -> pb::PutResponse {
    kv.put(pb::PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|status| panic!("etcd put {key}: {status}"))
    .into_inner()
}

fn range(key: &str, range_end: &str) -> pb::RangeRequest {
    pb::RangeRequest {
        key: key.into(),
        range_end: range_end.into(),
        ..Default::default()
    }
}

/// A range that must succeed.
async fn range_ok(kv: &mut KvClient<Channel>, request: pb::RangeRequest) -> pb::RangeResponse {
    kv.range(request)
        .await
        .unwrap_or_else(|status| panic!("etcd range: {status}"))
        .into_inner()
}

fn keys(response: &pb::RangeResponse) -> Vec<String> {
    response
        .kvs
        .iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

#[tokio::test]
async fn ranges_puts_and_deletes_answer_as_etcd_does() {
    let cluster = Cluster::start(1, &[]).await;
    let node = &cluster.nodes[0];
    let mut kv = node.etcd_kv();

    let first = put(&mut kv, "app/b", "2").await;
    let header = first.header.unwrap();
    assert_eq!(header.member_id, node.id());
    assert_ne!(header.cluster_id, 0);
    assert!(header.raft_term >= 1);
    put(&mut kv, "app/a", "1").await;
    put(&mut kv, "app/c", "3").await;
    put(&mut kv, "other", "x").await;
    let replaced = kv
        .put(pb::PutRequest {
            key: "app/a".into(),
            value: "11".into(),
            prev_kv: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replaced.prev_kv.unwrap().value, b"1");
    let now = replaced.header.unwrap().revision;

    // One key; a prefix; every key from a key on.
    let one = range_ok(&mut kv, range("app/a", "")).await;
    assert_eq!((one.count, one.kvs[0].version), (1, 2));
    let app = range_ok(&mut kv, range("app/", "app0")).await;
    assert_eq!(keys(&app), ["app/a", "app/b", "app/c"]);
    assert_eq!(app.header.unwrap().revision, now);
    let from_c = range_ok(&mut kv, range("app/c", "\0")).await;
    assert_eq!(keys(&from_c), ["app/c", "other"]);

    // Limit with more and count; sorting; keys only; count only.
    let limited = range_ok(
        &mut kv,
        pb::RangeRequest {
            limit: 2,
            ..range("app/", "app0")
        },
    )
    .await;
    assert_eq!(
        (keys(&limited).len(), limited.more, limited.count),
        (2, true, 3)
    );
    let by_value_descending = range_ok(
        &mut kv,
        pb::RangeRequest {
            sort_order: SortOrder::Descend.into(),
            sort_target: SortTarget::Value.into(),
            ..range("app/", "app0")
        },
    )
    .await;
    assert_eq!(keys(&by_value_descending), ["app/c", "app/b", "app/a"]);
    let bare = range_ok(
        &mut kv,
        pb::RangeRequest {
            keys_only: true,
            ..range("app/", "app0")
        },
    )
    .await;
    assert!(bare.kvs.iter().all(|kv| kv.value.is_empty()));
    let counted = kv
        .range(pb::RangeRequest {
            count_only: true,
            ..range("", "\0")
        })
        .await;
    assert_etcd_error(
        counted,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );
    let counted = range_ok(
        &mut kv,
        pb::RangeRequest {
            count_only: true,
            ..range("\0", "\0")
        },
    )
    .await;
    assert_eq!((counted.count, counted.kvs.len()), (4, 0));

    // The past: a at the revision before it was replaced.
    let before = range_ok(
        &mut kv,
        pb::RangeRequest {
            revision: now - 1,
            ..range("app/a", "")
        },
    )
    .await;
    assert_eq!(before.kvs[0].value, b"1");
    assert_etcd_error(
        kv.range(pb::RangeRequest {
            revision: now + 1,
            ..range("app/a", "")
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision is a future revision",
    );

    // A range delete: one revision, the deleted keys as they were.
    let deleted = kv
        .delete_range(pb::DeleteRangeRequest {
            key: "app/".into(),
            range_end: "app0".into(),
            prev_kv: true,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((deleted.deleted, deleted.prev_kvs.len()), (3, 3));
    assert_eq!(deleted.header.unwrap().revision, now + 1);

    // What etcd refuses, it refuses in its own words.
    assert_etcd_error(
        kv.put(pb::PutRequest {
            key: "k".into(),
            lease: 42,
            ..Default::default()
        })
        .await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    );
    assert_etcd_error(
        kv.put(pb::PutRequest::default()).await,
        Code::InvalidArgument,
        "etcdserver: key is not provided",
    );

    // Compaction, and reads below it.
    kv.compact(pb::CompactionRequest {
        revision: now,
        physical: true,
    })
    .await
    .unwrap();
    assert_etcd_error(
        kv.range(pb::RangeRequest {
            revision: now - 1,
            ..range("app/a", "")
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    assert_etcd_error(
        kv.compact(pb::CompactionRequest {
            revision: now,
            physical: false,
        })
        .await,
        Code::OutOfRange,
        "etcdserver: mvcc: required revision has been compacted",
    );
    let at_compaction = range_ok(
        &mut kv,
        pb::RangeRequest {
            revision: now,
            ..range("app/a", "")
        },
    )
    .await;
    assert_eq!(at_compaction.kvs[0].value, b"11");
}

#[tokio::test]
async fn auth_answers_as_etcd_does_with_authentication_off() {
    let cluster = Cluster::start(1, &[]).await;
    let mut auth = dengine_proto::etcd::etcdserverpb::auth_client::AuthClient::new(
        cluster.nodes[0].etcd_channel(),
    );
    let status = auth
        .auth_status(pb::AuthStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!status.enabled);
    assert_etcd_error(
        auth.authenticate(pb::AuthenticateRequest {
            name: "root".into(),
            password: "secret".into(),
        })
        .await,
        Code::FailedPrecondition,
        "etcdserver: authentication is not enabled",
    );
    assert_etcd_error(
        auth.user_get(pb::AuthUserGetRequest {
            name: "root".into(),
        })
        .await,
        Code::FailedPrecondition,
        "etcdserver: user name not found",
    );
}

#[tokio::test]
async fn a_txn_through_a_follower_compares_and_swaps_on_the_leader() {
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.wait_for_leader().await;
    let follower = cluster
        .nodes
        .iter()
        .find(|node| node.id() != leader)
        .expect("a follower");
    let mut kv = follower.etcd_kv();
    let created = put(&mut kv, "lock", "free").await.header.unwrap().revision;

    // Kubernetes' optimistic update: compare the mod revision, put, or read the key back.
    let update = |expected: i64, value: &str| pb::TxnRequest {
        compare: vec![pb::Compare {
            key: "lock".into(),
            target: CompareTarget::Mod.into(),
            result: CompareResult::Equal.into(),
            target_union: Some(TargetUnion::ModRevision(expected)),
            range_end: Vec::new(),
        }],
        success: vec![pb::RequestOp {
            request: Some(Op::RequestPut(pb::PutRequest {
                key: "lock".into(),
                value: value.into(),
                ..Default::default()
            })),
        }],
        failure: vec![pb::RequestOp {
            request: Some(Op::RequestRange(range("lock", ""))),
        }],
    };
    let won = kv.txn(update(created, "held")).await.unwrap().into_inner();
    assert!(won.succeeded);
    let held_at = won.header.unwrap().revision;
    assert_eq!(held_at, created + 1);
    let Some(Answer::ResponsePut(put_answer)) = &won.responses[0].response else {
        panic!("{won:?}")
    };
    assert_eq!(
        put_answer.header.unwrap().revision,
        held_at,
        "nested headers"
    );

    let lost = kv
        .txn(update(created, "stolen"))
        .await
        .unwrap()
        .into_inner();
    assert!(!lost.succeeded);
    let Some(Answer::ResponseRange(current)) = &lost.responses[0].response else {
        panic!("{lost:?}")
    };
    assert_eq!(current.kvs[0].mod_revision, held_at);

    // The native API sees the same key, at the same revision, on the leader.
    let mut native = cluster.node(leader).kv();
    let seen = get(&mut native, "lock", ReadPolicy::Linearizable).await;
    let seen = seen.kv.unwrap();
    assert_eq!(
        (seen.value.as_ref(), seen.mod_revision),
        (&b"held"[..], held_at)
    );

    assert_etcd_error(
        kv.txn(pb::TxnRequest {
            success: vec![
                pb::RequestOp {
                    request: Some(Op::RequestPut(pb::PutRequest {
                        key: "a".into(),
                        ..Default::default()
                    })),
                };
                2
            ],
            ..Default::default()
        })
        .await,
        Code::InvalidArgument,
        "etcdserver: duplicate key given in txn request",
    );
}

/// The next answer on a watch stream, within the harness's deadline.
async fn next(answers: &mut tonic::Streaming<pb::WatchResponse>) -> pb::WatchResponse {
    tokio::time::timeout(common::DEADLINE, answers.message())
        .await
        .expect("a watch answer within the deadline")
        .expect("the stream goes on")
        .expect("the stream is open")
}

fn create(key: &str, range_end: &str, start_revision: i64) -> pb::WatchCreateRequest {
    pb::WatchCreateRequest {
        key: key.into(),
        range_end: range_end.into(),
        start_revision,
        ..Default::default()
    }
}

fn watch_request(request: pb::watch_request::RequestUnion) -> pb::WatchRequest {
    pb::WatchRequest {
        request_union: Some(request),
    }
}

#[tokio::test]
async fn one_watch_stream_carries_many_watchers_as_etcd_does() {
    use pb::watch_request::RequestUnion;
    let cluster = Cluster::start(1, &[]).await;
    let node = &cluster.nodes[0];
    let mut kv = node.etcd_kv();
    put(&mut kv, "w/a", "1").await;
    put(&mut kv, "w/a", "2").await;
    kv.delete_range(pb::DeleteRangeRequest {
        key: "w/a".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    put(&mut kv, "x", "1").await;

    let (requests, requests_rx) = tokio::sync::mpsc::channel(8);
    let mut watch =
        dengine_proto::etcd::etcdserverpb::watch_client::WatchClient::new(node.etcd_channel());
    let mut answers = watch
        .watch(tokio_stream::wrappers::ReceiverStream::new(requests_rx))
        .await
        .unwrap()
        .into_inner();

    // Watcher 0: the interval [w/, w0) from revision 1, with previous values, no deletes.
    let replay = pb::WatchCreateRequest {
        prev_kv: true,
        filters: vec![pb::watch_create_request::FilterType::Nodelete.into()],
        ..create("w/", "w0", 1)
    };
    requests
        .send(watch_request(RequestUnion::CreateRequest(replay)))
        .await
        .unwrap();
    let created = next(&mut answers).await;
    assert!(created.created);
    assert_eq!(created.watch_id, 0);
    let replayed = next(&mut answers).await;
    let puts: Vec<(i64, Option<Vec<u8>>)> = replayed
        .events
        .iter()
        .map(|e| {
            let kv = e.kv.as_ref().unwrap();
            (kv.mod_revision, e.prev_kv.as_ref().map(|p| p.value.clone()))
        })
        .collect();
    assert_eq!(puts, vec![(1, None), (2, Some(b"1".to_vec()))]);

    // Watcher 1 on the same stream, from now; a progress request; a cancel.
    requests
        .send(watch_request(RequestUnion::CreateRequest(create(
            "x", "", 0,
        ))))
        .await
        .unwrap();
    let created = next(&mut answers).await;
    assert!(created.created && created.watch_id == 1);
    put(&mut kv, "x", "2").await;
    let live = next(&mut answers).await;
    assert_eq!((live.watch_id, live.events.len()), (1, 1));
    assert_eq!(live.events[0].kv.as_ref().unwrap().value, b"2");
    // Progress names a revision every watcher of the stream delivered all its events through:
    // never one with an event still on its way, and, once the watchers caught up with the
    // writes, the current one (watcher 0 saw no event after 3, yet follows the log to 5).
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        requests
            .send(watch_request(RequestUnion::ProgressRequest(
                pb::WatchProgressRequest {},
            )))
            .await
            .unwrap();
        let progress = next(&mut answers).await;
        assert_eq!((progress.watch_id, progress.events.len()), (-1, 0));
        let revision = progress.header.unwrap().revision;
        assert!((3..=5).contains(&revision), "progress at {revision}");
        if revision == 5 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "progress stuck at {revision}"
        );
    }
    requests
        .send(watch_request(RequestUnion::CancelRequest(
            pb::WatchCancelRequest { watch_id: 1 },
        )))
        .await
        .unwrap();
    let canceled = next(&mut answers).await;
    assert!(canceled.canceled && canceled.watch_id == 1);

    // Ids are not reused; the first version of a key has no previous one.
    let from_creation = pb::WatchCreateRequest {
        prev_kv: true,
        ..create("x", "", 4)
    };
    requests
        .send(watch_request(RequestUnion::CreateRequest(from_creation)))
        .await
        .unwrap();
    let created = next(&mut answers).await;
    assert_eq!(created.watch_id, 2);
    let history = next(&mut answers).await;
    let previous: Vec<Option<Vec<u8>>> = history
        .events
        .iter()
        .map(|e| e.prev_kv.as_ref().map(|p| p.value.clone()))
        .collect();
    assert_eq!(previous, vec![None, Some(b"1".to_vec())]);

    // A watch from a compacted revision is created, then canceled with the compaction point.
    kv.compact(pb::CompactionRequest {
        revision: 4,
        physical: true,
    })
    .await
    .unwrap();
    requests
        .send(watch_request(RequestUnion::CreateRequest(create(
            "x", "", 2,
        ))))
        .await
        .unwrap();
    let created = next(&mut answers).await;
    assert!(created.created);
    let compacted = next(&mut answers).await;
    assert!(compacted.canceled);
    assert_eq!(
        (compacted.watch_id, compacted.compact_revision),
        (created.watch_id, 4)
    );
}

#[tokio::test]
async fn a_quiet_watcher_asking_for_progress_is_told_how_far_it_is_synced() {
    use pb::watch_request::RequestUnion;
    let cluster = Cluster::start(1, &["--watch-progress-notify-ms", "100"]).await;
    let node = &cluster.nodes[0];
    let mut kv = node.etcd_kv();
    put(&mut kv, "elsewhere", "1").await;

    let (requests, requests_rx) = tokio::sync::mpsc::channel(8);
    let mut answers =
        dengine_proto::etcd::etcdserverpb::watch_client::WatchClient::new(node.etcd_channel())
            .watch(tokio_stream::wrappers::ReceiverStream::new(requests_rx))
            .await
            .unwrap()
            .into_inner();
    let quiet = pb::WatchCreateRequest {
        progress_notify: true,
        ..create("quiet", "", 0)
    };
    requests
        .send(watch_request(RequestUnion::CreateRequest(quiet)))
        .await
        .unwrap();
    assert!(next(&mut answers).await.created);
    // Writes elsewhere move the revision; the watcher, which sees none of them, is told it is
    // synced through each of them in the end, and never further than the writes went.
    let latest = put(&mut kv, "elsewhere", "2")
        .await
        .header
        .unwrap()
        .revision;
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no progress through {latest}"
        );
        let progress = next(&mut answers).await;
        assert!(
            progress.events.is_empty() && !progress.canceled,
            "{progress:?}"
        );
        assert_eq!(progress.watch_id, 0);
        let revision = progress.header.unwrap().revision;
        assert!(revision <= latest, "progress at {revision}, past {latest}");
        if revision == latest {
            break;
        }
    }
}

/// etcd's `--auto-compaction-mode=periodic`: with `history_retention_ms`, the leader compacts
/// to the revision of one retention ago, on its own.
#[tokio::test]
async fn the_leader_compacts_history_older_than_the_retention_period() {
    let cluster = Cluster::start(1, &["--history-retention-ms", "1000"]).await;
    let mut kv = cluster.nodes[0].etcd_kv();
    put(&mut kv, "k", "1").await;
    put(&mut kv, "k", "2").await;
    common::wait_for("the first revision to be compacted away", || {
        let mut kv = kv.clone();
        async move {
            // Writing keeps the revision moving, so there is always something to compact.
            put(&mut kv, "k", "3").await;
            let at_first = pb::RangeRequest {
                revision: 1,
                ..range("k", "")
            };
            match kv.range(at_first).await {
                Err(status)
                    if status.message()
                        == "etcdserver: mvcc: required revision has been compacted" =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}")),
            }
        }
    })
    .await;
    // What is newer than the retention is still there.
    let now = range_ok(&mut kv, range("k", "")).await;
    assert_eq!(now.kvs[0].value, b"3");
}

/// A watcher that asks for `fragment` gets a revision larger than the request limit in
/// several responses, all but the last marked `fragment`, as etcd sends them.
#[tokio::test]
async fn a_watcher_asking_for_fragments_gets_a_large_revision_in_parts() {
    use pb::watch_request::RequestUnion;
    let cluster = Cluster::start(
        1,
        &[
            "--max-request-bytes",
            "2048",
            "--max-key-bytes",
            "64",
            "--max-value-bytes",
            "1024",
        ],
    )
    .await;
    let node = &cluster.nodes[0];
    let mut kv = node.etcd_kv();
    let value = "v".repeat(300);
    for key in ["f/a", "f/b", "f/c", "f/d", "f/e"] {
        put(&mut kv, key, &value).await;
    }
    let (requests, outgoing) = tokio::sync::mpsc::channel(4);
    let mut answers = pb::watch_client::WatchClient::new(node.etcd_channel())
        .watch(tokio_stream::wrappers::ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    requests
        .send(watch_request(RequestUnion::CreateRequest(
            pb::WatchCreateRequest {
                prev_kv: true,
                fragment: true,
                ..create("f/", "f0", 0)
            },
        )))
        .await
        .unwrap();
    assert!(next(&mut answers).await.created);

    // One txn rewrites all five: one revision whose events, with their previous values, are
    // over the 2 KiB limit.
    let rewrite = |key: &str| pb::RequestOp {
        request: Some(Op::RequestPut(pb::PutRequest {
            key: key.into(),
            value: "w".repeat(300).into(),
            ..Default::default()
        })),
    };
    let txn = pb::TxnRequest {
        success: ["f/a", "f/b", "f/c", "f/d", "f/e"].map(rewrite).to_vec(),
        ..Default::default()
    };
    let revision = kv
        .txn(txn)
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    let mut parts = Vec::new();
    loop {
        let part = next(&mut answers).await;
        let more = part.fragment;
        parts.push(part);
        if !more {
            break;
        }
    }
    assert!(
        parts.len() > 1,
        "one response of {} events",
        parts[0].events.len()
    );
    let events: Vec<_> = parts.iter().flat_map(|p| p.events.clone()).collect();
    assert_eq!(events.len(), 5);
    assert!(events
        .iter()
        .all(|e| e.kv.as_ref().unwrap().mod_revision == revision));
    assert!(events.iter().all(|e| e.prev_kv.is_some()));
}
