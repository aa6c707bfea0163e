//! What every client request goes through, whichever node it reaches: validation, then
//! execution here if this node leads, or forwarding to the leader over the peer network.
//!
//! An application only ever talks to its own node on localhost, so a follower or learner
//! serves the whole API: writes are forwarded to the leader and its answer returned;
//! linearizable and lease reads ask the leader for a read index and are served here once this
//! node has applied that far (Raft dissertation §6.4.1); eventual reads are served here at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tonic::transport::Channel;

use super::api::{ApiError, Header, ReadPolicy};
use super::config::DefaultReadPolicy;
use super::limits::Limits;
use super::metrics::{InProgress, Metrics, OperationLabels};
use super::read_coalescer::ReadCoalescer;
use super::replica::now_unix_ms;
use super::requests::{Applied, ClientRequest, ReadBarrier, ServiceError};
use super::status::NodeStatus;
use super::write::{WriteOutcome, WriteRequest};
use crate::kv::Command;
use crate::proto::raft_client::RaftClient;
use crate::proto::{ForwardWriteRequest, ReadIndexRequest};
use crate::raft::{NodeId, Role};

/// Timing of waits that must end in an answer rather than hang.
#[derive(Debug, Clone, Copy)]
pub struct FrontendTiming {
    /// How long a request waits for a leader to be known before failing with UNAVAILABLE.
    pub leader_wait: Duration,
    /// How long a forwarded request or a read waiting for this node to catch up may take.
    pub request_timeout: Duration,
}

pub struct Frontend {
    pub requests: mpsc::Sender<ClientRequest>,
    pub status: watch::Receiver<NodeStatus>,
    pub limits: Limits,
    pub default_read_policy: DefaultReadPolicy,
    pub timing: FrontendTiming,
    pub cluster_id: super::transport::ClusterId,
    pub metrics: Arc<Metrics>,
    leaders: Mutex<HashMap<String, RaftClient<Channel>>>,
    /// A follower's read-index requests to the leader, shared by the reads waiting on them.
    linearizable_reads: ReadCoalescer<Result<u64, ApiError>>,
    lease_reads: ReadCoalescer<Result<u64, ApiError>>,
    /// Mutual TLS to the leader, when configured.
    tls: Option<super::tls::Tls>,
}

/// Why a write could not be forwarded.
enum ForwardError {
    /// This node is the leader now: write here instead.
    LeaderIsHere,
    Failed(ApiError),
}

impl Frontend {
    pub fn new(
        requests: mpsc::Sender<ClientRequest>,
        status: watch::Receiver<NodeStatus>,
        limits: Limits,
        default_read_policy: DefaultReadPolicy,
        timing: FrontendTiming,
        cluster_id: super::transport::ClusterId,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            requests,
            status,
            limits,
            default_read_policy,
            timing,
            cluster_id,
            metrics,
            leaders: Mutex::new(HashMap::new()),
            linearizable_reads: ReadCoalescer::default(),
            lease_reads: ReadCoalescer::default(),
            tls: None,
        }
    }

    /// Forwards to the leader over mutual TLS (see [`super::tls`]).
    pub fn with_peer_tls(mut self, tls: Option<super::tls::Tls>) -> Self {
        self.tls = tls;
        self
    }

    /// The header of an answer from this node's state at `revision`.
    pub fn header(&self, revision: i64) -> Header {
        let status = self.status.borrow();
        Header {
            cluster_id: status.cluster_id,
            member_id: status.id,
            revision,
            raft_term: status.term,
        }
    }

    fn is_leader(&self) -> bool {
        self.status.borrow().role == Role::Leader
    }

    /// Sends a request to the event loop and awaits its answer.
    pub async fn ask_loop<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ServiceError>>) -> ClientRequest,
    ) -> Result<T, ServiceError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(make(reply))
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        let _waiting = InProgress::enter(&self.metrics.loop_requests_waiting);
        answer.await.map_err(|_| ServiceError::ShuttingDown)?
    }

    async fn propose(&self, command: Command) -> Result<Applied, ServiceError> {
        self.ask_loop(|reply| ClientRequest::Propose { command, reply })
            .await
    }

    /// The leader's peer client, once a leader other than this node is known. Waits up to
    /// `leader_wait` for an election to finish.
    async fn leader_client(&self) -> Result<(NodeId, RaftClient<Channel>), ServiceError> {
        let mut status = self.status.clone();
        let known = async {
            let current = status.wait_for(|s| s.leader != 0).await.ok()?;
            Some((
                current.leader,
                current.id,
                current.address_of(current.leader),
            ))
        };
        let Ok(Some((leader, me, address))) =
            tokio::time::timeout(self.timing.leader_wait, known).await
        else {
            return Err(ServiceError::NotLeader {
                leader: None,
                address: None,
            });
        };
        if leader == me {
            // This node won an election meanwhile: the caller executes the request here.
            return Err(ServiceError::NotLeader {
                leader: Some(me),
                address: None,
            });
        }
        let address = address.ok_or(ServiceError::NotLeader {
            leader: Some(leader),
            address: None,
        })?;
        let mut leaders = self.leaders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(client) = leaders.get(&address) {
            return Ok((leader, client.clone()));
        }
        let endpoint = super::tls::peer_endpoint(&address, self.tls.as_ref())
            .map_err(|e| ServiceError::Rejected(format!("bad leader address {address}: {e}")))?
            .connect_timeout(Duration::from_secs(1))
            .tcp_nodelay(true);
        let client = RaftClient::new(endpoint.connect_lazy());
        leaders.insert(address, client.clone());
        Ok((leader, client))
    }

    async fn forward(&self, request: &WriteRequest) -> Result<WriteOutcome, ForwardError> {
        let (leader, mut client) = match self.leader_client().await {
            Ok(route) => route,
            Err(ServiceError::NotLeader { leader, .. })
                if leader == Some(self.status.borrow().id) =>
            {
                return Err(ForwardError::LeaderIsHere)
            }
            Err(e) => return Err(ForwardError::Failed(e.into())),
        };
        self.metrics.forwarded.inc();
        let mut call = tonic::Request::new(ForwardWriteRequest {
            cluster_id: self.cluster_id.get(),
            request: Some(request.to_wire()),
        });
        call.set_timeout(self.timing.request_timeout);
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
                Err(ServiceError::Transferring { .. }) => {
                    self.wait_out_transfer().await;
                    self.write_here(request).await.map_err(ApiError::from)
                }
                other => other.map_err(ApiError::from),
            };
        }
        const ROUNDS: usize = 3;
        for _ in 0..ROUNDS {
            if self.is_leader() {
                match self.write_here(request).await {
                    Err(ServiceError::NotLeader { .. }) => continue,
                    // Not proposed: once the transfer is over, the write goes to whoever leads.
                    Err(ServiceError::Transferring { .. }) => {
                        self.wait_out_transfer().await;
                        continue;
                    }
                    other => return other.map_err(ApiError::from),
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

    /// Waits until this node no longer leads (the transfer succeeded) or, if the transfer is
    /// abandoned, until `leader_wait` has passed.
    async fn wait_out_transfer(&self) {
        let mut status = self.status.clone();
        let stepped_down = status.wait_for(|s| s.role != Role::Leader);
        let _ = tokio::time::timeout(self.timing.leader_wait, stepped_down).await;
    }

    /// Proposes a write on this node, which must be the leader.
    async fn write_here(&self, request: &WriteRequest) -> Result<WriteOutcome, ServiceError> {
        let applied = self.propose(request.command(now_unix_ms())).await?;
        WriteOutcome::from_applied(applied.outcome, |revision| self.header(revision))
            .filter(|outcome| outcome.answers(request))
            .ok_or_else(|| {
                ServiceError::Internal(format!(
                    "a {} was applied with another kind of outcome",
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

    /// What a read under `policy` (`None`: the configured default) must wait for.
    fn barrier(&self, policy: Option<ReadPolicy>) -> Option<ReadBarrier> {
        match policy.unwrap_or(self.default_read_policy.into()) {
            ReadPolicy::Eventual => None,
            ReadPolicy::Lease => Some(ReadBarrier::Lease),
            ReadPolicy::Linearizable => Some(ReadBarrier::Linearizable),
        }
    }

    /// Leader only: the index a read must wait for, once leadership is confirmed.
    pub async fn local_read_index(&self, barrier: ReadBarrier) -> Result<u64, ServiceError> {
        self.ask_loop(|reply| ClientRequest::ReadIndex { barrier, reply })
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
        let (leader, mut client) = self.leader_client().await?;
        let policy = match barrier {
            ReadBarrier::Linearizable => crate::proto::ReadPolicy::Linearizable,
            ReadBarrier::Lease => crate::proto::ReadPolicy::Lease,
        };
        let mut call = tonic::Request::new(ReadIndexRequest {
            cluster_id: self.cluster_id.get(),
            read_policy: policy as i32,
        });
        call.set_timeout(self.timing.request_timeout);
        let response = client.read_index(call).await.map_err(|status| {
            ApiError::from(relayed(status, &format!("read index from leader {leader}")))
        })?;
        Ok(response.into_inner().index)
    }

    /// Waits until a read under `policy` may be served from this node's state.
    pub async fn read_barrier(&self, policy: Option<ReadPolicy>) -> Result<(), ApiError> {
        let Some(barrier) = self.barrier(policy) else {
            return Ok(());
        };
        let started = Instant::now();
        let index = if self.is_leader() {
            match self.local_read_index(barrier).await {
                Ok(index) => index,
                Err(ServiceError::NotLeader { .. }) => {
                    self.coalesced_remote_read_index(barrier).await?
                }
                Err(e) => return Err(e.into()),
            }
        } else {
            self.coalesced_remote_read_index(barrier).await?
        };
        self.metrics
            .read_index_seconds
            .observe(started.elapsed().as_secs_f64());
        let wait = self.ask_loop(|reply| ClientRequest::WaitApplied { index, reply });
        match tokio::time::timeout(self.timing.request_timeout, wait).await {
            Ok(result) => result.map_err(ApiError::from),
            Err(_) => Err(ApiError::Unavailable(format!(
                "this node has not applied up to the read index {index} in time; it may be cut off from the leader"
            ))),
        }
    }
}

/// The leader's answer `status` as this node relays it: the message says where it came from,
/// and the metadata (which limit a request exceeded, say) is kept as the leader set it.
fn relayed(status: tonic::Status, from: &str) -> tonic::Status {
    tonic::Status::with_metadata(
        status.code(),
        format!("{from}: {}", status.message()),
        status.metadata().clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relayed_answer_keeps_the_limit_the_leader_named() {
        let leader_said = tonic::Status::from(ApiError::over_limit(
            "max_key_bytes",
            "key is 9 bytes, over the limit of 8 bytes (max_key_bytes)",
        ));
        let here = ApiError::from(relayed(leader_said, "forwarded to leader 2"));
        assert_eq!(
            here,
            ApiError::InvalidArgument {
                message: "forwarded to leader 2: key is 9 bytes, over the limit of 8 bytes \
                          (max_key_bytes)"
                    .into(),
                limit: Some("max_key_bytes"),
            }
        );
    }
}
