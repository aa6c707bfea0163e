//! The client KV API, served on localhost for the application beside the node.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message as _;
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::config::DefaultReadPolicy;
use super::event_loop::EventBatch;
use super::limits::Limits;
use super::requests::{Applied, ClientRequest, ReadBarrier, ServiceError};
use super::status::NodeStatus;
use crate::kv::{Command, CommandOutcome, KvError, KvStore};
use crate::proto::kv_server::Kv;
use crate::proto::{
    CompareAndSwapRequest, CompareAndSwapResponse, DeleteRequest, DeleteResponse, Event,
    GetRequest, GetResponse, PutRequest, PutResponse, ReadPolicy, ResponseHeader, ScanRequest,
    ScanResponse, WatchRequest, WatchResponse,
};

pub struct KvService {
    pub requests: mpsc::Sender<ClientRequest>,
    pub kv: Arc<RwLock<KvStore>>,
    pub status: watch::Receiver<NodeStatus>,
    pub events: broadcast::Sender<EventBatch>,
    pub limits: Limits,
    pub default_read_policy: DefaultReadPolicy,
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

fn expires_at(ttl_ms: u64) -> i64 {
    if ttl_ms == 0 {
        return 0;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    now.saturating_add(ttl_ms.min(i64::MAX as u64) as i64)
}

impl KvService {
    fn header(&self, revision: i64) -> Option<ResponseHeader> {
        let status = self.status.borrow();
        Some(ResponseHeader {
            cluster_id: status.cluster_id,
            member_id: status.id,
            revision,
            raft_term: status.term,
        })
    }

    async fn propose(&self, command: Command) -> Result<Applied, Status> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(ClientRequest::Propose { command, reply })
            .await
            .map_err(|_| Status::from(ServiceError::ShuttingDown))?;
        match answer.await {
            Ok(result) => result.map_err(Status::from),
            Err(_) => Err(ServiceError::ShuttingDown.into()),
        }
    }

    /// Waits until a read under `policy` may be served from this node's state.
    async fn read_barrier(&self, policy: i32) -> Result<(), Status> {
        let policy = ReadPolicy::try_from(policy)
            .map_err(|_| Status::invalid_argument(format!("unknown read policy {policy}")))?;
        let barrier = match (policy, self.default_read_policy) {
            (ReadPolicy::Eventual, _) | (ReadPolicy::Unspecified, DefaultReadPolicy::Eventual) => {
                return Ok(())
            }
            (ReadPolicy::Lease, _) | (ReadPolicy::Unspecified, DefaultReadPolicy::Lease) => {
                ReadBarrier::Lease
            }
            _ => ReadBarrier::Linearizable,
        };
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(ClientRequest::Read { barrier, reply })
            .await
            .map_err(|_| Status::from(ServiceError::ShuttingDown))?;
        match answer.await {
            Ok(result) => result.map_err(Status::from),
            Err(_) => Err(ServiceError::ShuttingDown.into()),
        }
    }
}

fn unexpected(outcome: &CommandOutcome) -> Status {
    Status::internal(format!("unexpected outcome {outcome:?}"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let request = request.into_inner();
        self.limits.check_request(request.encoded_len())?;
        self.limits.check_key(&request.key)?;
        self.limits.check_value(&request.value)?;
        let command = Command::put(
            request.key,
            request.value,
            expires_at(request.ttl_ms),
            request.prev_kv,
        );
        let applied = self.propose(command).await?;
        match applied.outcome {
            CommandOutcome::Put { revision, prev_kv } => Ok(Response::new(PutResponse {
                header: self.header(revision),
                prev_kv,
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let request = request.into_inner();
        self.limits.check_key(&request.key)?;
        self.read_barrier(request.read_policy).await?;
        let kv = self.kv.read().map_err(|_| lock_poisoned())?;
        let found = kv
            .get(&request.key)
            .map_err(|e| Status::internal(e.to_string()))?;
        let revision = kv.revision();
        drop(kv);
        Ok(Response::new(GetResponse {
            header: self.header(revision),
            kv: found,
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let request = request.into_inner();
        self.limits.check_key(&request.key)?;
        let applied = self
            .propose(Command::delete(request.key, request.prev_kv))
            .await?;
        match applied.outcome {
            CommandOutcome::Delete {
                revision,
                deleted,
                prev_kv,
            } => Ok(Response::new(DeleteResponse {
                header: self.header(revision),
                deleted,
                prev_kv,
            })),
            other => Err(unexpected(&other)),
        }
    }

    async fn compare_and_swap(
        &self,
        request: Request<CompareAndSwapRequest>,
    ) -> Result<Response<CompareAndSwapResponse>, Status> {
        let request = request.into_inner();
        self.limits.check_request(request.encoded_len())?;
        self.limits.check_key(&request.key)?;
        self.limits.check_value(&request.new_value)?;
        let compare = request
            .compare
            .filter(|c| c.target.is_some())
            .ok_or_else(|| {
                Status::invalid_argument("compare must name a value, a mod_revision or absent")
            })?;
        let command = Command::compare_and_swap(
            request.key,
            compare,
            request.new_value,
            expires_at(request.ttl_ms),
        );
        let applied = self.propose(command).await?;
        match applied.outcome {
            CommandOutcome::CompareAndSwap {
                succeeded,
                revision,
                current,
            } => Ok(Response::new(CompareAndSwapResponse {
                header: self.header(revision),
                succeeded,
                current,
            })),
            other => Err(unexpected(&other)),
        }
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
        self.read_barrier(request.read_policy).await?;
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
            header: self.header(revision),
            kvs,
            continuation: continuation.into(),
        }))
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
                    Ok(batch) => {
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
