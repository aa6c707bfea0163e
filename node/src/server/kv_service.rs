//! The client KV API, served on localhost for the application beside the node.

use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::event_loop::EventBatch;
use super::frontend::Frontend;
use super::limits::Limits;
use super::status::NodeStatus;
use crate::kv::{KvError, KvStore};
use crate::proto::kv_server::Kv;
use crate::proto::{
    CompareAndSwapRequest, CompareAndSwapResponse, DeleteRequest, DeleteResponse, Event,
    GetRequest, GetResponse, PutRequest, PutResponse, ResponseHeader, RoleEvent, ScanRequest,
    ScanResponse, WatchRequest, WatchResponse, WatchRoleRequest,
};
use crate::raft::Role;

pub struct KvService {
    pub frontend: Arc<Frontend>,
    pub kv: Arc<RwLock<KvStore>>,
    pub status: watch::Receiver<NodeStatus>,
    pub events: broadcast::Sender<EventBatch>,
    pub limits: Limits,
}

fn kv_status(e: KvError) -> Status {
    match e {
        KvError::Compacted { .. } => Status::out_of_range(e.to_string()),
        KvError::InvalidContinuation => Status::invalid_argument(e.to_string()),
        other => Status::internal(other.to_string()),
    }
}

fn lock_poisoned() -> Status {
    Status::internal("state machine lock poisoned")
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        self.frontend
            .put(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let request = request.into_inner();
        self.limits.check_key(&request.key)?;
        self.frontend.read_barrier(request.read_policy).await?;
        let kv = self.kv.read().map_err(|_| lock_poisoned())?;
        let found = kv
            .get(&request.key)
            .map_err(|e| Status::internal(e.to_string()))?;
        let revision = kv.revision();
        drop(kv);
        Ok(Response::new(GetResponse {
            header: self.frontend.header(revision),
            kv: found,
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        self.frontend
            .delete(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn compare_and_swap(
        &self,
        request: Request<CompareAndSwapRequest>,
    ) -> Result<Response<CompareAndSwapResponse>, Status> {
        self.frontend
            .compare_and_swap(request.into_inner())
            .await
            .map(Response::new)
    }

    async fn scan(&self, request: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        let request = request.into_inner();
        if request.prefix.len() > self.limits.max_key_bytes {
            return Err(Status::invalid_argument(format!(
                "prefix is {} bytes, over the limit of {} bytes (max_key_bytes)",
                request.prefix.len(),
                self.limits.max_key_bytes
            )));
        }
        self.frontend.read_barrier(request.read_policy).await?;
        let limit = match request.limit {
            0 => self.limits.max_scan_limit,
            n => n.min(self.limits.max_scan_limit),
        } as usize;
        let kv = self.kv.read().map_err(|_| lock_poisoned())?;
        let (kvs, continuation) = kv
            .scan(&request.prefix, &request.continuation, limit)
            .map_err(kv_status)?;
        let revision = kv.revision();
        drop(kv);
        Ok(Response::new(ScanResponse {
            header: self.frontend.header(revision),
            kvs,
            continuation: continuation.into(),
        }))
    }

    type WatchRoleStream = ReceiverStream<Result<RoleEvent, Status>>;

    async fn watch_role(
        &self,
        _: Request<WatchRoleRequest>,
    ) -> Result<Response<Self::WatchRoleStream>, Status> {
        let mut status = self.status.clone();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut last: Option<RoleEvent> = None;
            loop {
                let event = {
                    let current = status.borrow_and_update();
                    RoleEvent {
                        is_leader: current.role == Role::Leader,
                        term: current.term,
                        leader_id: current.leader,
                        member_id: current.id,
                    }
                };
                if last.as_ref() != Some(&event) {
                    if tx.send(Ok(event)).await.is_err() {
                        return;
                    }
                    last = Some(event);
                }
                tokio::select! {
                    changed = status.changed() => if changed.is_err() {
                        let _ = tx.send(Err(Status::unavailable("the node is shutting down"))).await;
                        return;
                    },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    type WatchStream = ReceiverStream<Result<WatchResponse, Status>>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        self.limits
            .check_key(&request.key)
            .or_else(|e| match request.prefix {
                // An empty prefix watches everything.
                true if request.key.is_empty() => Ok(()),
                _ => Err(e),
            })?;
        if request.start_revision < 0 {
            return Err(Status::invalid_argument(
                "start_revision must not be negative",
            ));
        }
        // Subscribe before reading history, so no event falls between the two.
        let mut live = self.events.subscribe();
        let (history, mut last_sent) = {
            let kv = self.kv.read().map_err(|_| lock_poisoned())?;
            if request.start_revision > 0 {
                let history = kv
                    .events_since(request.start_revision, &request.key, request.prefix)
                    .map_err(kv_status)?;
                (history, request.start_revision - 1)
            } else {
                (Vec::new(), kv.revision())
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let header = {
            let status = self.status.borrow();
            (status.cluster_id, status.id)
        };
        let matches = move |event: &Event| {
            let key = event
                .kv
                .as_ref()
                .map(|kv| kv.key.as_ref())
                .unwrap_or_default();
            if request.prefix {
                key.starts_with(&request.key)
            } else {
                key == request.key.as_ref()
            }
        };
        tokio::spawn(async move {
            let respond = |events: Vec<Event>| {
                let revision = events
                    .last()
                    .and_then(|e| e.kv.as_ref())
                    .map_or(0, |kv| kv.mod_revision);
                WatchResponse {
                    header: Some(ResponseHeader {
                        cluster_id: header.0,
                        member_id: header.1,
                        revision,
                        raft_term: 0,
                    }),
                    events,
                }
            };
            let revision_of = |e: &Event| e.kv.as_ref().map_or(0, |kv| kv.mod_revision);
            if !history.is_empty() {
                last_sent = history.last().map_or(last_sent, revision_of);
                if tx.send(Ok(respond(history))).await.is_err() {
                    return;
                }
            }
            loop {
                match live.recv().await {
                    Ok(EventBatch::Reset { revision }) if revision > last_sent => {
                        // This node jumped ahead by installing a snapshot: the events between
                        // are gone here, as if compacted. The client resumes elsewhere or
                        // re-reads and watches from the new revision.
                        let _ = tx
                            .send(Err(Status::out_of_range(format!(
                                "this node installed a snapshot at revision {revision}; the events after revision {last_sent} up to it are not retained here; re-read and watch from revision {}",
                                revision + 1
                            ))))
                            .await;
                        return;
                    }
                    Ok(EventBatch::Reset { .. }) => continue,
                    Ok(EventBatch::Events(batch)) => {
                        let events: Vec<Event> = batch
                            .iter()
                            .filter(|e| revision_of(e) > last_sent && matches(e))
                            .cloned()
                            .collect();
                        if let Some(last) = batch.last() {
                            last_sent = last_sent.max(revision_of(last));
                        }
                        if events.is_empty() {
                            continue;
                        }
                        if tx.send(Ok(respond(events))).await.is_err() {
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx
                            .send(Err(Status::resource_exhausted(format!(
                                "watch fell behind the event stream; resume with start_revision {}",
                                last_sent + 1
                            ))))
                            .await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        let _ = tx
                            .send(Err(Status::unavailable("the node is shutting down")))
                            .await;
                        return;
                    }
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
