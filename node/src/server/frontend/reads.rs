//! Reads, whichever node they reach: a linearizable or lease read waits for a read index
//! (the leader's own, or asked of the leader by a follower and shared by the reads arriving
//! meanwhile) and is served once this node has applied that far (Raft dissertation §6.4.1);
//! an eventual read is served at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::config::DefaultReadPolicy;
use super::super::metrics::Metrics;
use super::super::read_coalescer::ReadCoalescer;
use super::super::requests::{ClientRequest, ReadBarrier};
use super::super::transport::ClusterId;
use super::super::vocabulary::{ApiError, ReadPolicy};
use super::leader::{Leader, LeaderLink};
use super::{relayed, EventLoopHandle};
use crate::proto::ReadIndexRequest;

pub struct ReadGate {
    pub(super) event_loop: EventLoopHandle,
    pub(super) leader: Arc<LeaderLink>,
    pub(super) default_read_policy: DefaultReadPolicy,
    pub(super) cluster_id: ClusterId,
    /// How long a read index from the leader, or the wait to apply up to it, may take.
    pub(super) request_timeout: Duration,
    pub(super) metrics: Arc<Metrics>,
    /// A follower's read-index requests to the leader, shared by the reads waiting on them.
    pub(super) linearizable_reads: ReadCoalescer<Result<u64, ApiError>>,
    pub(super) lease_reads: ReadCoalescer<Result<u64, ApiError>>,
}

impl ReadGate {
    /// What a read under `policy` (`None`: the configured default) must wait for.
    fn barrier(&self, policy: Option<ReadPolicy>) -> Option<ReadBarrier> {
        match policy.unwrap_or(self.default_read_policy.into()) {
            ReadPolicy::Eventual => None,
            ReadPolicy::Lease => Some(ReadBarrier::Lease),
            ReadPolicy::Linearizable => Some(ReadBarrier::Linearizable),
        }
    }

    /// Leader only: the index a read must wait for, once leadership is confirmed.
    pub async fn local_read_index(&self, barrier: ReadBarrier) -> Result<u64, ApiError> {
        self.event_loop
            .ask(|reply| ClientRequest::ReadIndex { barrier, reply })
            .await
    }

    /// The leader's read index for a read that arrived now, asked for together with the other
    /// reads arriving while an earlier request is in flight (see [`ReadCoalescer`]).
    async fn coalesced_remote_read_index(&self, barrier: ReadBarrier) -> Result<u64, ApiError> {
        let reads = match barrier {
            ReadBarrier::Linearizable => &self.linearizable_reads,
            ReadBarrier::Lease => &self.lease_reads,
        };
        reads.read(|| self.remote_read_index(barrier)).await
    }

    async fn remote_read_index(&self, barrier: ReadBarrier) -> Result<u64, ApiError> {
        let (leader, mut client) = match self.leader.find().await? {
            Leader::Remote(leader, client) => (leader, client),
            // This node won an election meanwhile: the client is told so and retries.
            Leader::Here => {
                return Err(ApiError::NotLeader {
                    leader: Some(self.leader.me()),
                    address: None,
                })
            }
        };
        let policy = match barrier {
            ReadBarrier::Linearizable => crate::proto::ReadPolicy::Linearizable,
            ReadBarrier::Lease => crate::proto::ReadPolicy::Lease,
        };
        let mut call = tonic::Request::new(ReadIndexRequest {
            cluster_id: self.cluster_id.get(),
            read_policy: policy as i32,
        });
        call.set_timeout(self.request_timeout);
        let response = client.read_index(call).await.map_err(|status| {
            ApiError::from(relayed(status, &format!("read index from leader {leader}")))
        })?;
        Ok(response.into_inner().index)
    }

    /// Waits until a read under `policy` may be served from this node's state.
    pub async fn wait(&self, policy: Option<ReadPolicy>) -> Result<(), ApiError> {
        let Some(barrier) = self.barrier(policy) else {
            return Ok(());
        };
        let started = Instant::now();
        let index = if self.leader.is_leader() {
            match self.local_read_index(barrier).await {
                Ok(index) => index,
                Err(ApiError::NotLeader { .. }) => {
                    self.coalesced_remote_read_index(barrier).await?
                }
                Err(e) => return Err(e),
            }
        } else {
            self.coalesced_remote_read_index(barrier).await?
        };
        self.metrics
            .read_index_seconds
            .observe(started.elapsed().as_secs_f64());
        let wait = self
            .event_loop
            .ask(|reply| ClientRequest::WaitApplied { index, reply });
        match tokio::time::timeout(self.request_timeout, wait).await {
            Ok(result) => result,
            Err(_) => Err(ApiError::Unavailable(format!(
                "this node has not applied up to the read index {index} in time; it may be cut off from the leader"
            ))),
        }
    }
}
