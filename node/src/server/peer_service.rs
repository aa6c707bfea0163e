//! The receiving end of the peer Raft API: checks that each message belongs to this cluster
//! and hands it to the event loop.

use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::write::WriteRequest;

use super::frontend::Frontend;
use super::peer_links::PeerLinks;
use super::raft_store::{Identity, RaftStore};
use super::requests::{LeaseQuery, ReadBarrier};
use super::transport::{ClusterId, PeerInput, Transport};
use crate::proto::raft_server::Raft;
use crate::proto::{
    ForwardWriteRequest, ForwardWriteResponse, LeaseQueryRequest, LeaseQueryResponse, Message,
    PeerAck, PeerEnvelope, ReadIndexRequest, ReadIndexResponse, ReadPolicy, SnapshotChunk,
};
use crate::raft::NodeId;

pub struct PeerService {
    pub frontend: Arc<Frontend>,
    pub transport: Transport,
    /// How reaching each peer fares: a message from a peer clears its connection error.
    pub links: Arc<PeerLinks>,
    pub node_id: NodeId,
    pub cluster_id: ClusterId,
    pub store: RaftStore,
    pub inputs: mpsc::Sender<PeerInput>,
    /// The node's shutdown signal: inbound streams end when it fires, so that the server,
    /// which waits for its connections to close, stops even when a peer has nothing to send.
    pub shutdown: watch::Receiver<bool>,
}

fn shutting_down() -> Status {
    Status::unavailable("the node is shutting down")
}

impl PeerService {
    /// A joining node adopts the cluster of the first leader that reaches it, and records it
    /// so that it refuses every other cluster from then on, across restarts too.
    /// Forwarded requests come from members only: the cluster must already be known.
    fn check_request_cluster(&self, cluster_id: u64) -> Result<(), Status> {
        let ours = self.cluster_id.get();
        if ours == 0 || cluster_id != ours {
            return Err(Status::failed_precondition(format!(
                "request for cluster {cluster_id:x}, but node {} belongs to cluster {ours:x}",
                self.node_id
            )));
        }
        Ok(())
    }

    fn check_cluster(&self, envelope: &PeerEnvelope) -> Result<(), Status> {
        let ours = self.cluster_id.get();
        if ours == 0 && envelope.cluster_id != 0 {
            let adopted = self.cluster_id.adopt(envelope.cluster_id);
            if adopted == envelope.cluster_id {
                let identity = Identity {
                    cluster_id: adopted,
                    node_id: self.node_id,
                };
                self.store
                    .record_identity(identity)
                    .map_err(|e| Status::internal(format!("recording cluster identity: {e}")))?;
                tracing::info!(cluster_id = adopted, "joined cluster");
                return Ok(());
            }
        }
        let ours = self.cluster_id.get();
        if envelope.cluster_id != ours {
            return Err(Status::failed_precondition(format!(
                "message for cluster {:x}, but node {} belongs to cluster {:x}",
                envelope.cluster_id, self.node_id, ours
            )));
        }
        Ok(())
    }

    async fn deliver(&self, message: Message) -> Result<(), Status> {
        self.inputs
            .send(PeerInput::Message(Box::new(message)))
            .await
            .map_err(|_| shutting_down())
    }

    /// The next item of an inbound stream, or an error once the node is stopping.
    async fn next_or_stop<T>(
        &self,
        stream: &mut Streaming<T>,
    ) -> Result<Option<Result<T, Status>>, Status> {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            item = stream.next() => Ok(item),
            _ = shutdown.wait_for(|stop| *stop) => Err(shutting_down()),
        }
    }
}

#[tonic::async_trait]
impl Raft for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<PeerEnvelope>>,
    ) -> Result<Response<PeerAck>, Status> {
        let mut stream = request.into_inner();
        while let Some(envelope) = self.next_or_stop(&mut stream).await? {
            let envelope = envelope?;
            self.check_cluster(&envelope)?;
            if let Some(message) = envelope.message {
                self.transport
                    .learn_peer(message.from, &envelope.from_address);
                self.links.heard_from(message.from);
                self.deliver(message).await?;
            }
        }
        Ok(Response::new(PeerAck {}))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerAck>, Status> {
        let mut stream = request.into_inner();
        let first = stream
            .next()
            .await
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))??;
        let envelope = first.envelope.ok_or_else(|| {
            Status::invalid_argument("the first snapshot chunk must carry the message")
        })?;
        self.check_cluster(&envelope)?;
        let mut message = envelope
            .message
            .ok_or_else(|| Status::invalid_argument("snapshot chunk without a message"))?;
        let mut data = BytesMut::from(first.data.as_ref());
        while let Some(chunk) = self.next_or_stop(&mut stream).await? {
            data.extend_from_slice(&chunk?.data);
        }
        let snapshot = message
            .snapshot
            .as_mut()
            .ok_or_else(|| Status::invalid_argument("snapshot message without a snapshot"))?;
        snapshot.data = data.freeze();
        self.deliver(message).await?;
        Ok(Response::new(PeerAck {}))
    }

    async fn forward_write(
        &self,
        request: Request<ForwardWriteRequest>,
    ) -> Result<Response<ForwardWriteResponse>, Status> {
        let request = request.into_inner();
        self.check_request_cluster(request.cluster_id)?;
        let inner = request
            .request
            .ok_or_else(|| Status::invalid_argument("forwarded write without a request"))?;
        let request = WriteRequest::from_wire(inner)?;
        let outcome = self.frontend.writes.execute(request, true).await?;
        Ok(Response::new(ForwardWriteResponse {
            response: Some(outcome.to_wire()),
        }))
    }

    async fn read_index(
        &self,
        request: Request<ReadIndexRequest>,
    ) -> Result<Response<ReadIndexResponse>, Status> {
        let request = request.into_inner();
        self.check_request_cluster(request.cluster_id)?;
        let barrier = match request.read_policy() {
            ReadPolicy::Lease => ReadBarrier::Lease,
            _ => ReadBarrier::Linearizable,
        };
        let index = self.frontend.reads.local_read_index(barrier).await?;
        Ok(Response::new(ReadIndexResponse { index }))
    }

    async fn lease_query(
        &self,
        request: Request<LeaseQueryRequest>,
    ) -> Result<Response<LeaseQueryResponse>, Status> {
        let request = request.into_inner();
        self.check_request_cluster(request.cluster_id)?;
        let query = LeaseQuery {
            id: request.id,
            renew: request.renew,
            keys: request.keys,
        };
        // Not `query`: a follower that forwarded this found this node leading, and it must
        // not forward it on if that changed.
        let answer = match self.frontend.leases.local(query).await? {
            None => LeaseQueryResponse::default(),
            Some(status) => LeaseQueryResponse {
                found: true,
                granted_ttl: status.granted_ttl,
                remaining_ttl: status.remaining_ttl,
                keys: status.keys,
            },
        };
        Ok(Response::new(answer))
    }
}
