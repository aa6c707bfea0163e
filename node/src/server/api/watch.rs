//! Watch streams: a key's or a prefix's events, and this node's role.

use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::{ApiError, Header, RoleEvent, WatchEvent, WatchResponse};
use crate::kv::KvView;
use crate::proto::Event;
use crate::server::event_loop::EventBatch;
use crate::server::metrics::InProgress;
use crate::server::status::NodeStatus;

/// The events of a watch, a batch at a time, in revision order, each revision once.
///
/// It ends with an error when it cannot go on without a gap: [`ApiError::Compacted`] when this
/// node installed a snapshot past what was sent (re-read and watch from the revision it
/// names), [`ApiError::WatchLagged`] when the reader fell too far behind (watch again from
/// `resume_from`), [`ApiError::ShuttingDown`] when the node stops. Dropping it ends the watch.
pub struct WatchStream {
    inner: ReceiverStream<Result<WatchResponse, ApiError>>,
    /// The revision through which every event has been queued into `inner`.
    processed: Arc<AtomicI64>,
}

impl WatchStream {
    /// The next batch, or `None` after the stream's final error (or if the node is gone).
    pub async fn recv(&mut self) -> Option<Result<WatchResponse, ApiError>> {
        futures::StreamExt::next(self).await
    }

    /// The next batch if one is waiting, without waiting for one.
    pub fn try_recv(&mut self) -> Option<Result<WatchResponse, ApiError>> {
        self.inner.as_mut().try_recv().ok()
    }

    /// The revision through which every event of this watch is in the stream: once the
    /// batches waiting now are read, nothing up to it is still on its way.
    pub fn processed_through(&self) -> i64 {
        self.processed.load(Ordering::SeqCst)
    }
}

impl Stream for WatchStream {
    type Item = Result<WatchResponse, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// This node's role: the current one first, then one event per change of leadership or term.
/// Ends with [`ApiError::ShuttingDown`] when the node stops.
pub struct RoleStream {
    inner: ReceiverStream<Result<RoleEvent, ApiError>>,
}

impl RoleStream {
    /// The next change, or `None` after the stream's final error.
    pub async fn recv(&mut self) -> Option<Result<RoleEvent, ApiError>> {
        futures::StreamExt::next(self).await
    }
}

impl Stream for RoleStream {
    type Item = Result<RoleEvent, ApiError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

/// A watch with its history read: what the task sending it needs.
pub(super) struct WatchTask {
    pub key: Bytes,
    pub prefix: bool,
    pub cluster_id: u64,
    pub member_id: u64,
    /// The first page of retained events from the start revision on, sent first.
    pub history: Vec<Event>,
    /// Where the rest of the history is read from, page by page, if there is more.
    pub more_history: Option<(KvView, i64)>,
    /// The revision of the view the history comes from: live events after it follow.
    pub history_until: i64,
    /// The revision up to which events count as sent.
    pub last_sent: i64,
    /// Counts the history reads in progress.
    pub history_reads: prometheus_client::metrics::gauge::Gauge,
}

fn revision_of(event: &Event) -> i64 {
    event.kv.as_ref().map_or(0, |kv| kv.mod_revision)
}

impl WatchTask {
    fn matches(&self, event: &Event) -> bool {
        let key = event
            .kv
            .as_ref()
            .map(|kv| kv.key.as_ref())
            .unwrap_or_default();
        if self.prefix {
            key.starts_with(&self.key)
        } else {
            key == self.key.as_ref()
        }
    }

    fn respond(&self, events: Vec<Event>) -> WatchResponse {
        WatchResponse {
            header: Header {
                cluster_id: self.cluster_id,
                member_id: self.member_id,
                revision: events.last().map_or(0, revision_of),
                raft_term: 0,
            },
            events: events.into_iter().map(WatchEvent::from).collect(),
        }
    }
}

/// Resolves when the node is told to stop (or is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

pub(super) fn spawn_watch(
    mut task: WatchTask,
    mut live: broadcast::Receiver<EventBatch>,
    mut shutdown: watch::Receiver<bool>,
) -> WatchStream {
    let (tx, rx) = mpsc::channel(256);
    let processed = Arc::new(AtomicI64::new(task.last_sent));
    let queued = processed.clone();
    tokio::spawn(async move {
        // The history first, a page at a time, from the view taken when the watch began: the
        // event loop never waits on it, and a long history is never held in memory at once.
        let mut page = std::mem::take(&mut task.history);
        let mut more = task.more_history.take();
        loop {
            if !page.is_empty() {
                task.last_sent = page.last().map_or(task.last_sent, revision_of);
                if tx.send(Ok(task.respond(page))).await.is_err() {
                    return;
                }
            }
            let Some((view, next)) = more.take() else {
                break;
            };
            let (key, prefix) = (task.key.clone(), task.prefix);
            let reading = InProgress::enter(&task.history_reads);
            let read = tokio::task::spawn_blocking(move || {
                view.history_page(next, &key, prefix)
                    .map(|page| (page.events, page.next.map(|next| (view, next))))
            })
            .await;
            drop(reading);
            match read {
                Ok(Ok((events, rest))) => {
                    page = events;
                    more = rest;
                }
                Ok(Err(e)) => {
                    let _ = tx.send(Err(ApiError::from(e))).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(ApiError::Internal(e.to_string()))).await;
                    return;
                }
            }
        }
        task.last_sent = task.last_sent.max(task.history_until);
        queued.store(task.last_sent, Ordering::SeqCst);
        loop {
            let batch = tokio::select! {
                batch = live.recv() => batch,
                // The reader went away: stop without waiting for the next event.
                _ = tx.closed() => return,
                // The node stops: end the stream now, so that a gRPC server waiting for its
                // streams to finish can stop too.
                _ = stopping(&mut shutdown) => {
                    let _ = tx.send(Err(ApiError::ShuttingDown)).await;
                    return;
                }
            };
            match batch {
                Ok(EventBatch::Reset { revision }) if revision > task.last_sent => {
                    // This node jumped ahead by installing a snapshot: the events between
                    // are gone here, as if compacted. The client resumes elsewhere or
                    // re-reads and watches from the new revision.
                    let message = format!(
                        "this node installed a snapshot at revision {revision}; the events after revision {} up to it are not retained here; re-read and watch from revision {}",
                        task.last_sent,
                        revision + 1
                    );
                    let _ = tx
                        .send(Err(ApiError::Compacted {
                            message,
                            oldest_retained: revision + 1,
                        }))
                        .await;
                    return;
                }
                Ok(EventBatch::Reset { .. }) => continue,
                Ok(EventBatch::Events(batch)) => {
                    let events: Vec<Event> = batch
                        .iter()
                        .filter(|e| revision_of(e) > task.last_sent && task.matches(e))
                        .cloned()
                        .collect();
                    if let Some(last) = batch.last() {
                        task.last_sent = task.last_sent.max(revision_of(last));
                    }
                    // Queued first, then counted as processed: a reader that sees the count
                    // finds the events in the stream.
                    if !events.is_empty() && tx.send(Ok(task.respond(events))).await.is_err() {
                        return;
                    }
                    queued.store(task.last_sent, Ordering::SeqCst);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let _ = tx
                        .send(Err(ApiError::WatchLagged {
                            resume_from: task.last_sent + 1,
                        }))
                        .await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let _ = tx.send(Err(ApiError::ShuttingDown)).await;
                    return;
                }
            }
        }
    });
    WatchStream {
        inner: ReceiverStream::new(rx),
        processed,
    }
}

pub(super) fn spawn_role_watch(
    mut status: watch::Receiver<NodeStatus>,
    mut shutdown: watch::Receiver<bool>,
) -> RoleStream {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut last: Option<RoleEvent> = None;
        loop {
            let event = RoleEvent::from(&*status.borrow_and_update());
            if last != Some(event) {
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
                last = Some(event);
            }
            tokio::select! {
                changed = status.changed() => if changed.is_err() {
                    let _ = tx.send(Err(ApiError::ShuttingDown)).await;
                    return;
                },
                _ = stopping(&mut shutdown) => {
                    let _ = tx.send(Err(ApiError::ShuttingDown)).await;
                    return;
                }
                _ = tx.closed() => return,
            }
        }
    });
    RoleStream {
        inner: ReceiverStream::new(rx),
    }
}
