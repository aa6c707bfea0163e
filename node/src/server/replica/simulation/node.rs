//! One simulated node: a real [`Replica`] on a [`MemoryEngine`], with a clock of its own and
//! a mailbox that fills while the node is paused.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{broadcast, watch};

use super::super::{recover, Clock, Outbox, Replica, ReplicaParts, ReplicaSettings};
use crate::kv::KvStore;
use crate::proto::{HardState, Message};
use crate::raft::{Config, Membership, NodeId, Raft};
use crate::server::metrics::Metrics;
use crate::server::probes::Pulse;
use crate::server::raft_store::{Identity, RaftStore};
use crate::server::requests::ClientRequest;
use crate::server::status::NodeStatus;
use crate::server::transport::PeerInput;
use crate::storage::{Engine, MemoryEngine, StorageError};

/// Wall-clock time at the simulation's start, for TTL deadlines.
const EPOCH_UNIX_MS: i64 = 1_800_000_000_000;
pub const TICK: Duration = Duration::from_millis(10);
pub const ELECTION_TICKS: u64 = 10;
pub const LEASE_TICKS: u64 = 8;
const CLUSTER_ID: u64 = 7;

/// A node's monotonic clock: microseconds since it was built, advanced by the simulator at
/// the node's own rate.
#[derive(Clone, Default)]
pub struct SimClock(Arc<AtomicU64>);

impl SimClock {
    pub fn advance(&self, micros: u64) {
        self.0.fetch_add(micros, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn elapsed(&self) -> Duration {
        Duration::from_micros(self.0.load(Ordering::SeqCst))
    }

    fn unix_ms(&self) -> i64 {
        EPOCH_UNIX_MS + (self.0.load(Ordering::SeqCst) / 1_000) as i64
    }
}

/// Collects what the replica sends; the simulator's network takes it from there.
#[derive(Clone, Default)]
pub struct SimOutbox(Arc<Mutex<Vec<Message>>>);

impl SimOutbox {
    pub fn take(&self) -> Vec<Message> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Outbox for SimOutbox {
    fn send(&self, messages: Vec<Message>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(messages);
    }

    fn connect(&self, _membership: &Membership) {}
}

/// An input that waits in a paused node's mailbox.
pub enum Input {
    Peer(PeerInput),
    Request(ClientRequest),
}

pub struct SimNode {
    pub id: NodeId,
    pub engine: Arc<MemoryEngine>,
    pub replica: Option<Replica>,
    pub clock: SimClock,
    /// Microseconds of this node's clock per simulated millisecond (clock skew).
    pub micros_per_ms: u64,
    pub outbox: SimOutbox,
    /// Until when (simulated ms) the node is paused, as by SIGSTOP.
    pub paused_until: Option<u64>,
    /// Inputs that arrived while it was paused, in order.
    pub mailbox: VecDeque<Input>,
    /// Starts so far, for the replica's seed.
    boots: u64,
    seed: u64,
}

fn config(id: NodeId) -> Config {
    let mut config = Config::new(id);
    config.election_ticks = ELECTION_TICKS;
    config.max_inflight = 8;
    config.max_append_entries = 16;
    config
}

fn settings() -> ReplicaSettings {
    ReplicaSettings {
        tick: TICK,
        lease_ticks: LEASE_TICKS,
        election_ticks: ELECTION_TICKS,
        snapshot_every: 40,
        snapshot_keep_entries: 8,
        history_retention_period: Duration::ZERO,
        cluster_id: CLUSTER_ID,
    }
}

impl SimNode {
    fn new(id: NodeId, seed: u64, micros_per_ms: u64) -> Self {
        Self {
            id,
            engine: Arc::new(MemoryEngine::new()),
            replica: None,
            clock: SimClock::default(),
            micros_per_ms,
            outbox: SimOutbox::default(),
            paused_until: None,
            mailbox: VecDeque::new(),
            boots: 0,
            seed,
        }
    }

    /// A founding member of `members`, started.
    pub fn founding(id: NodeId, members: &[(NodeId, String)], seed: u64, rate: u64) -> Self {
        let mut node = Self::new(id, seed, rate);
        let entries = Raft::bootstrap_entries(members);
        let hard_state = HardState {
            term: 1,
            vote: 0,
            commit: entries.len() as u64,
        };
        RaftStore::new(node.engine.clone())
            .initialise(
                Identity {
                    cluster_id: CLUSTER_ID,
                    node_id: id,
                },
                hard_state,
                &entries,
            )
            .expect("a fresh memory engine takes the founding entries");
        node.boot();
        node
    }

    /// A node with an empty disk, started in join mode: it waits to be added and admitted.
    pub fn joining(id: NodeId, seed: u64, rate: u64) -> Self {
        let mut node = Self::new(id, seed, rate);
        node.prepare_join();
        node.boot();
        node
    }

    fn prepare_join(&self) {
        let store = RaftStore::new(self.engine.clone());
        store
            .record_awaiting_admission()
            .and_then(|()| {
                store.record_identity(Identity {
                    cluster_id: 0,
                    node_id: self.id,
                })
            })
            .expect("a fresh memory engine takes the identity");
    }

    pub fn is_up(&self) -> bool {
        self.replica.is_some()
    }

    /// Starts the replica on what the engine holds, as `start_with` does.
    pub fn boot(&mut self) {
        self.boots += 1;
        let engine: Arc<dyn Engine> = self.engine.clone();
        let store = RaftStore::new(engine.clone());
        let kv = KvStore::open(engine, 1_000).expect("the engine opens");
        // Raft mixes the node's id in itself (mixing it here too would cancel it out and give
        // every node the same election timeouts).
        let seed = self.seed ^ self.boots.wrapping_mul(7919);
        let recovered = recover(&store, &kv, config(self.id), seed).expect("storage loads");
        self.clock = SimClock::default();
        self.outbox = SimOutbox::default();
        self.mailbox.clear();
        self.paused_until = None;
        let mut replica = Replica::new(ReplicaParts {
            awaiting_admission_stored: recovered.awaiting_admission,
            metrics: Arc::new(Metrics::new()),
            pulse: Pulse::new(),
            raft: recovered.raft,
            kv: Arc::new(RwLock::new(kv)),
            store,
            outbox: Box::new(self.outbox.clone()),
            clock: Box::new(self.clock.clone()),
            settings: settings(),
            status: watch::channel(NodeStatus::initial(self.id, CLUSTER_ID)).0,
            events: broadcast::channel(16).0,
            applied_membership: recovered.applied_membership,
            last_stored: recovered.last_stored,
        });
        replica.start();
        self.replica = Some(replica);
    }

    /// The process dies: writes not yet synced are lost, and every reply it owed with it.
    pub fn crash(&mut self) {
        self.replica = None;
        self.mailbox.clear();
        self.paused_until = None;
        self.engine.crash();
    }

    /// The process dies during its next few writes (after `writes` of them succeed).
    pub fn crash_within_writes(&self, writes: u64) {
        self.engine.crash_after_writes(writes);
    }

    pub fn restart(&mut self) {
        self.engine.restart();
        self.boot();
    }

    /// The node comes back on an empty disk under its id, in join mode.
    pub fn lose_disk_and_restart(&mut self) {
        self.replica = None;
        self.engine = Arc::new(MemoryEngine::new());
        self.prepare_join();
        self.boot();
    }

    /// Hands `input` to the replica, or to the mailbox while paused.
    pub fn deliver(&mut self, input: Input) {
        if self.paused_until.is_some() {
            self.mailbox.push_back(input);
            return;
        }
        if let Some(replica) = self.replica.as_mut() {
            match input {
                Input::Peer(input) => replica.on_peer_input(input),
                Input::Request(request) => replica.on_request(request),
            }
        }
    }

    /// One simulated millisecond: the clock moves at the node's rate; unless paused, the
    /// replica catches up and carries out its work. `inputs_first`: a node that just woke
    /// from a pause serves its mailbox before its timer fires (as a stalled event loop does).
    /// Returns a storage failure, after which the node is down.
    pub fn step(&mut self, now: u64) -> Result<(), StorageError> {
        if self.replica.is_none() {
            return Ok(());
        }
        self.clock.advance(self.micros_per_ms);
        if let Some(until) = self.paused_until {
            if now < until {
                return Ok(());
            }
            self.paused_until = None;
            let replica = self.replica.as_mut().expect("checked above");
            while let Some(input) = self.mailbox.pop_front() {
                match input {
                    Input::Peer(input) => replica.on_peer_input(input),
                    Input::Request(request) => replica.on_request(request),
                }
            }
        }
        let replica = self.replica.as_mut().expect("checked above");
        replica.catch_up();
        let worked = replica.work();
        if worked.is_err() {
            self.replica = None;
            self.mailbox.clear();
            self.engine.crash();
        }
        worked
    }
}
