//! Leases, as etcd's Lease service and the embedded client both use them: a grant and a
//! revoke are writes through the log; a keepalive and a look at a lease's TTL are answered by
//! the leader (see `frontend::LeaseDesk`); the list of leases is read from the state machine.

use bytes::Bytes;
use dengine_proto::etcd::etcdserverpb as pb;
use tonic::Code;

use super::{lock_poisoned, ApiError, Header, KvApi, PutResponse, ReadPolicy};
use crate::kv::etcd::{EtcdRequest, EtcdResponse};
use crate::server::requests::{LeaseQuery, LeaseStatus};

/// etcd's largest TTL (`lease.MaxLeaseTTL`), in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A lease granted: its id, and the TTL it got (at least the node's shortest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseGrant {
    pub id: i64,
    pub ttl: i64,
}

impl KvApi {
    /// Grants a lease of `ttl` seconds (raised to the shortest this node grants) with `id`, or
    /// an id this node picks if `id` is 0. "lease already exists" if `id` is taken.
    pub async fn lease_grant(&self, ttl: i64, id: i64) -> Result<(Header, LeaseGrant), ApiError> {
        if ttl > MAX_LEASE_TTL {
            return Err(ApiError::Etcd {
                code: Code::OutOfRange,
                message: "etcdserver: too large lease TTL",
            });
        }
        let desk = &self.frontend.leases;
        let grant = pb::LeaseGrantRequest {
            ttl: ttl.max(desk.min_ttl),
            id: if id == 0 { desk.ids.next() } else { id },
        };
        let (header, answer) = self.etcd_write(EtcdRequest::LeaseGrant(grant)).await?;
        match answer.response {
            Some(EtcdResponse::LeaseGrant(granted)) => Ok((
                header,
                LeaseGrant {
                    id: granted.id,
                    ttl: granted.ttl,
                },
            )),
            _ => Err(mismatch("lease grant")),
        }
    }

    /// Ends lease `id` and deletes the keys attached to it, at one revision.
    pub async fn lease_revoke(&self, id: i64) -> Result<Header, ApiError> {
        let (header, answer) = self
            .etcd_write(EtcdRequest::LeaseRevoke(pb::LeaseRevokeRequest { id }))
            .await?;
        match answer.response {
            Some(EtcdResponse::LeaseRevoke(_)) => Ok(header),
            _ => Err(mismatch("lease revoke")),
        }
    }

    /// Writes `key` attached to lease `id` (0: to none), as etcd's Put: revoking or expiring
    /// the lease deletes it. "requested lease not found" if the lease does not exist.
    pub async fn put_with_lease(
        &self,
        key: Bytes,
        value: Bytes,
        lease: i64,
    ) -> Result<PutResponse, ApiError> {
        self.limits.check_key(&key)?;
        self.limits.check_value(&value)?;
        let put = pb::PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        };
        let (header, answer) = self.etcd_write(EtcdRequest::Put(put)).await?;
        match answer.response {
            Some(EtcdResponse::Put(_)) => Ok(PutResponse {
                header,
                prev_kv: None,
            }),
            _ => Err(mismatch("put")),
        }
    }

    /// Renews a lease or reports on it, as the leader knows it; `None` when it does not exist.
    pub async fn lease_query(&self, query: LeaseQuery) -> Result<Option<LeaseStatus>, ApiError> {
        self.frontend.leases.query(query).await
    }

    /// Every lease's id, in id order, after a linearizable read barrier.
    pub async fn lease_ids(&self) -> Result<(Header, Vec<i64>), ApiError> {
        self.frontend
            .reads
            .wait(Some(ReadPolicy::Linearizable))
            .await?;
        let store = self.kv.read().map_err(|_| lock_poisoned())?;
        let ids = store.leases().iter().map(|lease| lease.record.id).collect();
        Ok((self.frontend.header.at(store.revision()), ids))
    }
}

fn mismatch(operation: &str) -> ApiError {
    ApiError::Internal(format!(
        "internal error: a {operation} was answered with another kind of response"
    ))
}
