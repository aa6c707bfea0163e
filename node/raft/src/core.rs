//! The [`Raft`] state and its entry points: tick, step, propose, ready, advance.
//!
//! The protocol's parts live beside this file, as `impl Raft` blocks: `election.rs` (roles and
//! votes), `replication.rs` (the leader's side of the log, commit and read index) and
//! `follower.rs` (the receiving side of appends, heartbeats and snapshots).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use prost::Message as _;

use super::log::RaftLog;
use super::membership::Membership;
use super::progress::{Progress, ProgressState};
use super::ready::{ReadState, Ready, SoftState};
use super::rng::Rng;
use super::{Config, LogIndex, NodeId, ProposeError, Role, Term};
use crate::proto::{
    ConfChange, ConfChangeType, Entry, EntryType, HardState, Message, MessageType, SnapshotMetadata,
};

/// A read-index request the leader is confirming with a heartbeat round.
#[derive(Debug)]
pub(super) struct PendingRead {
    pub request: u64,
    pub index: LogIndex,
    pub acks: BTreeSet<NodeId>,
}

pub struct Raft {
    pub(super) config: Config,
    pub(super) id: NodeId,
    pub(super) term: Term,
    pub(super) vote: NodeId,
    pub(super) leader: NodeId,
    pub(super) role: Role,
    pub(super) log: RaftLog,
    pub(super) membership: Membership,
    /// The index of the latest membership change in the log (the snapshot's index if none).
    pub(super) conf_index: LogIndex,
    /// The latest snapshot the state machine took, sent to followers that fell behind it.
    pub(super) snapshot_meta: SnapshotMetadata,
    /// Leader only: every member's replication progress, this node's own included.
    pub(super) progress: BTreeMap<NodeId, Progress>,
    /// Candidates only: who granted (true) or refused (false) a vote in this election.
    pub(super) votes: BTreeMap<NodeId, bool>,
    pub(super) election_elapsed: u64,
    pub(super) heartbeat_elapsed: u64,
    pub(super) randomized_election_timeout: u64,
    /// Ticks counted since this node started; heartbeats carry it so leases are measured
    /// from send times.
    pub(super) clock: u64,
    /// The clock when this node last became leader: acknowledgements from before do not count
    /// towards its lease.
    pub(super) leader_since_clock: u64,
    pub(super) rng: Rng,
    /// The index of the latest membership change in the log; a new one waits until it commits.
    pub(super) pending_conf_index: LogIndex,
    pub(super) transfer_target: Option<NodeId>,
    /// Leader only: a TimeoutNow went out in this term. It may still arrive and elect its
    /// target, so this leader holds no lease until the term ends.
    pub(super) timeout_now_sent: bool,
    /// Until an election timeout has passed since start: before it restarted, this node may
    /// have answered a leader's heartbeat, which promises that leader not to help elect anyone
    /// else for an election timeout. It does not remember, so it keeps the promise anyway.
    pub(super) may_have_promised_a_lease: bool,
    /// Reads waiting for the leader's first commit in its term (§6.4: until then it does not
    /// know the commit index).
    pub(super) reads_before_first_commit: Vec<u64>,
    pub(super) pending_reads: VecDeque<PendingRead>,
    pub(super) ready_reads: Vec<ReadState>,
    pub(super) failed_reads: Vec<u64>,
    /// Leader only: appends wait for `ready()` so that many proposals share one message.
    pub(super) broadcast_pending: bool,
    pub(super) messages: Vec<Message>,
    pub(super) messages_after_persist: Vec<Message>,
    prev_hard_state: HardState,
    prev_soft_state: SoftState,
}

/// A snapshot of the core's state for status reports.
#[derive(Debug, Clone)]
pub struct RaftStatus {
    pub id: NodeId,
    pub term: Term,
    pub vote: NodeId,
    pub leader: NodeId,
    pub role: Role,
    pub commit: LogIndex,
    pub applied: LogIndex,
    pub last_index: LogIndex,
    pub snapshot_index: LogIndex,
    pub membership: Membership,
    /// Known on the leader only.
    pub peers: Vec<PeerStatus>,
}

#[derive(Debug, Clone)]
pub struct PeerStatus {
    pub id: NodeId,
    pub matched: LogIndex,
    pub next: LogIndex,
    pub state: ProgressState,
    pub ticks_since_contact: u64,
}

impl Raft {
    /// Builds a node from what storage holds. `snapshot` describes the compacted prefix (index
    /// 0 and an empty configuration for a fresh log), `entries` follow it, and membership is
    /// replayed from the snapshot's configuration through the committed entries.
    pub fn new(
        config: Config,
        hard_state: HardState,
        snapshot: SnapshotMetadata,
        entries: Vec<Entry>,
        applied: LogIndex,
        seed: u64,
    ) -> Self {
        let log = RaftLog::restore(
            snapshot.index,
            snapshot.term,
            entries,
            hard_state.commit,
            applied,
        );
        let membership = Membership::of_snapshot(&snapshot);
        let soft = SoftState {
            role: Role::Follower,
            leader: 0,
            term: hard_state.term,
        };
        let mut raft = Self {
            id: config.id,
            term: hard_state.term,
            vote: hard_state.vote,
            leader: 0,
            role: Role::Follower,
            conf_index: snapshot.index,
            membership,
            snapshot_meta: snapshot,
            log,
            progress: BTreeMap::new(),
            votes: BTreeMap::new(),
            election_elapsed: 0,
            heartbeat_elapsed: 0,
            randomized_election_timeout: config.election_ticks,
            clock: 0,
            leader_since_clock: 0,
            rng: Rng::new(seed ^ config.id.wrapping_mul(0x9E37_79B9)),
            pending_conf_index: 0,
            transfer_target: None,
            timeout_now_sent: false,
            may_have_promised_a_lease: true,
            reads_before_first_commit: Vec::new(),
            pending_reads: VecDeque::new(),
            ready_reads: Vec::new(),
            failed_reads: Vec::new(),
            broadcast_pending: false,
            messages: Vec::new(),
            messages_after_persist: Vec::new(),
            prev_hard_state: hard_state,
            prev_soft_state: soft,
            config,
        };
        raft.refresh_membership();
        raft.reset_election_timer();
        raft
    }

    /// The entries that start a brand-new cluster whose voters are `members` (id, peer
    /// address): each is added and promoted, so that a node that joins later learns the
    /// initial configuration from the log itself. Every founding member must start with the
    /// same entries, committed (commit = their count, term 1).
    pub fn bootstrap_entries(members: &[(NodeId, String)]) -> Vec<Entry> {
        let mut changes = Vec::new();
        for (id, address) in members {
            changes.push(ConfChange {
                change_type: ConfChangeType::AddLearner as i32,
                node_id: *id,
                address: address.clone(),
            });
        }
        for (id, _) in members {
            changes.push(ConfChange {
                change_type: ConfChangeType::PromoteLearner as i32,
                node_id: *id,
                address: String::new(),
            });
        }
        changes
            .into_iter()
            .enumerate()
            .map(|(i, change)| Entry {
                term: 1,
                index: i as u64 + 1,
                entry_type: EntryType::ConfChange as i32,
                data: Bytes::from(change.encode_to_vec()),
            })
            .collect()
    }

    pub fn id(&self) -> NodeId {
        self.id
    }

    pub fn term(&self) -> Term {
        self.term
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The leader this node follows, if it knows one.
    pub fn leader(&self) -> Option<NodeId> {
        (self.leader != 0).then_some(self.leader)
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    pub fn snapshot_metadata(&self) -> &SnapshotMetadata {
        &self.snapshot_meta
    }

    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.log.committed(),
        }
    }

    fn soft_state(&self) -> SoftState {
        SoftState {
            role: self.role,
            leader: self.leader,
            term: self.term,
        }
    }

    pub fn status(&self) -> RaftStatus {
        let peers = self
            .progress
            .iter()
            .map(|(&id, p)| PeerStatus {
                id,
                matched: p.matched,
                next: p.next,
                state: p.state,
                ticks_since_contact: p.ticks_since_contact,
            })
            .collect();
        RaftStatus {
            id: self.id,
            term: self.term,
            vote: self.vote,
            leader: self.leader,
            role: self.role,
            commit: self.log.committed(),
            applied: self.log.applied(),
            last_index: self.log.last_index(),
            snapshot_index: self.log.snapshot_index(),
            membership: self.membership.clone(),
            peers,
        }
    }

    /// Whether this node may become leader: only voters may.
    pub(super) fn promotable(&self) -> bool {
        self.membership.is_voter(self.id) && !self.config.awaiting_admission
    }

    /// Whether this node still waits to be added as a learner before it may vote.
    pub fn awaiting_admission(&self) -> bool {
        self.config.awaiting_admission
    }

    /// The index of the latest membership change in the log.
    pub fn conf_index(&self) -> LogIndex {
        self.conf_index
    }

    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        self.clock += 1;
        match self.role {
            Role::Leader => self.tick_leader(),
            _ => self.tick_election(),
        }
    }

    fn tick_election(&mut self) {
        self.election_elapsed += 1;
        if self.election_elapsed >= self.config.election_ticks {
            self.may_have_promised_a_lease = false;
        }
        if self.promotable() && self.election_elapsed >= self.randomized_election_timeout {
            self.election_elapsed = 0;
            self.campaign(false);
        }
    }

    fn tick_leader(&mut self) {
        self.heartbeat_elapsed += 1;
        self.election_elapsed += 1;
        let snapshot_timeout = 2 * self.config.election_ticks;
        for progress in self.progress.values_mut() {
            progress.ticks_since_contact += 1;
            if progress.state == ProgressState::Snapshot {
                progress.snapshot_ticks += 1;
                if progress.snapshot_ticks > snapshot_timeout {
                    progress.pending_snapshot = 0;
                    progress.become_probe();
                }
            }
        }
        if self.election_elapsed >= self.config.election_ticks {
            self.election_elapsed = 0;
            if self.config.check_quorum && !self.quorum_recently_active() {
                // §6.2: a leader that cannot reach a majority steps down, so that clients
                // stop waiting on it and a reachable majority can elect someone else.
                self.become_follower(self.term, 0);
                return;
            }
            if let Some(target) = self.transfer_target.take() {
                tracing::info!(target, "leadership transfer timed out");
            }
        }
        if self.heartbeat_elapsed >= self.config.heartbeat_ticks {
            self.heartbeat_elapsed = 0;
            self.broadcast_heartbeat(Bytes::new());
        }
    }

    /// Starts an election now (used to bootstrap a single-node cluster without waiting).
    pub fn campaign_now(&mut self) {
        if self.role != Role::Leader && self.promotable() {
            self.campaign(false);
        }
    }

    /// Handles a message from a peer (or a local report such as a snapshot outcome).
    pub fn step(&mut self, m: Message) {
        if m.to != self.id && m.to != 0 {
            return;
        }
        if !self.step_term(&m) {
            return;
        }
        match m.msg_type() {
            MessageType::PreVote | MessageType::Vote => self.handle_vote_request(m),
            _ => match self.role {
                Role::Leader => self.step_leader(m),
                Role::Candidate | Role::PreCandidate => self.step_candidate(m),
                Role::Follower => self.step_follower(m),
            },
        }
        self.step_down_if_removed();
    }

    /// Term bookkeeping common to every role (Raft §5.1, plus pre-vote and check-quorum as in
    /// etcd's raft). Returns false when the message is to be dropped.
    fn step_term(&mut self, m: &Message) -> bool {
        let kind = m.msg_type();
        if m.term == 0 {
            // A local report (snapshot status, unreachable peer) carries no term.
            return true;
        }
        if m.term > self.term {
            if matches!(kind, MessageType::Vote | MessageType::PreVote) {
                let forced = m.context.as_ref() == super::TRANSFER_CONTEXT;
                let in_lease = self.config.check_quorum
                    && (self.leader != 0 || self.may_have_promised_a_lease)
                    && self.election_elapsed < self.config.election_ticks;
                if !forced && in_lease {
                    // §4.2.3: a node that heard from a live leader ignores disruptive
                    // candidates (e.g. a removed server, or one partitioned away).
                    return false;
                }
            }
            match kind {
                // A pre-vote never changes anyone's term.
                MessageType::PreVote => {}
                // Granted pre-votes carry the term the candidate will use; the candidate
                // moves to it only once it has a quorum.
                MessageType::PreVoteResponse if !m.reject => {}
                _ => {
                    let leader = match kind {
                        MessageType::Append | MessageType::Heartbeat | MessageType::Snapshot => {
                            m.from
                        }
                        _ => 0,
                    };
                    self.become_follower(m.term, leader);
                }
            }
            true
        } else if m.term < self.term {
            match kind {
                MessageType::Append | MessageType::Heartbeat
                    if self.config.check_quorum || self.config.pre_vote =>
                {
                    // A stale leader (e.g. healed after a partition) would otherwise never
                    // learn of the new term: with pre-vote nobody sends it a vote request with
                    // a higher term, and with check-quorum we ignore it. Answering lets it step
                    // down; this is etcd's fix for a cluster stuck without a leader.
                    self.send(Message {
                        msg_type: MessageType::AppendResponse as i32,
                        to: m.from,
                        ..Default::default()
                    });
                }
                MessageType::PreVote => {
                    // Tell a pre-candidate at a lower term about ours, so that it can catch up
                    // instead of pre-voting forever below us.
                    self.send(Message {
                        msg_type: MessageType::PreVoteResponse as i32,
                        to: m.from,
                        reject: true,
                        ..Default::default()
                    });
                }
                _ => {}
            }
            false
        } else {
            true
        }
    }

    /// Appends a state-machine command to the log. Returns its (index, term): the command is
    /// committed if and when an entry with that index and term is committed.
    pub fn propose(&mut self, data: Bytes) -> Result<(LogIndex, Term), ProposeError> {
        self.check_can_propose()?;
        Ok(self.append_entry(EntryType::Command, data))
    }

    /// Proposes a membership change. One at a time: refused while an earlier change (or the
    /// leader's first entry of its term) is not yet committed.
    pub fn propose_conf_change(
        &mut self,
        change: ConfChange,
    ) -> Result<(LogIndex, Term), ProposeError> {
        self.check_can_propose()?;
        if self.pending_conf_index > self.log.committed() {
            return Err(ProposeError::ConfChangeInProgress);
        }
        self.membership.check(&change)?;
        let (index, term) =
            self.append_entry(EntryType::ConfChange, Bytes::from(change.encode_to_vec()));
        self.pending_conf_index = index;
        // The new configuration is in force from now on, on this leader as on every follower
        // that appends it.
        self.refresh_membership();
        Ok((index, term))
    }

    fn check_can_propose(&self) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader(),
            });
        }
        if let Some(target) = self.transfer_target {
            return Err(ProposeError::TransferInProgress(target));
        }
        Ok(())
    }

    pub(super) fn append_entry(&mut self, entry_type: EntryType, data: Bytes) -> (LogIndex, Term) {
        let index = self.log.last_index() + 1;
        self.log.append(vec![Entry {
            term: self.term,
            index,
            entry_type: entry_type as i32,
            data,
        }]);
        self.broadcast_pending = true;
        (index, self.term)
    }

    /// Asks to hand over leadership to `target` (§3.10). The leader stops taking proposals,
    /// brings the target up to date, then tells it to start an election at once.
    pub fn transfer_leadership(&mut self, target: NodeId) -> Result<(), ProposeError> {
        if self.role != Role::Leader {
            return Err(ProposeError::NotLeader {
                leader: self.leader(),
            });
        }
        if target == self.id {
            return Ok(());
        }
        if !self.membership.is_voter(target) {
            return Err(ProposeError::NotAVoter(target));
        }
        self.transfer_target = Some(target);
        // The transfer must finish within an election timeout, or it is abandoned.
        self.election_elapsed = 0;
        let caught_up = self
            .progress
            .get(&target)
            .is_some_and(|p| p.matched == self.log.last_index());
        if caught_up {
            self.send_timeout_now(target);
        } else {
            self.send_append(target, true);
        }
        Ok(())
    }

    /// Records that the state machine took a snapshot described by `meta` (its index at or
    /// below the applied index) and drops the log entries it covers, keeping the last
    /// `keep_entries` so that slightly slow followers still catch up from the log.
    pub fn compact(&mut self, meta: SnapshotMetadata, keep_entries: u64) {
        if meta.index <= self.snapshot_meta.index || meta.index > self.log.applied() {
            return;
        }
        let cut = meta.index.saturating_sub(keep_entries);
        self.snapshot_meta = meta;
        self.log.compact_to(cut);
    }

    /// Tells the leader how sending a snapshot to `to` went.
    pub fn report_snapshot(&mut self, to: NodeId, installed: bool) {
        if self.role != Role::Leader {
            return;
        }
        if let Some(progress) = self.progress.get_mut(&to) {
            if progress.state != ProgressState::Snapshot {
                return;
            }
            if !installed {
                progress.pending_snapshot = 0;
            }
            // Either way, probe: the follower's answer says where its log now ends.
            progress.become_probe();
            progress.probe_sent = true;
        }
    }

    /// Tells the leader that `to` could not be reached, so it stops pipelining to it.
    pub fn report_unreachable(&mut self, to: NodeId) {
        if let Some(progress) = self.progress.get_mut(&to) {
            if progress.state == ProgressState::Replicate {
                progress.become_probe();
            }
        }
    }

    pub(super) fn send(&mut self, mut m: Message) {
        m.from = self.id;
        let kind = m.msg_type();
        if m.term == 0 {
            m.term = self.term;
        }
        match kind {
            // These promise something about this node's disk (a vote, entries held), so they
            // may leave only after the Ready that carries that state has been persisted.
            MessageType::VoteResponse
            | MessageType::PreVoteResponse
            | MessageType::AppendResponse
            | MessageType::HeartbeatResponse => self.messages_after_persist.push(m),
            _ => self.messages.push(m),
        }
    }

    /// Whether [`Raft::ready`] has anything to hand out.
    pub fn has_ready(&self) -> bool {
        self.broadcast_pending
            || !self.messages.is_empty()
            || !self.messages_after_persist.is_empty()
            || self.log.has_unstable()
            || self.log.has_pending_snapshot()
            || self.log.has_next_committed()
            || self.hard_state() != self.prev_hard_state
            || self.soft_state() != self.prev_soft_state
            || !self.ready_reads.is_empty()
            || !self.failed_reads.is_empty()
    }

    /// Takes the work accumulated since the last call. See [`Ready`] for the driver's duties.
    pub fn ready(&mut self) -> Ready {
        if self.broadcast_pending && self.role == Role::Leader {
            self.broadcast_append();
        }
        self.broadcast_pending = false;
        let mut ready = Ready::default();
        let soft = self.soft_state();
        if soft != self.prev_soft_state {
            ready.soft_state = Some(soft);
            self.prev_soft_state = soft;
        }
        let hard = self.hard_state();
        if hard != self.prev_hard_state {
            ready.term_or_vote_changed =
                hard.term != self.prev_hard_state.term || hard.vote != self.prev_hard_state.vote;
            ready.hard_state = Some(hard);
            self.prev_hard_state = hard;
        }
        ready.snapshot = self.log.take_pending_snapshot();
        ready.entries = self.log.unstable_entries().to_vec();
        self.log.stable_to(self.log.last_index());
        ready.committed_entries = self.log.next_committed(self.config.max_apply_bytes);
        if let Some(last) = ready.committed_entries.last() {
            self.log.applied_to(last.index);
        }
        ready.messages = std::mem::take(&mut self.messages);
        ready.messages_after_persist = std::mem::take(&mut self.messages_after_persist);
        if ready.term_or_vote_changed {
            // Nothing may leave before the new term and vote are on disk: after a crash this
            // node could otherwise win the same term again and send other entries under the
            // same index and term (a lone voter wins inside one tick), or vote twice in it.
            ready.messages.append(&mut ready.messages_after_persist);
            ready.messages_after_persist = std::mem::take(&mut ready.messages);
        }
        ready.read_states = std::mem::take(&mut self.ready_reads);
        ready.failed_reads = std::mem::take(&mut self.failed_reads);
        ready
    }

    /// Called once the driver has carried out the last [`Ready`]: what it handed out for
    /// persisting is now on disk, so the leader may count its own copy towards a quorum.
    pub fn advance(&mut self) {
        if self.role == Role::Leader {
            let stable = self.log.stable();
            if let Some(own) = self.progress.get_mut(&self.id) {
                own.maybe_update(stable);
            }
            if self.maybe_commit() {
                self.broadcast_pending = true;
            }
            self.step_down_if_removed();
        }
    }

    /// The configuration in force at `index` (at least the compaction point): the snapshot's,
    /// then every membership change in the log up to `index`, committed or not. Returns it with
    /// the index of the latest change it includes (the compaction point if none).
    pub(super) fn membership_through(&self, index: LogIndex) -> (Membership, LogIndex) {
        let from = self.snapshot_meta.index.max(self.log.snapshot_index()) + 1;
        let entries = (from..=index.min(self.log.last_index())).filter_map(|i| self.log.entry(i));
        Membership::replay(&self.snapshot_meta, entries)
    }

    /// Recomputes the configuration from the latest membership change in the log, committed
    /// or not (dissertation §4.1: a server uses the latest configuration in its log). Called
    /// when a change is appended, or the log is truncated or replaced.
    pub(super) fn refresh_membership(&mut self) {
        let (membership, conf_index) = self.membership_through(self.log.last_index());
        self.conf_index = conf_index;
        if membership != self.membership {
            self.membership = membership;
            self.on_membership_change();
        }
    }

    /// A node awaiting admission is admitted once its log matches the leader's through
    /// `leader_conf_index`, the leader's latest configuration, and that configuration lists it
    /// as a learner. Then every later change it appends is newer than that one: a promotion it
    /// receives is the cluster's current word, not one from before it lost its disk, which a
    /// prefix of the log can still hold after an earlier "add as learner".
    pub(super) fn maybe_admit(&mut self, matched: LogIndex, leader_conf_index: LogIndex) {
        if !self.config.awaiting_admission || leader_conf_index == 0 || matched < leader_conf_index
        {
            return;
        }
        let through = leader_conf_index.max(self.snapshot_meta.index);
        if self.membership_through(through).0.is_learner(self.id) {
            tracing::info!(
                id = self.id,
                "admitted as a learner; may vote once promoted"
            );
            self.config.awaiting_admission = false;
        }
    }

    fn on_membership_change(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let next = self.log.last_index() + 1;
        let max_inflight = self.config.max_inflight;
        for id in self.membership.members().collect::<Vec<_>>() {
            self.progress
                .entry(id)
                .or_insert_with(|| Progress::new(next, max_inflight));
        }
        let members = self.membership.clone();
        // The leader keeps its own progress even when removing itself: it still holds the
        // log, it just no longer counts towards a majority.
        let id = self.id;
        self.progress
            .retain(|peer, _| *peer == id || members.contains(*peer));
        if self.transfer_target.is_some_and(|t| !members.is_voter(t)) {
            self.transfer_target = None;
        }
        // A smaller quorum may commit more right away.
        if self.maybe_commit() {
            self.broadcast_pending = true;
        }
    }

    /// §4.2.2: a leader that is not in the configuration steps down once that configuration
    /// has committed; until then it keeps replicating it.
    pub(super) fn step_down_if_removed(&mut self) {
        if self.role == Role::Leader
            && !self.membership.is_voter(self.id)
            && self.log.committed() >= self.conf_index
        {
            self.become_follower(self.term, 0);
        }
    }
}
