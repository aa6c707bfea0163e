//! The leader's side of the log: sending appends and snapshots, counting acknowledgements into
//! the commit index (§5.3, §5.4.2), heartbeats, and read-index confirmation (§6.4).

use std::collections::BTreeSet;

use bytes::Bytes;

use super::core::{PendingRead, Raft};
use super::progress::ProgressState;
use super::ready::ReadState;
use super::{LogIndex, NodeId, Role};
use crate::proto::{Message, MessageType, Snapshot};

impl Raft {
    fn peers(&self) -> Vec<NodeId> {
        self.progress
            .keys()
            .copied()
            .filter(|&id| id != self.id)
            .collect()
    }

    pub(super) fn broadcast_append(&mut self) {
        for to in self.peers() {
            self.send_append(to, false);
        }
    }

    /// Sends `to` the entries it needs next, or a snapshot when they are compacted away.
    /// With `even_if_empty`, sends an empty append (a probe) when there is nothing new.
    pub(super) fn send_append(&mut self, to: NodeId, even_if_empty: bool) -> bool {
        let Some(progress) = self.progress.get(&to) else {
            return false;
        };
        if progress.is_paused() {
            return false;
        }
        let next = progress.next;
        let recent_active = progress.recent_active;
        let prev_index = next - 1;
        let prev_term = self.log.term(prev_index);
        let entries = self.log.entries_from(
            next,
            self.config.max_append_bytes,
            self.config.max_append_entries,
        );
        let (Some(prev_term), Some(entries)) = (prev_term, entries) else {
            return self.send_snapshot(to, recent_active);
        };
        if entries.is_empty() && !even_if_empty {
            return false;
        }
        let count = entries.len();
        let last = prev_index + count as u64;
        self.send(Message {
            msg_type: MessageType::Append as i32,
            to,
            index: prev_index,
            log_term: prev_term,
            entries,
            commit: self.log.committed(),
            conf_index: self.conf_index,
            ..Default::default()
        });
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.sent_append(last, count);
        }
        true
    }

    fn send_snapshot(&mut self, to: NodeId, recent_active: bool) -> bool {
        if !recent_active {
            // Don't start a large transfer to a node that may be down; a heartbeat answer
            // will mark it active again.
            return false;
        }
        let meta = self.snapshot_meta.clone();
        let index = meta.index;
        self.send(Message {
            msg_type: MessageType::Snapshot as i32,
            to,
            snapshot: Some(Snapshot {
                metadata: Some(meta),
                data: Bytes::new(),
            }),
            ..Default::default()
        });
        if let Some(progress) = self.progress.get_mut(&to) {
            progress.become_snapshot(index);
        }
        true
    }

    pub(super) fn broadcast_heartbeat(&mut self, context: Bytes) {
        for to in self.peers() {
            let matched = self.progress.get(&to).map_or(0, |p| p.matched);
            self.send(Message {
                msg_type: MessageType::Heartbeat as i32,
                to,
                // Never tell a follower to commit past what it is known to hold: its log
                // beyond `matched` may still differ from ours.
                commit: matched.min(self.log.committed()),
                context: context.clone(),
                clock: self.clock,
                ..Default::default()
            });
        }
    }

    /// Raft §5.4.2: only entries of the current term are committed by counting replicas;
    /// earlier ones commit with them.
    pub(super) fn maybe_commit(&mut self) -> bool {
        let progress = &self.progress;
        let candidate = self
            .membership
            .committed_index(|id| progress.get(&id).map_or(0, |p| p.matched));
        if candidate <= self.log.committed() || self.log.term(candidate) != Some(self.term) {
            return false;
        }
        let first_commit_in_term = self.log.term(self.log.committed()) != Some(self.term);
        self.log.commit_to(candidate);
        if first_commit_in_term {
            self.release_reads_waiting_for_first_commit();
        }
        true
    }

    pub(super) fn quorum_recently_active(&mut self) -> bool {
        let id = self.id;
        let active: Vec<NodeId> = self
            .progress
            .iter_mut()
            .filter_map(|(&peer, p)| {
                let active = peer == id || p.recent_active;
                p.recent_active = false;
                active.then_some(peer)
            })
            .collect();
        self.membership.has_quorum(active.iter())
    }

    fn note_contact(&mut self, from: NodeId) {
        if let Some(progress) = self.progress.get_mut(&from) {
            progress.recent_active = true;
            progress.ticks_since_contact = 0;
        }
    }

    pub(super) fn step_leader(&mut self, m: Message) {
        match m.msg_type() {
            MessageType::AppendResponse => {
                self.note_contact(m.from);
                self.handle_append_response(m);
            }
            MessageType::HeartbeatResponse => {
                self.note_contact(m.from);
                self.handle_heartbeat_response(m);
            }
            MessageType::SnapshotResponse => self.report_snapshot(m.from, !m.reject),
            _ => {}
        }
    }

    fn handle_append_response(&mut self, m: Message) {
        let from = m.from;
        let last_index = self.log.last_index();
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        if m.reject {
            // Fast back-off: the follower named the last index of a term it holds at or below
            // the rejected position; skip to the last entry of ours with a term no later.
            let mut retry_at = m.reject_hint;
            if m.hint_term > 0 {
                retry_at = self.log.find_conflict_by_term(m.reject_hint, m.hint_term).0;
            }
            let progress = self.progress.get_mut(&from).expect("checked above");
            if progress.maybe_decrease_to(m.index, retry_at) {
                if progress.state == ProgressState::Replicate {
                    progress.become_probe();
                }
                self.send_append(from, true);
            }
            return;
        }
        let was_paused = progress.is_paused();
        if !progress.maybe_update(m.index) {
            return;
        }
        progress.matched_clock = self.clock;
        match progress.state {
            ProgressState::Probe => progress.become_replicate(),
            ProgressState::Snapshot if progress.matched >= progress.pending_snapshot => {
                progress.become_probe();
                progress.become_replicate();
            }
            _ => {}
        }
        let matched = progress.matched;
        if self.maybe_commit() {
            self.broadcast_pending = true;
        } else if was_paused || matched < last_index {
            // Keep the pipeline full.
            while self.send_append(from, false) {}
        }
        if self.transfer_target == Some(from) && matched == self.log.last_index() {
            self.send_timeout_now(from);
        }
    }

    fn handle_heartbeat_response(&mut self, m: Message) {
        let from = m.from;
        let Some(progress) = self.progress.get_mut(&from) else {
            return;
        };
        progress.on_heartbeat_response();
        progress.acked_clock = progress.acked_clock.max(m.clock);
        if m.clock > progress.matched_clock && m.index < progress.matched {
            // Sent after the follower acknowledged `matched`, answered with a shorter log: it
            // lost its disk. Without this the leader would think it caught up for ever.
            progress.lost_entries(m.index);
        }
        if progress.matched < self.log.last_index() {
            self.send_append(from, true);
        }
        if !m.context.is_empty() {
            self.ack_read(from, &m.context);
        }
    }

    /// Asks for the index a linearizable read must wait for. The answer comes out of a later
    /// `Ready` as a [`ReadState`] carrying `request` (or in `failed_reads` if leadership is
    /// lost first). Many concurrent reads should share one request: one heartbeat round
    /// confirms them all.
    pub fn read_index(&mut self, request: u64) -> Result<(), super::ProposeError> {
        if self.role != Role::Leader {
            return Err(super::ProposeError::NotLeader {
                leader: self.leader(),
            });
        }
        if self.log.term(self.log.committed()) != Some(self.term) {
            self.reads_before_first_commit.push(request);
            return Ok(());
        }
        self.start_read(request);
        Ok(())
    }

    fn start_read(&mut self, request: u64) {
        let index = self.log.committed();
        if self.membership.voters().len() <= 1 && self.membership.is_voter(self.id) {
            self.ready_reads.push(ReadState { request, index });
            return;
        }
        self.pending_reads.push_back(PendingRead {
            request,
            index,
            acks: BTreeSet::from([self.id]),
        });
        self.broadcast_heartbeat(Bytes::copy_from_slice(&request.to_be_bytes()));
    }

    fn release_reads_waiting_for_first_commit(&mut self) {
        for request in std::mem::take(&mut self.reads_before_first_commit) {
            self.start_read(request);
        }
    }

    fn ack_read(&mut self, from: NodeId, context: &[u8]) {
        let Ok(bytes) = <[u8; 8]>::try_from(context) else {
            return;
        };
        let request = u64::from_be_bytes(bytes);
        let Some(position) = self.pending_reads.iter().position(|r| r.request == request) else {
            return;
        };
        self.pending_reads[position].acks.insert(from);
        if !self
            .membership
            .has_quorum(self.pending_reads[position].acks.iter())
        {
            return;
        }
        // A quorum confirmed leadership after every earlier read started too: release them all.
        for read in self.pending_reads.drain(..=position) {
            self.ready_reads.push(ReadState {
                request: read.request,
                index: read.index,
            });
        }
    }

    /// Whether the leader may serve a read from its own state without a quorum round: a quorum
    /// answered within the last `lease_ticks` ticks, so no other leader can have been elected
    /// since (voters in touch with a leader ignore candidates for an election timeout). The
    /// caller picks `lease_ticks` below the election timeout by a margin for clock drift.
    pub fn has_lease(&self, lease_ticks: u64) -> bool {
        if self.role != Role::Leader
            || self.transfer_target.is_some()
            || self.timeout_now_sent
            || !self.config.check_quorum
            || self.log.term(self.log.committed()) != Some(self.term)
        {
            return false;
        }
        // The newest send time that a quorum of voters has answered.
        let mut acked: Vec<u64> = self
            .membership
            .voters()
            .iter()
            .map(|&id| match id == self.id {
                true => self.clock,
                false => self.progress.get(&id).map_or(0, |p| p.acked_clock),
            })
            .collect();
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&quorum_acked) = acked.get(self.membership.quorum() - 1) else {
            return false;
        };
        quorum_acked > self.leader_since_clock
            && self.clock - quorum_acked < lease_ticks.min(self.config.election_ticks)
    }

    /// The index at which a lease read is consistent: the commit index.
    pub fn lease_read_index(&self) -> LogIndex {
        self.log.committed()
    }
}
