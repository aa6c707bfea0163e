//! Keepalives and TTL queries, whichever node they reach: lease deadlines live on the leader
//! alone (see `replica::lessor`), so a follower asks the leader over the peer connection.
//!
//! The leader answers after a linearizable read barrier: a quorum has just confirmed that it
//! leads (a deposed leader cannot renew a lease behind its successor's back), and it has
//! applied everything committed before, so a lease granted a moment ago through another node
//! is known to it. A quorum round rather than the leader's lease: a leader elected a moment
//! ago, whose lease does not hold yet, answers at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::super::requests::{ClientRequest, LeaseQuery, LeaseStatus, ReadBarrier};
use super::super::transport::ClusterId;
use super::super::vocabulary::ApiError;
use super::leader::{Leader, LeaderLink};
use super::{relayed, EventLoopHandle};
use crate::proto::LeaseQueryRequest;

pub struct LeaseDesk {
    /// The shortest TTL granted, in seconds: a lease must outlive an election, or it could
    /// expire while its keepalives wait for a new leader (etcd's `minTTL`, 1.5 election
    /// timeouts).
    pub min_ttl: i64,
    /// Where ids come from when a client leaves the choice to this node.
    pub ids: LeaseIds,
    pub(super) event_loop: EventLoopHandle,
    pub(super) leader: Arc<LeaderLink>,
    pub(super) cluster_id: ClusterId,
    /// How long a query forwarded to the leader may take.
    pub(super) request_timeout: Duration,
}

impl LeaseDesk {
    /// Renews lease `id` or reports on it, on the leader; `None` when it does not exist.
    pub async fn query(&self, query: LeaseQuery) -> Result<Option<LeaseStatus>, ApiError> {
        if self.leader.is_leader() {
            match self.local(query).await {
                Err(ApiError::NotLeader { .. }) => {}
                answered => return answered,
            }
        }
        self.remote(query).await
    }

    /// Leader only: after the read barrier, asks the event loop.
    pub async fn local(&self, query: LeaseQuery) -> Result<Option<LeaseStatus>, ApiError> {
        let index = self
            .event_loop
            .ask(|reply| ClientRequest::ReadIndex {
                barrier: ReadBarrier::Linearizable,
                reply,
            })
            .await?;
        self.event_loop
            .ask(|reply| ClientRequest::WaitApplied { index, reply })
            .await?;
        self.event_loop
            .ask(|reply| ClientRequest::Lease { query, reply })
            .await
    }

    async fn remote(&self, query: LeaseQuery) -> Result<Option<LeaseStatus>, ApiError> {
        let (leader, mut client) = match self.leader.find().await? {
            Leader::Remote(leader, client) => (leader, client),
            Leader::Here => return self.local(query).await,
        };
        let mut call = tonic::Request::new(LeaseQueryRequest {
            cluster_id: self.cluster_id.get(),
            id: query.id,
            renew: query.renew,
            keys: query.keys,
        });
        call.set_timeout(self.request_timeout);
        let answer = client
            .lease_query(call)
            .await
            .map_err(|status| {
                ApiError::from(relayed(status, &format!("lease from leader {leader}")))
            })?
            .into_inner();
        Ok(answer.found.then(|| LeaseStatus {
            id: query.id,
            granted_ttl: answer.granted_ttl,
            remaining_ttl: answer.remaining_ttl,
            keys: answer.keys,
        }))
    }
}

/// Lease ids this member picks when a client leaves it to the server, as etcd's `idutil`:
/// the member id's low 16 bits, then the time this member started in milliseconds and a
/// counter, so members never pick the same id and a restart does not reuse one. An id taken
/// anyway (a client chose it) fails the grant with "lease already exists", as in etcd.
#[derive(Debug)]
pub struct LeaseIds {
    prefix: u64,
    next: AtomicU64,
}

impl LeaseIds {
    pub fn new(member_id: u64, started_unix_ms: u64) -> Self {
        Self {
            prefix: (member_id & 0xffff) << 48,
            next: AtomicU64::new(started_unix_ms << 8),
        }
    }

    /// A positive id.
    pub fn next(&self) -> i64 {
        let suffix = self.next.fetch_add(1, Ordering::Relaxed) & ((1 << 48) - 1);
        let id = ((self.prefix | suffix) & (i64::MAX as u64)) as i64;
        // The all-zero id means "no lease"; it takes member id 0 and a wrapped counter.
        id.max(1)
    }
}

/// The shortest lease TTL granted, in whole seconds: one and a half election timeouts, as
/// etcd's `minTTL`, so that a lease outlives the election its keepalives may wait for.
pub fn min_lease_ttl(election_timeout: Duration) -> i64 {
    let millis = election_timeout.as_millis() as i64 * 3 / 2;
    ((millis + 999) / 1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_positive_distinct_and_carry_the_member() {
        let ids = LeaseIds::new(0xabcd_0000_1234, 1_700_000_000_000);
        let first = ids.next();
        let second = ids.next();
        assert!(first > 0 && second > 0 && first != second);
        assert_eq!((first as u64) >> 48, 0x1234);
        // Another member starting at the same moment picks other ids.
        let theirs = LeaseIds::new(0x1235, 1_700_000_000_000);
        assert_ne!(theirs.next(), first);
    }

    #[test]
    fn the_shortest_ttl_outlives_an_election_and_a_half() {
        assert_eq!(min_lease_ttl(Duration::from_millis(1000)), 2);
        assert_eq!(min_lease_ttl(Duration::from_millis(300)), 1);
        assert_eq!(min_lease_ttl(Duration::from_millis(5000)), 8);
    }
}
