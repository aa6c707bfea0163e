//! etcd's v3 Watch service on the client port: one bidirectional stream carrying many
//! watchers. Each watcher follows a key or an interval from a start revision (replaying the
//! retained history first), with etcd's filters and `prev_kv`; cancels and progress requests
//! are answered as etcd answers them, and a watcher whose start is compacted is created and
//! then canceled with the compaction revision, which etcd's clients turn into their
//! "required revision has been compacted" error.
//!
//! A watcher rides on the node's own watch ([`KvApi::watch`]): a key, or the longest prefix an
//! interval's keys share, filtered down to the interval. Where the node's watch drops a reader
//! that fell behind, a watcher here resumes from where it was, as etcd's do.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::mvccpb;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::api::{ApiError, EventKind, Header, KvApi, WatchEvent, WatchRequest};
use super::etcd_service::etcd_header;
use crate::kv::etcd::{to_etcd, Interval};

/// The watch id etcd answers progress requests with: the whole stream, not one watcher.
const STREAM_WIDE: i64 = -1;

/// The Watch service of etcd's v3 API.
pub struct EtcdWatchService {
    pub api: KvApi,
}

type Out = mpsc::Sender<Result<pb::WatchResponse, Status>>;

#[tonic::async_trait]
impl pb::watch_server::Watch for EtcdWatchService {
    type WatchStream = ReceiverStream<Result<pb::WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<Streaming<pb::WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let requests = request.into_inner();
        let (out, answers) = mpsc::channel(64);
        tokio::spawn(serve_stream(self.api.clone(), requests, out));
        Ok(Response::new(ReceiverStream::new(answers)))
    }
}

/// Reads one stream's requests until the client closes it; its watchers end with it.
async fn serve_stream(api: KvApi, mut requests: Streaming<pb::WatchRequest>, out: Out) {
    use pb::watch_request::RequestUnion;
    let mut watchers: HashMap<i64, Watcher> = HashMap::new();
    let mut next_id = 0;
    while let Ok(Some(request)) = requests.message().await {
        watchers.retain(|_, watcher| !watcher.task.is_finished());
        match request.request_union {
            Some(RequestUnion::CreateRequest(create)) => {
                // Ids given by the stream go up and are never reused, as etcd's: a late event
                // of a canceled watcher names no other.
                let id = match create.watch_id {
                    0 => {
                        while watchers.contains_key(&next_id) {
                            next_id += 1;
                        }
                        next_id += 1;
                        next_id - 1
                    }
                    id => id,
                };
                if watchers.contains_key(&id) {
                    let refused = pb::WatchResponse {
                        header: Some(header_now(&api)),
                        watch_id: id,
                        created: true,
                        canceled: true,
                        cancel_reason: "etcdserver: duplicate watch ID".into(),
                        ..Default::default()
                    };
                    if out.send(Ok(refused)).await.is_err() {
                        break;
                    }
                    continue;
                }
                // From now: from the revision after the one the creation answer names, so that
                // no event between that answer and the watch taking hold is missed.
                let header = header_now(&api);
                let start = match create.start_revision {
                    start if start > 0 => start,
                    _ => header.revision + 1,
                };
                let delivered = Arc::new(AtomicI64::new(start - 1));
                let task = tokio::spawn(run_watcher(
                    api.clone(),
                    (id, header, start),
                    create,
                    out.clone(),
                    delivered.clone(),
                ));
                watchers.insert(id, Watcher { task, delivered });
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                if let Some(watcher) = watchers.remove(&cancel.watch_id) {
                    watcher.task.abort();
                    let canceled = pb::WatchResponse {
                        header: Some(header_now(&api)),
                        watch_id: cancel.watch_id,
                        canceled: true,
                        ..Default::default()
                    };
                    if out.send(Ok(canceled)).await.is_err() {
                        break;
                    }
                }
            }
            // The revision every watcher of the stream has delivered all events through: a
            // client may take it as "nothing up to here is still on its way" (Kubernetes'
            // consistent reads from its watch cache do).
            Some(RequestUnion::ProgressRequest(_)) => {
                let mut header = header_now(&api);
                if let Some(through) = watchers
                    .values()
                    .map(|watcher| watcher.delivered.load(Ordering::SeqCst))
                    .min()
                {
                    header.revision = header.revision.min(through);
                }
                let progress = pb::WatchResponse {
                    header: Some(header),
                    watch_id: STREAM_WIDE,
                    ..Default::default()
                };
                if out.send(Ok(progress)).await.is_err() {
                    break;
                }
            }
            None => {}
        }
    }
    for watcher in watchers.values() {
        watcher.task.abort();
    }
}

/// A watcher of a stream: its task, and the revision it has delivered every event through.
struct Watcher {
    task: JoinHandle<()>,
    delivered: Arc<AtomicI64>,
}

fn header_now(api: &KvApi) -> pb::ResponseHeader {
    etcd_header(api.header_now())
}

/// The key the node's watch follows for an interval, and whether as a prefix: the key itself,
/// or the longest prefix every key of the interval starts with.
fn followed(interval: &Interval) -> (Vec<u8>, bool) {
    match interval {
        Interval::Key(key) => (key.clone(), false),
        // Every key from the start on: no prefix shorter than the empty one covers them.
        Interval::Range { end: None, .. } => (Vec::new(), true),
        Interval::Range {
            start,
            end: Some(end),
        } => {
            let shared = start.iter().zip(end).take_while(|(a, b)| a == b).count();
            (start[..shared].to_vec(), true)
        }
    }
}

/// One watcher: created, then its events until it is canceled or cannot go on.
async fn run_watcher(
    api: KvApi,
    (id, header, mut start_revision): (i64, pb::ResponseHeader, i64),
    create: pb::WatchCreateRequest,
    out: Out,
    delivered: Arc<AtomicI64>,
) {
    use pb::watch_create_request::FilterType;
    let interval = Interval::new(&create.key, &create.range_end);
    let (key, prefix) = followed(&interval);
    let skip_puts = create.filters.contains(&(FilterType::Noput as i32));
    let skip_deletes = create.filters.contains(&(FilterType::Nodelete as i32));
    let answer = |response: pb::WatchResponse| pb::WatchResponse {
        watch_id: id,
        ..response
    };
    let created = answer(pb::WatchResponse {
        header: Some(header),
        created: true,
        ..Default::default()
    });
    if out.send(Ok(created)).await.is_err() {
        return;
    }
    loop {
        let request = WatchRequest {
            key: key.clone().into(),
            prefix,
            start_revision,
        };
        let mut stream = match api.watch(request).await {
            Ok(stream) => stream,
            Err(error) => {
                let _ = out.send(Ok(answer(ended(&api, error)))).await;
                return;
            }
        };
        loop {
            match stream.recv().await {
                Some(Ok(batch)) => {
                    let events: Vec<mvccpb::Event> = batch
                        .events
                        .into_iter()
                        .filter(|event| interval.contains(&event.kv.key))
                        .filter(|event| match event.kind {
                            EventKind::Put => !skip_puts,
                            EventKind::Delete => !skip_deletes,
                        })
                        .map(|event| etcd_event(&api, event, create.prev_kv))
                        .collect();
                    let through = batch.header.revision;
                    if events.is_empty() {
                        delivered.fetch_max(through, Ordering::SeqCst);
                        continue;
                    }
                    let response = answer(pb::WatchResponse {
                        header: Some(etcd_header(Header {
                            raft_term: api.header_now().raft_term,
                            ..batch.header
                        })),
                        events,
                        ..Default::default()
                    });
                    if out.send(Ok(response)).await.is_err() {
                        return;
                    }
                    delivered.fetch_max(through, Ordering::SeqCst);
                }
                // The node's watch dropped this reader for falling behind: etcd's watchers
                // do not give up, so follow again from where it stopped.
                Some(Err(ApiError::WatchLagged { resume_from })) => {
                    start_revision = resume_from;
                    break;
                }
                Some(Err(error)) => {
                    let _ = out.send(Ok(answer(ended(&api, error)))).await;
                    return;
                }
                None => return,
            }
        }
    }
}

/// The last answer of a watcher that cannot go on: canceled, with the compaction revision
/// when its history is gone (etcd's clients read that as "compacted").
fn ended(api: &KvApi, error: ApiError) -> pb::WatchResponse {
    let compact_revision = match &error {
        ApiError::Compacted {
            oldest_retained, ..
        } => oldest_retained - 1,
        _ => 0,
    };
    pb::WatchResponse {
        header: Some(header_now(api)),
        canceled: true,
        compact_revision,
        cancel_reason: match compact_revision {
            0 => error.to_string(),
            _ => String::new(),
        },
        ..Default::default()
    }
}

/// A node event as etcd's, with the key's previous version when asked for.
fn etcd_event(api: &KvApi, event: WatchEvent, with_prev: bool) -> mvccpb::Event {
    let kind = match event.kind {
        EventKind::Put => mvccpb::event::EventType::Put,
        EventKind::Delete => mvccpb::event::EventType::Delete,
    };
    let prev_kv = match with_prev {
        true => api
            .version_before(&event.kv.key, event.revision())
            .map(to_etcd),
        false => None,
    };
    mvccpb::Event {
        r#type: kind.into(),
        kv: Some(to_etcd(event.kv)),
        prev_kv,
    }
}
