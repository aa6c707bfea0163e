//! A network of Raft cores for the core's own tests, in the style of etcd-io/raft's
//! `network`: every node is driven by the `Ready` contract, messages go through one queue that a
//! test can cut, hold back or deliver step by step, and each node keeps what it persisted so it
//! can be restarted (or emptied, as after a lost disk).
//!
//! Time is explicit: nothing ticks unless the test says so.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;

use crate::proto::{ConfChange, ConfChangeType, Entry, HardState, Message, SnapshotMetadata};
use crate::{Config, LogIndex, NodeId, Raft, Role};

/// What a node persisted: enough to restart it.
#[derive(Debug, Clone, Default)]
pub(super) struct Disk {
    pub hard_state: HardState,
    pub snapshot: SnapshotMetadata,
    pub entries: Vec<Entry>,
    pub awaiting_admission: bool,
}

/// Which messages a test holds back.
type HoldIf = dyn Fn(&Message) -> bool;

pub(super) struct Net {
    pub nodes: BTreeMap<NodeId, Raft>,
    pub disks: BTreeMap<NodeId, Disk>,
    /// Messages sent and not yet delivered, oldest first.
    pub queue: VecDeque<Message>,
    /// Directed links that drop everything: (from, to).
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Messages a test chose to hold back, to deliver later (or never).
    pub held: Vec<Message>,
    hold_if: Option<Box<HoldIf>>,
    restarts: u64,
    /// When set, every message taken off the queue is described here, as it happens.
    pub trace: Option<Vec<String>>,
}

pub(super) fn config(id: NodeId) -> Config {
    let mut config = Config::new(id);
    config.max_append_entries = 16;
    config
}

impl Net {
    /// A cluster founded by `ids`, all voters, all up, nobody leading yet.
    pub fn founding(ids: &[NodeId]) -> Self {
        let members: Vec<(NodeId, String)> = ids.iter().map(|&id| (id, format!("n{id}"))).collect();
        let entries = Raft::bootstrap_entries(&members);
        let mut net = Self {
            nodes: BTreeMap::new(),
            disks: BTreeMap::new(),
            queue: VecDeque::new(),
            cut: BTreeSet::new(),
            held: Vec::new(),
            hold_if: None,
            restarts: 0,
            trace: None,
        };
        for &id in ids {
            let disk = Disk {
                hard_state: HardState {
                    term: 1,
                    vote: 0,
                    commit: entries.len() as u64,
                },
                entries: entries.clone(),
                ..Default::default()
            };
            net.disks.insert(id, disk);
            net.boot(id);
        }
        net
    }

    fn boot(&mut self, id: NodeId) {
        let disk = self.disks[&id].clone();
        let mut config = config(id);
        config.awaiting_admission = disk.awaiting_admission;
        self.restarts += 1;
        let raft = Raft::new(
            config,
            disk.hard_state,
            disk.snapshot.clone(),
            disk.entries.clone(),
            disk.snapshot.index,
            self.restarts,
        );
        self.nodes.insert(id, raft);
    }

    /// Restarts `id` from what it persisted: everything volatile is forgotten.
    pub fn restart(&mut self, id: NodeId) {
        self.boot(id);
    }

    /// Replaces `id` by a node with an empty disk that joins under the same id and waits to be
    /// admitted (its disk was lost).
    pub fn empty_and_rejoin(&mut self, id: NodeId) {
        self.disks.insert(
            id,
            Disk {
                awaiting_admission: true,
                ..Default::default()
            },
        );
        self.boot(id);
    }

    pub fn node(&self, id: NodeId) -> &Raft {
        &self.nodes[&id]
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut Raft {
        self.nodes.get_mut(&id).expect("no such node")
    }

    /// Drops every message in both directions between `id` and everyone else.
    pub fn isolate(&mut self, id: NodeId) {
        let others: Vec<NodeId> = self.nodes.keys().copied().filter(|&o| o != id).collect();
        for other in others {
            self.cut.insert((id, other));
            self.cut.insert((other, id));
        }
    }

    /// Drops every message from `from` to `to` from now on.
    pub fn cut(&mut self, from: NodeId, to: NodeId) {
        self.cut.insert((from, to));
    }

    pub fn heal(&mut self) {
        self.cut.clear();
    }

    /// Holds back every message matching `predicate` in [`Net::held`] instead of delivering it.
    pub fn hold(&mut self, predicate: impl Fn(&Message) -> bool + 'static) {
        self.hold_if = Some(Box::new(predicate));
    }

    pub fn stop_holding(&mut self) {
        self.hold_if = None;
    }

    /// Carries out `id`'s pending `Ready`s, persisting what they say and queueing their
    /// messages in the contract's order.
    pub fn process(&mut self, id: NodeId) {
        loop {
            let raft = self.nodes.get_mut(&id).expect("no such node");
            if !raft.has_ready() {
                return;
            }
            let ready = raft.ready();
            self.queue.extend(ready.messages);
            let disk = self.disks.get_mut(&id).expect("a disk per node");
            if let Some(snapshot) = ready.snapshot {
                disk.snapshot = snapshot.metadata.unwrap_or_default();
                disk.entries.clear();
            }
            if let Some(first) = ready.entries.first() {
                let first = first.index;
                disk.entries.retain(|e| e.index < first);
                disk.entries.extend(ready.entries);
            }
            if let Some(hard_state) = ready.hard_state {
                disk.hard_state = hard_state;
            }
            disk.awaiting_admission = raft.awaiting_admission();
            self.queue.extend(ready.messages_after_persist);
            raft.advance();
        }
    }

    pub fn process_all(&mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.process(id);
        }
    }

    /// Delivers the oldest queued message (unless its link is cut or it is held back) and
    /// carries out what its receiver does with it. Returns false when the queue was empty.
    pub fn deliver_one(&mut self) -> bool {
        let Some(message) = self.queue.pop_front() else {
            return false;
        };
        if self.cut.contains(&(message.from, message.to)) {
            self.note(format!("{} (dropped: link cut)", describe(&message)));
            return true;
        }
        if self.hold_if.as_ref().is_some_and(|hold| hold(&message)) {
            self.note(format!("{} (held back)", describe(&message)));
            self.held.push(message);
            return true;
        }
        self.note(describe(&message));
        let to = message.to;
        if let Some(raft) = self.nodes.get_mut(&to) {
            raft.step(message);
            self.process(to);
        }
        true
    }

    fn note(&mut self, line: String) {
        if let Some(trace) = &mut self.trace {
            trace.push(line);
        }
    }

    /// Delivers messages until nothing is left to send.
    pub fn stabilize(&mut self) {
        self.process_all();
        for _ in 0..100_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    /// Delivers `message` now, whatever the cuts and holds say, then stabilizes.
    pub fn deliver_now(&mut self, message: Message) {
        let to = message.to;
        self.node_mut(to).step(message);
        self.process(to);
        self.stabilize();
    }

    /// One tick on every node, then everything that follows from it.
    pub fn tick_all(&mut self) {
        for raft in self.nodes.values_mut() {
            raft.tick();
        }
        self.stabilize();
    }

    pub fn tick(&mut self, id: NodeId) {
        self.node_mut(id).tick();
        self.stabilize();
    }

    /// Makes `id` campaign at once, as a leadership transfer does (votes granted whatever
    /// leases the voters hold), and lets the election run to its end.
    pub fn elect(&mut self, id: NodeId) {
        self.node_mut(id).campaign(true);
        self.stabilize();
        assert_eq!(self.node(id).role(), Role::Leader, "node {id} did not win");
    }

    /// Proposes a command on `id` and returns its index.
    pub fn propose(&mut self, id: NodeId, data: &str) -> LogIndex {
        let (index, _) = self
            .node_mut(id)
            .propose(Bytes::copy_from_slice(data.as_bytes()))
            .expect("the proposal is accepted");
        self.stabilize();
        index
    }

    pub fn propose_change(&mut self, id: NodeId, kind: ConfChangeType, node: NodeId) -> LogIndex {
        let change = ConfChange {
            change_type: kind as i32,
            node_id: node,
            address: format!("n{node}"),
        };
        let (index, _) = self
            .node_mut(id)
            .propose_conf_change(change)
            .expect("the change is accepted");
        self.stabilize();
        index
    }

    /// The nodes that believe they lead, with their terms.
    pub fn leaders(&self) -> Vec<(NodeId, u64)> {
        self.nodes
            .iter()
            .filter(|(_, r)| r.role() == Role::Leader)
            .map(|(&id, r)| (id, r.term()))
            .collect()
    }
}

/// One message on one line, in the style of etcd-io/raft's interaction tests:
/// `1->2 Append term=2 log=2/5 commit=5 entries=[2/6 2/7]`.
pub(super) fn describe(m: &Message) -> String {
    use crate::proto::MessageType as T;
    let kind = match m.msg_type() {
        T::Unspecified => "Unspecified",
        T::PreVote => "PreVote",
        T::PreVoteResponse => "PreVoteResponse",
        T::Vote => "Vote",
        T::VoteResponse => "VoteResponse",
        T::Append => "Append",
        T::AppendResponse => "AppendResponse",
        T::Heartbeat => "Heartbeat",
        T::HeartbeatResponse => "HeartbeatResponse",
        T::Snapshot => "Snapshot",
        T::SnapshotResponse => "SnapshotResponse",
        T::TimeoutNow => "TimeoutNow",
    };
    let mut line = format!("{}->{} {kind} term={}", m.from, m.to, m.term);
    match m.msg_type() {
        T::Append | T::Vote | T::PreVote => {
            line.push_str(&format!(" log={}/{}", m.log_term, m.index))
        }
        T::AppendResponse | T::HeartbeatResponse | T::SnapshotResponse => {
            line.push_str(&format!(" index={}", m.index))
        }
        _ => {}
    }
    if matches!(m.msg_type(), T::Append | T::Heartbeat) {
        line.push_str(&format!(" commit={}", m.commit));
    }
    if m.reject {
        line.push_str(&format!(
            " rejected (hint {}/{})",
            m.hint_term, m.reject_hint
        ));
    }
    if !m.entries.is_empty() {
        let entries: Vec<String> = m
            .entries
            .iter()
            .map(|e| format!("{}/{}", e.term, e.index))
            .collect();
        line.push_str(&format!(" entries=[{}]", entries.join(" ")));
    }
    if let Some(meta) = m.snapshot.as_ref().and_then(|s| s.metadata.as_ref()) {
        line.push_str(&format!(" snapshot={}/{}", meta.term, meta.index));
    }
    line
}
