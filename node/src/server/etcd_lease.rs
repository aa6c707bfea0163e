//! etcd's v3 Lease service: Grant and Revoke go through the log like any write; KeepAlive and
//! TimeToLive are answered by the leader, which alone keeps lease deadlines (a follower asks
//! it); Leases lists what the state machine holds. Answers and errors are etcd's.

use std::pin::Pin;

use dengine_proto::etcd::etcdserverpb as pb;
use futures::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::api::{KvApi, LeaseQuery};
use super::etcd_service::{etcd_header, etcd_header_now};

/// The Lease service of etcd's v3 API.
pub struct EtcdLeaseService {
    pub api: KvApi,
}

type Answer<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl pb::lease_server::Lease for EtcdLeaseService {
    async fn lease_grant(
        &self,
        request: Request<pb::LeaseGrantRequest>,
    ) -> Answer<pb::LeaseGrantResponse> {
        let request = request.into_inner();
        let (header, granted) = self.api.lease_grant(request.ttl, request.id).await?;
        Ok(Response::new(pb::LeaseGrantResponse {
            header: Some(etcd_header(header)),
            id: granted.id,
            ttl: granted.ttl,
            error: String::new(),
        }))
    }

    async fn lease_revoke(
        &self,
        request: Request<pb::LeaseRevokeRequest>,
    ) -> Answer<pb::LeaseRevokeResponse> {
        let header = self.api.lease_revoke(request.into_inner().id).await?;
        Ok(Response::new(pb::LeaseRevokeResponse {
            header: Some(etcd_header(header)),
        }))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<pb::LeaseKeepAliveResponse, Status>> + Send>>;

    /// One answer per keepalive, in order: the TTL the lease has again, or 0 when it does not
    /// exist (any more). An error (no leader in time) ends the stream; clients open another.
    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<pb::LeaseKeepAliveRequest>>,
    ) -> Answer<Self::LeaseKeepAliveStream> {
        let api = self.api.clone();
        let answers = request.into_inner().then(move |keepalive| {
            let api = api.clone();
            async move {
                let id = keepalive?.id;
                let query = LeaseQuery {
                    id,
                    renew: true,
                    keys: false,
                };
                let ttl = api
                    .lease_query(query)
                    .await?
                    .map_or(0, |lease| lease.remaining_ttl);
                Ok(pb::LeaseKeepAliveResponse {
                    header: Some(etcd_header_now(&api)),
                    id,
                    ttl,
                })
            }
        });
        // The first error is the last answer.
        let mut failed = false;
        let answers = answers.take_while(move |answer: &Result<_, Status>| {
            let go_on = !failed;
            failed |= answer.is_err();
            futures::future::ready(go_on)
        });
        Ok(Response::new(Box::pin(answers)))
    }

    /// What a lease has left; a lease that does not exist answers TTL -1, as etcd's does.
    async fn lease_time_to_live(
        &self,
        request: Request<pb::LeaseTimeToLiveRequest>,
    ) -> Answer<pb::LeaseTimeToLiveResponse> {
        let request = request.into_inner();
        let query = LeaseQuery {
            id: request.id,
            renew: false,
            keys: request.keys,
        };
        let answer = match self.api.lease_query(query).await? {
            Some(lease) => pb::LeaseTimeToLiveResponse {
                header: Some(etcd_header_now(&self.api)),
                id: request.id,
                ttl: lease.remaining_ttl,
                granted_ttl: lease.granted_ttl,
                keys: lease.keys.into_iter().map(|key| key.to_vec()).collect(),
            },
            None => pb::LeaseTimeToLiveResponse {
                header: Some(etcd_header_now(&self.api)),
                id: request.id,
                ttl: -1,
                ..Default::default()
            },
        };
        Ok(Response::new(answer))
    }

    async fn lease_leases(
        &self,
        _: Request<pb::LeaseLeasesRequest>,
    ) -> Answer<pb::LeaseLeasesResponse> {
        let (header, ids) = self.api.lease_ids().await?;
        Ok(Response::new(pb::LeaseLeasesResponse {
            header: Some(etcd_header(header)),
            leases: ids.into_iter().map(|id| pb::LeaseStatus { id }).collect(),
        }))
    }
}
