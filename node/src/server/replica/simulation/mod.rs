//! A deterministic simulator of whole nodes: real [`Replica`]s (the event loop's rules, the
//! log and the state machine on RocksDB's stand-in, [`crate::storage::MemoryEngine`]) on
//! simulated time and a simulated network, under crashes (some in the middle of a write),
//! lost disks, pauses, partitions, clock skew, transfers and membership changes, with clients
//! that write and read under every policy, at the leader and at followers.
//!
//! Where `node/raft/tests/simulation.rs` drives the Raft core with a driver of its own, this drives
//! the node's own ordering rules: what is persisted before what is sent, how a snapshot is
//! installed, when a lease is judged, what a paused node does first when it wakes.
//!
//! Checked: at most one leader per term; every read sees every write acknowledged before it
//! began; after everything heals, every acknowledged write is on every member and all members
//! hold the same data. `DENGINE_SIM_SEEDS=N` runs N seeds (default 20), `DENGINE_SIM_SEED=S`
//! replays seed S; every failure names its seed.

mod network;
mod node;

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::oneshot;

use crate::kv::{Command, CommandOutcome};
use crate::raft::{NodeId, Rng, Role};
use crate::server::requests::{Applied, ClientRequest, MembershipRequest, ReadBarrier};
use crate::server::transport::PeerInput;
use crate::server::vocabulary::ApiError;
use network::{Network, Weather};
use node::{Input, SimNode};

/// How hostile the world is; each is a chance per simulated millisecond unless said otherwise.
#[derive(Debug, Clone)]
pub struct Faults {
    pub weather: Weather,
    pub crash: f64,
    /// Share of crashes that strike in the middle of the node's next writes.
    pub crash_mid_write: f64,
    pub restart: f64,
    pub lose_disk: f64,
    pub pause: f64,
    pub max_pause_ms: u64,
    pub partition: f64,
    pub deafen: f64,
    pub heal: f64,
    pub transfer: f64,
    pub grow_or_shrink: f64,
    /// Each node's clock runs at 1 ± up to this (0.05: 5% fast or slow).
    pub max_clock_skew: f64,
}

impl Faults {
    pub fn none() -> Self {
        Self {
            weather: Weather::calm(),
            crash: 0.0,
            crash_mid_write: 0.0,
            restart: 0.0,
            lose_disk: 0.0,
            pause: 0.0,
            max_pause_ms: 0,
            partition: 0.0,
            deafen: 0.0,
            heal: 0.0,
            transfer: 0.0,
            grow_or_shrink: 0.0,
            max_clock_skew: 0.0,
        }
    }

    pub fn hostile() -> Self {
        Self {
            weather: Weather {
                loss: 0.03,
                duplicate: 0.02,
                max_delay_ms: 30,
            },
            crash: 0.000_3,
            crash_mid_write: 0.5,
            restart: 0.002,
            lose_disk: 0.000_05,
            pause: 0.000_3,
            max_pause_ms: 3_000,
            partition: 0.000_2,
            deafen: 0.000_1,
            heal: 0.000_5,
            transfer: 0.000_2,
            grow_or_shrink: 0.000_3,
            max_clock_skew: 0.05,
        }
    }
}

/// A client operation in flight.
enum Pending {
    Write {
        key: String,
        reply: oneshot::Receiver<Result<Applied, ApiError>>,
    },
    /// Waiting for a leader (the one asked, or a follower's leader on its behalf: `remote`)
    /// to give a read index; the read is served at `at`.
    ReadIndex {
        at: NodeId,
        remote: bool,
        reply: oneshot::Receiver<Result<u64, ApiError>>,
    },
    /// The leader's answer to a follower's read-index request, crossing the network back.
    IndexOnItsWay {
        at: NodeId,
        index: u64,
        arrives: u64,
    },
    /// Waiting for `at` to apply the read index.
    Applying {
        at: NodeId,
        reply: oneshot::Receiver<Result<(), ApiError>>,
    },
}

struct Operation {
    started: u64,
    /// The highest revision among writes acknowledged before this operation started.
    must_see: i64,
    what: &'static str,
    pending: Pending,
}

/// A membership change the simulated operator is waiting on.
struct Change {
    reply: oneshot::Receiver<Result<u64, ApiError>>,
}

pub struct Sim {
    pub seed: u64,
    rng: Rng,
    pub now: u64,
    pub nodes: BTreeMap<NodeId, SimNode>,
    network: Network,
    pub faults: Faults,
    operations: Vec<Operation>,
    /// Acknowledged writes: key to revision.
    acknowledged: BTreeMap<String, i64>,
    highest_acknowledged: i64,
    /// Election safety: the leader of each term seen.
    leaders: BTreeMap<u64, NodeId>,
    change: Option<Change>,
    next_key: u64,
    next_node: NodeId,
    pub reads_checked: BTreeMap<&'static str, u64>,
    /// What faults struck the node that led at that moment, by kind.
    pub leader_hits: BTreeMap<&'static str, u64>,
}

fn address(id: NodeId) -> String {
    format!("n{id}")
}

impl Sim {
    pub fn new(seed: u64, voters: u64, faults: Faults) -> Self {
        let mut rng = Rng::new(seed);
        let members: Vec<(NodeId, String)> = (1..=voters).map(|id| (id, address(id))).collect();
        let mut nodes = BTreeMap::new();
        for &(id, _) in &members {
            let rate = Self::clock_rate(&mut rng, faults.max_clock_skew);
            nodes.insert(id, SimNode::founding(id, &members, seed, rate));
        }
        Self {
            seed,
            rng,
            now: 0,
            nodes,
            network: Network::default(),
            faults,
            operations: Vec::new(),
            acknowledged: BTreeMap::new(),
            highest_acknowledged: 0,
            leaders: BTreeMap::new(),
            change: None,
            next_key: 1,
            next_node: voters + 1,
            reads_checked: BTreeMap::new(),
            leader_hits: BTreeMap::new(),
        }
    }

    /// Microseconds of a node's clock per simulated millisecond.
    fn clock_rate(rng: &mut Rng, skew: f64) -> u64 {
        let spread = (skew * 1_000.0) as u64;
        rng.range(1_000 - spread, 1_000 + spread + 1)
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {}: at {} ms: {what}\n{}",
            self.seed,
            self.now,
            self.describe()
        );
    }

    pub fn describe(&self) -> String {
        self.nodes
            .values()
            .map(|n| match &n.replica {
                Some(r) => {
                    let raft = r.raft();
                    let membership = raft.membership();
                    format!(
                        "n{}: {:?} term {} commit {} applied {} last {} voters {:?} learners {:?}{}{}",
                        n.id,
                        raft.role(),
                        raft.term(),
                        raft.log().committed(),
                        raft.log().applied(),
                        raft.log().last_index(),
                        membership.voters(),
                        membership.learners(),
                        if raft.awaiting_admission() {
                            " awaiting admission"
                        } else {
                            ""
                        },
                        if n.paused_until.is_some() {
                            " paused"
                        } else {
                            ""
                        }
                    )
                }
                None => format!("n{}: down", n.id),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The nodes that believe they lead, up and not paused.
    fn believed_leaders(&self) -> Vec<NodeId> {
        self.nodes
            .values()
            .filter(|n| n.paused_until.is_none())
            .filter(|n| {
                n.replica
                    .as_ref()
                    .is_some_and(|r| r.raft().role() == Role::Leader)
            })
            .map(|n| n.id)
            .collect()
    }

    /// The leader of the highest term, if any node believes it leads.
    /// A fault-free cluster of `voters` that ran `ms` milliseconds with writes, and its leader
    /// (failing the run when none was elected by then).
    pub fn led(seed: u64, voters: u64, ms: u64) -> (Self, NodeId) {
        let mut sim = Sim::new(seed, voters, Faults::none());
        sim.run(ms, true);
        let leader = sim.expect_leader();
        (sim, leader)
    }

    /// The leader, failing the run (with the seed) when there is none.
    pub fn expect_leader(&self) -> NodeId {
        self.leader()
            .unwrap_or_else(|| self.fail("no leader".to_string()))
    }

    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .filter_map(|n| n.replica.as_ref().map(|r| (n.id, r.raft())))
            .filter(|(_, raft)| raft.role() == Role::Leader)
            .max_by_key(|(_, raft)| raft.term())
            .map(|(id, _)| id)
    }

    fn random_node(&mut self) -> NodeId {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        ids[self.rng.range(0, ids.len() as u64) as usize]
    }

    /// One simulated millisecond.
    pub fn step(&mut self, clients: bool) {
        self.now += 1;
        for message in self.network.due(self.now) {
            self.deliver(message);
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let now = self.now;
            let node = self.nodes.get_mut(&id).expect("listed");
            // A storage failure is a crash (the engine was told to crash mid-write).
            let _ = node.step(now);
            self.send_outbox(id);
        }
        self.check_leaders();
        self.poll_operations();
        if clients {
            self.client_actions();
        }
        self.fault_actions();
        self.operator();
    }

    pub fn run(&mut self, ms: u64, clients: bool) {
        for _ in 0..ms {
            self.step(clients);
        }
    }

    fn deliver(&mut self, message: crate::proto::Message) {
        let to = message.to;
        if let Some(node) = self.nodes.get_mut(&to) {
            node.deliver(Input::Peer(PeerInput::Message(Box::new(message))));
        }
    }

    /// Takes what `id` sent. A snapshot is captured from the sender's state machine as the
    /// transport does, and its outcome reported back to the sender once it has crossed.
    fn send_outbox(&mut self, id: NodeId) {
        let messages = self.nodes[&id].outbox.take();
        for mut message in messages {
            if message.msg_type() == crate::proto::MessageType::Snapshot {
                let to = message.to;
                let Some(data) = self.capture_snapshot(id, &mut message) else {
                    continue;
                };
                if let Some(snapshot) = message.snapshot.as_mut() {
                    snapshot.data = data.into();
                }
                let sent =
                    self.network
                        .send(self.now, message, &self.faults.weather, &mut self.rng);
                // Reported at once: the sender only probes again either way.
                if let Some(node) = self.nodes.get_mut(&id) {
                    node.deliver(Input::Peer(PeerInput::SnapshotSent {
                        to,
                        installed: sent,
                    }));
                }
                continue;
            }
            self.network
                .send(self.now, message, &self.faults.weather, &mut self.rng);
        }
    }

    fn capture_snapshot(
        &mut self,
        id: NodeId,
        message: &mut crate::proto::Message,
    ) -> Option<Vec<u8>> {
        let node = self.nodes.get_mut(&id)?;
        let replica = node.replica.as_mut()?;
        let (reply, mut answer) = oneshot::channel();
        replica.on_peer_input(PeerInput::SnapshotWanted(reply));
        let captured = answer.try_recv().ok()?.ok()?;
        let data = captured.state.snapshot_data().ok()?;
        if let Some(snapshot) = message.snapshot.as_mut() {
            snapshot.metadata = Some(captured.meta);
        }
        Some(data)
    }

    fn check_leaders(&mut self) {
        for node in self.nodes.values() {
            let Some(replica) = &node.replica else {
                continue;
            };
            let raft = replica.raft();
            if raft.role() != Role::Leader {
                continue;
            }
            let term = raft.term();
            let leader = *self.leaders.entry(term).or_insert(node.id);
            if leader != node.id {
                self.fail(format!(
                    "election safety: nodes {leader} and {} both lead term {term}",
                    node.id
                ));
            }
        }
    }

    fn request(&mut self, at: NodeId, request: ClientRequest) {
        if let Some(node) = self.nodes.get_mut(&at) {
            node.deliver(Input::Request(request));
        }
    }

    fn client_actions(&mut self) {
        let leaders = self.believed_leaders();
        if leaders.is_empty() {
            return;
        }
        // Any node that believes it leads is asked, deposed ones included: that is where a
        // stale read would come from.
        let leader = leaders[self.rng.range(0, leaders.len() as u64) as usize];
        if self.rng.chance(0.05) {
            let key = format!("k{}", self.next_key);
            self.next_key += 1;
            let (reply, answer) = oneshot::channel();
            let command = Command::put(key.clone(), "v", 0, false);
            self.request(leader, ClientRequest::Propose { command, reply });
            self.start("write", Pending::Write { key, reply: answer });
        }
        for (chance, barrier, what) in [
            (0.02, ReadBarrier::Lease, "lease read at a leader"),
            (
                0.01,
                ReadBarrier::Linearizable,
                "linearizable read at a leader",
            ),
        ] {
            if self.rng.chance(chance) {
                let (reply, answer) = oneshot::channel();
                self.request(leader, ClientRequest::ReadIndex { barrier, reply });
                self.start(
                    what,
                    Pending::ReadIndex {
                        at: leader,
                        remote: false,
                        reply: answer,
                    },
                );
            }
        }
        if self.rng.chance(0.01) {
            self.follower_read();
        }
    }

    /// A read at a follower: it asks the leader it knows for a read index over the network,
    /// then waits to apply that far, as a follower's frontend does.
    fn follower_read(&mut self) {
        let at = self.random_node();
        let Some(leader) = self.nodes[&at]
            .replica
            .as_ref()
            .and_then(|r| r.raft().leader())
            .filter(|&leader| leader != at)
        else {
            return;
        };
        if !self.network.can_talk(at, leader) || self.rng.chance(self.faults.weather.loss) {
            return;
        }
        let barrier = if self.rng.chance(0.5) {
            ReadBarrier::Lease
        } else {
            ReadBarrier::Linearizable
        };
        let (reply, answer) = oneshot::channel();
        // Delivered at once: the request's own trip only delays it, which changes nothing
        // the checks depend on (the read starts now either way).
        self.request(leader, ClientRequest::ReadIndex { barrier, reply });
        self.start(
            "read at a follower",
            Pending::ReadIndex {
                at,
                remote: true,
                reply: answer,
            },
        );
    }

    /// A lease read sent to `at` now, wherever it stands.
    #[cfg(test)]
    fn lease_read_at(&mut self, at: NodeId) {
        let (reply, answer) = oneshot::channel();
        self.request(
            at,
            ClientRequest::ReadIndex {
                barrier: ReadBarrier::Lease,
                reply,
            },
        );
        self.start(
            "lease read at a leader",
            Pending::ReadIndex {
                at,
                remote: false,
                reply: answer,
            },
        );
    }

    fn start(&mut self, what: &'static str, pending: Pending) {
        self.operations.push(Operation {
            started: self.now,
            must_see: self.highest_acknowledged,
            what,
            pending,
        });
    }

    fn poll_operations(&mut self) {
        let operations = std::mem::take(&mut self.operations);
        for mut op in operations {
            match self.advance(&mut op) {
                Progress::Waiting => self.operations.push(op),
                Progress::Done => {}
            }
        }
    }

    fn advance(&mut self, op: &mut Operation) -> Progress {
        loop {
            let next = match &mut op.pending {
                Pending::Write { key, reply } => match reply.try_recv() {
                    Err(oneshot::error::TryRecvError::Empty) => return Progress::Waiting,
                    Ok(Ok(applied)) => {
                        let revision = match applied.outcome {
                            CommandOutcome::Put { revision, .. } => revision,
                            other => self.fail(format!("a put answered {other:?}")),
                        };
                        self.acknowledged.insert(key.clone(), revision);
                        self.highest_acknowledged = self.highest_acknowledged.max(revision);
                        return Progress::Done;
                    }
                    // Refused, dropped or the node died: the outcome is unknown to the client.
                    _ => return Progress::Done,
                },
                Pending::ReadIndex { at, remote, reply } => match reply.try_recv() {
                    Err(oneshot::error::TryRecvError::Empty) => return Progress::Waiting,
                    Ok(Ok(index)) => {
                        let (at, remote) = (*at, *remote);
                        if remote {
                            let delay = self.rng.range(1, self.faults.weather.max_delay_ms + 1);
                            Pending::IndexOnItsWay {
                                at,
                                index,
                                arrives: self.now + delay,
                            }
                        } else {
                            self.wait_applied(at, index)
                        }
                    }
                    _ => return Progress::Done,
                },
                Pending::IndexOnItsWay { at, index, arrives } => {
                    if self.now < *arrives {
                        return Progress::Waiting;
                    }
                    let (at, index) = (*at, *index);
                    self.wait_applied(at, index)
                }
                Pending::Applying { at, reply } => match reply.try_recv() {
                    Err(oneshot::error::TryRecvError::Empty) => return Progress::Waiting,
                    Ok(Ok(())) => {
                        let at = *at;
                        self.check_read(op, at);
                        return Progress::Done;
                    }
                    _ => return Progress::Done,
                },
            };
            op.pending = next;
        }
    }

    fn wait_applied(&mut self, at: NodeId, index: u64) -> Pending {
        let (reply, answer) = oneshot::channel();
        self.request(at, ClientRequest::WaitApplied { index, reply });
        Pending::Applying { at, reply: answer }
    }

    /// A read is served from `at`'s state machine now: it must hold every write acknowledged
    /// before the read began.
    fn check_read(&mut self, op: &Operation, at: NodeId) {
        let Some(replica) = self.nodes.get(&at).and_then(|n| n.replica.as_ref()) else {
            return;
        };
        let revision = replica.kv().read().expect("lock").revision();
        if revision < op.must_see {
            self.fail(format!(
                "stale read: a {} served by node {at} at revision {revision}, started at {} ms \
                 after a write at revision {} was acknowledged",
                op.what, op.started, op.must_see
            ));
        }
        *self.reads_checked.entry(op.what).or_default() += 1;
    }

    fn note_hit(&mut self, id: NodeId, fault: &'static str) {
        if self.leader() == Some(id) {
            *self.leader_hits.entry(fault).or_default() += 1;
        }
    }

    fn fault_actions(&mut self) {
        let f = self.faults.clone();
        if self.rng.chance(f.crash) {
            let id = self.random_node();
            if self.nodes[&id].is_up() {
                self.note_hit(id, "crash");
                if self.rng.chance(f.crash_mid_write) {
                    let writes = self.rng.range(0, 3);
                    self.nodes[&id].crash_within_writes(writes);
                } else {
                    self.nodes.get_mut(&id).expect("listed").crash();
                }
            }
        }
        if self.rng.chance(f.restart) {
            let id = self.random_node();
            let node = self.nodes.get_mut(&id).expect("listed");
            if !node.is_up() {
                node.restart();
            }
        }
        if self.rng.chance(f.lose_disk) {
            let id = self.random_node();
            if self.can_lose_disk(id) {
                self.note_hit(id, "disk lost");
                self.nodes
                    .get_mut(&id)
                    .expect("listed")
                    .lose_disk_and_restart();
            }
        }
        if self.rng.chance(f.pause) {
            let id = self.random_node();
            let until = self.now + self.rng.range(1, f.max_pause_ms.max(1) + 1);
            let node = self.nodes.get_mut(&id).expect("listed");
            if node.is_up() && node.paused_until.is_none() {
                node.paused_until = Some(until);
                self.note_hit(id, "pause");
            }
        }
        if self.rng.chance(f.partition) {
            let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
            let group: Vec<NodeId> = ids.into_iter().filter(|_| self.rng.chance(0.4)).collect();
            if let Some(leader) = self.leader() {
                if group.contains(&leader) {
                    *self.leader_hits.entry("partition").or_default() += 1;
                }
            }
            self.network.partition(&group);
        }
        if self.rng.chance(f.deafen) {
            let id = self.random_node();
            self.note_hit(id, "one-way partition");
            self.network.deafen(id);
        }
        if self.rng.chance(f.heal) {
            self.network.heal();
        }
        if self.rng.chance(f.transfer) {
            if let Some(leader) = self.leader() {
                let (reply, _answer) = oneshot::channel();
                self.request(
                    leader,
                    ClientRequest::TransferLeadership { target: 0, reply },
                );
            }
        }
        if self.rng.chance(f.grow_or_shrink) {
            self.grow_or_shrink();
        }
    }

    /// Every node is up and none waits to be admitted.
    /// Whether `id` may lose its disk within what Raft promises to survive: one disk at a
    /// time, and only if the other voters, holding their data, still make a quorum of the
    /// voters in every live member's configuration. (Seed 349 lost the disk of one of two
    /// voters while the third member was a learner being promoted back: no quorum of intact
    /// voters was left, and the cluster rightly stayed without a leader.)
    fn can_lose_disk(&self, id: NodeId) -> bool {
        self.every_member_holds_its_data()
            && self
                .nodes
                .values()
                .filter_map(|n| n.replica.as_ref())
                .all(|r| {
                    let membership = r.raft().membership();
                    let voters = membership.voters();
                    !voters.contains(&id)
                        || voters.iter().filter(|&&v| v != id).count() >= membership.quorum()
                })
    }

    fn every_member_holds_its_data(&self) -> bool {
        self.nodes.values().all(|n| {
            n.replica
                .as_ref()
                .is_some_and(|r| !r.raft().awaiting_admission())
        })
    }

    /// Adds a new node as a learner (the operator promotes it), or removes a voter while more
    /// than three remain.
    fn grow_or_shrink(&mut self) {
        if self.change.is_some() {
            return;
        }
        let Some((leader, membership)) = self.leader_membership() else {
            return;
        };
        let request = if self.rng.chance(0.5) && self.nodes.len() < 7 {
            let id = self.next_node;
            self.next_node += 1;
            let rate = Self::clock_rate(&mut self.rng, self.faults.max_clock_skew);
            self.nodes.insert(id, SimNode::joining(id, self.seed, rate));
            MembershipRequest::AddLearner {
                id,
                address: address(id),
            }
        } else if membership.voters().len() > 3 {
            let voters: Vec<NodeId> = membership.voters().iter().copied().collect();
            let id = voters[self.rng.range(0, voters.len() as u64) as usize];
            MembershipRequest::Remove { id, force: false }
        } else {
            return;
        };
        self.change_membership(leader, request);
    }

    /// The leader of the highest term and its configuration.
    fn leader_membership(&self) -> Option<(NodeId, crate::raft::Membership)> {
        let leader = self.leader()?;
        let replica = self.nodes[&leader].replica.as_ref()?;
        Some((leader, replica.raft().membership().clone()))
    }

    fn change_membership(&mut self, leader: NodeId, change: MembershipRequest) {
        let (reply, answer) = oneshot::channel();
        self.request(leader, ClientRequest::ChangeMembership { change, reply });
        self.change = Some(Change { reply: answer });
    }

    /// What the Kubernetes operator does, in miniature, every 50 ms: one change at a time, it
    /// replaces a voter that came back without its data (remove, add back as a learner) and
    /// promotes learners that caught up.
    fn operator(&mut self) {
        if let Some(change) = self.change.as_mut() {
            match change.reply.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => return,
                _ => self.change = None,
            }
        }
        if self.now % 50 != 0 {
            return;
        }
        let Some((leader, membership)) = self.leader_membership() else {
            return;
        };
        let awaiting = |id: &NodeId| {
            self.nodes
                .get(id)
                .and_then(|n| n.replica.as_ref())
                .is_some_and(|r| r.raft().awaiting_admission())
        };
        let emptied_voter = membership.voters().iter().copied().find(|id| awaiting(id));
        let request = if let Some(id) = emptied_voter.filter(|&id| id != leader) {
            MembershipRequest::Remove { id, force: false }
        } else if let Some(id) = self
            .nodes
            .keys()
            .copied()
            .find(|id| !membership.contains(*id) && awaiting(id))
        {
            MembershipRequest::AddLearner {
                id,
                address: address(id),
            }
        } else if let Some(&id) = membership.learners().iter().next() {
            MembershipRequest::Promote { id, max_lag: 20 }
        } else {
            return;
        };
        self.change_membership(leader, request);
    }

    /// Heals everything, restarts every node that is down and runs until every member holds
    /// the same, latest state; then checks that every acknowledged write is in it. Fails (with
    /// the seed) if that does not happen in time.
    pub fn converge(&mut self, max_ms: u64) {
        self.run_until_converged(max_ms);
        self.assert_converged_state();
    }

    fn run_until_converged(&mut self, max_ms: u64) {
        self.faults = Faults {
            max_clock_skew: self.faults.max_clock_skew,
            ..Faults::none()
        };
        self.network.heal();
        for node in self.nodes.values_mut() {
            node.engine.cancel_planned_crash();
            if !node.is_up() {
                node.restart();
            }
        }
        for ms in 0..max_ms {
            self.step(false);
            if ms % 200 == 100 {
                // A write in the final term makes the leader commit everything before it.
                if let Some(leader) = self.leader() {
                    let (reply, answer) = oneshot::channel();
                    let key = format!("k{}", self.next_key);
                    self.next_key += 1;
                    let command = Command::put(key.clone(), "v", 0, false);
                    self.request(leader, ClientRequest::Propose { command, reply });
                    self.start("write", Pending::Write { key, reply: answer });
                }
            }
            if self.converged() {
                return;
            }
        }
        self.fail(format!(
            "the cluster did not converge within {max_ms} ms after healing"
        ));
    }

    fn converged(&self) -> bool {
        let leaders = self.believed_leaders();
        let [leader] = leaders.as_slice() else {
            return false;
        };
        let raft = self.nodes[leader].replica.as_ref().expect("leads").raft();
        if raft.log().committed() != raft.log().last_index() {
            return false;
        }
        let target = raft.log().last_index();
        raft.membership().members().all(|id| {
            self.nodes
                .get(&id)
                .and_then(|n| n.replica.as_ref())
                .is_some_and(|r| {
                    r.raft().log().applied() == target
                        && !(r.raft().awaiting_admission() && raft.membership().is_voter(id))
                })
        })
    }

    /// Every acknowledged write is on every member, and all members hold the same data.
    fn assert_converged_state(&self) {
        let leader = self.leader().expect("a converged cluster has a leader");
        let members: Vec<NodeId> = self.nodes[&leader]
            .replica
            .as_ref()
            .expect("leads")
            .raft()
            .membership()
            .members()
            .collect();
        let mut reference: Option<(NodeId, Vec<(String, i64)>)> = None;
        for id in members {
            let replica = self.nodes[&id].replica.as_ref().expect("members are up");
            let kv = replica.kv().read().expect("lock");
            let (kvs, _) = kv.scan(b"", b"", usize::MAX).expect("scan");
            let held: Vec<(String, i64)> = kvs
                .iter()
                .map(|kv| {
                    (
                        String::from_utf8_lossy(&kv.key).into_owned(),
                        kv.mod_revision,
                    )
                })
                .collect();
            let keys: BTreeSet<&str> = held.iter().map(|(k, _)| k.as_str()).collect();
            for key in self.acknowledged.keys() {
                if !keys.contains(key.as_str()) {
                    self.fail(format!("acknowledged write {key} is missing on node {id}"));
                }
            }
            match &reference {
                None => reference = Some((id, held)),
                Some((other, expected)) if *expected != held => self.fail(format!(
                    "nodes {other} and {id} hold different data after converging"
                )),
                Some(_) => {}
            }
        }
    }

    pub fn acknowledged_writes(&self) -> usize {
        self.acknowledged.len()
    }
}

enum Progress {
    Waiting,
    Done,
}

#[cfg(test)]
mod tests;
