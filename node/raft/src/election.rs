//! Roles and elections (Raft §5.2, pre-vote §9.6, leadership transfer §3.10).

use bytes::Bytes;

use super::core::Raft;
use super::progress::Progress;
use super::{NodeId, Role, Term, TRANSFER_CONTEXT};
use crate::proto::{EntryType, Message, MessageType};

impl Raft {
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed = 0;
        let base = self.config.election_ticks;
        self.randomized_election_timeout = self.rng.range(base, 2 * base);
    }

    fn reset(&mut self, term: Term) {
        if term != self.term {
            self.term = term;
            self.vote = 0;
            self.timeout_now_sent = false;
        }
        self.may_have_promised_a_lease = false;
        self.leader = 0;
        self.reset_election_timer();
        self.heartbeat_elapsed = 0;
        self.votes.clear();
        self.progress.clear();
        self.transfer_target = None;
        self.broadcast_pending = false;
        // Reads this node was confirming as leader can no longer be confirmed.
        self.failed_reads
            .append(&mut self.reads_before_first_commit);
        self.failed_reads
            .extend(self.pending_reads.drain(..).map(|read| read.request));
    }

    pub(super) fn become_follower(&mut self, term: Term, leader: NodeId) {
        self.reset(term);
        self.role = Role::Follower;
        self.leader = leader;
    }

    fn become_pre_candidate(&mut self) {
        // The term and vote stay as they are: a pre-vote that fails must leave no trace.
        self.reset(self.term);
        self.role = Role::PreCandidate;
    }

    fn become_candidate(&mut self) {
        self.reset(self.term + 1);
        self.vote = self.id;
        self.role = Role::Candidate;
    }

    pub(super) fn become_leader(&mut self) {
        self.reset(self.term);
        self.role = Role::Leader;
        self.leader = self.id;
        self.leader_since_clock = self.clock;
        let next = self.log.last_index() + 1;
        for id in self.membership.members().collect::<Vec<_>>() {
            self.progress
                .insert(id, Progress::new(next, self.config.max_inflight));
        }
        if let Some(own) = self.progress.get_mut(&self.id) {
            own.maybe_update(self.log.stable());
            own.become_replicate();
            own.recent_active = true;
        }
        // §8: a leader commits an entry of its own term to learn the commit index; until that
        // no-op commits, no membership change may be proposed (the single-server change fix).
        let (index, _) = self.append_entry(EntryType::Empty, Bytes::new());
        self.pending_conf_index = index;
        tracing::info!(id = self.id, term = self.term, "became leader");
    }

    /// Starts a (pre-)election. A transfer skips pre-vote: the old leader asked for it.
    pub(super) fn campaign(&mut self, transfer: bool) {
        let pre_vote = self.config.pre_vote && !transfer;
        let (vote_type, term) = if pre_vote {
            self.become_pre_candidate();
            (MessageType::PreVote, self.term + 1)
        } else {
            self.become_candidate();
            (MessageType::Vote, self.term)
        };
        self.votes.insert(self.id, true);
        if self.election_won() {
            // A single voter wins at once.
            self.win_round();
            return;
        }
        let context = if transfer {
            Bytes::from_static(TRANSFER_CONTEXT)
        } else {
            Bytes::new()
        };
        let me = self.id;
        let voters: Vec<NodeId> = self.membership.voters().iter().copied().collect();
        for to in voters.into_iter().filter(|&id| id != me) {
            self.send(Message {
                msg_type: vote_type as i32,
                to,
                term,
                index: self.log.last_index(),
                log_term: self.log.last_term(),
                context: context.clone(),
                ..Default::default()
            });
        }
    }

    fn election_won(&self) -> bool {
        let granted = self.votes.iter().filter(|(_, &g)| g).map(|(id, _)| id);
        self.membership.has_quorum(granted)
    }

    fn election_lost(&self) -> bool {
        let refused = self.votes.iter().filter(|(_, &g)| !g).map(|(id, _)| id);
        self.membership.has_quorum(refused)
    }

    fn win_round(&mut self) {
        if self.role == Role::PreCandidate {
            self.campaign_after_pre_vote();
        } else {
            self.become_leader();
        }
    }

    fn campaign_after_pre_vote(&mut self) {
        self.become_candidate();
        self.votes.insert(self.id, true);
        if self.election_won() {
            self.become_leader();
            return;
        }
        let me = self.id;
        let voters: Vec<NodeId> = self.membership.voters().iter().copied().collect();
        for to in voters.into_iter().filter(|&id| id != me) {
            self.send(Message {
                msg_type: MessageType::Vote as i32,
                to,
                index: self.log.last_index(),
                log_term: self.log.last_term(),
                ..Default::default()
            });
        }
    }

    /// Raft §5.2 and §5.4.1: grant a vote to a candidate whose log is at least as up to date,
    /// at most one per term. A pre-vote is granted on the same grounds without recording
    /// anything.
    pub(super) fn handle_vote_request(&mut self, m: Message) {
        let pre_vote = m.msg_type() == MessageType::PreVote;
        let response_type = if pre_vote {
            MessageType::PreVoteResponse
        } else {
            MessageType::VoteResponse
        };
        let can_vote = !self.config.awaiting_admission
            && (self.vote == m.from
                || (self.vote == 0 && self.leader == 0)
                || (pre_vote && m.term > self.term));
        if can_vote && self.log.is_up_to_date(m.index, m.log_term) {
            // A granted pre-vote answers in the candidate's future term, so the candidate can
            // tell it apart from stale answers.
            self.send(Message {
                msg_type: response_type as i32,
                to: m.from,
                term: m.term,
                ..Default::default()
            });
            if !pre_vote {
                self.election_elapsed = 0;
                self.vote = m.from;
            }
        } else {
            self.send(Message {
                msg_type: response_type as i32,
                to: m.from,
                term: self.term,
                reject: true,
                ..Default::default()
            });
        }
    }

    pub(super) fn step_candidate(&mut self, m: Message) {
        let expected = if self.role == Role::PreCandidate {
            MessageType::PreVoteResponse
        } else {
            MessageType::VoteResponse
        };
        match m.msg_type() {
            MessageType::Append => {
                self.become_follower(m.term, m.from);
                self.handle_append(m);
            }
            MessageType::Heartbeat => {
                self.become_follower(m.term, m.from);
                self.handle_heartbeat(m);
            }
            MessageType::Snapshot => {
                self.become_follower(m.term, m.from);
                self.handle_snapshot(m);
            }
            kind if kind == expected => {
                self.votes.entry(m.from).or_insert(!m.reject);
                if self.election_won() {
                    self.win_round();
                } else if self.election_lost() {
                    self.become_follower(self.term, 0);
                }
            }
            _ => {}
        }
    }

    pub(super) fn send_timeout_now(&mut self, to: NodeId) {
        // The target may campaign whenever this arrives, even after the transfer was given up,
        // and voters grant a transfer's votes whatever lease they promised: no lease is safe
        // for the rest of this term.
        self.timeout_now_sent = true;
        self.send(Message {
            msg_type: MessageType::TimeoutNow as i32,
            to,
            ..Default::default()
        });
    }

    /// A leader transferring to us asked us to start an election now.
    pub(super) fn handle_timeout_now(&mut self) {
        if self.promotable() {
            self.campaign(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{ConfChange, ConfChangeType, Entry, EntryType, HardState, SnapshotMetadata};
    use crate::Config;
    use prost::Message as _;

    fn joined_empty(id: NodeId, entries: Vec<Entry>) -> Raft {
        let mut config = Config::new(id);
        config.awaiting_admission = true;
        let commit = entries.len() as u64;
        let hard_state = HardState {
            term: 1,
            vote: 0,
            commit,
        };
        Raft::new(
            config,
            hard_state,
            SnapshotMetadata::default(),
            entries,
            0,
            1,
        )
    }

    fn vote_request(from: NodeId, term: Term) -> Message {
        Message {
            msg_type: MessageType::Vote as i32,
            from,
            to: 3,
            term,
            index: 100,
            log_term: 5,
            // Forced, as in a transfer: refused for admission, not for a lease.
            context: Bytes::from_static(TRANSFER_CONTEXT),
            ..Default::default()
        }
    }

    #[test]
    fn a_node_that_lost_its_disk_does_not_vote_under_its_old_voter_id() {
        // Founded as {1, 2, 3}; node 3 comes back empty and replays the founding entries,
        // which once made it a learner, but the latest configuration says voter.
        let founding =
            Raft::bootstrap_entries(&[(1, "a".into()), (2, "b".into()), (3, "c".into())]);
        let mut raft = joined_empty(3, founding.clone());
        assert!(raft.membership().is_voter(3));
        assert!(raft.awaiting_admission());
        raft.step(vote_request(1, 2));
        let ready = raft.ready();
        let answer = ready
            .messages_after_persist
            .iter()
            .find(|m| m.msg_type() == MessageType::VoteResponse)
            .expect("an answer");
        assert!(
            answer.reject,
            "it must not grant a vote it may already have given"
        );
        for _ in 0..100 {
            raft.tick();
        }
        assert_ne!(raft.role(), Role::Candidate);
        assert_ne!(raft.role(), Role::PreCandidate);

        // Even a log whose latest configuration lists it as a learner does not admit it: only
        // the leader can say that configuration is the current one (see tests/admission.rs).
        let mut entries = founding;
        for (kind, index) in [
            (ConfChangeType::RemoveNode, 7),
            (ConfChangeType::AddLearner, 8),
        ] {
            let change = ConfChange {
                change_type: kind as i32,
                node_id: 3,
                address: "c".into(),
            };
            entries.push(Entry {
                term: 1,
                index,
                entry_type: EntryType::ConfChange as i32,
                data: change.encode_to_vec().into(),
            });
        }
        let raft = joined_empty(3, entries);
        assert!(raft.membership().is_learner(3));
        assert!(raft.awaiting_admission());
    }
}
