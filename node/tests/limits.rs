//! Requests a node must refuse, with INVALID_ARGUMENT and a message that names what is wrong,
//! without touching anything already stored.

mod common;

use bytes::Bytes;
use dengine::proto::compare::Target;
use dengine::proto::{
    Compare, CompareAndSwapRequest, DeleteRequest, GetRequest, PutRequest, ReadPolicy, WatchRequest,
};
use tonic::Code;

use common::{b, get, put, scan_all, store_revision, Cluster};

fn assert_invalid(result: Result<impl std::fmt::Debug, tonic::Status>, mentions: &str, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status}");
    assert!(
        status.message().contains(mentions),
        "{what}: the message should mention {mentions:?}: {status}"
    );
}

#[tokio::test]
async fn bad_input_is_refused_with_a_clear_error_and_stored_data_is_untouched() {
    let cluster = Cluster::start(1, &["--max-key-bytes", "64", "--max-value-bytes", "1024"]).await;
    let mut kv = cluster.nodes[0].kv();
    put(&mut kv, "keep/a", "1").await;
    put(&mut kv, "keep/b", "2").await;
    // Exactly at the limits is allowed.
    put(&mut kv, &"k".repeat(64), &"v".repeat(1024)).await;
    let before = scan_all(&mut kv, "", ReadPolicy::Linearizable, 0)
        .await
        .expect("scan");
    let revision = store_revision(&mut kv).await;

    let empty = "key must not be empty";
    let put_of = |key: &str, value: &str| PutRequest {
        key: b(key),
        value: b(value),
        ..PutRequest::default()
    };
    assert_invalid(kv.put(put_of("", "v")).await, empty, "put of an empty key");
    assert_invalid(
        kv.get(GetRequest {
            key: Bytes::new(),
            read_policy: 0,
            ..Default::default()
        })
        .await,
        empty,
        "get of an empty key",
    );
    assert_invalid(
        kv.delete(DeleteRequest {
            key: Bytes::new(),
            prev_kv: false,
        })
        .await,
        empty,
        "delete of an empty key",
    );
    let long_key = "k".repeat(65);
    assert_invalid(
        kv.put(put_of(&long_key, "v")).await,
        "max_key_bytes",
        "put of a long key",
    );
    assert_invalid(
        kv.get(GetRequest {
            key: b(&long_key),
            read_policy: 0,
            ..Default::default()
        })
        .await,
        "max_key_bytes",
        "get of a long key",
    );
    let big_value = "v".repeat(1025);
    assert_invalid(
        kv.put(put_of("keep/a", &big_value)).await,
        "max_value_bytes",
        "overwriting a key with a big value",
    );
    assert_invalid(
        kv.compare_and_swap(CompareAndSwapRequest {
            key: b("keep/b"),
            compare: Some(Compare {
                target: Some(Target::Value(b("2"))),
            }),
            new_value: b(&big_value),
            ttl_ms: 0,
        })
        .await,
        "max_value_bytes",
        "a cas to a big value",
    );
    let no_comparison = kv
        .compare_and_swap(CompareAndSwapRequest {
            key: b("keep/b"),
            compare: None,
            new_value: b("3"),
            ttl_ms: 0,
        })
        .await
        .expect_err("a cas without a comparison");
    assert_eq!(
        no_comparison.code(),
        Code::InvalidArgument,
        "{no_comparison}"
    );
    assert_invalid(
        kv.watch(WatchRequest {
            key: Bytes::new(),
            prefix: false,
            start_revision: 0,
        })
        .await
        .map(|_| ()),
        empty,
        "watch of an empty key",
    );

    let after = scan_all(&mut kv, "", ReadPolicy::Linearizable, 0)
        .await
        .expect("scan");
    assert_eq!(after, before, "refused requests changed stored data");
    assert_eq!(
        store_revision(&mut kv).await,
        revision,
        "refused requests took revisions"
    );
}

#[tokio::test]
async fn default_limits_are_4_kib_keys_and_1_mib_values() {
    let cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();
    put(&mut kv, &"k".repeat(4096), "at the key limit").await;
    put(&mut kv, "big", &"v".repeat(1024 * 1024)).await;
    assert_invalid(
        kv.put(PutRequest {
            key: b(&"k".repeat(4097)),
            value: b("v"),
            ..PutRequest::default()
        })
        .await,
        "max_key_bytes",
        "a key of 4097 bytes",
    );
    assert_invalid(
        kv.put(PutRequest {
            key: b("big"),
            value: Bytes::from(vec![b'w'; 1024 * 1024 + 1]),
            ..PutRequest::default()
        })
        .await,
        "max_value_bytes",
        "a value of 1 MiB + 1",
    );
    let big = get(&mut kv, "big", ReadPolicy::Linearizable)
        .await
        .kv
        .expect("big exists");
    assert_eq!(
        (big.value.len(), big.version),
        (1024 * 1024, 1),
        "the refused write changed nothing"
    );
}
