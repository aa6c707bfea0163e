//! Sending Raft messages to peers over gRPC.
//!
//! One task per peer keeps a client stream open and forwards that peer's messages in order;
//! when the connection breaks it tells the core (so the leader stops pipelining), waits a
//! little and reconnects, resolving the peer's DNS name anew (a pod that comes back may have a
//! new IP). Messages lost meanwhile are fine: Raft retransmits. Snapshots go in chunks on a
//! stream of their own, and their outcome is reported to the core.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use super::peer_links::PeerLinks;
use super::requests::CapturedSnapshot;
use super::tls::{peer_endpoint, Tls};
use crate::proto::raft_client::RaftClient;
use crate::proto::{Message, MessageType, PeerEnvelope, Snapshot, SnapshotChunk};
use crate::raft::{Membership, NodeId};
use crate::storage::StorageError;

/// Queued messages per peer before new ones are dropped (Raft will resend).
const PEER_QUEUE: usize = 8192;
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RECONNECT_BACKOFF: Duration = Duration::from_millis(200);

/// What the network tells the event loop.
#[derive(Debug)]
pub enum PeerInput {
    Message(Box<Message>),
    SnapshotSent {
        to: NodeId,
        installed: bool,
    },
    Unreachable(NodeId),
    /// A snapshot is to be sent: the event loop encodes the state machine as it is now.
    SnapshotWanted(oneshot::Sender<Result<CapturedSnapshot, StorageError>>),
}

struct Peer {
    address: String,
    queue: mpsc::Sender<Message>,
    task: JoinHandle<()>,
}

/// The cluster this node belongs to, shared with the peer service. A node started in join
/// mode learns it from the first leader that contacts it.
#[derive(Clone, Default)]
pub struct ClusterId(Arc<AtomicU64>);

impl ClusterId {
    pub fn new(id: u64) -> Self {
        Self(Arc::new(AtomicU64::new(id)))
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
    /// Adopts `id` if none is known yet. Returns the id now in force.
    pub fn adopt(&self, id: u64) -> u64 {
        match self
            .0
            .compare_exchange(0, id, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => id,
            Err(current) => current,
        }
    }
}

#[derive(Clone)]
pub struct Transport {
    inner: Arc<Inner>,
}

struct Inner {
    /// This node's advertised peer address, sent with every message.
    address: String,
    /// Peer tasks run on the node's multi-threaded runtime, not on the event loop's thread.
    runtime: tokio::runtime::Handle,
    id: NodeId,
    cluster_id: ClusterId,
    inputs: mpsc::Sender<PeerInput>,
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    /// Members and their addresses as the latest configuration says: what a peer's message
    /// claims about its own address never overrides these.
    members: Mutex<BTreeMap<NodeId, String>>,
    /// Mutual TLS to peers, when configured.
    tls: Option<Tls>,
    /// How reaching each peer fares.
    links: Arc<PeerLinks>,
}

impl Transport {
    pub fn new(
        id: NodeId,
        address: String,
        cluster_id: ClusterId,
        inputs: mpsc::Sender<PeerInput>,
        tls: Option<Tls>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                address,
                runtime: tokio::runtime::Handle::current(),
                id,
                cluster_id,
                inputs,
                peers: Mutex::new(BTreeMap::new()),
                members: Mutex::new(BTreeMap::new()),
                tls,
                links: Arc::default(),
            }),
        }
    }

    /// How reaching each peer fares, for the admin API.
    pub fn links(&self) -> Arc<PeerLinks> {
        self.inner.links.clone()
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, BTreeMap<NodeId, Peer>> {
        self.inner.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens connections to new members and closes those to removed ones.
    pub fn update_peers(&self, membership: &Membership) {
        *self.inner.members.lock().unwrap_or_else(|e| e.into_inner()) =
            membership.addresses().clone();
        let mut peers = self.peers();
        peers.retain(|id, peer| {
            let keep = membership.address(*id) == Some(peer.address.as_str());
            if !keep {
                peer.task.abort();
                self.inner.links.forget(*id);
            }
            keep
        });
        for id in membership.members() {
            if id == self.inner.id || peers.contains_key(&id) {
                continue;
            }
            let Some(address) = membership.address(id) else {
                continue;
            };
            self.spawn_peer(&mut peers, id, address);
        }
    }

    /// Opens a connection to a peer that is not (yet) in the configuration this node holds,
    /// such as the leader that is adding this node. Membership updates close it again if it is
    /// not a member then. For a member, the configuration's address stands: a message naming
    /// another address for it (a stale or misconfigured process, or one that lies) is not
    /// followed.
    pub fn learn_peer(&self, id: NodeId, address: &str) {
        if id == self.inner.id || address.is_empty() {
            return;
        }
        if self
            .inner
            .members
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&id)
        {
            return;
        }
        let mut peers = self.peers();
        if peers.get(&id).is_some_and(|p| p.address == address) {
            return;
        }
        if let Some(old) = peers.remove(&id) {
            old.task.abort();
        }
        self.spawn_peer(&mut peers, id, address);
    }

    fn spawn_peer(&self, peers: &mut BTreeMap<NodeId, Peer>, id: NodeId, address: &str) {
        let (queue, rx) = mpsc::channel(PEER_QUEUE);
        let task =
            self.inner
                .runtime
                .spawn(peer_stream(self.inner.clone(), id, address.to_string(), rx));
        peers.insert(
            id,
            Peer {
                address: address.to_string(),
                queue,
                task,
            },
        );
    }

    pub fn send_all(&self, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        let peers = self.peers();
        for message in messages {
            let to = message.to;
            let Some(peer) = peers.get(&to) else { continue };
            if message.msg_type() == MessageType::Snapshot {
                self.inner.runtime.spawn(send_snapshot(
                    self.inner.clone(),
                    to,
                    peer.address.clone(),
                    message,
                ));
                continue;
            }
            if peer.queue.try_send(message).is_err() {
                let _ = self.inner.inputs.try_send(PeerInput::Unreachable(to));
            }
        }
    }

    pub fn shutdown(&self) {
        for (_, peer) in std::mem::take(&mut *self.peers()) {
            peer.task.abort();
        }
    }
}

async fn connect(
    address: &str,
    tls: Option<&Tls>,
) -> Result<RaftClient<tonic::transport::Channel>, tonic::transport::Error> {
    let endpoint = peer_endpoint(address, tls)?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(5));
    Ok(RaftClient::new(endpoint.connect().await?))
}

/// A connection error with its causes: tonic's own message is only "transport error", the
/// cause (a DNS name that does not resolve, a refused connection) is below it.
fn connect_error(error: &tonic::transport::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

async fn peer_stream(
    inner: Arc<Inner>,
    to: NodeId,
    address: String,
    mut queue: mpsc::Receiver<Message>,
) {
    loop {
        match connect(&address, inner.tls.as_ref()).await {
            Ok(mut client) => {
                let (tx, rx) = mpsc::channel::<PeerEnvelope>(1024);
                let mut call = inner
                    .runtime
                    .spawn(async move { client.stream(ReceiverStream::new(rx)).await });
                loop {
                    tokio::select! {
                        message = queue.recv() => {
                            let Some(message) = message else {
                                call.abort();
                                return;
                            };
                            let envelope = PeerEnvelope {
                                cluster_id: inner.cluster_id.get(),
                                message: Some(message),
                                from_address: inner.address.clone(),
                            };
                            if tx.send(envelope).await.is_err() {
                                break;
                            }
                        }
                        outcome = &mut call => {
                            match outcome {
                                Ok(Err(status)) if status.code() == tonic::Code::FailedPrecondition => {
                                    inner.links.failed(to, &address, format!("the peer refused our messages: {}", status.message()));
                                }
                                Ok(Err(status)) => {
                                    inner.links.failed(to, &address, format!("lost the stream: {}", status.message()));
                                }
                                _ => {}
                            }
                            break;
                        }
                    }
                }
            }
            Err(e) => inner.links.failed(to, &address, connect_error(&e)),
        }
        let _ = inner.inputs.try_send(PeerInput::Unreachable(to));
        tokio::time::sleep(RECONNECT_BACKOFF).await;
        // Drop what queued up while the peer was away; the core resends what matters.
        while queue.try_recv().is_ok() {}
    }
}

async fn send_snapshot(inner: Arc<Inner>, to: NodeId, address: String, mut message: Message) {
    let installed = match transfer_snapshot(&inner, &address, &mut message).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(peer = to, %address, error = %e, "sending snapshot failed");
            false
        }
    };
    let _ = inner
        .inputs
        .send(PeerInput::SnapshotSent { to, installed })
        .await;
}

async fn transfer_snapshot(
    inner: &Inner,
    address: &str,
    message: &mut Message,
) -> Result<(), String> {
    let (reply, answer) = oneshot::channel();
    inner
        .inputs
        .send(PeerInput::SnapshotWanted(reply))
        .await
        .map_err(|_| "the node is shutting down".to_string())?;
    let (meta, data) = answer
        .await
        .map_err(|_| "the node is shutting down".to_string())?
        .map_err(|e| format!("capturing the snapshot: {e}"))?
        .encode()
        .await
        .map_err(|e| format!("encoding the snapshot: {e}"))?;
    // The state now is at or past the compaction point the core asked for, and the core
    // accepts any snapshot at or past that.
    message.snapshot = Some(Snapshot {
        metadata: Some(meta),
        data: Bytes::new(),
    });
    let data = Bytes::from(data);
    let mut chunks = vec![SnapshotChunk {
        envelope: Some(PeerEnvelope {
            cluster_id: inner.cluster_id.get(),
            message: Some(message.clone()),
            from_address: inner.address.clone(),
        }),
        data: Bytes::new(),
    }];
    let mut offset = 0;
    while offset < data.len() {
        let end = (offset + SNAPSHOT_CHUNK_BYTES).min(data.len());
        chunks.push(SnapshotChunk {
            envelope: None,
            data: data.slice(offset..end),
        });
        offset = end;
    }
    let mut client = connect(address, inner.tls.as_ref())
        .await
        .map_err(|e| e.to_string())?;
    client
        .install_snapshot(tokio_stream::iter(chunks))
        .await
        .map_err(|status| status.to_string())?;
    Ok(())
}

impl super::replica::Outbox for Transport {
    fn send(&self, messages: Vec<Message>) {
        self.send_all(messages);
    }

    fn connect(&self, membership: &Membership) {
        self.update_peers(membership);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn address_of(transport: &Transport, id: NodeId) -> Option<String> {
        transport.peers().get(&id).map(|peer| peer.address.clone())
    }

    #[tokio::test]
    async fn a_message_does_not_repoint_a_members_address() {
        // Found in review: any inbound envelope re-pointed the connection to `message.from`.
        let (inputs, _outputs) = mpsc::channel(16);
        let transport = Transport::new(1, "127.0.0.1:1".into(), ClusterId::new(7), inputs, None);
        let addresses = BTreeMap::from([
            (1, "127.0.0.1:1".to_string()),
            (2, "127.0.0.1:2".to_string()),
        ]);
        transport.update_peers(&Membership::new([1, 2], [], addresses));
        transport.learn_peer(2, "127.0.0.1:9");
        assert_eq!(address_of(&transport, 2).as_deref(), Some("127.0.0.1:2"));
        // A node outside the configuration (the leader adding this one) is learned.
        transport.learn_peer(3, "127.0.0.1:3");
        assert_eq!(address_of(&transport, 3).as_deref(), Some("127.0.0.1:3"));
        transport.shutdown();
    }
}
