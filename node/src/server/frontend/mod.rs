//! What every client request goes through, whichever node it reaches. An application only
//! ever talks to its own node on localhost, so a follower or learner serves the whole API:
//!
//! - [`WriteRouter`] (`writes.rs`): writes, proposed here if this node leads, forwarded to the
//!   leader otherwise;
//! - [`ReadGate`] (`reads.rs`): the read barrier a read waits at, per its policy;
//! - [`LeaseDesk`] (`leases.rs`): keepalives and TTL queries, answered by the leader;
//! - [`LeaderLink`] (`leader.rs`): who leads, and a peer connection to it, which both use.

mod leader;
mod leases;
mod reads;
mod writes;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::config::DefaultReadPolicy;
use super::limits::Limits;
use super::metrics::{InProgress, Metrics};
use super::read_coalescer::ReadCoalescer;
use super::requests::ClientRequest;
use super::status::NodeStatus;
use super::transport::ClusterId;
use super::vocabulary::ApiError;
use super::vocabulary::Header;

pub use leader::LeaderLink;
pub use leases::{min_lease_ttl, LeaseDesk, LeaseIds};
pub use reads::ReadGate;
pub use writes::WriteRouter;

/// Timing of waits that must end in an answer rather than hang.
#[derive(Debug, Clone, Copy)]
pub struct FrontendTiming {
    /// How long a request waits for a leader to be known before failing with UNAVAILABLE.
    pub leader_wait: Duration,
    /// How long a forwarded request or a read waiting for this node to catch up may take.
    pub request_timeout: Duration,
    /// The election timeout: the shortest lease TTL is derived from it.
    pub election_timeout: Duration,
    /// This member's id: the ids of the leases it grants start with it.
    pub member_id: u64,
}

/// The event loop as request-serving tasks see it: ask it something, await the answer.
#[derive(Clone)]
pub struct EventLoopHandle {
    requests: mpsc::Sender<ClientRequest>,
    metrics: Arc<Metrics>,
}

impl EventLoopHandle {
    /// Sends a request to the event loop and awaits its answer.
    pub async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ApiError>>) -> ClientRequest,
    ) -> Result<T, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(make(reply))
            .await
            .map_err(|_| ApiError::ShuttingDown)?;
        let _waiting = InProgress::enter(&self.metrics.loop_requests_waiting);
        answer.await.map_err(|_| ApiError::ShuttingDown)?
    }
}

/// Makes the header of an answer from this node's state at a revision.
#[derive(Clone)]
pub struct HeaderSource {
    status: watch::Receiver<NodeStatus>,
}

impl HeaderSource {
    /// `header` (perhaps the leader's, for a forwarded write) as this node answers it: etcd's
    /// headers name the member that answered.
    pub fn answered_here(&self, header: Header) -> Header {
        Header {
            member_id: self.status.borrow().id,
            ..header
        }
    }

    /// The header of an answer from this node's state at `revision`.
    pub fn at(&self, revision: i64) -> Header {
        let status = self.status.borrow();
        Header {
            cluster_id: status.cluster_id,
            member_id: status.id,
            revision,
            raft_term: status.term,
        }
    }
}

/// The request paths of one node: writes, reads, and the event loop for everything else.
pub struct Frontend {
    pub writes: WriteRouter,
    pub reads: ReadGate,
    pub leases: LeaseDesk,
    pub event_loop: EventLoopHandle,
    pub header: HeaderSource,
    pub metrics: Arc<Metrics>,
}

impl Frontend {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        requests: mpsc::Sender<ClientRequest>,
        status: watch::Receiver<NodeStatus>,
        limits: Limits,
        default_read_policy: DefaultReadPolicy,
        timing: FrontendTiming,
        cluster_id: ClusterId,
        metrics: Arc<Metrics>,
        peer_tls: Option<super::tls::Tls>,
    ) -> Self {
        let event_loop = EventLoopHandle {
            requests,
            metrics: metrics.clone(),
        };
        let leader = Arc::new(LeaderLink::new(
            status.clone(),
            timing.leader_wait,
            peer_tls,
        ));
        let header = HeaderSource { status };
        Self {
            writes: WriteRouter {
                event_loop: event_loop.clone(),
                leader: leader.clone(),
                header: header.clone(),
                limits,
                cluster_id: cluster_id.clone(),
                request_timeout: timing.request_timeout,
                metrics: metrics.clone(),
            },
            leases: LeaseDesk {
                min_ttl: min_lease_ttl(timing.election_timeout),
                ids: LeaseIds::new(
                    timing.member_id,
                    super::replica::now_unix_ms().max(0) as u64,
                ),
                event_loop: event_loop.clone(),
                leader: leader.clone(),
                cluster_id: cluster_id.clone(),
                request_timeout: timing.request_timeout,
            },
            reads: ReadGate {
                event_loop: event_loop.clone(),
                leader,
                default_read_policy,
                cluster_id,
                request_timeout: timing.request_timeout,
                metrics: metrics.clone(),
                linearizable_reads: ReadCoalescer::default(),
                lease_reads: ReadCoalescer::default(),
            },
            event_loop,
            header,
            metrics,
        }
    }
}

/// The leader's answer `status` as this node relays it: the message says where it came from,
/// and the metadata (which limit a request exceeded, say) is kept as the leader set it.
/// etcd's own errors pass unchanged: etcd's clients match on their text.
fn relayed(status: tonic::Status, from: &str) -> tonic::Status {
    if status.message().starts_with("etcdserver: ") {
        return status;
    }
    tonic::Status::with_metadata(
        status.code(),
        format!("{from}: {}", status.message()),
        status.metadata().clone(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::vocabulary::ApiError;

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
