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

use dengine_proto::etcd::etcdserverpb as pb;
use dengine_proto::etcd::mvccpb;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::api::{
    ApiError, EventKind, KvApi, WatchEvent, WatchRequest, WatchResponse, WatchStream,
};
use super::etcd_service::{etcd_header, etcd_header_now};
use crate::kv::etcd::{to_etcd, Interval};

/// The watch id etcd answers progress requests with: the whole stream, not one watcher.
const STREAM_WIDE: i64 = -1;

/// The Watch service of etcd's v3 API.
pub struct EtcdWatchService {
    pub api: KvApi,
    pub settings: WatchSettings,
}

/// How a node's etcd watchers answer.
#[derive(Debug, Clone, Copy)]
pub struct WatchSettings {
    /// How often a watcher that asked for progress notifications gets one when it had no
    /// events (etcd's `--experimental-watch-progress-notify-interval`).
    pub progress_notify: std::time::Duration,
    /// A watcher that asked for `fragment` gets a response larger than this (the node's
    /// `max_request_bytes`, as etcd's limit) in several, all but the last marked `fragment`.
    pub fragment_bytes: usize,
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
        tokio::spawn(serve_stream(self.api.clone(), requests, out, self.settings));
        Ok(Response::new(ReceiverStream::new(answers)))
    }
}

/// Reads one stream's requests until the client closes it; its watchers end with it.
async fn serve_stream(
    api: KvApi,
    mut requests: Streaming<pb::WatchRequest>,
    out: Out,
    settings: WatchSettings,
) {
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
                        header: Some(etcd_header_now(&api)),
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
                let header = etcd_header_now(&api);
                let start = match create.start_revision {
                    start if start > 0 => start,
                    _ => header.revision + 1,
                };
                let (probes, probed) = mpsc::channel(1);
                let task = tokio::spawn(run_watcher(
                    api.clone(),
                    (id, header, start),
                    create,
                    out.clone(),
                    (probed, settings),
                ));
                watchers.insert(id, Watcher { task, probes });
            }
            Some(RequestUnion::CancelRequest(cancel)) => {
                if let Some(watcher) = watchers.remove(&cancel.watch_id) {
                    watcher.task.abort();
                    let canceled = pb::WatchResponse {
                        header: Some(etcd_header_now(&api)),
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
            // consistent reads from its watch cache do). Each watcher forwards what is
            // waiting before it answers.
            Some(RequestUnion::ProgressRequest(_)) => {
                let mut header = etcd_header_now(&api);
                let mut answers = Vec::new();
                for watcher in watchers.values() {
                    let (reply, answer) = oneshot::channel();
                    if watcher.probes.send(reply).await.is_ok() {
                        answers.push(answer);
                    }
                }
                for answer in answers {
                    // A watcher that ended meanwhile holds nothing back.
                    if let Ok(through) = answer.await {
                        header.revision = header.revision.min(through);
                    }
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

/// A watcher of a stream: its task, and where to ask it how far it has delivered.
struct Watcher {
    task: JoinHandle<()>,
    probes: mpsc::Sender<Probe>,
}

/// A question to a watcher: the revision it has delivered every event through, once it has
/// forwarded what is waiting.
type Probe = oneshot::Sender<i64>;

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

/// What to do after forwarding a batch of the node's watch.
enum Next {
    GoOn,
    /// The node's watch dropped this reader for falling behind: etcd's watchers do not give
    /// up, so follow again from where it stopped.
    ResumeFrom(i64),
    End,
}

/// One watcher of a stream: what it follows and how it answers.
struct EtcdWatcher {
    api: KvApi,
    id: i64,
    interval: Interval,
    skip_puts: bool,
    skip_deletes: bool,
    prev_kv: bool,
    /// `Some(limit)` when the watcher asked for large responses in fragments.
    fragment_bytes: Option<usize>,
    out: Out,
    /// The revision every event has been delivered through.
    delivered: i64,
}

impl EtcdWatcher {
    fn answer(&self, response: pb::WatchResponse) -> pb::WatchResponse {
        pb::WatchResponse {
            watch_id: self.id,
            ..response
        }
    }

    /// Forwards what waits in the node's watch, without waiting for more: then every event up
    /// to the revision the node's watch had queued through is delivered.
    async fn catch_up(&mut self, stream: &mut WatchStream) -> Next {
        let through = stream.processed_through();
        while let Some(item) = stream.try_recv() {
            let next = self.forward(Some(item)).await;
            if !matches!(next, Next::GoOn) {
                return next;
            }
        }
        self.delivered = self.delivered.max(through);
        Next::GoOn
    }

    /// Forwards one item of the node's watch.
    async fn forward(&mut self, item: Option<Result<WatchResponse, ApiError>>) -> Next {
        let batch = match item {
            Some(Ok(batch)) => batch,
            Some(Err(ApiError::WatchLagged { resume_from })) => {
                return Next::ResumeFrom(resume_from)
            }
            Some(Err(error)) => {
                let ended = self.answer(ended(&self.api, error));
                let _ = self.out.send(Ok(ended)).await;
                return Next::End;
            }
            None => return Next::End,
        };
        let through = batch.header.revision;
        let events: Vec<mvccpb::Event> = batch
            .events
            .into_iter()
            .filter(|event| self.interval.contains(&event.kv.key))
            .filter(|event| match event.kind {
                EventKind::Put => !self.skip_puts,
                EventKind::Delete => !self.skip_deletes,
            })
            .map(|event| etcd_event(&self.api, event, self.prev_kv))
            .collect();
        if !events.is_empty() {
            let response = self.answer(pb::WatchResponse {
                header: Some(etcd_header(self.api.header_at(through))),
                events,
                ..Default::default()
            });
            let parts = match self.fragment_bytes {
                Some(limit) => fragments(response, limit),
                None => vec![response],
            };
            for part in parts {
                if self.out.send(Ok(part)).await.is_err() {
                    return Next::End;
                }
            }
        }
        self.delivered = self.delivered.max(through);
        Next::GoOn
    }
}

/// One watcher: created, then its events until it is canceled or cannot go on.
async fn run_watcher(
    api: KvApi,
    (id, header, mut start_revision): (i64, pb::ResponseHeader, i64),
    create: pb::WatchCreateRequest,
    out: Out,
    (mut probes, settings): (mpsc::Receiver<Probe>, WatchSettings),
) {
    let progress_notify = settings.progress_notify;
    use pb::watch_create_request::FilterType;
    let interval = Interval::new(&create.key, &create.range_end);
    let (key, prefix) = followed(&interval);
    let mut watcher = EtcdWatcher {
        api,
        id,
        interval,
        skip_puts: create.filters.contains(&(FilterType::Noput as i32)),
        skip_deletes: create.filters.contains(&(FilterType::Nodelete as i32)),
        prev_kv: create.prev_kv,
        fragment_bytes: create.fragment.then_some(settings.fragment_bytes),
        out,
        delivered: start_revision - 1,
    };
    let created = watcher.answer(pb::WatchResponse {
        header: Some(header),
        created: true,
        ..Default::default()
    });
    if watcher.out.send(Ok(created)).await.is_err() {
        return;
    }
    let mut notify = tokio::time::interval_at(
        tokio::time::Instant::now() + progress_notify,
        progress_notify,
    );
    notify.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut quiet = true;
    loop {
        let request = WatchRequest {
            key: key.clone().into(),
            prefix,
            start_revision,
        };
        let mut stream = match watcher.api.watch(request).await {
            Ok(stream) => stream,
            Err(error) => {
                let ended = watcher.answer(ended(&watcher.api, error));
                let _ = watcher.out.send(Ok(ended)).await;
                return;
            }
        };
        let next = loop {
            let next = tokio::select! {
                item = stream.recv() => {
                    quiet = false;
                    watcher.forward(item).await
                }
                Some(probe) = probes.recv() => {
                    let next = watcher.catch_up(&mut stream).await;
                    let _ = probe.send(watcher.delivered);
                    next
                }
                // etcd's progress notification: a watcher that had no events for a while is
                // told how far it is synced.
                _ = notify.tick(), if create.progress_notify => {
                    let was_quiet = std::mem::replace(&mut quiet, true);
                    let next = watcher.catch_up(&mut stream).await;
                    if was_quiet && matches!(next, Next::GoOn) {
                        let mut header = etcd_header_now(&watcher.api);
                        header.revision = watcher.delivered;
                        let progress = watcher.answer(pb::WatchResponse {
                            header: Some(header),
                            ..Default::default()
                        });
                        if watcher.out.send(Ok(progress)).await.is_err() {
                            return;
                        }
                    }
                    next
                }
            };
            if !matches!(next, Next::GoOn) {
                break next;
            }
        };
        match next {
            Next::ResumeFrom(resume_from) => start_revision = resume_from,
            _ => return,
        }
    }
}

/// The last answer of a watcher that cannot go on: canceled, with the compaction revision
/// when its history is gone (etcd's clients read that as "compacted").
/// `response` in parts of fewer than `limit` bytes where it can be cut (a part holds one event
/// at least), every part but the last marked `fragment`: etcd's `sendFragments`. A response
/// under the limit, or of one event, goes whole.
fn fragments(response: pb::WatchResponse, limit: usize) -> Vec<pb::WatchResponse> {
    use prost::Message;
    if response.encoded_len() < limit || response.events.len() < 2 {
        return vec![response];
    }
    let pb::WatchResponse { events, .. } = &response;
    let empty = || pb::WatchResponse {
        events: Vec::new(),
        fragment: true,
        ..response.clone()
    };
    let mut parts = Vec::new();
    let mut part = empty();
    for event in events {
        part.events.push(event.clone());
        if part.events.len() > 1 && part.encoded_len() >= limit {
            let over = part.events.pop().expect("just pushed");
            parts.push(std::mem::replace(&mut part, empty()));
            part.events.push(over);
        }
    }
    parts.push(part);
    if let Some(last) = parts.last_mut() {
        last.fragment = false;
    }
    parts
}

fn ended(api: &KvApi, error: ApiError) -> pb::WatchResponse {
    let compact_revision = match &error {
        ApiError::Compacted {
            oldest_retained, ..
        } => oldest_retained - 1,
        _ => 0,
    };
    pb::WatchResponse {
        header: Some(etcd_header_now(api)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn put(key: &str, value_bytes: usize) -> mvccpb::Event {
        mvccpb::Event {
            r#type: mvccpb::event::EventType::Put.into(),
            kv: Some(mvccpb::KeyValue {
                key: key.into(),
                value: vec![b'v'; value_bytes],
                ..Default::default()
            }),
            prev_kv: None,
        }
    }

    #[test]
    fn a_large_response_goes_in_fragments_under_the_limit_as_etcd_sends_them() {
        let response = pb::WatchResponse {
            watch_id: 3,
            events: (0..10).map(|i| put(&format!("k{i}"), 100)).collect(),
            ..Default::default()
        };
        let parts = fragments(response.clone(), 350);
        assert!(parts.len() > 1, "{} parts", parts.len());
        // Every part but the last says more follows; each stays under the limit; the events
        // are all there, in order, and the other fields repeat.
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(part.fragment, i + 1 < parts.len());
            assert!(
                part.encoded_len() < 350,
                "part {i}: {} bytes",
                part.encoded_len()
            );
            assert_eq!(part.watch_id, 3);
        }
        let events: Vec<_> = parts.into_iter().flat_map(|p| p.events).collect();
        assert_eq!(events, response.events);

        // Under the limit, or one event however large: one response, not a fragment.
        assert_eq!(fragments(response.clone(), 100_000), vec![response]);
        let one = pb::WatchResponse {
            events: vec![put("big", 1_000)],
            ..Default::default()
        };
        assert_eq!(fragments(one.clone(), 10), vec![one]);
    }
}
