//! The replica: the Raft core, the log and the state machine on one node, and the rules by
//! which each `Ready` is carried out (the reference design's single event loop, without its
//! channels and timers). It takes ticks, peer messages and client requests, one at a time,
//! and does everything they lead to synchronously; the event loop (`event_loop.rs`) feeds it
//! from channels and a timer, and the simulator drives it directly on simulated time, so that
//! the ordering rules tested are the node's own.

mod admission;
mod clock;
mod compactor;
mod lessor;
mod pending;
mod recover;
#[cfg(test)]
mod simulation;
mod snapshots;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, watch};

use super::failpoints::failpoint;
use super::metrics::Metrics;
use super::persist::persist_ready;
use super::probes::Pulse;
use super::raft_store::RaftStore;
use super::requests::{ClientRequest, LeaseQuery, LeaseStatus, MembershipRequest, ReadBarrier};
use super::status::NodeStatus;
use super::transport::PeerInput;
use super::vocabulary::ApiError;
use crate::kv::etcd::EtcdRequest;
use crate::kv::{Command, KvStore};
use crate::proto::{Entry, EntryType, Event, Message};
use crate::raft::{LogIndex, Membership, NodeId, Raft, Ready, Role, Term};
use crate::storage::{Durability, StorageError};
use dengine_proto::etcd::etcdserverpb as pb;

#[cfg(feature = "failpoints")]
pub use clock::step_wall_clock;
use clock::TickClock;
pub use clock::{now_unix_ms, Clock, SystemClock};
use compactor::PeriodicCompactor;
use lessor::Lessor;
use pending::PendingReplies;
pub use recover::recover;
/// The leader looks for expired keys and leases this often, in ticks.
const EXPIRY_SCAN_TICKS: u64 = 5;
/// The leader records what leases have left this often (etcd's checkpoint interval), so that
/// a leader after it does not give a long lease its whole TTL again.
const LEASE_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(300);

/// Where a replica's messages to its peers go: the transport, or the simulator's network.
pub trait Outbox: Send {
    /// Sends messages to peers, best effort (Raft resends what matters).
    fn send(&self, messages: Vec<Message>);
    /// Keeps connections to the members of `membership`, and to no one else.
    fn connect(&self, membership: &Membership);
}

/// Settings of the replica.
#[derive(Debug, Clone)]
pub struct ReplicaSettings {
    pub tick: Duration,
    pub lease_ticks: u64,
    pub election_ticks: u64,
    pub snapshot_every: u64,
    pub snapshot_keep_entries: u64,
    pub cluster_id: u64,
    /// Watch history kept in time (zero: no compaction by age).
    pub history_retention_period: Duration,
}

/// What watchers are told, shared by all of them.
#[derive(Debug, Clone)]
pub enum EventBatch {
    /// The events of one apply batch, in revision order.
    Events(Arc<Vec<Event>>),
    /// The state machine was replaced by a snapshot at `revision`: the events between what a
    /// watcher has seen and that revision are not available on this node.
    Reset { revision: i64 },
}

pub struct Replica {
    metrics: Arc<Metrics>,
    pulse: Pulse,
    raft: Raft,
    kv: Arc<RwLock<KvStore>>,
    store: RaftStore,
    outbox: Box<dyn Outbox>,
    settings: ReplicaSettings,
    status: watch::Sender<NodeStatus>,
    events: broadcast::Sender<EventBatch>,
    /// Every reply owed to a client or an admin call.
    pending: PendingReplies,
    /// Membership as of the applied index, for snapshots (the core's is the latest in the
    /// log, committed or not).
    applied_membership: Membership,
    /// The membership the outbox last connected to: the core's latest.
    connected_membership: Membership,
    /// Whether storage still says this node awaits admission (see `raft::Config`).
    awaiting_admission: bool,
    /// The term of the entry at the applied index.
    applied_term: Term,
    /// The last log index stored on disk.
    last_stored: LogIndex,
    /// The compaction point: the log before it is gone, the state machine covers it.
    snapshot_index: LogIndex,
    /// Logical time: how many ticks the core has been given, and how many are due.
    clock: TickClock,
    /// Keys with an Expire proposal in flight, so each is proposed once.
    expiring: HashSet<Vec<u8>>,
    /// When leases expire, while this node leads.
    lessor: Lessor,
    /// When this leader last checkpointed its leases (logical time).
    last_lease_checkpoint: Duration,
    /// Compaction by age, while this node leads.
    compactor: PeriodicCompactor,
}

pub struct ReplicaParts {
    /// Whether storage marks this node as awaiting admission.
    pub awaiting_admission_stored: bool,
    pub metrics: Arc<Metrics>,
    pub pulse: Pulse,
    pub raft: Raft,
    pub kv: Arc<RwLock<KvStore>>,
    pub store: RaftStore,
    pub outbox: Box<dyn Outbox>,
    pub clock: Box<dyn Clock>,
    pub settings: ReplicaSettings,
    pub status: watch::Sender<NodeStatus>,
    pub events: broadcast::Sender<EventBatch>,
    pub applied_membership: Membership,
    pub last_stored: LogIndex,
}

impl Replica {
    pub fn new(parts: ReplicaParts) -> Self {
        let snapshot = parts.raft.snapshot_metadata();
        let snapshot_index = snapshot.index;
        // The state machine may be past the compaction point: its entries are still in the log.
        let applied_term = parts
            .raft
            .log()
            .term(parts.raft.log().applied())
            .unwrap_or(snapshot.term);
        let clock = TickClock::new(parts.clock, parts.settings.tick);
        let compactor = PeriodicCompactor::new(parts.settings.history_retention_period);
        Self {
            metrics: parts.metrics,
            pulse: parts.pulse,
            raft: parts.raft,
            kv: parts.kv,
            store: parts.store,
            outbox: parts.outbox,
            settings: parts.settings,
            status: parts.status,
            events: parts.events,
            pending: PendingReplies::default(),
            applied_membership: parts.applied_membership,
            connected_membership: Membership::default(),
            awaiting_admission: parts.awaiting_admission_stored,
            applied_term,
            last_stored: parts.last_stored,
            snapshot_index,
            clock,
            expiring: HashSet::new(),
            lessor: Lessor::default(),
            last_lease_checkpoint: Duration::ZERO,
            compactor,
        }
    }

    /// What to do once, before anything else: connect to the members, and campaign at once
    /// if this node is the only voter (it need not wait an election timeout to lead).
    pub fn start(&mut self) {
        // What the services and probes read, from the first moment: the status channel
        // starts with a placeholder.
        self.publish_status();
        self.connect_to_members();
        if self.raft.membership().voters().len() == 1
            && self.raft.membership().is_voter(self.raft.id())
        {
            self.raft.campaign_now();
        }
    }

    /// When the next tick falls due, as time since the replica started.
    pub fn next_tick_deadline(&self) -> Duration {
        self.clock.next_deadline()
    }

    /// After a batch of inputs: a read-index round for the reads that arrived, then every
    /// `Ready` carried out. A storage failure is returned, and the node must stop: continuing
    /// could acknowledge writes that are not on disk.
    pub fn work(&mut self) -> Result<(), StorageError> {
        let started = Instant::now();
        self.start_read_round();
        let processed = self.process_ready();
        self.metrics
            .loop_iteration_seconds
            .observe(started.elapsed().as_secs_f64());
        processed
    }

    /// The node stops (`error` says why): every reply still owed ends with it.
    pub fn stop(&mut self, error: ApiError) {
        self.pending.fail_all(error);
    }

    #[cfg(test)]
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    #[cfg(test)]
    pub fn kv(&self) -> &Arc<RwLock<KvStore>> {
        &self.kv
    }

    /// Gives the core every tick due by the monotonic clock. Called whenever the loop wakes and
    /// before a lease is judged: after a stall inside an iteration (a slow fsync, a long
    /// encode, SIGSTOP at that moment) the loop serves what queued up without yielding, and
    /// tokio's timer fires only when it yields, so a tick count fed by the timer alone would
    /// still show the time before the stall.
    pub fn catch_up(&mut self) {
        while self.clock.take_due_tick() {
            self.on_tick();
        }
    }

    fn on_tick(&mut self) {
        self.pulse.beat();
        self.raft.tick();
        if self.raft.role() == Role::Leader && self.clock.delivered() % EXPIRY_SCAN_TICKS == 0 {
            self.propose_expiries();
            self.propose_lease_revokes();
            if self.clock.now() >= self.last_lease_checkpoint + LEASE_CHECKPOINT_INTERVAL {
                self.propose_lease_checkpoint();
            }
            self.propose_periodic_compaction();
        }
        self.publish_status();
    }

    pub fn on_peer_input(&mut self, input: PeerInput) {
        match input {
            PeerInput::Message(message) => self.raft.step(*message),
            PeerInput::SnapshotSent { to, installed } => self.raft.report_snapshot(to, installed),
            PeerInput::SnapshotWanted(reply) => {
                let _ = reply.send(self.capture_snapshot());
            }
            PeerInput::Unreachable(to) => self.raft.report_unreachable(to),
        }
    }

    pub fn on_request(&mut self, request: ClientRequest) {
        match request {
            ClientRequest::Propose { command, reply } => {
                match self.raft.propose(command.to_bytes().into()) {
                    Ok((index, term)) => {
                        self.metrics.proposals.inc();
                        self.pending.write_proposed(index, term, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(self.propose_error(e)));
                    }
                }
            }
            ClientRequest::ChangeMembership { change, reply } => {
                match self.propose_membership(change) {
                    Ok((index, term)) => {
                        self.pending.change_proposed(index, term, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            ClientRequest::TransferLeadership { target, reply } => {
                let _ = reply.send(self.transfer_leadership(target));
            }
            ClientRequest::Snapshot { compact, reply } => {
                let result = self.snapshot_now(compact).map_err(ApiError::from);
                if let Err(e) = &result {
                    tracing::error!(error = %e, "snapshot failed");
                }
                let _ = reply.send(result);
            }
            ClientRequest::WaitApplied { index, reply } => {
                self.pending.wait_applied(index, reply);
            }
            ClientRequest::Lease { query, reply } => {
                let _ = reply.send(self.query_lease(query));
            }
            ClientRequest::ReadIndex { barrier, reply } => match barrier {
                ReadBarrier::Linearizable => self.pending.read_asked(reply),
                ReadBarrier::Lease => {
                    // Judged at this moment, not as of the loop's last wake-up: a request
                    // before this one in the batch may have taken a while.
                    self.catch_up();
                    if self.raft.has_lease(self.settings.lease_ticks) {
                        let _ = reply.send(Ok(self.raft.lease_read_index()));
                    } else if self.raft.role() == Role::Leader {
                        let _ = reply.send(Err(ApiError::lease_lapsed()));
                    } else {
                        let _ = reply.send(Err(self.not_leader()));
                    }
                }
            },
        }
    }

    fn propose_membership(
        &mut self,
        request: MembershipRequest,
    ) -> Result<(LogIndex, Term), ApiError> {
        if self.raft.role() != Role::Leader {
            return Err(self.not_leader());
        }
        let status = self.raft.status();
        let view = admission::LeaderView {
            status: &status,
            conf_index: self.raft.conf_index(),
            election_ticks: self.settings.election_ticks,
        };
        let change = admission::conf_change(request, &view)?;
        self.raft
            .propose_conf_change(change)
            .map_err(|e| self.propose_error(e))
    }

    fn transfer_leadership(&mut self, target: NodeId) -> Result<NodeId, ApiError> {
        if self.raft.role() != Role::Leader {
            return Err(self.not_leader());
        }
        let status = self.raft.status();
        let target = match target {
            0 => status
                .peers
                .iter()
                .filter(|p| p.id != status.id && status.membership.is_voter(p.id))
                .max_by_key(|p| (p.matched, std::cmp::Reverse(p.ticks_since_contact)))
                .map(|p| p.id)
                .ok_or_else(|| {
                    ApiError::FailedPrecondition(
                        "there is no other voter to hand leadership to".into(),
                    )
                })?,
            id => id,
        };
        self.raft
            .transfer_leadership(target)
            .map_err(|e| self.propose_error(e))?;
        Ok(target)
    }

    fn propose_error(&self, e: crate::raft::ProposeError) -> ApiError {
        let membership = self.raft.membership();
        ApiError::from_propose(e, |id| membership.address(id).map(str::to_string))
    }

    fn not_leader(&self) -> ApiError {
        let leader = self.raft.leader();
        ApiError::NotLeader {
            leader,
            address: leader.and_then(|id| self.raft.membership().address(id).map(str::to_string)),
        }
    }

    /// One read-index round for every linearizable read that arrived since the last one.
    fn start_read_round(&mut self) {
        let Some(request) = self.pending.start_read_round() else {
            return;
        };
        if let Err(e) = self.raft.read_index(request) {
            let error = self.propose_error(e);
            self.pending.read_round_refused(request, error);
        }
    }

    fn propose_expiries(&mut self) {
        let expired = match self.kv.read() {
            Ok(kv) => kv.expired(self.clock.unix_ms(), 256),
            Err(_) => return,
        };
        for (key, mod_revision) in expired {
            if self.expiring.contains(&key) {
                continue;
            }
            let command = Command::expire(key.clone(), mod_revision);
            if self.raft.propose(command.to_bytes().into()).is_ok() {
                self.expiring.insert(key);
            }
        }
    }

    /// Proposes the revoke of every lease whose deadline passed.
    fn propose_lease_revokes(&mut self) {
        let due = match self.kv.read() {
            Ok(kv) => self.lessor.due(kv.leases(), self.clock.elapsed()),
            Err(_) => return,
        };
        for id in due {
            let revoke = EtcdRequest::LeaseRevoke(pb::LeaseRevokeRequest { id });
            if self
                .raft
                .propose(Command::etcd(revoke).to_bytes().into())
                .is_err()
            {
                self.lessor.revoke_not_proposed(id);
            }
        }
    }

    /// Proposes compacting the history to the revision of one retention period ago, if due.
    fn propose_periodic_compaction(&mut self) {
        let (revision, compacted) = match self.kv.read() {
            Ok(kv) => (kv.revision(), kv.compacted_revision()),
            Err(_) => return,
        };
        if let Some(target) = self.compactor.due(self.clock.now(), revision, compacted) {
            let compact = EtcdRequest::Compact(pb::CompactionRequest {
                revision: target,
                physical: false,
            });
            // Best effort: the next note that ages proposes again.
            let _ = self.raft.propose(Command::etcd(compact).to_bytes().into());
        }
    }

    /// Records in the log what the leases that used part of their TTL have left.
    fn propose_lease_checkpoint(&mut self) {
        let checkpoints = match self.kv.read() {
            Ok(kv) => self.lessor.checkpoints(kv.leases(), self.clock.elapsed()),
            Err(_) => return,
        };
        self.last_lease_checkpoint = self.clock.now();
        if checkpoints.is_empty() {
            return;
        }
        let checkpoint = EtcdRequest::LeaseCheckpoint(pb::LeaseCheckpointRequest { checkpoints });
        // Best effort: a checkpoint lost with leadership only makes the next leader lenient.
        let _ = self
            .raft
            .propose(Command::etcd(checkpoint).to_bytes().into());
    }

    /// A keepalive or a look at a lease, on the leader (the caller passed a linearizable read
    /// barrier first, so leadership was just confirmed and a lease granted before is known).
    fn query_lease(&mut self, query: LeaseQuery) -> Result<Option<LeaseStatus>, ApiError> {
        self.catch_up();
        if self.raft.role() != Role::Leader {
            return Err(self.not_leader());
        }
        let now = self.clock.elapsed();
        let kv = self.kv.read().map_err(|_| {
            ApiError::Internal("internal error: the state machine's lock is poisoned".into())
        })?;
        let Some(lease) = kv.leases().get(query.id) else {
            return Ok(None);
        };
        let remaining_ttl = match query.renew {
            true => match self.lessor.renew(lease, now) {
                Some(ttl) => ttl,
                None => return Ok(None),
            },
            false => self.lessor.remaining(lease, now),
        };
        let status = LeaseStatus {
            id: query.id,
            granted_ttl: lease.record.ttl,
            remaining_ttl,
            keys: match query.keys {
                true => lease.keys.iter().cloned().collect(),
                false => Vec::new(),
            },
        };
        // A renewed lease has its whole TTL again: the checkpoint that said less must not
        // outlive this leader.
        let stale_checkpoint = query.renew && lease.record.remaining_ttl != 0;
        drop(kv);
        if stale_checkpoint {
            let checkpoint = EtcdRequest::LeaseCheckpoint(pb::LeaseCheckpointRequest {
                checkpoints: vec![pb::LeaseCheckpoint {
                    id: query.id,
                    remaining_ttl: 0,
                }],
            });
            let _ = self
                .raft
                .propose(Command::etcd(checkpoint).to_bytes().into());
        }
        Ok(Some(status))
    }

    fn process_ready(&mut self) -> Result<(), StorageError> {
        let mut worked = false;
        while self.raft.has_ready() {
            worked = true;
            let ready = self.raft.ready();
            self.connect_to_members();
            self.carry_out(ready)?;
            self.record_admission()?;
            self.raft.advance();
            self.compact_log(false)?;
        }
        self.serve_applied_reads();
        if worked {
            // Status readers (admin API, probes, role watch) see every change, not only at
            // the next tick.
            self.publish_status();
        }
        Ok(())
    }

    fn carry_out(&mut self, ready: Ready) -> Result<(), StorageError> {
        if let Some(soft) = ready.soft_state {
            tracing::info!(role = ?soft.role, leader = soft.leader, term = soft.term, "raft state changed");
            // Notes taken under another leadership say nothing about this one's history.
            self.compactor.reset();
            if soft.role != Role::Leader {
                self.expiring.clear();
                self.lessor.demote();
            } else {
                let election_timeout = self.settings.tick * self.settings.election_ticks as u32;
                self.lessor.promote(self.clock.elapsed(), election_timeout);
                self.last_lease_checkpoint = self.clock.now();
            }
            self.publish_status();
        }
        let must_persist = ready.must_persist();
        let must_sync = ready.must_sync();
        self.outbox.send(ready.messages);

        if must_persist {
            let durability = match must_sync {
                true => Durability::Sync,
                // A new commit index alone: it reaches the disk with the next fsync.
                false => Durability::Buffered,
            };
            let persisted = persist_ready(
                &self.store,
                &self.kv,
                ready.snapshot.as_ref(),
                &ready.entries,
                ready.hard_state.as_ref(),
                self.last_stored,
                durability,
            )?;
            self.last_stored = persisted.last_stored;
            if must_sync {
                self.metrics
                    .fsync_seconds
                    .observe(persisted.write_time.as_secs_f64());
                self.metrics
                    .fsync_batch_entries
                    .observe(ready.entries.len() as f64);
            }
            if let Some(snapshot) = &ready.snapshot {
                let meta = snapshot.metadata.clone().unwrap_or_default();
                self.snapshot_index = meta.index;
                self.after_snapshot_installed(&meta);
            }
            failpoint!("after_log_append");
        }

        self.outbox.send(ready.messages_after_persist);
        self.apply(ready.committed_entries)?;
        for read in ready.read_states {
            self.pending.read_confirmed(read.request, read.index);
        }
        for request in ready.failed_reads {
            self.pending.read_failed(request);
        }
        Ok(())
    }

    /// Persists that a node which joined empty has been added as a learner, so that after a
    /// restart it may still vote once promoted (its log may by then show only the promotion).
    fn record_admission(&mut self) -> Result<(), StorageError> {
        if self.awaiting_admission && !self.raft.awaiting_admission() {
            self.store.record_admitted()?;
            self.awaiting_admission = false;
        }
        Ok(())
    }

    /// Keeps a connection to every member of the latest configuration, so a learner added a
    /// moment ago gets its first appends before the change is even committed.
    fn connect_to_members(&mut self) {
        if self.raft.membership() != &self.connected_membership {
            self.connected_membership = self.raft.membership().clone();
            self.outbox.connect(&self.connected_membership);
        }
    }

    fn apply(&mut self, entries: Vec<Entry>) -> Result<(), StorageError> {
        if entries.is_empty() {
            return Ok(());
        }
        failpoint!("apply");
        let started = Instant::now();
        let mut items: Vec<(LogIndex, Option<Command>)> = Vec::with_capacity(entries.len());
        let mut terms = BTreeMap::new();
        for entry in &entries {
            terms.insert(entry.index, entry.term);
            let command = match entry.entry_type() {
                EntryType::Command => match Command::from_bytes(&entry.data) {
                    Ok(command) => Some(command),
                    Err(e) => {
                        tracing::error!(index = entry.index, error = %e, "undecodable command skipped");
                        None
                    }
                },
                EntryType::ConfChange => {
                    self.apply_membership_change(entry);
                    None
                }
                EntryType::Empty => None,
            };
            items.push((entry.index, command));
        }
        self.applied_term = entries.last().map_or(self.applied_term, |e| e.term);
        let batch = {
            let mut kv = self
                .kv
                .write()
                .map_err(|_| StorageError::Engine("state machine lock poisoned".into()))?;
            kv.apply(&items)?
        };
        for (_, command) in &items {
            if let Some(key) = command.as_ref().and_then(expired_key) {
                self.expiring.remove(&key);
            }
        }
        let last = entries.last().map_or(0, |e| e.index);
        self.pending.applied(last, &terms, batch.outcomes);
        if !batch.events.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = self.events.send(EventBatch::Events(Arc::new(batch.events)));
        }
        self.metrics
            .apply_seconds
            .observe(started.elapsed().as_secs_f64());
        Ok(())
    }

    fn apply_membership_change(&mut self, entry: &Entry) {
        if let Some(change) = self.applied_membership.apply_entry(entry) {
            tracing::info!(index = entry.index, ?change, "membership change applied");
        }
    }

    fn serve_applied_reads(&mut self) {
        self.pending.serve_applied(self.raft.log().applied());
    }

    fn publish_status(&self) {
        let revision = self.kv.read().map(|kv| kv.revision()).unwrap_or(0);
        let status = NodeStatus::capture(
            &self.raft,
            self.settings.cluster_id,
            revision,
            self.settings.tick.as_millis() as u64,
        );
        self.status.send_if_modified(|current| {
            let changed = *current != status;
            if status.leader != 0 && status.leader != current.leader {
                self.metrics.leader_changes_seen.inc();
            }
            if changed {
                *current = status;
            }
            changed
        });
    }
}

fn expired_key(command: &Command) -> Option<Vec<u8>> {
    match &command.op {
        Some(crate::kv::command::Op::Expire(expire)) => Some(expire.key.to_vec()),
        _ => None,
    }
}
