//! Watches on a real `node` process: live events, replay from a retained revision, and a
//! clear refusal when the history asked for has been compacted.

mod common;

use dengine::proto::event::EventType;
use dengine::proto::kv_client::KvClient;
use dengine::proto::{DeleteRequest, Event, WatchRequest};
use tonic::transport::Channel;
use tonic::{Code, Streaming};

use common::{b, put, Cluster, DEADLINE};

async fn watch_prefix(
    kv: &mut KvClient<Channel>,
    prefix: &str,
    start_revision: i64,
) -> Streaming<dengine::proto::WatchResponse> {
    kv.watch(WatchRequest {
        key: b(prefix),
        prefix: true,
        start_revision,
    })
    .await
    .unwrap_or_else(|e| panic!("watch {prefix:?} from {start_revision}: {e}"))
    .into_inner()
}

/// The next `count` events of the stream, however they are batched into responses.
async fn next_events(
    stream: &mut Streaming<dengine::proto::WatchResponse>,
    count: usize,
) -> Vec<Event> {
    let mut events = Vec::new();
    while events.len() < count {
        let response = tokio::time::timeout(DEADLINE, stream.message())
            .await
            .unwrap_or_else(|_| panic!("no watch event within {DEADLINE:?}; got {events:?}"))
            .unwrap_or_else(|e| panic!("the watch failed: {e}"))
            .expect("the watch stream ended");
        events.extend(response.events);
    }
    events
}

/// (type, key, value, mod_revision) of each event, for comparisons.
fn summary(events: &[Event]) -> Vec<(EventType, String, String, i64)> {
    events
        .iter()
        .map(|event| {
            let kv = event.kv.clone().unwrap_or_default();
            (
                event.event_type(),
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
                kv.mod_revision,
            )
        })
        .collect()
}

async fn delete(kv: &mut KvClient<Channel>, key: &str) -> i64 {
    kv.delete(DeleteRequest {
        key: b(key),
        prev_kv: false,
    })
    .await
    .unwrap_or_else(|e| panic!("delete {key}: {e}"))
    .into_inner()
    .header
    .map_or(0, |h| h.revision)
}

async fn put_revision(kv: &mut KvClient<Channel>, key: &str, value: &str) -> i64 {
    put(kv, key, value).await.header.map_or(0, |h| h.revision)
}

#[tokio::test]
async fn a_prefix_watch_streams_puts_and_deletes_in_revision_order() {
    let cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();
    put(
        &mut kv,
        "w/before",
        "not streamed: written before the watch",
    )
    .await;
    let mut stream = watch_prefix(&mut kv, "w/", 0).await;

    let r1 = put_revision(&mut kv, "w/a", "1").await;
    let r2 = put_revision(&mut kv, "w/b", "2").await;
    put(&mut kv, "x/elsewhere", "not under the prefix").await;
    put(&mut kv, "w", "not under the prefix either").await;
    let r3 = put_revision(&mut kv, "w/a", "3").await;
    let r4 = delete(&mut kv, "w/b").await;

    let events = next_events(&mut stream, 4).await;
    assert_eq!(
        summary(&events),
        vec![
            (EventType::Put, "w/a".into(), "1".into(), r1),
            (EventType::Put, "w/b".into(), "2".into(), r2),
            (EventType::Put, "w/a".into(), "3".into(), r3),
            (EventType::Delete, "w/b".into(), String::new(), r4),
        ]
    );
    let a = events[2].kv.as_ref().expect("a put carries its key-value");
    assert_eq!((a.create_revision, a.version), (r1, 2));

    // A watch of one key sees only that key.
    let mut single = kv
        .watch(WatchRequest {
            key: b("w/a"),
            prefix: false,
            start_revision: 0,
        })
        .await
        .expect("watch w/a")
        .into_inner();
    put(&mut kv, "w/ab", "a longer key, not w/a").await;
    let r5 = put_revision(&mut kv, "w/a", "5").await;
    assert_eq!(
        summary(&next_events(&mut single, 1).await),
        vec![(EventType::Put, "w/a".into(), "5".into(), r5)]
    );
}

#[tokio::test]
async fn a_watch_from_a_retained_revision_replays_history_then_streams() {
    let cluster = Cluster::start(1, &[]).await;
    let mut kv = cluster.nodes[0].kv();
    let r1 = put_revision(&mut kv, "h/a", "1").await;
    let r2 = put_revision(&mut kv, "h/b", "2").await;
    put(&mut kv, "other", "skipped").await;
    let r3 = put_revision(&mut kv, "h/a", "3").await;
    let r4 = delete(&mut kv, "h/b").await;

    let mut from_start = watch_prefix(&mut kv, "h/", r1).await;
    let mut from_middle = watch_prefix(&mut kv, "h/", r3).await;
    let r5 = put_revision(&mut kv, "h/c", "live").await;

    assert_eq!(
        summary(&next_events(&mut from_start, 5).await),
        vec![
            (EventType::Put, "h/a".into(), "1".into(), r1),
            (EventType::Put, "h/b".into(), "2".into(), r2),
            (EventType::Put, "h/a".into(), "3".into(), r3),
            (EventType::Delete, "h/b".into(), String::new(), r4),
            (EventType::Put, "h/c".into(), "live".into(), r5),
        ],
        "history from {r1}, then the live write, each once"
    );
    assert_eq!(
        summary(&next_events(&mut from_middle, 3).await),
        vec![
            (EventType::Put, "h/a".into(), "3".into(), r3),
            (EventType::Delete, "h/b".into(), String::new(), r4),
            (EventType::Put, "h/c".into(), "live".into(), r5),
        ],
        "history from {r3} (inclusive), then the live write"
    );

    // Nothing further arrives: the live write was not sent twice.
    let r6 = put_revision(&mut kv, "h/d", "next").await;
    assert_eq!(
        summary(&next_events(&mut from_start, 1).await),
        vec![(EventType::Put, "h/d".into(), "next".into(), r6)]
    );
}

#[tokio::test]
async fn a_watch_from_a_compacted_revision_is_out_of_range() {
    let cluster = Cluster::start(1, &["--history-retention", "5"]).await;
    let mut kv = cluster.nodes[0].kv();
    let mut last = 0;
    for i in 0..20 {
        last = put_revision(&mut kv, &format!("c/{i:02}"), "v").await;
    }
    let oldest_retained = last - 5 + 1;

    for start in [1, oldest_retained - 1] {
        let refused = kv
            .watch(WatchRequest {
                key: b("c/"),
                prefix: true,
                start_revision: start,
            })
            .await
            .map(|_| ())
            .expect_err("a watch from before the retained history");
        assert_eq!(refused.code(), Code::OutOfRange, "{refused}");
        assert!(
            refused.message().contains(&oldest_retained.to_string()),
            "the error should name the oldest retained revision {oldest_retained}: {refused}"
        );
    }

    let mut retained = watch_prefix(&mut kv, "c/", oldest_retained).await;
    let events = next_events(&mut retained, 5).await;
    let revisions: Vec<i64> = summary(&events).into_iter().map(|e| e.3).collect();
    assert_eq!(revisions, (oldest_retained..=last).collect::<Vec<_>>());
}
