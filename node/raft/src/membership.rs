//! Who is in the cluster: voters, learners and their peer addresses.
//!
//! Membership changes one server at a time (Raft dissertation §4.1): adding a learner,
//! promoting a learner, removing a node. Any two consecutive configurations then share a
//! majority, so no joint consensus is needed. A change takes effect when its entry commits,
//! and the leader proposes a new change only after the previous one committed and after it has
//! committed an entry of its own term (the fix for the single-server-change bug Ongaro
//! described on raft-dev in 2015).

use std::collections::{BTreeMap, BTreeSet};

use prost::Message as _;

use super::{LogIndex, NodeId};
use crate::proto::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, SnapshotMetadata};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    voters: BTreeSet<NodeId>,
    learners: BTreeSet<NodeId>,
    addresses: BTreeMap<NodeId, String>,
}

/// Why a membership change cannot be applied to the current configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    #[error("node {0} is not a learner")]
    NotALearner(NodeId),
    #[error("node {0} is not a member")]
    NotAMember(NodeId),
    #[error("removing node {0} would leave no voter")]
    LastVoter(NodeId),
    #[error("node id 0 is reserved")]
    ZeroId,
}

impl Membership {
    pub fn new(
        voters: impl IntoIterator<Item = NodeId>,
        learners: impl IntoIterator<Item = NodeId>,
        addresses: BTreeMap<NodeId, String>,
    ) -> Self {
        Self {
            voters: voters.into_iter().collect(),
            learners: learners.into_iter().collect(),
            addresses,
        }
    }

    pub fn from_conf_state(conf: &ConfState, addresses: BTreeMap<NodeId, String>) -> Self {
        Self::new(
            conf.voters.iter().copied(),
            conf.learners.iter().copied(),
            addresses,
        )
    }

    pub fn conf_state(&self) -> ConfState {
        ConfState {
            voters: self.voters.iter().copied().collect(),
            learners: self.learners.iter().copied().collect(),
        }
    }

    pub fn voters(&self) -> &BTreeSet<NodeId> {
        &self.voters
    }

    pub fn learners(&self) -> &BTreeSet<NodeId> {
        &self.learners
    }

    pub fn addresses(&self) -> &BTreeMap<NodeId, String> {
        &self.addresses
    }

    pub fn address(&self, id: NodeId) -> Option<&str> {
        self.addresses.get(&id).map(String::as_str)
    }

    pub fn is_voter(&self, id: NodeId) -> bool {
        self.voters.contains(&id)
    }

    pub fn is_learner(&self, id: NodeId) -> bool {
        self.learners.contains(&id)
    }

    pub fn contains(&self, id: NodeId) -> bool {
        self.is_voter(id) || self.is_learner(id)
    }

    /// Every member, voters and learners.
    pub fn members(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.voters.iter().chain(self.learners.iter()).copied()
    }

    /// The number of votes that make a majority of the voters.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Whether the voters in `granted` form a majority.
    pub fn has_quorum<'a>(&self, granted: impl IntoIterator<Item = &'a NodeId>) -> bool {
        granted
            .into_iter()
            .filter(|id| self.voters.contains(id))
            .count()
            >= self.quorum()
    }

    /// The highest index held by a majority of voters, given each voter's match index.
    pub fn committed_index(&self, match_index: impl Fn(NodeId) -> u64) -> u64 {
        let mut matched: Vec<u64> = self.voters.iter().map(|&id| match_index(id)).collect();
        if matched.is_empty() {
            return 0;
        }
        matched.sort_unstable_by(|a, b| b.cmp(a));
        matched[self.quorum() - 1]
    }

    /// Checks a change against this configuration without applying it.
    pub fn check(&self, change: &ConfChange) -> Result<(), MembershipError> {
        let id = change.node_id;
        if id == 0 {
            return Err(MembershipError::ZeroId);
        }
        match change.change_type() {
            ConfChangeType::AddLearner if self.contains(id) => {
                Err(MembershipError::AlreadyMember(id))
            }
            ConfChangeType::AddLearner => Ok(()),
            ConfChangeType::PromoteLearner if !self.is_learner(id) => {
                Err(MembershipError::NotALearner(id))
            }
            ConfChangeType::PromoteLearner => Ok(()),
            ConfChangeType::RemoveNode if !self.contains(id) => {
                Err(MembershipError::NotAMember(id))
            }
            ConfChangeType::RemoveNode if self.is_voter(id) && self.voters.len() == 1 => {
                Err(MembershipError::LastVoter(id))
            }
            ConfChangeType::RemoveNode => Ok(()),
        }
    }

    /// Applies a change. A change that does not fit is ignored and reported, so that every
    /// replica, applying the same committed log, ends in the same configuration.
    pub fn apply(&mut self, change: &ConfChange) -> Result<(), MembershipError> {
        self.check(change)?;
        let id = change.node_id;
        match change.change_type() {
            ConfChangeType::AddLearner => {
                self.learners.insert(id);
                self.addresses.insert(id, change.address.clone());
            }
            ConfChangeType::PromoteLearner => {
                self.learners.remove(&id);
                self.voters.insert(id);
            }
            ConfChangeType::RemoveNode => {
                self.voters.remove(&id);
                self.learners.remove(&id);
                self.addresses.remove(&id);
            }
        }
        Ok(())
    }

    /// The configuration a snapshot records: the one in force at its index.
    pub fn of_snapshot(meta: &SnapshotMetadata) -> Self {
        Self::from_conf_state(
            &meta.conf_state.clone().unwrap_or_default(),
            meta.addresses.clone().into_iter().collect(),
        )
    }

    /// Applies the membership change `entry` carries, if it is a membership entry; returns
    /// the change applied. A change that does not fit, or cannot be decoded, is ignored (and
    /// logged) the same way on every replica.
    pub fn apply_entry(&mut self, entry: &Entry) -> Option<ConfChange> {
        if entry.entry_type() != EntryType::ConfChange {
            return None;
        }
        match ConfChange::decode(entry.data.as_ref()) {
            Ok(change) => match self.apply(&change) {
                Ok(()) => Some(change),
                Err(e) => {
                    tracing::warn!(index = entry.index, error = %e, "membership change ignored");
                    None
                }
            },
            Err(e) => {
                tracing::error!(index = entry.index, error = %e, "undecodable membership change");
                None
            }
        }
    }

    /// The configuration after `entries` (which follow `snapshot` in the log), with the
    /// index of the latest membership entry among them (the snapshot's index if none): the
    /// one replay of the log's configurations that the core, recovery and the replica share.
    pub fn replay<'a>(
        snapshot: &SnapshotMetadata,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> (Self, LogIndex) {
        let mut membership = Self::of_snapshot(snapshot);
        let mut conf_index = snapshot.index;
        for entry in entries {
            if entry.entry_type() == EntryType::ConfChange {
                conf_index = entry.index;
                membership.apply_entry(entry);
            }
        }
        (membership, conf_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(change_type: ConfChangeType, node_id: NodeId) -> ConfChange {
        ConfChange {
            change_type: change_type as i32,
            node_id,
            address: format!("n{node_id}:2380"),
        }
    }

    #[test]
    fn quorum_and_commit_index_follow_the_voters() {
        let m = Membership::new([1, 2, 3], [4], BTreeMap::new());
        assert_eq!(m.quorum(), 2);
        assert!(!m.has_quorum(&[1, 4, 9]));
        assert!(m.has_quorum(&[1, 3]));
        // Learner 4 holds everything but does not count.
        let matched = |id| match id {
            1 => 10,
            2 => 7,
            3 => 5,
            _ => 100,
        };
        assert_eq!(m.committed_index(matched), 7);
    }

    #[test]
    fn learner_lifecycle_and_refusals() {
        let mut m = Membership::new([1], [], BTreeMap::new());
        assert_eq!(
            m.apply(&change(ConfChangeType::PromoteLearner, 2)),
            Err(MembershipError::NotALearner(2))
        );
        m.apply(&change(ConfChangeType::AddLearner, 2)).unwrap();
        assert_eq!(
            m.apply(&change(ConfChangeType::AddLearner, 2)),
            Err(MembershipError::AlreadyMember(2))
        );
        assert!(m.is_learner(2));
        assert_eq!(m.address(2), Some("n2:2380"));
        m.apply(&change(ConfChangeType::PromoteLearner, 2)).unwrap();
        assert!(m.is_voter(2));
        m.apply(&change(ConfChangeType::RemoveNode, 1)).unwrap();
        assert_eq!(
            m.apply(&change(ConfChangeType::RemoveNode, 2)),
            Err(MembershipError::LastVoter(2))
        );
        assert_eq!(m.voters().iter().copied().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn replay_starts_from_the_snapshot_and_skips_what_does_not_fit() {
        let snapshot = SnapshotMetadata {
            index: 10,
            term: 2,
            conf_state: Some(ConfState {
                voters: vec![1],
                learners: vec![],
            }),
            addresses: [(1, "n1:2380".to_string())].into_iter().collect(),
        };
        let entry = |index, data: Vec<u8>, entry_type: EntryType| Entry {
            index,
            term: 2,
            entry_type: entry_type as i32,
            data: data.into(),
        };
        let conf = |index, c: ConfChange| entry(index, c.encode_to_vec(), EntryType::ConfChange);
        let entries = [
            conf(11, change(ConfChangeType::AddLearner, 2)),
            entry(12, b"a write".to_vec(), EntryType::Command),
            // Promoting a node that is no learner does not fit: ignored on every replica.
            conf(13, change(ConfChangeType::PromoteLearner, 3)),
            conf(14, change(ConfChangeType::PromoteLearner, 2)),
            entry(15, b"another".to_vec(), EntryType::Command),
        ];
        let (membership, conf_index) = Membership::replay(&snapshot, &entries);
        assert_eq!(
            membership.voters().iter().copied().collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(membership.address(2), Some("n2:2380"));
        assert_eq!(conf_index, 14);
        let (unchanged, conf_index) = Membership::replay(&snapshot, &entries[1..2]);
        assert_eq!(unchanged, Membership::of_snapshot(&snapshot));
        assert_eq!(conf_index, 10);
    }
}
