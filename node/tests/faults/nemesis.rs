//! The nemesis: crashes (SIGKILL, later a restart; now and then of every member at once),
//! pauses (SIGSTOP, later SIGCONT) and partitions (a member's proxy refusing or swallowing
//! inbound connections, later healed).
//!
//! Its decisions come from the run's seed: which fault, whether it aims at the leader or at a
//! member drawn at random, when it heals, how long it waits between steps. What the decisions
//! meet does not: processes on a real machine start, elect and time out at their own pace, and
//! "the leader" is whoever leads at that moment. A seed replays the schedule, not the run.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::cluster::FaultCluster;
use super::history::{Clock, Millis, Nanos};
use super::proxy::Mode;
use super::rng::Rng;

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
    /// What was done and when, for the report.
    pub log: Vec<(Nanos, String)>,
}

impl Nemesis {
    pub fn new(seed: u64, clock: Clock, max_faulty: usize) -> Self {
        Self {
            rng: Rng::fork(seed, 1),
            clock,
            max_faulty,
            faulty: BTreeMap::new(),
            log: Vec::new(),
        }
    }

    /// Steps every 0.7 to 1.8 s until `duration` has passed on the run's clock.
    pub async fn run(&mut self, cluster: &mut FaultCluster, duration: Duration) {
        let end = duration.as_nanos() as Nanos;
        loop {
            let pause = Duration::from_millis(self.rng.between(700, 1_800));
            let left = Duration::from_nanos(end.saturating_sub(self.clock.now()));
            tokio::time::sleep(pause.min(left)).await;
            if self.clock.now() >= end {
                return;
            }
            self.step(cluster).await;
        }
    }

    fn note(&mut self, what: String) {
        self.log.push((self.clock.now(), what));
    }

    /// One step: heal a fault in force, or inject a new one.
    async fn step(&mut self, cluster: &mut FaultCluster) {
        let heal = !self.faulty.is_empty()
            && (self.faulty.len() >= self.max_faulty || self.rng.chance(55));
        let crash_all = self.rng.chance(8);
        if self.faulty.is_empty() && crash_all {
            self.crash_everyone(cluster).await;
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
