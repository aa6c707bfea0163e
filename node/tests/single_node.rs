//! One real `node` process, used through its gRPC client API: reads and writes with their
//! revisions, compare-and-swap, paginated scans and TTLs.

mod common;

use bytes::Bytes;
use dengine::proto::compare::Target;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{
    Compare, CompareAndSwapRequest, CompareAndSwapResponse, DeleteRequest, PutRequest, ReadPolicy,
    ScanRequest,
};
use tonic::transport::Channel;
use tonic::Code;

use common::{
    b, get, key_value_map, now_unix_ms, put, revision_of, scan_all, store_revision, wait_for,
    Cluster,
};

async fn cas(
    kv: &mut KvClient<Channel>,
    key: &str,
    target: Target,
    new_value: &str,
) -> CompareAndSwapResponse {
    kv.compare_and_swap(CompareAndSwapRequest {
        key: b(key),
        compare: Some(Compare {
            target: Some(target),
        }),
        new_value: b(new_value),
        ttl_ms: 0,
    })
    .await
    .unwrap_or_else(|status| panic!("cas on {key:?} failed with an error: {status}"))
    .into_inner()
}

#[tokio::test]
async fn put_get_and_delete_keep_etcd_revisions() {
    let cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();

    let created = revision_of(put(&mut kv, "app/a", "1").await.header.as_ref());
    assert!(created >= 1);
    let a = get(&mut kv, "app/a", ReadPolicy::Unspecified)
        .await
        .kv
        .expect("app/a was written");
    assert_eq!(a.value, b("1"));
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (created, created, 1)
    );
    assert_eq!(a.expires_at_unix_ms, 0, "no TTL was asked for");

    // Each write takes the next revision; an overwrite keeps the create revision.
    let overwrite = kv
        .put(PutRequest {
            key: b("app/a"),
            value: b("2"),
            prev_kv: true,
            ..PutRequest::default()
        })
        .await
        .expect("overwrite app/a")
        .into_inner();
    let modified = revision_of(overwrite.header.as_ref());
    assert_eq!(modified, created + 1);
    assert_eq!(
        overwrite.prev_kv.expect("prev_kv was asked for").value,
        b("1")
    );
    let a = get(&mut kv, "app/a", ReadPolicy::Linearizable).await;
    assert_eq!(
        revision_of(a.header.as_ref()),
        modified,
        "a read reports the store's revision"
    );
    let a = a.kv.expect("app/a exists");
    assert_eq!(a.value, b("2"));
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (created, modified, 2)
    );

    let other = revision_of(put(&mut kv, "app/b", "x").await.header.as_ref());
    assert_eq!(other, modified + 1);

    let deleted = kv
        .delete(DeleteRequest {
            key: b("app/a"),
            prev_kv: true,
        })
        .await
        .expect("delete app/a")
        .into_inner();
    assert!(deleted.deleted);
    assert_eq!(revision_of(deleted.header.as_ref()), other + 1);
    assert_eq!(
        deleted.prev_kv.expect("prev_kv was asked for").value,
        b("2")
    );
    assert!(get(&mut kv, "app/a", ReadPolicy::Linearizable)
        .await
        .kv
        .is_none());
    assert!(get(&mut kv, "app/a", ReadPolicy::Eventual)
        .await
        .kv
        .is_none());

    // Deleting a missing key succeeds, says so, and takes no revision.
    let again = kv
        .delete(DeleteRequest {
            key: b("app/a"),
            prev_kv: false,
        })
        .await
        .expect("delete a missing key")
        .into_inner();
    assert!(!again.deleted);
    assert_eq!(revision_of(again.header.as_ref()), other + 1);
    assert_eq!(store_revision(&mut kv).await, other + 1);

    // A key written again after its deletion starts over.
    let recreated = revision_of(put(&mut kv, "app/a", "3").await.header.as_ref());
    let a = get(&mut kv, "app/a", ReadPolicy::Unspecified)
        .await
        .kv
        .expect("app/a recreated");
    assert_eq!(
        (a.create_revision, a.mod_revision, a.version),
        (recreated, recreated, 1)
    );
    assert_eq!(
        get(&mut kv, "app/b", ReadPolicy::Unspecified)
            .await
            .kv
            .expect("app/b")
            .value,
        b("x")
    );
}

#[tokio::test]
async fn compare_and_swap_holds_on_value_mod_revision_and_absence() {
    let cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();

    let created = cas(&mut kv, "lock", Target::Absent(true), "owner-1").await;
    assert!(created.succeeded, "the key was absent");
    assert!(created.current.is_none(), "nothing was there before");
    let r1 = revision_of(created.header.as_ref());

    let taken = cas(&mut kv, "lock", Target::Absent(true), "owner-2").await;
    assert!(!taken.succeeded, "the key exists now");
    let current = taken.current.expect("a failed cas shows the current key");
    assert_eq!((current.value, current.mod_revision), (b("owner-1"), r1));
    assert_eq!(
        store_revision(&mut kv).await,
        r1,
        "a failed cas writes nothing"
    );

    let swapped = cas(&mut kv, "lock", Target::Value(b("owner-1")), "owner-3").await;
    assert!(swapped.succeeded);
    let r2 = revision_of(swapped.header.as_ref());
    assert_eq!(r2, r1 + 1);
    let stale = cas(&mut kv, "lock", Target::Value(b("owner-1")), "owner-4").await;
    assert!(!stale.succeeded, "the value is owner-3 now");
    assert_eq!(stale.current.expect("current key").value, b("owner-3"));

    let by_revision = cas(&mut kv, "lock", Target::ModRevision(r2), "owner-5").await;
    assert!(by_revision.succeeded, "mod_revision {r2} is current");
    let stale = cas(&mut kv, "lock", Target::ModRevision(r2), "owner-6").await;
    assert!(!stale.succeeded, "mod_revision {r2} is no longer current");

    let lock = get(&mut kv, "lock", ReadPolicy::Linearizable)
        .await
        .kv
        .expect("lock exists");
    assert_eq!(lock.value, b("owner-5"));
    assert_eq!((lock.create_revision, lock.version), (r1, 3));

    // On a missing key a value comparison fails, even against the empty value, and so do a
    // comparison with a real revision and `absent: false` ("the key exists").
    for target in [
        Target::Value(b("")),
        Target::ModRevision(r1),
        Target::Absent(false),
    ] {
        let missing = cas(&mut kv, "nothing", target.clone(), "x").await;
        assert!(
            !missing.succeeded && missing.current.is_none(),
            "{target:?} on a missing key"
        );
    }
    assert!(get(&mut kv, "nothing", ReadPolicy::Linearizable)
        .await
        .kv
        .is_none());
}

#[tokio::test]
async fn scan_pages_through_a_prefix_returning_each_key_once_in_order() {
    let cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();
    let wanted: Vec<String> = (0..25).map(|i| format!("scan/k{i:02}")).collect();
    // Written out of order, with neighbours just outside the prefix on both sides.
    for i in [
        7, 3, 24, 0, 11, 19, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 20, 21, 22, 23,
    ] {
        put(&mut kv, &format!("scan/k{i:02}"), &format!("v{i}")).await;
    }
    for outside in ["scan", "scan.", "scan0", "sca", "other/scan/k00"] {
        put(&mut kv, outside, "outside").await;
    }

    for page in [7, 5, 1, 100] {
        let mut seen = Vec::new();
        let mut pages = 0;
        let mut continuation = Bytes::new();
        loop {
            let response = kv
                .scan(ScanRequest {
                    prefix: b("scan/"),
                    limit: page,
                    continuation: continuation.clone(),
                    read_policy: ReadPolicy::Unspecified.into(),
                    ..Default::default()
                })
                .await
                .expect("scan")
                .into_inner();
            pages += 1;
            assert!(
                response.kvs.len() <= page as usize,
                "a page holds at most {page} keys"
            );
            seen.extend(
                response
                    .kvs
                    .iter()
                    .map(|kv| String::from_utf8_lossy(&kv.key).into_owned()),
            );
            if response.continuation.is_empty() {
                break;
            }
            continuation = response.continuation;
            assert!(pages <= 100, "the scan never ends");
        }
        assert_eq!(
            seen, wanted,
            "pages of {page}: every key once, in key order"
        );
        assert_eq!(
            pages,
            wanted.len().div_ceil(page as usize),
            "no empty last page"
        );
    }

    let values = key_value_map(
        &scan_all(&mut kv, "scan/", ReadPolicy::Eventual, 0)
            .await
            .expect("eventual scan"),
    );
    assert_eq!(values.get("scan/k07").map(String::as_str), Some("v7"));
    assert_eq!(values.len(), 25);

    // A continuation is only good for the prefix it came from.
    let first = kv
        .scan(ScanRequest {
            prefix: b("scan/"),
            limit: 2,
            ..ScanRequest::default()
        })
        .await
        .expect("scan")
        .into_inner();
    let misused = kv
        .scan(ScanRequest {
            prefix: b("other/"),
            limit: 2,
            continuation: first.continuation,
            ..ScanRequest::default()
        })
        .await
        .expect_err("a continuation from another prefix");
    assert_eq!(misused.code(), Code::InvalidArgument, "{misused}");
}

#[tokio::test]
async fn a_key_with_a_ttl_is_deleted_after_it_and_not_before() {
    let cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();
    let before = now_unix_ms();
    kv.put(PutRequest {
        key: b("session/1"),
        value: b("alive"),
        ttl_ms: 800,
        prev_kv: false,
    })
    .await
    .expect("put with a TTL");
    put(&mut kv, "session/keep", "forever").await;

    let session = get(&mut kv, "session/1", ReadPolicy::Linearizable).await.kv;
    let expires_at = session
        .expect("the key exists until its TTL")
        .expires_at_unix_ms;
    assert!(
        expires_at >= before + 800 && expires_at <= now_unix_ms() + 800,
        "expires_at_unix_ms {expires_at} is the write time plus the TTL"
    );

    wait_for("session/1 to expire", || {
        let mut kv = kv.clone();
        async move {
            match get(&mut kv, "session/1", ReadPolicy::Linearizable).await.kv {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        }
    })
    .await;
    assert!(
        now_unix_ms() >= expires_at,
        "the key was gone before its expiry time {expires_at}"
    );
    assert!(
        get(&mut kv, "session/keep", ReadPolicy::Linearizable)
            .await
            .kv
            .is_some(),
        "a key without a TTL stays"
    );
}

#[tokio::test]
async fn reads_at_a_past_revision_see_the_keys_as_they_were() {
    let cluster = Cluster::start(1, &["--history-retention", "3"]).await;
    let mut kv = cluster.nodes[0].kv();
    let first = revision_of(put(&mut kv, "mvcc/a", "1").await.header.as_ref());
    put(&mut kv, "mvcc/b", "1").await;
    put(&mut kv, "mvcc/a", "2").await;
    let get_at = |key: &str, revision: i64| dengine::proto::GetRequest {
        key: b(key),
        revision,
        ..Default::default()
    };

    let old = kv.get(get_at("mvcc/a", first)).await.unwrap().into_inner();
    assert_eq!(old.kv.unwrap().value, b("1"));
    assert_eq!(
        revision_of(old.header.as_ref()),
        first + 2,
        "the header carries the current revision"
    );
    let page = kv
        .scan(ScanRequest {
            prefix: b("mvcc/"),
            revision: first,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(key_value_map(&page.kvs).len(), 1, "only a existed then");

    let future = kv.get(get_at("mvcc/a", first + 3)).await.unwrap_err();
    assert_eq!(future.code(), Code::OutOfRange);
    assert!(future.message().contains("future revision"), "{future:?}");

    // Three more revisions compact the first away.
    for value in ["3", "4", "5"] {
        put(&mut kv, "mvcc/b", value).await;
    }
    let compacted = kv.get(get_at("mvcc/a", first)).await.unwrap_err();
    assert_eq!(compacted.code(), Code::OutOfRange);
    assert!(compacted.message().contains("compacted"), "{compacted:?}");
    // a=2 is older than the compaction point and still what a held there.
    let at_compaction = kv
        .get(get_at("mvcc/a", first + 3))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(at_compaction.kv.unwrap().value, b("2"));
}
