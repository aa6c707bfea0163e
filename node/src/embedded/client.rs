//! [`Client`]: the client API of an embedded node, called in process.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;

use crate::server::api::{
    ApiError, Compare, CompareAndSwapOptions, CompareAndSwapResponse, DeleteOptions,
    DeleteResponse, GetResponse, KvApi, LeaseGrant, LeaseQuery, LeaseStatus, PutOptions,
    PutResponse, ReadPolicy, RoleEvent, RoleStream, ScanRequest, ScanResponse, WatchRequest,
    WatchStream,
};

/// What the clients of one node share.
pub(super) struct Shared {
    /// The node's API while it runs; `None` from the moment it is told to stop, so that no
    /// new request holds its storage open.
    pub api: RwLock<Option<KvApi>>,
    /// The longest a request may take, as the gRPC server's request timeout.
    pub request_timeout: Duration,
}

impl Shared {
    /// Takes the API away: every request from now on fails with `ShuttingDown`.
    pub fn close(&self) {
        *self.api.write().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// A handle on an embedded node's KV API: the operations, read policies, limits and errors of
/// the gRPC `Kv` service, executed in process on the same path (no protobuf encoding, no
/// network, except that a follower forwards writes and read-index requests to the leader as
/// any node does).
///
/// Cheap to clone; clones share the node. `Send + Sync`, so one can be shared by every task.
/// After the node is shut down (or dropped) every call fails with
/// [`Error::ShuttingDown`](super::Error::ShuttingDown).
///
/// Keys and values are taken as anything that is bytes (`&str`, `String`, `&[u8]`,
/// `Vec<u8>`, [`Bytes`]) and copied once.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
}

fn bytes(data: impl AsRef<[u8]>) -> Bytes {
    Bytes::copy_from_slice(data.as_ref())
}

impl Client {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn api(&self) -> Result<KvApi, ApiError> {
        self.shared
            .api
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(ApiError::ShuttingDown)
    }

    /// Runs a request with the node's request timeout.
    async fn timed<T>(
        &self,
        request: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<T, ApiError> {
        let limit = self.shared.request_timeout;
        tokio::time::timeout(limit, request)
            .await
            .unwrap_or_else(|_| {
                Err(ApiError::DeadlineExceeded(format!(
                    "the request did not complete within {limit:?}; a write may still be applied"
                )))
            })
    }

    /// Writes `key`. Answers once the write is committed and applied on this node.
    pub async fn put(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<PutResponse, ApiError> {
        self.put_with(key, value, PutOptions::default()).await
    }

    /// Writes `key` with a TTL, or asking for the previous value.
    pub async fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: PutOptions,
    ) -> Result<PutResponse, ApiError> {
        let api = self.api()?;
        self.timed(api.put(bytes(key), bytes(value), options)).await
    }

    /// Reads `key` under the node's default read policy (linearizable unless configured
    /// otherwise).
    pub async fn get(&self, key: impl AsRef<[u8]>) -> Result<GetResponse, ApiError> {
        let api = self.api()?;
        self.timed(api.get(bytes(key), None)).await
    }

    /// Reads `key` under `policy`.
    pub async fn get_with(
        &self,
        key: impl AsRef<[u8]>,
        policy: ReadPolicy,
    ) -> Result<GetResponse, ApiError> {
        let api = self.api()?;
        self.timed(api.get(bytes(key), Some(policy))).await
    }

    /// Reads `key` as it was at `revision` under `policy` (see [`KvApi::get_at`](crate::server::api::KvApi::get_at)).
    pub async fn get_at(
        &self,
        key: impl AsRef<[u8]>,
        revision: i64,
        policy: ReadPolicy,
    ) -> Result<GetResponse, ApiError> {
        let api = self.api()?;
        self.timed(api.get_at(bytes(key), revision, Some(policy)))
            .await
    }

    /// Deletes `key`; a missing key is not an error (`deleted` says whether it existed).
    pub async fn delete(&self, key: impl AsRef<[u8]>) -> Result<DeleteResponse, ApiError> {
        self.delete_with(key, DeleteOptions::default()).await
    }

    pub async fn delete_with(
        &self,
        key: impl AsRef<[u8]>,
        options: DeleteOptions,
    ) -> Result<DeleteResponse, ApiError> {
        let api = self.api()?;
        self.timed(api.delete(bytes(key), options)).await
    }

    /// Writes `new_value` to `key` only if `compare` holds on its current state;
    /// `succeeded` says whether it did, `current` what the key was.
    pub async fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        compare: Compare,
        new_value: impl AsRef<[u8]>,
    ) -> Result<CompareAndSwapResponse, ApiError> {
        self.compare_and_swap_with(key, compare, new_value, CompareAndSwapOptions::default())
            .await
    }

    pub async fn compare_and_swap_with(
        &self,
        key: impl AsRef<[u8]>,
        compare: Compare,
        new_value: impl AsRef<[u8]>,
        options: CompareAndSwapOptions,
    ) -> Result<CompareAndSwapResponse, ApiError> {
        let api = self.api()?;
        self.timed(api.compare_and_swap(bytes(key), compare, bytes(new_value), options))
            .await
    }

    /// One page of keys under a prefix, in key order. Follow
    /// [`ScanResponse::continuation`] with [`ScanRequest::after`] until it is empty.
    pub async fn scan(&self, request: ScanRequest) -> Result<ScanResponse, ApiError> {
        let api = self.api()?;
        self.timed(api.scan(request)).await
    }

    /// Streams put and delete events of a key or a prefix, from now or from a retained
    /// revision; see [`WatchStream`] for how it ends.
    pub async fn watch(&self, request: WatchRequest) -> Result<WatchStream, ApiError> {
        self.api()?.watch(request).await
    }

    /// Streams this node's role: the current one at once, then every change of leader or
    /// term. For leader election among an application's own replicas, with the term as a
    /// fencing token.
    pub async fn watch_role(&self) -> Result<RoleStream, ApiError> {
        Ok(self.api()?.watch_role().await)
    }

    /// This node's view of leadership now.
    pub fn role(&self) -> Result<RoleEvent, ApiError> {
        Ok(self.api()?.role())
    }

    /// Grants a lease of `ttl_seconds` (raised to the node's shortest, 1.5 election
    /// timeouts), with an id the node picks. Keys put with it are deleted when it is revoked
    /// or expires; keep it alive with [`Client::keep_lease_alive`] well within its TTL.
    pub async fn grant_lease(&self, ttl_seconds: i64) -> Result<LeaseGrant, ApiError> {
        self.grant_lease_with_id(ttl_seconds, 0).await
    }

    /// Grants a lease with the id given (0: the node picks one); fails with "lease already
    /// exists" if it is taken.
    pub async fn grant_lease_with_id(
        &self,
        ttl_seconds: i64,
        id: i64,
    ) -> Result<LeaseGrant, ApiError> {
        let api = self.api()?;
        let (_, granted) = self.timed(api.lease_grant(ttl_seconds, id)).await?;
        Ok(granted)
    }

    /// Ends a lease and deletes its keys at one revision.
    pub async fn revoke_lease(&self, id: i64) -> Result<(), ApiError> {
        let api = self.api()?;
        self.timed(api.lease_revoke(id)).await.map(|_| ())
    }

    /// Renews a lease: it lives its whole TTL from now. Answers the TTL, or `None` when the
    /// lease does not exist (revoked, or expired before this keepalive).
    pub async fn keep_lease_alive(&self, id: i64) -> Result<Option<i64>, ApiError> {
        let api = self.api()?;
        let query = LeaseQuery {
            id,
            renew: true,
            keys: false,
        };
        let renewed = self.timed(api.lease_query(query)).await?;
        Ok(renewed.map(|lease| lease.remaining_ttl))
    }

    /// What a lease has left, as the leader counts it, and its keys; `None` when it does not
    /// exist.
    pub async fn lease_time_to_live(&self, id: i64) -> Result<Option<LeaseStatus>, ApiError> {
        let api = self.api()?;
        let query = LeaseQuery {
            id,
            renew: false,
            keys: true,
        };
        self.timed(api.lease_query(query)).await
    }

    /// Writes `key` attached to lease `lease`: revoking or expiring the lease deletes it.
    /// Fails with "requested lease not found" if the lease does not exist.
    pub async fn put_with_lease(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        lease: i64,
    ) -> Result<PutResponse, ApiError> {
        let api = self.api()?;
        self.timed(api.put_with_lease(bytes(key), bytes(value), lease))
            .await
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let running = self
            .shared
            .api
            .read()
            .map(|api| api.is_some())
            .unwrap_or(false);
        f.debug_struct("Client").field("running", &running).finish()
    }
}
