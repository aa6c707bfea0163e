//! The invariants, checked after every simulated event (Raft paper, figure 3).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use dengine_raft::proto::Entry;
use dengine_raft::{LogIndex, NodeId, Raft, Role, Term};

use super::SimNode;

#[derive(Default)]
pub struct Checker {
    /// Election Safety: at most one leader per term.
    leaders: BTreeMap<Term, NodeId>,
    /// Log Matching: an (index, term) pair names one entry, whoever holds it.
    entries: HashMap<(LogIndex, Term), (i32, Vec<u8>)>,
    /// State Machine Safety: the one sequence of committed entries every node applies.
    committed: BTreeMap<LogIndex, (Term, i32, Vec<u8>)>,
    /// Per node: the last index it applied, so application is gap-free and in order.
    applied: BTreeMap<NodeId, LogIndex>,
    /// Acknowledged writes in acknowledgement order, with their log index.
    acked: Vec<(u64, LogIndex)>,
}

impl Checker {
    pub fn observe_role(&mut self, id: NodeId, role: Role, term: Term, raft: &Raft) {
        if role != Role::Leader {
            return;
        }
        if let Some(&other) = self.leaders.get(&term) {
            assert_eq!(
                other, id,
                "election safety: nodes {other} and {id} both lead term {term}"
            );
        }
        self.leaders.insert(term, id);
        // Leader Completeness: a new leader holds every entry committed so far.
        let log = raft.log();
        for (&index, (entry_term, _, data)) in self.committed.range(log.first_index()..) {
            let entry = log.entry(index).unwrap_or_else(|| {
                panic!(
                    "leader completeness: leader {id} of term {term} lacks committed entry {index}"
                )
            });
            assert!(
                entry.term == *entry_term && entry.data.as_ref() == data.as_slice(),
                "leader completeness: leader {id} of term {term} has a different entry at {index}"
            );
        }
    }

    pub fn check_single_leader_per_term(&mut self, nodes: &BTreeMap<NodeId, SimNode>) {
        for node in nodes.values() {
            if let Some(raft) = &node.raft {
                if raft.role() == Role::Leader {
                    let term = raft.term();
                    let leader = *self.leaders.entry(term).or_insert(node.id);
                    assert_eq!(
                        leader, node.id,
                        "election safety: two leaders in term {term}"
                    );
                }
            }
        }
    }

    pub fn observe_persisted(&mut self, id: NodeId, entries: &[Entry]) {
        for e in entries {
            let key = (e.index, e.term);
            let value = (e.entry_type, e.data.to_vec());
            match self.entries.get(&key) {
                Some(existing) => assert_eq!(
                    existing, &value,
                    "log matching: node {id} holds a different entry at index {} term {}",
                    e.index, e.term
                ),
                None => {
                    self.entries.insert(key, value);
                }
            }
        }
    }

    pub fn observe_applied(&mut self, id: NodeId, e: &Entry) {
        let last = self.applied.get(&id).copied().unwrap_or(0);
        assert_eq!(
            e.index,
            last + 1,
            "node {id} applied {} after {last}",
            e.index
        );
        self.applied.insert(id, e.index);
        let value = (e.term, e.entry_type, e.data.to_vec());
        match self.committed.get(&e.index) {
            Some(existing) => assert_eq!(
                existing, &value,
                "state machine safety: node {id} applied a different entry at {}",
                e.index
            ),
            None => {
                self.committed.insert(e.index, value);
            }
        }
    }

    pub fn node_restarted(&mut self, id: NodeId, snapshot_index: LogIndex) {
        self.applied.insert(id, snapshot_index);
    }

    /// Every node's committed prefix agrees with the global committed sequence.
    pub fn check_node(&self, node: &SimNode) {
        let Some(raft) = &node.raft else { return };
        let log = raft.log();
        let from = log.first_index().max(log.committed().saturating_sub(8));
        for index in from..=log.committed() {
            if let (Some(entry), Some((term, kind, data))) =
                (log.entry(index), self.committed.get(&index))
            {
                assert!(
                    entry.term == *term
                        && entry.entry_type == *kind
                        && entry.data.as_ref() == data.as_slice(),
                    "state machine safety: node {} committed a different entry at {index}",
                    node.id
                );
            }
        }
    }

    pub fn acknowledge(&mut self, write: u64, index: LogIndex) {
        self.acked.push((write, index));
    }

    pub fn acked_writes(&self) -> impl Iterator<Item = u64> + '_ {
        self.acked.iter().map(|(w, _)| *w)
    }

    /// The log index an acknowledged write was committed at.
    pub fn acked_index(&self, write: u64) -> LogIndex {
        self.acked
            .iter()
            .find(|(w, _)| *w == write)
            .map_or(0, |(_, index)| *index)
    }

    /// How many writes were acknowledged so far (a read started now must see them all).
    pub fn acked_max_index(&self) -> usize {
        self.acked.len()
    }

    /// Linearizable reads: a read sees every write acknowledged before it started.
    pub fn check_read(&self, writes: &BTreeSet<u64>, acked_before: usize) {
        for (write, index) in &self.acked[..acked_before] {
            assert!(
                writes.contains(write),
                "linearizability: a read-index read missed write {write} (index {index}) acknowledged before it began"
            );
        }
    }
}
