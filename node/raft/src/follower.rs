//! The receiving side of replication: appends, heartbeats and snapshots (Raft figure 2).

use super::core::Raft;
use crate::proto::{EntryType, Message, MessageType};

impl Raft {
    pub(super) fn step_follower(&mut self, m: Message) {
        match m.msg_type() {
            MessageType::Append => {
                self.election_elapsed = 0;
                self.leader = m.from;
                self.handle_append(m);
            }
            MessageType::Heartbeat => {
                self.election_elapsed = 0;
                self.leader = m.from;
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.election_elapsed = 0;
                self.leader = m.from;
                self.handle_snapshot(m);
            }
            MessageType::TimeoutNow => self.handle_timeout_now(),
            _ => {}
        }
    }

    pub(super) fn handle_append(&mut self, m: Message) {
        let committed = self.log.committed();
        if m.index < committed {
            // Everything up to our commit index matches the leader already.
            self.send(Message {
                msg_type: MessageType::AppendResponse as i32,
                to: m.from,
                index: committed,
                ..Default::default()
            });
            return;
        }
        let (prev_index, prev_term, commit, leader_conf_index) =
            (m.index, m.log_term, m.commit, m.conf_index);
        let truncations = self.log.truncations();
        let has_conf_change = m
            .entries
            .iter()
            .any(|e| e.entry_type() == EntryType::ConfChange);
        let appended = self
            .log
            .maybe_append(prev_index, prev_term, commit, m.entries);
        if has_conf_change || self.log.truncations() != truncations {
            self.refresh_membership();
        }
        if let Some(last_matching) = appended {
            self.maybe_admit(last_matching, leader_conf_index);
        }
        match appended {
            Some(last_matching) => self.send(Message {
                msg_type: MessageType::AppendResponse as i32,
                to: m.from,
                index: last_matching,
                ..Default::default()
            }),
            None => {
                // Tell the leader where to retry: the last entry at or below the rejected
                // index whose term is no later than the leader's entry there. The leader can
                // then skip a whole conflicting term in one round trip.
                let probe = prev_index.min(self.log.last_index());
                let (hint_index, hint_term) = self.log.find_conflict_by_term(probe, prev_term);
                self.send(Message {
                    msg_type: MessageType::AppendResponse as i32,
                    to: m.from,
                    index: prev_index,
                    reject: true,
                    reject_hint: hint_index,
                    hint_term,
                    ..Default::default()
                });
            }
        }
    }

    pub(super) fn handle_heartbeat(&mut self, m: Message) {
        // The leader never sends a commit index beyond what it knows we hold.
        let commit = m.commit.min(self.log.last_index());
        self.log.commit_to(commit);
        self.send(Message {
            msg_type: MessageType::HeartbeatResponse as i32,
            to: m.from,
            // Where this log ends: a follower that lost its disk says so here.
            index: self.log.last_index(),
            context: m.context,
            clock: m.clock,
            ..Default::default()
        });
    }

    pub(super) fn handle_snapshot(&mut self, m: Message) {
        let Some(snapshot) = m.snapshot else {
            return;
        };
        let meta = snapshot.metadata.clone().unwrap_or_default();
        let index = if meta.index <= self.log.committed() {
            // Old news: we already hold and committed everything it covers.
            self.log.committed()
        } else if self.log.matches(meta.index, meta.term) {
            // We hold the entry the snapshot ends with, so everything up to it matches the
            // leader's log and is committed; keep our log rather than reinstall.
            self.log.commit_to(meta.index);
            meta.index
        } else {
            self.snapshot_meta = meta.clone();
            self.log.restore_snapshot(snapshot);
            self.refresh_membership();
            meta.index
        };
        self.send(Message {
            msg_type: MessageType::AppendResponse as i32,
            to: m.from,
            index,
            ..Default::default()
        });
    }
}
