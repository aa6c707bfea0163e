//! The nemesis: crashes (SIGKILL, later a restart; now and then of every member at once),
//! pauses (SIGSTOP, later SIGCONT) and partitions (a member's proxy refusing or swallowing
//! inbound connections, later healed). And, only while every member is healthy (so the quorum
//! is never at risk by design), membership changes through the admin API: leadership
//! transfers, and the replacement of a voter by a new node (a new id in `--join` mode, added
//! as a learner, caught up, promoted; then the old voter, leader or not, is removed and
//! stopped, its clients move to the new node and its watcher ends).
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

use super::cluster::FaultCluster;
use super::history::{Clock, Millis, Nanos};
use super::proxy::Mode;
use super::rng::Rng;
use super::watcher::Watchers;
use super::workload::{Roster, Seat};

/// At most this many replacements of a member per run.
const MAX_REPLACEMENTS: usize = 2;
/// How long each stage of a membership change may take, all members being healthy.
const STAGE_DEADLINE: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Kill,
    Pause,
    Isolate(Mode),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill => write!(f, "kill -9"),
            Fault::Pause => write!(f, "SIGSTOP"),
            Fault::Isolate(Mode::Refuse) => write!(f, "isolate (refuse inbound)"),
            Fault::Isolate(Mode::Blackhole) => write!(f, "isolate (black-hole inbound)"),
            Fault::Isolate(Mode::Forward) => write!(f, "no-op isolation"),
        }
    }
}

pub struct Nemesis {
    rng: Rng,
    clock: Clock,
    /// At most this many members faulty at once. With three members, two means the cluster
    /// loses its quorum now and then, which is worth testing too.
    max_faulty: usize,
    /// Faults in force, by member index.
    faulty: BTreeMap<usize, Fault>,
    /// Members replaced so far.
    replacements: usize,
    /// What was done and when, for the report.
    pub log: Vec<(Nanos, String)>,
    /// Membership changes that did not complete with every member healthy: each one is a
    /// finding.
    pub failures: Vec<String>,
}

impl Nemesis {
    pub fn new(seed: u64, clock: Clock, max_faulty: usize) -> Self {
        Self {
            rng: Rng::fork(seed, 1),
            clock,
            max_faulty,
            faulty: BTreeMap::new(),
            replacements: 0,
            log: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// Steps every 0.7 to 1.8 s until `duration` has passed on the run's clock.
    /// Clients and watchers follow replaced members through `roster` and `watchers`.
    pub async fn run(
        &mut self,
        cluster: &mut FaultCluster,
        roster: &Roster,
        watchers: &mut Watchers,
        duration: Duration,
    ) {
        let end = duration.as_nanos() as Nanos;
        loop {
            let pause = Duration::from_millis(self.rng.between(700, 1_800));
            let left = Duration::from_nanos(end.saturating_sub(self.clock.now()));
            tokio::time::sleep(pause.min(left)).await;
            if self.clock.now() >= end {
                return;
            }
            self.step(cluster, roster, watchers).await;
        }
    }

    fn note(&mut self, what: String) {
        self.log.push((self.clock.now(), what));
    }

    /// One step: heal a fault in force, change the membership (all members being healthy),
    /// or inject a new fault.
    async fn step(&mut self, cluster: &mut FaultCluster, roster: &Roster, watchers: &mut Watchers) {
        let heal = !self.faulty.is_empty()
            && (self.faulty.len() >= self.max_faulty || self.rng.chance(55));
        let crash_all = self.rng.chance(8);
        let membership = self.rng.weighted(&[76, 12, 12]);
        let draw = self.rng.next_u64();
        if self.faulty.is_empty() && crash_all {
            self.crash_everyone(cluster).await;
        } else if self.faulty.is_empty() && membership == 1 {
            self.transfer_leadership(cluster, draw).await;
        } else if self.faulty.is_empty() && membership == 2 && self.replacements < MAX_REPLACEMENTS
        {
            self.replacements += 1;
            self.replace_member(cluster, roster, watchers, draw).await;
        } else if heal {
            let pick = self.rng.below(self.faulty.len() as u64) as usize;
            let (&index, &fault) = self.faulty.iter().nth(pick).expect("picked among faults");
            self.heal(cluster, index, fault).await;
        } else {
            let fault = match self.rng.weighted(&[3, 3, 2, 2]) {
                0 => Fault::Kill,
                1 => Fault::Pause,
                2 => Fault::Isolate(Mode::Refuse),
                _ => Fault::Isolate(Mode::Blackhole),
            };
            let aim_at_leader = self.rng.chance(50);
            let draw = self.rng.next_u64();
            let healthy: Vec<usize> = (0..cluster.members.len())
                .filter(|i| !self.faulty.contains_key(i))
                .collect();
            let leader = match aim_at_leader {
                true => cluster.leader().await.filter(|i| healthy.contains(i)),
                false => None,
            };
            let index = leader.unwrap_or(healthy[(draw % healthy.len() as u64) as usize]);
            self.inject(cluster, index, fault, leader.is_some());
        }
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

    fn inject(&mut self, cluster: &mut FaultCluster, index: usize, fault: Fault, leader: bool) {
        let member = &mut cluster.members[index];
        match fault {
            Fault::Kill => member.kill(),
            Fault::Pause => member.pause(),
            Fault::Isolate(mode) => {
                member.note(&format!(
                    "===== faults: node {} isolated: {mode:?}",
                    member.id()
                ));
                cluster.proxies[index].set(mode);
            }
        }
        let role = if leader { " (the leader)" } else { "" };
        let what = format!("{fault} node {}{role}", cluster.members[index].id());
        self.faulty.insert(index, fault);
        self.note(what);
    }

    async fn heal(&mut self, cluster: &mut FaultCluster, index: usize, fault: Fault) {
        let id = cluster.members[index].id();
        self.note(format!("healing {fault} of node {id}"));
        let member = &mut cluster.members[index];
        match fault {
            Fault::Kill => member.start().await,
            Fault::Pause => member.resume(),
            Fault::Isolate(_) => {
                member.note(&format!("===== faults: node {id} healed"));
                cluster.proxies[index].set(Mode::Forward);
            }
        }
        self.faulty.remove(&index);
        self.note(format!("healed node {id}"));
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
        // Half the time the leader, so that removing the leader is exercised often.
        let leader = match draw % 2 {
            0 => cluster.leader().await,
            _ => None,
        };
        let victim = leader.unwrap_or((draw / 2 % cluster.members.len() as u64) as usize);
        let victim = cluster.members[victim].id();
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
        let leader = leader_call(cluster, new, Change::Promote).await?;
        self.note(format!("promoted node {new} through node {leader}"));
        Ok(())
    }

    fn fail(&mut self, what: String) {
        self.note(format!("FAILED: {what}"));
        self.failures.push(what);
    }

    /// Ends every fault in force, for the final checks.
    pub async fn heal_everything(&mut self, cluster: &mut FaultCluster) {
        let faults: Vec<(usize, Fault)> = self.faulty.iter().map(|(&i, &f)| (i, f)).collect();
        for (index, fault) in faults {
            self.heal(cluster, index, fault).await;
        }
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
