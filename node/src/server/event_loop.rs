//! The single-threaded event loop that drives a [`Replica`] (as the reference design does): it
//! takes client requests and peer inputs from channels and ticks from the monotonic clock,
//! hands them to the replica, and lets it carry out what they lead to.
//!
//! Group commit falls out of the structure: while one `Ready` is being fsynced, new proposals
//! queue up in the request channel; the next iteration drains them all into the log and
//! persists them with a single fsync and a single append message per follower.

use std::time::Instant;

use tokio::sync::{mpsc, watch};

use super::replica::Replica;
use super::requests::ClientRequest;
use super::transport::{PeerInput, Transport};
use super::vocabulary::ApiError;
use crate::storage::StorageError;

pub use super::replica::EventBatch;

/// Most requests drained from a channel in one iteration, so ticks are never starved.
const MAX_BATCH: usize = 4096;

pub struct EventLoop {
    replica: Replica,
    /// When the replica's time began (its clock counts from here).
    started: Instant,
    requests: mpsc::Receiver<ClientRequest>,
    peer_inputs: mpsc::Receiver<PeerInput>,
    transport: Transport,
}

impl EventLoop {
    pub fn new(
        replica: Replica,
        started: Instant,
        requests: mpsc::Receiver<ClientRequest>,
        peer_inputs: mpsc::Receiver<PeerInput>,
        transport: Transport,
    ) -> Self {
        Self {
            replica,
            started,
            requests,
            peer_inputs,
            transport,
        }
    }

    /// Runs until `shutdown` fires or storage fails. A storage failure ends the loop with an
    /// error: continuing could acknowledge writes that are not on disk.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> Result<(), StorageError> {
        self.replica.start();
        let result = loop {
            let next_tick = self.started + self.replica.next_tick_deadline();
            tokio::select! {
                biased;
                _ = shutdown.changed() => break Ok(()),
                _ = tokio::time::sleep_until(next_tick.into()) => self.replica.catch_up(),
                Some(input) = self.peer_inputs.recv() => {
                    self.replica.catch_up();
                    self.replica.on_peer_input(input);
                    for _ in 0..MAX_BATCH {
                        match self.peer_inputs.try_recv() {
                            Ok(input) => self.replica.on_peer_input(input),
                            Err(_) => break,
                        }
                    }
                }
                Some(request) = self.requests.recv() => {
                    self.replica.catch_up();
                    self.replica.on_request(request);
                    for _ in 0..MAX_BATCH {
                        match self.requests.try_recv() {
                            Ok(request) => self.replica.on_request(request),
                            Err(_) => break,
                        }
                    }
                }
            }
            if let Err(e) = self.replica.work() {
                tracing::error!(error = %e, "storage failed; the node stops serving");
                break Err(e);
            }
        };
        self.replica.stop(match &result {
            Ok(()) => ApiError::ShuttingDown,
            Err(e) => ApiError::storage_failed(e),
        });
        self.transport.shutdown();
        result
    }
}
