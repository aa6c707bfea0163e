//! The client KV API as typed Rust: what both the gRPC `Kv` service and an embedded
//! application call.
//!
//! [`KvApi`] validates a request against the node's limits, then runs it on the node's own
//! path: writes through the frontend (proposed here if this node leads, forwarded to the
//! leader otherwise), reads after the read barrier their policy asks for, watches from the
//! state machine's history and the event loop's event stream. The gRPC service
//! (`kv_service.rs`) only translates protobuf messages to these types and back, and
//! [`ApiError`] to a status.

mod etcd;
mod leases;
mod watch;

use std::sync::{Arc, RwLock};

use bytes::Bytes;
use tokio::sync::{broadcast, watch as watch_channel};

use super::event_loop::EventBatch;
use super::frontend::Frontend;
use super::limits::Limits;
use super::metrics::InProgress;
use super::status::NodeStatus;
use super::write::{WriteOutcome, WriteRequest};
use crate::kv::KvStore;

pub(crate) use super::vocabulary::ttl_from_ms;
pub use super::vocabulary::{
    ApiError, Compare, CompareAndSwapOptions, CompareAndSwapResponse, DeleteOptions,
    DeleteResponse, EventKind, GetResponse, Header, KeyValue, PutOptions, PutResponse, ReadPolicy,
    RoleEvent, ScanRequest, ScanResponse, WatchEvent, WatchRequest, WatchResponse, LIMIT_METADATA,
    LIMIT_NAMES,
};
pub use crate::server::requests::{LeaseQuery, LeaseStatus};
pub use leases::{LeaseGrant, MAX_LEASE_TTL};
pub use watch::{RoleStream, WatchStream};

/// The client API of one node. Cheap to clone; every clone serves the same node.
#[derive(Clone)]
pub struct KvApi {
    frontend: Arc<Frontend>,
    kv: Arc<RwLock<KvStore>>,
    status: watch_channel::Receiver<NodeStatus>,
    events: broadcast::Sender<EventBatch>,
    limits: Limits,
    /// The node's shutdown signal: streams end when it fires.
    shutdown: watch_channel::Receiver<bool>,
}

fn lock_poisoned() -> ApiError {
    ApiError::Internal("state machine lock poisoned".into())
}

impl KvApi {
    pub(crate) fn new(
        frontend: Arc<Frontend>,
        kv: Arc<RwLock<KvStore>>,
        status: watch_channel::Receiver<NodeStatus>,
        events: broadcast::Sender<EventBatch>,
        limits: Limits,
        shutdown: watch_channel::Receiver<bool>,
    ) -> Self {
        Self {
            frontend,
            kv,
            status,
            events,
            limits,
            shutdown,
        }
    }

    /// This node's view of leadership now.
    pub fn role(&self) -> RoleEvent {
        RoleEvent::from(&*self.status.borrow())
    }

    /// Executes a write and answers with the response of its kind. The frontend answers each
    /// request with an outcome of the same kind (it checks), so another kind is a bug.
    async fn write<R: TryFrom<WriteOutcome>>(&self, request: WriteRequest) -> Result<R, ApiError> {
        let operation = request.operation();
        let outcome = self.frontend.writes.execute(request, false).await?;
        R::try_from(outcome).map_err(|_| {
            ApiError::Internal(format!(
                "internal error: a {operation} was answered with another kind of outcome"
            ))
        })
    }

    /// Writes `key`. Answers once the write is applied on this node.
    pub async fn put(
        &self,
        key: Bytes,
        value: Bytes,
        options: PutOptions,
    ) -> Result<PutResponse, ApiError> {
        let request = WriteRequest::Put {
            key,
            value,
            options,
        };
        self.write(request).await
    }

    /// Reads `key` under `policy` (`None`: the node's default).
    pub async fn get(
        &self,
        key: Bytes,
        policy: Option<ReadPolicy>,
    ) -> Result<GetResponse, ApiError> {
        self.get_at(key, 0, policy).await
    }

    /// Reads `key` as it was at `revision` (0: now) under `policy`; the header carries the
    /// current revision.
    pub async fn get_at(
        &self,
        key: Bytes,
        revision: i64,
        policy: Option<ReadPolicy>,
    ) -> Result<GetResponse, ApiError> {
        self.limits.check_key(&key)?;
        self.frontend.reads.wait(policy).await?;
        let kv = self.kv.read().map_err(|_| lock_poisoned())?;
        let found = kv.current().get_at(&key, revision)?;
        let revision = kv.revision();
        drop(kv);
        Ok(GetResponse {
            header: self.frontend.header.at(revision),
            kv: found,
        })
    }

    /// Deletes `key`; deleting a missing key succeeds with `deleted == false`.
    pub async fn delete(
        &self,
        key: Bytes,
        options: DeleteOptions,
    ) -> Result<DeleteResponse, ApiError> {
        let request = WriteRequest::Delete { key, options };
        self.write(request).await
    }

    /// Writes `new_value` to `key` only if `compare` holds on its current state.
    pub async fn compare_and_swap(
        &self,
        key: Bytes,
        compare: Compare,
        new_value: Bytes,
        options: CompareAndSwapOptions,
    ) -> Result<CompareAndSwapResponse, ApiError> {
        let request = WriteRequest::CompareAndSwap {
            key,
            compare,
            new_value,
            options,
        };
        self.write(request).await
    }

    /// One page of the keys under a prefix, in key order.
    pub async fn scan(&self, request: ScanRequest) -> Result<ScanResponse, ApiError> {
        self.limits.check_prefix(&request.prefix)?;
        self.frontend.reads.wait(request.read_policy).await?;
        let limit = match request.limit {
            0 => self.limits.max_scan_limit,
            n => n.min(self.limits.max_scan_limit),
        } as usize;
        // A page may be long: read it from a view, not under the lock the event loop needs to
        // apply.
        let view = self.kv.read().map_err(|_| lock_poisoned())?.view()?;
        let (kvs, continuation) = view.scan_at(
            &request.prefix,
            &request.continuation,
            limit,
            request.revision,
        )?;
        let revision = view.revision();
        Ok(ScanResponse {
            header: self.frontend.header.at(revision),
            kvs,
            continuation: continuation.into(),
        })
    }

    /// Streams the events of a key or a prefix; see [`WatchStream`] for how it ends.
    pub async fn watch(&self, request: WatchRequest) -> Result<WatchStream, ApiError> {
        if !(request.prefix && request.key.is_empty()) {
            // An empty prefix watches everything.
            self.limits.check_key(&request.key)?;
        }
        if request.start_revision < 0 {
            return Err(ApiError::invalid("start_revision must not be negative"));
        }
        // Subscribe before taking the view of the history, so no event falls between the two.
        let live = self.events.subscribe();
        let view = self.kv.read().map_err(|_| lock_poisoned())?.view()?;
        let reading = &self.frontend.metrics.watch_history_reads;
        let (history, last_sent) = if request.start_revision > 0 {
            // Fails at once if the start is compacted; the rest is read page by page.
            let first = {
                let _reading = InProgress::enter(reading);
                view.history_page(request.start_revision, &request.key, request.prefix)?
            };
            let rest = first.next.map(|next| (view.clone(), next));
            ((first.events, rest), request.start_revision - 1)
        } else {
            ((Vec::new(), None), view.revision())
        };
        let history_until = view.revision();
        let (cluster_id, member_id) = {
            let status = self.status.borrow();
            (status.cluster_id, status.id)
        };
        Ok(watch::spawn_watch(
            watch::WatchTask {
                key: request.key,
                prefix: request.prefix,
                cluster_id,
                member_id,
                history: history.0,
                more_history: history.1,
                history_until,
                last_sent,
                history_reads: reading.clone(),
            },
            live,
            self.shutdown.clone(),
        ))
    }

    /// Streams this node's role: the current one at once, then every change.
    pub async fn watch_role(&self) -> RoleStream {
        watch::spawn_role_watch(self.status.clone(), self.shutdown.clone())
    }
}
