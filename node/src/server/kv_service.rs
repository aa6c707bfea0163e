//! The client KV API over gRPC, served on localhost for the application beside the node: a
//! translation of `kv.proto`'s messages to the typed API ([`KvApi`]) and back, and of its
//! errors to statuses. The requests themselves are carried out by [`KvApi`], which an
//! embedded application calls directly.

use std::pin::Pin;

use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::api::{
    self, ttl_from_ms, ApiError, Compare, CompareAndSwapOptions, DeleteOptions, KvApi, PutOptions,
    ReadPolicy,
};
use crate::proto::kv_server::Kv;
use crate::proto::{
    CompareAndSwapRequest, CompareAndSwapResponse, DeleteRequest, DeleteResponse, GetRequest,
    GetResponse, PutRequest, PutResponse, RoleEvent, ScanRequest, ScanResponse, WatchRequest,
    WatchResponse, WatchRoleRequest,
};

pub struct KvService {
    pub api: KvApi,
}

/// A request's read policy; `None` for the node's default.
fn read_policy(policy: i32) -> Result<Option<ReadPolicy>, ApiError> {
    use crate::proto::ReadPolicy as Wire;
    match Wire::try_from(policy) {
        Ok(Wire::Unspecified) => Ok(None),
        Ok(Wire::Linearizable) => Ok(Some(ReadPolicy::Linearizable)),
        Ok(Wire::Lease) => Ok(Some(ReadPolicy::Lease)),
        Ok(Wire::Eventual) => Ok(Some(ReadPolicy::Eventual)),
        Err(_) => Err(ApiError::invalid(format!("unknown read policy {policy}"))),
    }
}

type Streamed<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Kv for KvService {
    async fn put(&self, request: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        let request = request.into_inner();
        let options = PutOptions {
            ttl: ttl_from_ms(request.ttl_ms),
            prev_kv: request.prev_kv,
        };
        let response = self.api.put(request.key, request.value, options).await?;
        Ok(Response::new(PutResponse {
            header: Some(response.header.into()),
            prev_kv: response.prev_kv,
        }))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let request = request.into_inner();
        let policy = read_policy(request.read_policy)?;
        let response = self
            .api
            .get_at(request.key, request.revision, policy)
            .await?;
        Ok(Response::new(GetResponse {
            header: Some(response.header.into()),
            kv: response.kv,
        }))
    }

    async fn delete(
        &self,
        request: Request<DeleteRequest>,
    ) -> Result<Response<DeleteResponse>, Status> {
        let request = request.into_inner();
        let options = DeleteOptions {
            prev_kv: request.prev_kv,
        };
        let response = self.api.delete(request.key, options).await?;
        Ok(Response::new(DeleteResponse {
            header: Some(response.header.into()),
            deleted: response.deleted,
            prev_kv: response.prev_kv,
        }))
    }

    async fn compare_and_swap(
        &self,
        request: Request<CompareAndSwapRequest>,
    ) -> Result<Response<CompareAndSwapResponse>, Status> {
        let request = request.into_inner();
        let compare = Compare::from_proto(request.compare).ok_or_else(|| {
            ApiError::invalid("compare must name a value, a mod_revision or absent")
        })?;
        let options = CompareAndSwapOptions {
            ttl: ttl_from_ms(request.ttl_ms),
        };
        let response = self
            .api
            .compare_and_swap(request.key, compare, request.new_value, options)
            .await?;
        Ok(Response::new(CompareAndSwapResponse {
            header: Some(response.header.into()),
            succeeded: response.succeeded,
            current: response.current,
        }))
    }

    async fn scan(&self, request: Request<ScanRequest>) -> Result<Response<ScanResponse>, Status> {
        let request = request.into_inner();
        let response = self
            .api
            .scan(api::ScanRequest {
                read_policy: read_policy(request.read_policy)?,
                prefix: request.prefix,
                limit: request.limit,
                continuation: request.continuation,
                revision: request.revision,
            })
            .await?;
        Ok(Response::new(ScanResponse {
            header: Some(response.header.into()),
            kvs: response.kvs,
            continuation: response.continuation,
        }))
    }

    type WatchRoleStream = Streamed<RoleEvent>;

    async fn watch_role(
        &self,
        _: Request<WatchRoleRequest>,
    ) -> Result<Response<Self::WatchRoleStream>, Status> {
        let events = self
            .api
            .watch_role()
            .await
            .map(|event| event.map(RoleEvent::from).map_err(Status::from));
        Ok(Response::new(Box::pin(events)))
    }

    type WatchStream = Streamed<WatchResponse>;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let request = request.into_inner();
        let responses = self
            .api
            .watch(api::WatchRequest {
                key: request.key,
                prefix: request.prefix,
                start_revision: request.start_revision,
            })
            .await?
            .map(|response| {
                response
                    .map(|response| WatchResponse {
                        header: Some(response.header.into()),
                        events: response.events.into_iter().map(Into::into).collect(),
                    })
                    .map_err(Status::from)
            });
        Ok(Response::new(Box::pin(responses)))
    }
}
