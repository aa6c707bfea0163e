//! The nemesis: every fault kind the suite knows, aimed at the leader or at a member drawn at
//! random, and healed later:
//! - crashes (SIGKILL, later a restart, sometimes with a failpoint that crashes the node again
//!   while it installs a snapshot; now and then every member at once);
//! - pauses (SIGSTOP, later SIGCONT);
//! - partitions through the proxies: deafening a member (what reaches it refused or
//!   swallowed), isolating it both ways, or cutting it off from one other member only;
//! - disk faults through failpoints set at run time: the log's fsync stalling, the disk
//!   failing (the node stops; healed by a restart), snapshot encoding stalling;
//! - wall-clock steps of an hour either way (a test build's debug endpoint; monotonic time
//!   untouched).
//!
//! And membership changes through the admin API: leadership transfers (also while one member
//! is down), the replacement of a voter by a new node (a new id in `--join` mode, added as a
//! learner, caught up, promoted; then the old voter, leader or not, is removed and stopped; if
//! a member is down, that one), and the replacement of a member that lost its disk under the
//! same id (restarted on an empty data directory, removed, added back, promoted).
//!
//! Until every fault kind has struck the leader once, faults go to the leader, kind by kind;
//! the run's summary counts, per kind, the strikes at the leader and the reads in flight
//! during them, and the run fails if a kind never met the leader while lease and
//! linearizable reads were in flight.
//!
//! Its decisions come from the run's seed: which fault, whether it aims at the leader or at a
//! member drawn at random, when it heals, how long it waits between steps. What the decisions
//! meet does not: processes on a real machine start, elect and time out at their own pace, and
//! "the leader" is whoever leads at that moment. A seed replays the schedule, not the run.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use dengine::proto::{
    AddLearnerRequest, MemberRole, PromoteLearnerRequest, RemoveMemberRequest, StatusResponse,
    TransferLeadershipRequest,
};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::cluster::FaultCluster;
use super::history::{Call, Clock, Millis, Nanos, Op, Policy};
use super::member::Condition;
use super::proxy::Mode;
use super::rng::Rng;
use super::watcher::Watchers;
use super::workload::{Client, Roster, Seat};

/// At most this many replacements of a member per run.
const MAX_REPLACEMENTS: usize = 2;
/// How long each stage of a membership change may take, all members being healthy.
const STAGE_DEADLINE: Duration = Duration::from_secs(15);
/// A node whose disk fails stops within this.
const EXIT_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Kill,
    Pause,
    /// What reaches the member is refused or swallowed; what it sends arrives.
    Deafen(Mode),
    /// The member and every other are cut off from each other.
    Isolate,
    /// The member and one other (by id) are cut off from each other; the rest talk to both.
    Split(u64),
    /// The log's fsync stalls (a failpoint pauses the append) until healed.
    DiskStall,
    /// The disk fails (an I/O error, as EIO or ENOSPC): the node stops serving and exits.
    DiskError,
    /// Encoding a snapshot (for a follower or a backup) stalls until healed.
    SnapshotStall,
    /// The wall clock is stepped by this many seconds.
    ClockStep(i64),
}

impl Fault {
    /// The kind, as the summary counts it.
    pub fn kind(&self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::Pause => "SIGSTOP",
            Fault::Deafen(Mode::Blackhole) => "deafen (black-hole)",
            Fault::Deafen(_) => "deafen (refuse)",
            Fault::Isolate => "isolate both ways",
            Fault::Split(_) => "pairwise partition",
            Fault::DiskStall => "fsync stall",
            Fault::DiskError => "disk error",
            Fault::SnapshotStall => "snapshot encode stall",
            Fault::ClockStep(_) => "wall-clock step",
        }
    }
}

/// Every kind, in the order the nemesis first aims them at the leader.
pub const KINDS: [&str; 10] = [
    "kill -9",
    "SIGSTOP",
    "deafen (refuse)",
    "deafen (black-hole)",
    "isolate both ways",
    "pairwise partition",
    "fsync stall",
    "disk error",
    "snapshot encode stall",
    "wall-clock step",
];

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Split(other) => write!(f, "pairwise partition from node {other} of"),
            Fault::ClockStep(seconds) => write!(f, "wall clock stepped {seconds:+} s on"),
            fault => write!(f, "{} of", fault.kind()),
        }
    }
}

/// Reads a probe sends while a fault strikes the leader, one every this often.
const PROBE_EVERY: Duration = Duration::from_millis(40);

/// One fault in force or healed: what it was, whom it struck, whether that was the leader,
/// and when.
#[derive(Debug, Clone)]
pub struct Strike {
    pub fault: Fault,
    pub node: u64,
    pub leader: bool,
    pub from: Nanos,
    pub to: Option<Nanos>,
}

pub struct Nemesis {
    rng: Rng,
    clock: Clock,
    /// At most this many members faulty at once. With three members, two means the cluster
    /// loses its quorum now and then, which is worth testing too.
    max_faulty: usize,
    /// Faults in force, by member id.
    faulty: BTreeMap<u64, Fault>,
    /// Every fault injected, in order.
    pub strikes: Vec<Strike>,
    /// Members replaced so far.
    replacements: usize,
    /// What was done and when, for the report.
    pub log: Vec<(Nanos, String)>,
    /// Membership changes that did not complete with every member healthy, and nodes that
    /// exited without a fault that makes them: each one is a finding.
    pub failures: Vec<String>,
    /// While a fault strikes the leader, probes read through it and through another member,
    /// under the lease and linearizable policies; their operations join the history.
    probes: Vec<(u64, watch::Sender<bool>, JoinHandle<Vec<Op>>)>,
    /// Members started with the snapshot-install crash armed that have not crashed yet.
    armed: std::collections::BTreeSet<u64>,
    keys: Vec<String>,
    seed: u64,
}

impl Nemesis {
    pub fn new(seed: u64, clock: Clock, max_faulty: usize, keys: Vec<String>) -> Self {
        Self {
            rng: Rng::fork(seed, 1),
            clock,
            max_faulty,
            faulty: BTreeMap::new(),
            strikes: Vec::new(),
            replacements: 0,
            log: Vec::new(),
            failures: Vec::new(),
            probes: Vec::new(),
            armed: Default::default(),
            keys,
            seed,
        }
    }

    /// Starts probing reads while the fault on node `id` (at index `index`, the leader)
    /// lasts: through it, and through another member, under each of the lease and
    /// linearizable policies at once. One loop per policy: a read stuck at a stopped leader
    /// holds up only its own loop, so a read of each policy is in flight from the strike on.
    fn start_probes(&mut self, cluster: &FaultCluster, index: usize, id: u64) {
        let (stop, stopped) = watch::channel(false);
        let other = (index + 1) % cluster.members.len();
        let base = 3_000 + 4 * self.strikes.len();
        let mut loops = Vec::new();
        for (n, policy) in [Policy::Lease, Policy::Linearizable]
            .into_iter()
            .enumerate()
        {
            let clients: Vec<Client> = [index, other]
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    let member = &cluster.members[i];
                    Client::new(
                        base + 2 * n + k,
                        member.id(),
                        member.spec.client_port,
                        member.lifetime(),
                        self.keys.clone(),
                        self.clock,
                        self.seed,
                    )
                })
                .collect();
            loops.push(probe_loop(
                clients,
                policy,
                self.keys.clone(),
                stopped.clone(),
            ));
        }
        let task = tokio::spawn(async move {
            futures::future::join_all(loops)
                .await
                .into_iter()
                .flatten()
                .collect()
        });
        self.probes.push((id, stop, task));
    }

    /// When some node's wall clock was stepped forward: a TTL deadline stamped then by that
    /// node (leading) lies later by the step.
    pub fn forward_clock_steps(&self) -> Vec<(Nanos, Option<Nanos>)> {
        self.strikes
            .iter()
            .filter(|s| matches!(s.fault, Fault::ClockStep(seconds) if seconds > 0))
            .map(|s| (s.from, s.to))
            .collect()
    }

    /// The probes' operations, once every probe has stopped.
    pub async fn probe_ops(&mut self) -> Vec<Op> {
        let mut ops = Vec::new();
        for (_, stop, task) in std::mem::take(&mut self.probes) {
            stop.send_replace(true);
            ops.extend(task.await.expect("a probe task panicked"));
        }
        ops
    }

    /// Steps every 0.7 to 1.8 s until `duration` has passed on the run's clock and every
    /// fault kind has struck the leader. How fast the cluster elects decides how many steps
    /// find a leader to strike, so a slow machine may need more than `duration`; the run
    /// goes on for up to as long again, then stops and lets the coverage check fail.
    /// Clients and watchers follow replaced members through `roster` and `watchers`.
    pub async fn run(
        &mut self,
        cluster: &mut FaultCluster,
        roster: &Roster,
        watchers: &mut Watchers,
        duration: Duration,
    ) {
        let end = duration.as_nanos() as Nanos;
        let cap = 2 * end;
        loop {
            let pause = Duration::from_millis(self.rng.between(700, 1_800));
            let until = if self.uncovered().is_empty() {
                end
            } else {
                cap
            };
            let left = Duration::from_nanos(until.saturating_sub(self.clock.now()));
            tokio::time::sleep(pause.min(left)).await;
            let now = self.clock.now();
            if now >= cap || (now >= end && self.uncovered().is_empty()) {
                return;
            }
            self.notice_exits(cluster).await;
            self.step(cluster, roster, watchers).await;
        }
    }

    fn note(&mut self, what: String) {
        self.log.push((self.clock.now(), what));
    }

    /// Kinds that have not yet struck the leader.
    fn uncovered(&self) -> Vec<&'static str> {
        KINDS
            .iter()
            .copied()
            .filter(|kind| {
                !self
                    .strikes
                    .iter()
                    .any(|s| s.leader && s.fault.kind() == *kind)
            })
            .collect()
    }

    /// A member whose process ended by itself is down: expected after a disk error (the
    /// fault stays in force until healed by a restart), a finding otherwise.
    async fn notice_exits(&mut self, cluster: &mut FaultCluster) {
        for index in 0..cluster.members.len() {
            if cluster.members[index].condition() != Condition::Running {
                continue;
            }
            let Some(status) = cluster.members[index].exited() else {
                continue;
            };
            let id = cluster.members[index].id();
            if self.armed.remove(&id) {
                // Restarted with the snapshot-install crash armed; it met a snapshot later.
                self.note(format!(
                    "node {id} crashed installing a snapshot ({status}); restarting"
                ));
                cluster.members[index].start().await;
                continue;
            }
            match self.faulty.get(&id) {
                Some(Fault::DiskError) => self.note(format!("node {id} stopped: {status}")),
                _ => {
                    let tail = cluster.members[index].log_tail(30);
                    self.fail(format!(
                        "node {id} exited without a fault to make it ({status}):\n{tail}"
                    ));
                    self.note(format!("restarting node {id}"));
                    cluster.members[index].start().await;
                }
            }
        }
    }

    /// One step: heal a fault in force, change the membership, or inject a new fault.
    async fn step(&mut self, cluster: &mut FaultCluster, roster: &Roster, watchers: &mut Watchers) {
        let heal = !self.faulty.is_empty()
            && (self.faulty.len() >= self.max_faulty || self.rng.chance(55));
        let crash_all = self.rng.chance(6);
        let membership = self.rng.weighted(&[72, 10, 10, 8]);
        let draw = self.rng.next_u64();
        let one_down = self.faulty.len() == 1
            && self.faulty.values().all(|f| *f == Fault::Kill)
            && cluster.members.len() >= 3;
        let calm = self.faulty.is_empty();
        if calm && crash_all && self.uncovered().is_empty() {
            self.crash_everyone(cluster).await;
        } else if (calm || one_down) && membership == 1 {
            self.transfer_leadership(cluster, draw).await;
        } else if (calm || one_down) && membership == 2 && self.replacements < MAX_REPLACEMENTS {
            self.replacements += 1;
            self.replace_member(cluster, roster, watchers, draw).await;
        } else if calm && membership == 3 && self.replacements < MAX_REPLACEMENTS {
            self.replacements += 1;
            self.replace_lost_disk(cluster, watchers, draw).await;
        } else if heal {
            let pick = self.rng.below(self.faulty.len() as u64) as usize;
            let (&id, &fault) = self.faulty.iter().nth(pick).expect("picked among faults");
            self.heal(cluster, id, fault).await;
        } else {
            self.strike(cluster).await;
        }
    }

    /// Injects a fault: the first kind that has not yet struck the leader, at the leader;
    /// then kinds drawn at random, at the leader half the time. While a kind has not met the
    /// leader it is spent on nobody else: with no healthy leader to strike, a fault in force
    /// is healed instead, so that one leads again.
    async fn strike(&mut self, cluster: &mut FaultCluster) {
        let healthy: Vec<usize> = (0..cluster.members.len())
            .filter(|&i| !self.faulty.contains_key(&cluster.members[i].id()))
            .collect();
        if healthy.is_empty() {
            return;
        }
        let uncovered = self.uncovered();
        let kind = match uncovered.first() {
            Some(kind) => *kind,
            None => KINDS[self.rng.weighted(&[3, 3, 2, 2, 2, 2, 2, 1, 1, 1])],
        };
        let aim_at_leader = !uncovered.is_empty() || self.rng.chance(50);
        let leader = match aim_at_leader {
            true => cluster.leader().await.filter(|i| healthy.contains(i)),
            false => None,
        };
        if leader.is_none() && !uncovered.is_empty() {
            let in_force: Vec<(u64, Fault)> = self.faulty.iter().map(|(&i, &f)| (i, f)).collect();
            if !in_force.is_empty() {
                let (id, fault) = in_force[self.rng.below(in_force.len() as u64) as usize];
                self.heal(cluster, id, fault).await;
            }
            return;
        }
        let index = leader.unwrap_or(healthy[self.rng.below(healthy.len() as u64) as usize]);
        let fault = match kind {
            "kill -9" => Fault::Kill,
            "SIGSTOP" => Fault::Pause,
            "deafen (refuse)" => Fault::Deafen(Mode::Refuse),
            "deafen (black-hole)" => Fault::Deafen(Mode::Blackhole),
            "isolate both ways" => Fault::Isolate,
            "pairwise partition" => {
                let others: Vec<u64> = cluster
                    .members
                    .iter()
                    .map(|m| m.id())
                    .filter(|&id| id != cluster.members[index].id())
                    .collect();
                Fault::Split(others[self.rng.below(others.len() as u64) as usize])
            }
            "fsync stall" => Fault::DiskStall,
            "disk error" => Fault::DiskError,
            "snapshot encode stall" => Fault::SnapshotStall,
            _ => Fault::ClockStep(if self.rng.chance(50) { 3_600 } else { -3_600 }),
        };
        self.inject(cluster, index, fault, leader.is_some()).await;
    }

    /// `kill -9` of every member at once, then a restart of all: every acknowledged write
    /// must survive, having been fsynced by a quorum before it was acknowledged.
    async fn crash_everyone(&mut self, cluster: &mut FaultCluster) {
        for member in &mut cluster.members {
            member.kill();
        }
        self.note("kill -9 of every node".into());
        for member in &mut cluster.members {
            member.start().await;
        }
        self.note("restarted every node".into());
    }

    async fn inject(
        &mut self,
        cluster: &mut FaultCluster,
        index: usize,
        fault: Fault,
        leader: bool,
    ) {
        let id = cluster.members[index].id();
        match fault {
            Fault::Kill => cluster.members[index].kill(),
            Fault::Pause => cluster.members[index].pause(),
            Fault::Deafen(mode) => {
                cluster.members[index].note(&format!("===== faults: node {id} deafened: {mode:?}"));
                cluster.proxies[index].set(mode);
            }
            Fault::Isolate => {
                cluster.members[index].note(&format!("===== faults: node {id} isolated both ways"));
                cluster.isolate_both_ways(index, Mode::Refuse);
            }
            Fault::Split(other) => {
                let other_index = cluster.index_of(other).expect("a member");
                cluster.members[index].note(&format!(
                    "===== faults: nodes {id} and {other} cut off from each other"
                ));
                cluster.cut_pair(index, other_index, Mode::Refuse);
            }
            Fault::DiskStall => {
                cluster.members[index]
                    .failpoint("log_append", "pause")
                    .await
            }
            Fault::DiskError => {
                cluster.members[index]
                    .failpoint("log_append", "return")
                    .await
            }
            Fault::SnapshotStall => {
                cluster.members[index]
                    .failpoint("snapshot_encode", "pause")
                    .await
            }
            Fault::ClockStep(seconds) => cluster.members[index].step_wall_clock(seconds).await,
        }
        let role = if leader { " (the leader)" } else { "" };
        self.note(format!("{fault} node {id}{role}"));
        if leader {
            self.start_probes(cluster, index, id);
        }
        self.faulty.insert(id, fault);
        // Whatever this fault does to it, a crash armed at an earlier restart is no longer
        // what an exit of this process would mean.
        self.armed.remove(&id);
        self.strikes.push(Strike {
            fault,
            node: id,
            leader,
            from: self.clock.now(),
            to: None,
        });
    }

    async fn heal(&mut self, cluster: &mut FaultCluster, id: u64, fault: Fault) {
        self.note(format!("healing {fault} node {id}"));
        let Some(index) = cluster.index_of(id) else {
            // It left the cluster meanwhile (replaced).
            self.end_fault(id);
            return;
        };
        match fault {
            Fault::Kill => {
                // Now and then it comes back with a failpoint that crashes it if it installs a
                // snapshot from the leader (one that fell behind the compacted log does).
                if self.rng.chance(30) {
                    let member = &mut cluster.members[index];
                    let started = member
                        .start_with_failpoints(Some("snapshot_install=1*return(crash)"))
                        .await;
                    let crashed = match started {
                        Err(_) => true,
                        Ok(()) => member.wait_exit(Duration::from_secs(3)).await.is_some(),
                    };
                    if crashed {
                        self.note(format!(
                            "node {id} crashed installing a snapshot; restarting"
                        ));
                        cluster.members[index].start().await;
                    } else {
                        // It may reach the snapshot later: the final heal waits for it.
                        self.armed.insert(id);
                    }
                } else {
                    cluster.members[index].start().await;
                }
            }
            Fault::Pause => cluster.members[index].resume(),
            Fault::Deafen(_) => {
                cluster.members[index].note(&format!("===== faults: node {id} healed"));
                cluster.proxies[index].set(Mode::Forward);
            }
            Fault::Isolate => cluster.isolate_both_ways(index, Mode::Forward),
            Fault::Split(other) => {
                if let Some(other_index) = cluster.index_of(other) {
                    cluster.cut_pair(index, other_index, Mode::Forward);
                }
            }
            Fault::DiskStall => cluster.members[index].failpoint("log_append", "off").await,
            Fault::SnapshotStall => {
                cluster.members[index]
                    .failpoint("snapshot_encode", "off")
                    .await
            }
            Fault::DiskError => {
                // The disk is replaced by one that works: the node must have stopped, and
                // starts again on its data.
                let member = &mut cluster.members[index];
                if member.condition() == Condition::Running
                    && member.wait_exit(EXIT_DEADLINE).await.is_none()
                {
                    self.fail(format!("node {id} kept running after its disk failed"));
                    member.kill();
                }
                member.start().await;
            }
            Fault::ClockStep(_) => {
                // A member restarted meanwhile lost the step with its process.
                if cluster.members[index].condition() == Condition::Running {
                    cluster.members[index].step_wall_clock(0).await;
                }
            }
        }
        self.end_fault(id);
        self.note(format!("healed node {id}"));
    }

    fn end_fault(&mut self, id: u64) {
        self.faulty.remove(&id);
        for (node, stop, _) in &self.probes {
            if *node == id {
                stop.send_replace(true);
            }
        }
        let now = self.clock.now();
        if let Some(strike) = self
            .strikes
            .iter_mut()
            .rev()
            .find(|s| s.node == id && s.to.is_none())
        {
            strike.to = Some(now);
        }
    }

    /// Hands leadership to another voter drawn with `draw`, or (one time in three) to the
    /// most up-to-date one.
    async fn transfer_leadership(&mut self, cluster: &mut FaultCluster, draw: u64) {
        let Some(leader) = cluster.leader().await else {
            self.note("transfer leadership: no leader to ask".into());
            return;
        };
        let others: Vec<u64> = cluster
            .members
            .iter()
            .map(|m| m.id())
            .filter(|&id| id != cluster.members[leader].id())
            .collect();
        let target = match draw % 3 {
            0 => 0,
            _ => others[(draw / 3 % others.len() as u64) as usize],
        };
        let from = cluster.members[leader].id();
        let whom = match target {
            0 => "the most up-to-date voter".to_string(),
            id => format!("node {id}"),
        };
        let answer = cluster.members[leader]
            .admin()
            .transfer_leadership(TransferLeadershipRequest { target_id: target })
            .await;
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                self.note(format!(
                    "transfer leadership from node {from} to {whom}: node {} leads at term {}",
                    answer.leader_id, answer.term
                ));
            }
            // Not a safety matter: noted, not a finding.
            Err(status) => self.note(format!(
                "transfer leadership from node {from} to {whom} failed: {:?} {}",
                status.code(),
                status.message()
            )),
        }
    }

    /// Replaces the voter drawn with `draw` (half the time the leader) by a new node: start it in join mode, add it as a
    /// learner, wait until it applied the leader's commit index, promote it, remove the old
    /// voter and stop it. Clients and the watcher of the old voter move to the new node.
    async fn replace_member(
        &mut self,
        cluster: &mut FaultCluster,
        roster: &Roster,
        watchers: &mut Watchers,
        draw: u64,
    ) {
        // A member that is down is the one replaced, as the operator replaces a dead member.
        // Otherwise, half the time the leader, so that removing the leader is exercised often.
        let down = self.faulty.keys().next().copied();
        let leader = match draw % 2 {
            0 if down.is_none() => cluster.leader().await,
            _ => None,
        };
        let victim = match down {
            Some(id) => id,
            None => {
                let index = leader.unwrap_or((draw / 2 % cluster.members.len() as u64) as usize);
                cluster.members[index].id()
            }
        };
        let index = cluster.start_joiner().await;
        let new = cluster.members[index].id();
        self.note(format!(
            "replace node {victim}: started node {new} in join mode"
        ));
        if let Err(e) = self.grow(cluster, new).await {
            self.fail(format!("replacing node {victim} by node {new}: {e}"));
            // Take the newcomer out again, as far as it got in.
            let _ = leader_call(cluster, new, Change::Remove).await;
            let index = cluster.index_of(new).expect("the newcomer is a member");
            cluster.retire(index);
            self.note(format!("gave up on node {new}; stopped it"));
            return;
        }
        // From the revision the newcomer has reached: older history may be compacted there.
        let from = cluster.members[index]
            .status()
            .await
            .map_or(1, |s| s.revision + 1);
        watchers.start(new, cluster.members[index].spec.client_port, from);
        let was_leader = cluster
            .leader()
            .await
            .is_some_and(|l| cluster.members[l].id() == victim);
        match leader_call(cluster, victim, Change::Remove).await {
            Ok(leader) => {
                let role = if was_leader { " (the leader)" } else { "" };
                self.note(format!("removed node {victim}{role} through node {leader}"));
            }
            Err(e) => {
                // Four voters then: the run goes on with them all.
                self.fail(format!(
                    "removing node {victim} after adding node {new}: {e}"
                ));
                return;
            }
        }
        let member = &cluster.members[index];
        let seat = Seat {
            node: new,
            client_port: member.spec.client_port,
            lifetime: member.lifetime(),
        };
        roster.replace(victim, seat);
        watchers.retire(victim);
        let old = cluster.index_of(victim).expect("the victim is a member");
        cluster.retire(old);
        self.end_fault(victim);
        self.note(format!(
            "stopped node {victim}; its clients moved to node {new}"
        ));
        match wait_leader(cluster).await {
            Ok(leader) => self.note(format!("node {leader} leads")),
            Err(e) => self.fail(format!("after replacing node {victim} by node {new}: {e}")),
        }
    }

    /// Adds node `new` as a learner, waits until it caught up, promotes it.
    async fn grow(&mut self, cluster: &FaultCluster, new: u64) -> Result<(), String> {
        let leader = leader_call(cluster, new, Change::AddLearner).await?;
        self.note(format!(
            "added node {new} as a learner through node {leader}"
        ));
        self.grow_caught_up(cluster, new).await?;
        let leader = leader_call(cluster, new, Change::Promote).await?;
        self.note(format!("promoted node {new} through node {leader}"));
        Ok(())
    }

    /// Waits until learner `new` applied the leader's commit index.
    async fn grow_caught_up(&mut self, cluster: &FaultCluster, new: u64) -> Result<(), String> {
        let start = Instant::now();
        let joiner = &cluster.members[cluster.index_of(new).expect("a member")];
        loop {
            let (_, status) = leader_status(cluster).await?;
            let applied = joiner.status().await.map_or(0, |s| s.applied_index);
            if applied >= status.commit_index {
                self.note(format!(
                    "node {new} applied {applied}, the leader's commit index {}",
                    status.commit_index
                ));
                break;
            }
            if start.elapsed() > STAGE_DEADLINE {
                return Err(format!(
                    "node {new} applied only {applied} of {} after {STAGE_DEADLINE:?}",
                    status.commit_index
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }

    fn fail(&mut self, what: String) {
        self.note(format!("FAILED: {what}"));
        self.failures.push(what);
    }

    /// Ends every fault in force, for the final checks.
    pub async fn heal_everything(&mut self, cluster: &mut FaultCluster) {
        self.notice_exits(cluster).await;
        let faults: Vec<(u64, Fault)> = self.faulty.iter().map(|(&i, &f)| (i, f)).collect();
        for (id, fault) in faults {
            self.heal(cluster, id, fault).await;
        }
        self.disarm_snapshot_crashes(cluster).await;
    }

    /// A member restarted with the snapshot-install crash armed that has not crashed yet may
    /// still reach a snapshot: each one is waited for until it has applied the leader's commit
    /// index, and restarted without the failpoint if it crashes meanwhile, so that the final
    /// checks find every member running.
    async fn disarm_snapshot_crashes(&mut self, cluster: &mut FaultCluster) {
        for id in std::mem::take(&mut self.armed) {
            let Some(index) = cluster.index_of(id) else {
                continue;
            };
            let start = Instant::now();
            while start.elapsed() < STAGE_DEADLINE {
                if cluster.members[index].condition() == Condition::Running
                    && cluster.members[index].exited().is_some()
                {
                    self.note(format!(
                        "node {id} crashed installing a snapshot after the faults; restarting"
                    ));
                    cluster.members[index].start().await;
                    break;
                }
                let applied = cluster.members[index]
                    .status()
                    .await
                    .map_or(0, |s| s.applied_index);
                if let Ok((_, leader)) = leader_status(cluster).await {
                    if applied >= leader.commit_index {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// A member that lost its disk comes back under its id: stopped, its data directory
    /// deleted, started again with its founding flags. It must wait to be admitted; the
    /// cluster removes it, adds it back as a learner and promotes it once caught up, as the
    /// operator does. Its watcher starts again from where it is then.
    async fn replace_lost_disk(
        &mut self,
        cluster: &mut FaultCluster,
        watchers: &mut Watchers,
        draw: u64,
    ) {
        let index = (draw % cluster.members.len() as u64) as usize;
        let id = cluster.members[index].id();
        let was_leader = cluster.leader().await == Some(index);
        watchers.retire(id);
        self.armed.remove(&id);
        cluster.members[index].kill();
        cluster.members[index].lose_data();
        cluster.members[index].start().await;
        let role = if was_leader { " (the leader)" } else { "" };
        self.note(format!(
            "node {id}{role} lost its disk; restarted empty under its id"
        ));
        let admitted = async {
            let status = cluster.members[index]
                .status()
                .await
                .map_err(|e| e.to_string())?;
            if !status.awaiting_admission {
                return Err(format!(
                    "node {id} came back empty but does not wait to be admitted"
                ));
            }
            leader_call(cluster, id, Change::Remove).await?;
            leader_call(cluster, id, Change::AddLearner).await?;
            self.grow_caught_up(cluster, id).await?;
            leader_call(cluster, id, Change::Promote).await
        };
        match admitted.await {
            Ok(leader) => self.note(format!(
                "node {id} removed, added back and promoted through node {leader}"
            )),
            Err(e) => self.fail(format!("replacing node {id} after it lost its disk: {e}")),
        }
        let from = cluster.members[index]
            .status()
            .await
            .map_or(1, |s| s.revision + 1);
        watchers.start(id, cluster.members[index].spec.client_port, from);
    }

    pub fn describe(&self) -> String {
        self.log
            .iter()
            .map(|(at, what)| format!("  {:>10} ms  {what}", Millis(*at).to_string()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A membership change of one node, asked of the leader.
#[derive(Debug, Clone, Copy)]
enum Change {
    AddLearner,
    Promote,
    Remove,
}

/// The leader's index and status.
async fn leader_status(cluster: &FaultCluster) -> Result<(usize, StatusResponse), String> {
    let start = Instant::now();
    loop {
        if let Some(leader) = cluster.leader().await {
            if let Ok(status) = cluster.members[leader].status().await {
                return Ok((leader, status));
            }
        }
        if start.elapsed() > STAGE_DEADLINE {
            return Err(format!("no leader answered within {STAGE_DEADLINE:?}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until the running members agree on a leader; returns its id.
async fn wait_leader(cluster: &FaultCluster) -> Result<u64, String> {
    let start = Instant::now();
    loop {
        let mut views = Vec::new();
        for member in &cluster.members {
            views.push(member.status().await.map(|s| s.leader_id).unwrap_or(0));
        }
        if views[0] != 0 && views.iter().all(|&l| l == views[0]) {
            return Ok(views[0]);
        }
        if start.elapsed() > STAGE_DEADLINE {
            return Err(format!(
                "members do not agree on a leader after {STAGE_DEADLINE:?}: {views:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Asks whoever leads for `change` of `node`, until the leader's configuration shows it
/// done (asking again after refusals, such as a promotion refused for lag, or lost answers).
/// Returns the id of the leader that showed it done.
async fn leader_call(cluster: &FaultCluster, node: u64, change: Change) -> Result<u64, String> {
    let start = Instant::now();
    let mut last_error = String::from("not asked yet");
    loop {
        let (leader, status) = leader_status(cluster).await?;
        let role = status.members.iter().find(|m| m.id == node).map(|m| m.role);
        let done = match change {
            Change::AddLearner => role.is_some(),
            Change::Promote => role == Some(MemberRole::Voter as i32),
            Change::Remove => role.is_none(),
        };
        let leader_id = cluster.members[leader].id();
        if done {
            return Ok(leader_id);
        }
        if start.elapsed() > STAGE_DEADLINE {
            return Err(format!(
                "{change:?} of node {node} not done after {STAGE_DEADLINE:?}; last answer: {last_error}"
            ));
        }
        let mut admin = cluster.members[leader].admin();
        let answer = match change {
            Change::AddLearner => {
                let peer_address = cluster.members[cluster.index_of(node).expect("a member")]
                    .spec
                    .peer_endpoint();
                admin
                    .add_learner(AddLearnerRequest {
                        node_id: node,
                        peer_address,
                    })
                    .await
            }
            Change::Promote => {
                admin
                    .promote_learner(PromoteLearnerRequest {
                        node_id: node,
                        max_lag: 0,
                    })
                    .await
            }
            Change::Remove => {
                admin
                    .remove_member(RemoveMemberRequest {
                        node_id: node,
                        force: false,
                    })
                    .await
            }
        };
        if let Err(status) = answer {
            last_error = format!("node {leader_id}: {:?} {}", status.code(), status.message());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Reads under `policy` in turn through `clients` until `stopped`.
async fn probe_loop(
    mut clients: Vec<Client>,
    policy: Policy,
    keys: Vec<String>,
    stopped: watch::Receiver<bool>,
) -> Vec<Op> {
    let mut ops = Vec::new();
    let mut round = 0usize;
    while !*stopped.borrow() {
        let key = &keys[round % keys.len()];
        let client = &mut clients[round % 2];
        ops.push(client.perform(key, Call::Read { policy }).await);
        round += 1;
        tokio::time::sleep(PROBE_EVERY).await;
    }
    ops
}
