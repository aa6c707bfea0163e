//! A deterministic simulator for the Raft core.
//!
//! Nodes are [`Raft`] cores driven exactly as the node's event loop drives them (the `Ready`
//! contract), over a simulated network that loses, delays, reorders and duplicates messages and
//! can be partitioned, with disks that keep only what was persisted when a node crashes. Every
//! run is a pure function of its seed. After every event the invariants of the Raft paper
//! (figure 3) are checked, plus "no acknowledged write is lost".

#![allow(dead_code)]

mod checker;
mod node;

use std::collections::{BTreeMap, BTreeSet};

use dengine_raft::proto::{ConfChange, ConfChangeType, Message, MessageType};
use dengine_raft::{NodeId, Rng, Role};

pub use checker::Checker;
pub use node::SimNode;

/// How hostile the world is.
#[derive(Debug, Clone)]
pub struct Faults {
    pub loss: f64,
    pub duplicate: f64,
    pub max_delay: u64,
    /// Chance per step that a node crashes...
    pub crash: f64,
    /// ...of which this share crash at the node's next fsync, before it completes (its
    /// entries and votes lost, nothing that promised them sent). A rate per step, not per
    /// fsync: a leader under load fsyncs many times a tick, and crashing it on a share of them
    /// would keep any leader from living long enough to commit (seed 958 at 1 000 seeds).
    pub crash_at_fsync: f64,
    pub restart: f64,
    pub partition: f64,
    pub heal: f64,
    pub membership_change: f64,
    pub transfer: f64,
}

impl Faults {
    pub fn none() -> Self {
        Self {
            loss: 0.0,
            duplicate: 0.0,
            max_delay: 3,
            crash: 0.0,
            crash_at_fsync: 0.5,
            restart: 0.0,
            partition: 0.0,
            heal: 0.0,
            membership_change: 0.0,
            transfer: 0.0,
        }
    }

    pub fn hostile() -> Self {
        Self {
            loss: 0.05,
            duplicate: 0.03,
            max_delay: 40,
            crash: 0.002,
            crash_at_fsync: 0.5,
            restart: 0.01,
            partition: 0.002,
            heal: 0.004,
            membership_change: 0.003,
            transfer: 0.001,
        }
    }
}

struct InFlight {
    deliver_at: u64,
    seq: u64,
    message: Message,
}

/// One simulated cluster.
pub struct Sim {
    pub seed: u64,
    pub rng: Rng,
    pub now: u64,
    pub nodes: BTreeMap<NodeId, SimNode>,
    network: Vec<InFlight>,
    seq: u64,
    /// Node id to partition group; nodes in different groups cannot talk.
    groups: BTreeMap<NodeId, u8>,
    pub faults: Faults,
    pub checker: Checker,
    next_write: u64,
    next_read: u64,
    next_node_id: NodeId,
    /// Steps between ticks.
    pub tick_every: u64,
    /// The nodes crashes may hit; every node when `None`.
    crashable: Option<BTreeSet<NodeId>>,
}

impl Sim {
    /// A cluster of `voters` founding members (ids 1..=voters).
    pub fn new(seed: u64, voters: u64, faults: Faults) -> Self {
        let members: Vec<(NodeId, String)> =
            (1..=voters).map(|id| (id, format!("n{id}"))).collect();
        let mut nodes = BTreeMap::new();
        for &(id, _) in &members {
            nodes.insert(id, SimNode::founding(id, &members, seed));
        }
        Self {
            seed,
            rng: Rng::new(seed),
            now: 0,
            nodes,
            network: Vec::new(),
            seq: 0,
            groups: BTreeMap::new(),
            faults,
            checker: Checker::default(),
            next_write: 1,
            next_read: 1,
            next_node_id: voters + 1,
            tick_every: 10,
            crashable: None,
        }
    }

    pub fn leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.raft.as_ref().is_some_and(|r| r.role() == Role::Leader))
            .map(|n| n.id)
            .collect()
    }

    /// The leader with the highest term, if any node believes it leads.
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.raft.as_ref().map(|r| (r, n.id)))
            .filter(|(r, _)| r.role() == Role::Leader)
            .max_by_key(|(r, _)| r.term())
            .map(|(_, id)| id)
    }

    fn can_talk(&self, a: NodeId, b: NodeId) -> bool {
        self.groups.get(&a).copied().unwrap_or(0) == self.groups.get(&b).copied().unwrap_or(0)
    }

    pub fn partition(&mut self, group: &[NodeId]) {
        self.groups.clear();
        for &id in group {
            self.groups.insert(id, 1);
        }
    }

    /// From now on crashes hit only `ids`.
    pub fn crash_only(&mut self, ids: &[NodeId]) {
        self.crashable = Some(ids.iter().copied().collect());
    }

    fn may_crash(&self, id: NodeId) -> bool {
        self.crashable.as_ref().is_none_or(|ids| ids.contains(&id))
    }

    pub fn heal(&mut self) {
        self.groups.clear();
    }

    fn enqueue(&mut self, messages: Vec<Message>) {
        for message in messages {
            if !self.can_talk(message.from, message.to) {
                continue;
            }
            if self.rng.chance(self.faults.loss) {
                continue;
            }
            let copies = if self.rng.chance(self.faults.duplicate) {
                2
            } else {
                1
            };
            for _ in 0..copies {
                let delay = self.rng.range(1, self.faults.max_delay.max(1) + 1);
                self.seq += 1;
                self.network.push(InFlight {
                    deliver_at: self.now + delay,
                    seq: self.seq,
                    message: message.clone(),
                });
            }
        }
    }

    /// Runs every node's pending `Ready`s and checks the invariants.
    fn settle(&mut self) {
        loop {
            let mut outgoing = Vec::new();
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            for id in ids {
                let node = self.nodes.get_mut(&id).expect("node exists");
                outgoing.extend(node.process_ready(&mut self.checker));
            }
            for node in self.nodes.values() {
                self.checker.check_node(node);
            }
            if outgoing.is_empty() {
                break;
            }
            self.enqueue(outgoing);
        }
        self.checker.check_single_leader_per_term(&self.nodes);
    }

    /// One step of simulated time.
    pub fn step(&mut self, client_load: bool) {
        self.now += 1;
        if self.now % self.tick_every == 0 {
            for node in self.nodes.values_mut() {
                if let Some(raft) = node.raft.as_mut() {
                    raft.tick();
                }
            }
        }
        let now = self.now;
        let mut due: Vec<InFlight> = Vec::new();
        let mut later = Vec::new();
        for flight in self.network.drain(..) {
            if flight.deliver_at <= now {
                due.push(flight);
            } else {
                later.push(flight);
            }
        }
        self.network = later;
        due.sort_by_key(|f| (f.deliver_at, f.seq));
        for flight in due {
            let mut message = flight.message;
            if !self.can_talk(message.from, message.to) {
                continue;
            }
            if message.msg_type() == MessageType::Snapshot {
                // The transport attaches the sender's stored snapshot, as the real one streams it.
                let Some(sender) = self.nodes.get(&message.from) else {
                    continue;
                };
                let Some(data) = sender.snapshot_data_for(&message) else {
                    continue;
                };
                if let Some(snapshot) = message.snapshot.as_mut() {
                    snapshot.data = data.into();
                }
            }
            if let Some(node) = self.nodes.get_mut(&message.to) {
                if let Some(raft) = node.raft.as_mut() {
                    raft.step(message);
                }
            }
        }
        if client_load {
            self.client_actions();
        }
        self.fault_actions();
        self.settle();
    }

    fn client_actions(&mut self) {
        if self.rng.chance(0.3) {
            if let Some(leader) = self.leader() {
                let write = self.next_write;
                self.next_write += 1;
                let node = self.nodes.get_mut(&leader).expect("leader exists");
                node.propose_write(write);
            }
        }
        if self.rng.chance(0.05) {
            if let Some(leader) = self.leader() {
                let read = self.next_read;
                self.next_read += 1;
                let acked_before = self.checker.acked_max_index();
                let node = self.nodes.get_mut(&leader).expect("leader exists");
                node.start_read(read, acked_before);
            }
        }
    }

    fn random_node(&mut self) -> NodeId {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        ids[self.rng.range(0, ids.len() as u64) as usize]
    }

    fn fault_actions(&mut self) {
        if self.rng.chance(self.faults.crash) {
            let id = self.random_node();
            if self.may_crash(id) {
                let at_fsync = self.rng.chance(self.faults.crash_at_fsync);
                let node = self.nodes.get_mut(&id).expect("exists");
                if at_fsync {
                    node.crash_at_next_fsync = node.raft.is_some();
                } else {
                    node.crash();
                }
            }
        }
        if self.rng.chance(self.faults.restart) {
            let id = self.random_node();
            let node = self.nodes.get_mut(&id).expect("exists");
            if node.raft.is_none() {
                node.restart(&mut self.checker);
            }
        }
        if self.rng.chance(self.faults.partition) {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            let group: Vec<NodeId> = ids.into_iter().filter(|_| self.rng.chance(0.4)).collect();
            self.partition(&group);
        }
        if self.rng.chance(self.faults.heal) {
            self.heal();
        }
        if self.rng.chance(self.faults.membership_change) {
            self.random_membership_change();
        }
        if self.rng.chance(self.faults.transfer) {
            if let Some(leader) = self.leader() {
                let target = self.random_node();
                if let Some(raft) = self.nodes.get_mut(&leader).and_then(|n| n.raft.as_mut()) {
                    let _ = raft.transfer_leadership(target);
                }
            }
        }
    }

    /// Adds a fresh learner, promotes a learner or removes a member, keeping at least three
    /// voters so the run stays interesting.
    fn random_membership_change(&mut self) {
        let Some(leader) = self.leader() else { return };
        let membership = self.nodes[&leader]
            .raft
            .as_ref()
            .expect("leader is up")
            .membership()
            .clone();
        let choice = self.rng.range(0, 3);
        let change = match choice {
            0 if self.nodes.len() < 7 => {
                let id = self.next_node_id;
                self.next_node_id += 1;
                self.nodes.insert(id, SimNode::joining(id, self.seed));
                ConfChange {
                    change_type: ConfChangeType::AddLearner as i32,
                    node_id: id,
                    address: format!("n{id}"),
                }
            }
            1 => match membership.learners().iter().next() {
                Some(&id) => ConfChange {
                    change_type: ConfChangeType::PromoteLearner as i32,
                    node_id: id,
                    address: String::new(),
                },
                None => return,
            },
            _ => {
                let voters: Vec<NodeId> = membership.voters().iter().copied().collect();
                if voters.len() <= 3 {
                    return;
                }
                let id = voters[self.rng.range(0, voters.len() as u64) as usize];
                ConfChange {
                    change_type: ConfChangeType::RemoveNode as i32,
                    node_id: id,
                    address: String::new(),
                }
            }
        };
        if let Some(raft) = self.nodes.get_mut(&leader).and_then(|n| n.raft.as_mut()) {
            let _ = raft.propose_conf_change(change);
        }
    }

    /// Has node `leader` propose a membership change; returns its log index.
    pub fn propose_conf_change(
        &mut self,
        leader: NodeId,
        kind: ConfChangeType,
        node_id: NodeId,
    ) -> u64 {
        let change = ConfChange {
            change_type: kind as i32,
            node_id,
            address: format!("n{node_id}"),
        };
        let raft = self
            .nodes
            .get_mut(&leader)
            .and_then(|n| n.raft.as_mut())
            .expect("leader is up");
        let (index, _) = raft
            .propose_conf_change(change)
            .unwrap_or_else(|e| panic!("seed {}: {e}", self.seed));
        index
    }

    /// Runs `steps` steps of the given world.
    pub fn run(&mut self, steps: u64, client_load: bool) {
        for _ in 0..steps {
            self.step(client_load);
        }
    }

    /// Heals everything, restarts every crashed node and runs until every member has applied
    /// the same, latest entries; then checks that no acknowledged write is missing from them.
    /// Panics (with the seed) if that does not happen in time.
    pub fn converge(&mut self, max_steps: u64) {
        self.run_until_converged(max_steps);
        self.assert_no_acknowledged_write_lost();
    }

    fn run_until_converged(&mut self, max_steps: u64) {
        self.faults = Faults::none();
        self.heal();
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let node = self.nodes.get_mut(&id).expect("exists");
            node.crash_at_next_fsync = false;
            if node.raft.is_none() {
                node.restart(&mut self.checker);
            }
        }
        for step in 0..max_steps {
            self.step(false);
            // A write in the final term makes the leader commit everything before it.
            if step % 200 == 100 {
                if let Some(leader) = self.leader() {
                    let write = self.next_write;
                    self.next_write += 1;
                    self.nodes
                        .get_mut(&leader)
                        .expect("exists")
                        .propose_write(write);
                }
            }
            if self.converged() {
                return;
            }
        }
        panic!(
            "seed {}: cluster did not converge within {max_steps} steps after healing; leaders {:?}; {}",
            self.seed,
            self.leaders(),
            self.describe()
        );
    }

    fn converged(&self) -> bool {
        let Some(leader) = self.leader() else {
            return false;
        };
        let leader_node = &self.nodes[&leader];
        let raft = leader_node.raft.as_ref().expect("leader is up");
        if self.leaders().len() != 1 || raft.log().committed() != raft.log().last_index() {
            return false;
        }
        let members: BTreeSet<NodeId> = raft.membership().members().collect();
        let target = raft.log().last_index();
        members.iter().all(|id| {
            self.nodes
                .get(id)
                .is_some_and(|n| n.applied_index() == target)
        })
    }

    /// Every acknowledged write is in every member's state machine.
    fn assert_no_acknowledged_write_lost(&self) {
        let leader = self.leader().expect("converged cluster has a leader");
        let members: Vec<NodeId> = self.nodes[&leader]
            .raft
            .as_ref()
            .expect("leader is up")
            .membership()
            .members()
            .collect();
        for id in members {
            let node = &self.nodes[&id];
            for write in self.checker.acked_writes() {
                assert!(
                    node.has_write(write),
                    "seed {}: acknowledged write {write} missing on node {id}",
                    self.seed
                );
            }
        }
    }

    /// Every acknowledged write is in the state machine of each of `nodes` (once applied).
    pub fn assert_no_acknowledged_write_lost_on(&self, nodes: &[NodeId]) {
        for id in nodes {
            let node = &self.nodes[id];
            for write in self.checker.acked_writes() {
                assert!(
                    node.has_write(write) || node.applied_index() < self.checker.acked_index(write),
                    "seed {}: acknowledged write {write} missing on node {id}",
                    self.seed
                );
            }
        }
    }

    pub fn describe(&self) -> String {
        self.nodes
            .values()
            .map(|n| n.describe())
            .collect::<Vec<_>>()
            .join("; ")
    }
}
