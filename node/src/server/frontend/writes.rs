//! Writes, whichever node they reach: checked, then proposed here if this node leads, or
//! forwarded to the leader over the peer network and its answer returned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::super::limits::Limits;
use super::super::metrics::{Metrics, OperationLabels};
use super::super::replica::now_unix_ms;
use super::super::requests::ClientRequest;
use super::super::transport::ClusterId;
use super::super::vocabulary::ApiError;
use super::super::write::{WriteOutcome, WriteRequest};
use super::leader::{Leader, LeaderLink};
use super::{relayed, EventLoopHandle, HeaderSource};
use crate::kv::CommandOutcome;
use crate::proto::ForwardWriteRequest;

/// Why a write could not be forwarded.
enum ForwardError {
    /// This node is the leader now: write here instead.
    LeaderIsHere,
    Failed(ApiError),
}

pub struct WriteRouter {
    pub(super) event_loop: EventLoopHandle,
    pub(super) leader: Arc<LeaderLink>,
    pub(super) header: HeaderSource,
    pub(super) limits: Limits,
    pub(super) cluster_id: ClusterId,
    /// How long a forwarded write may take.
    pub(super) request_timeout: Duration,
    pub(super) metrics: Arc<Metrics>,
}

impl WriteRouter {
    async fn forward(&self, request: &WriteRequest) -> Result<WriteOutcome, ForwardError> {
        let (leader, mut client) = match self.leader.find().await {
            Ok(Leader::Remote(leader, client)) => (leader, client),
            Ok(Leader::Here) => return Err(ForwardError::LeaderIsHere),
            Err(e) => return Err(ForwardError::Failed(e)),
        };
        self.metrics.forwarded.inc();
        let mut call = tonic::Request::new(ForwardWriteRequest {
            cluster_id: self.cluster_id.get(),
            request: Some(request.to_wire()),
        });
        call.set_timeout(self.request_timeout);
        let response = client.forward_write(call).await.map_err(|status| {
            ForwardError::Failed(ApiError::from(relayed(
                status,
                &format!("forwarded to leader {leader}"),
            )))
        })?;
        let outcome = response
            .into_inner()
            .response
            .map(WriteOutcome::from_wire)
            .transpose()
            .map_err(ForwardError::Failed)?
            .filter(|outcome| outcome.answers(request));
        outcome.ok_or_else(|| {
            ForwardError::Failed(ApiError::Internal(format!(
                "leader {leader} answered a forwarded {} with something else",
                request.operation()
            )))
        })
    }

    /// Executes a write here if this node leads, otherwise forwards it to the leader. A write
    /// forwarded to us is never forwarded again: if we no longer lead, the sender is told to
    /// retry. Leadership can move while a request is on its way, so a few rounds are allowed.
    async fn write(
        &self,
        request: &WriteRequest,
        forwarded: bool,
    ) -> Result<WriteOutcome, ApiError> {
        if forwarded {
            return match self.write_here(request).await {
                // Proposals wait out a leadership transfer (an operator's rolling restart
                // makes one per leader): the write goes in if this node still leads after it.
                Err(ApiError::Transferring { .. }) => {
                    self.leader.wait_out_transfer().await;
                    self.write_here(request).await
                }
                other => other,
            };
        }
        const ROUNDS: usize = 3;
        for _ in 0..ROUNDS {
            if self.leader.is_leader() {
                match self.write_here(request).await {
                    Err(ApiError::NotLeader { .. }) => continue,
                    // Not proposed: once the transfer is over, the write goes to whoever leads.
                    Err(ApiError::Transferring { .. }) => {
                        self.leader.wait_out_transfer().await;
                        continue;
                    }
                    other => return other,
                }
            }
            match self.forward(request).await {
                // The leader we waited for is this node: go round and write here.
                Err(ForwardError::LeaderIsHere) => continue,
                Err(ForwardError::Failed(status)) => return Err(status),
                Ok(response) => return Ok(response),
            }
        }
        Err(ApiError::Unavailable(
            "leadership kept moving while the write was routed; it was not applied and may be retried"
                .into(),
        ))
    }

    /// Proposes a write on this node, which must be the leader.
    async fn write_here(&self, request: &WriteRequest) -> Result<WriteOutcome, ApiError> {
        let applied = self
            .event_loop
            .ask(|reply| ClientRequest::Propose {
                command: request.command(now_unix_ms()),
                reply,
            })
            .await?;
        if let CommandOutcome::Etcd {
            result: Err(failure),
            ..
        } = applied.outcome
        {
            return Err(ApiError::from(failure));
        }
        WriteOutcome::from_applied(applied.outcome, |revision| self.header.at(revision))
            .filter(|outcome| outcome.answers(request))
            .ok_or_else(|| {
                ApiError::Internal(format!(
                    "internal error: a {} was applied with another kind of outcome",
                    request.operation()
                ))
            })
    }

    /// A write from a client of this node, or one forwarded to us by a follower: validated,
    /// then proposed here if this node leads, forwarded to the leader otherwise.
    pub async fn execute(
        &self,
        request: WriteRequest,
        forwarded: bool,
    ) -> Result<WriteOutcome, ApiError> {
        request.check(&self.limits)?;
        let operation = request.operation();
        let started = Instant::now();
        let result = self.write(&request, forwarded).await;
        if result.is_ok() && !forwarded {
            self.metrics
                .proposal_seconds
                .get_or_create(&OperationLabels {
                    operation: operation.to_string(),
                })
                .observe(started.elapsed().as_secs_f64());
        }
        result
    }
}
