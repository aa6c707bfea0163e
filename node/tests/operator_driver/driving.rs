//! Running the operator's driver as its controller does: one `driver::step` per reconcile,
//! requeued after a short pause, every step recorded for the assertions and for a failing
//! test's output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dengine_operator::admin::GrpcMembership;
use dengine_operator::crd::DEngineClusterSpec;
use dengine_operator::decide::NextAction;
use dengine_operator::driver::{self, Membership, MembershipChange, Step};
use dengine_operator::observed::{ClusterView, Limits, MemberRole, NodeId, Volume};
use dengine_operator::Error;

use super::local_workload::{LocalWorkload, ADMIN_TOKEN};

/// How long one phase (bootstrap, growth, rollout, shrink) may take on a slow, busy machine.
const PHASE_DEADLINE: Duration = Duration::from_secs(120);
/// The requeue interval between steps.
const REQUEUE: Duration = Duration::from_millis(100);

/// One step of the driver: what it saw and decided, or how it failed.
pub struct Entry {
    pub at: Duration,
    pub phase: &'static str,
    pub outcome: Result<Step, String>,
}

/// One membership change asked of a leader, and its answer.
pub struct ChangeRecord {
    pub at: Duration,
    pub change: MembershipChange,
    pub result: Result<(), String>,
}

/// The real Admin API client, recording every change it is asked for.
pub struct RecordingMembership {
    inner: GrpcMembership,
    start: Instant,
    changes: Arc<Mutex<Vec<ChangeRecord>>>,
}

impl Membership for RecordingMembership {
    async fn view(&self, endpoints: &BTreeMap<NodeId, String>) -> Option<ClusterView> {
        self.inner.view(endpoints).await
    }

    async fn change(
        &self,
        leader: NodeId,
        leader_endpoint: &str,
        change: &MembershipChange,
    ) -> Result<(), Error> {
        let result = self.inner.change(leader, leader_endpoint, change).await;
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ChangeRecord {
                at: self.start.elapsed(),
                change: change.clone(),
                result: result.as_ref().map(drop).map_err(|e| e.to_string()),
            });
        result
    }
}

/// The operator's driver pointed at a [`LocalWorkload`], and the record of what it did.
pub struct Driver {
    pub workload: LocalWorkload,
    membership: RecordingMembership,
    limits: Limits,
    start: Instant,
    pub journal: Vec<Entry>,
}

impl Driver {
    pub fn new(workload: LocalWorkload, limits: Limits) -> Self {
        let start = Instant::now();
        Driver {
            workload,
            membership: RecordingMembership {
                inner: GrpcMembership::new(Some(ADMIN_TOKEN.to_string()), Duration::from_secs(10)),
                start,
                changes: Arc::default(),
            },
            limits,
            start,
            journal: Vec::new(),
        }
    }

    /// Steps the driver with `spec` until it answers `Done` on a cluster that `settled`
    /// accepts; returns the steps of this phase. Fails after [`PHASE_DEADLINE`].
    pub async fn run_until(
        &mut self,
        phase: &'static str,
        spec: &DEngineClusterSpec,
        settled: impl Fn(&Step) -> Result<(), String>,
    ) -> &[Entry] {
        let first = self.journal.len();
        let phase_start = Instant::now();
        let mut last_refusal = String::from("no Done yet");
        loop {
            let at = self.start.elapsed();
            let outcome = driver::step(spec, &self.limits, &self.workload, &self.membership)
                .await
                .map_err(|e| e.to_string());
            let done = match &outcome {
                Ok(step) if step.action == NextAction::Done => match settled(step) {
                    Ok(()) => true,
                    Err(why) => {
                        last_refusal = format!("Done, but {why}");
                        false
                    }
                },
                _ => false,
            };
            self.journal.push(Entry { at, phase, outcome });
            if done {
                eprintln!(
                    "phase {phase}: settled after {:.1} s and {} steps",
                    phase_start.elapsed().as_secs_f64(),
                    self.journal.len() - first
                );
                return &self.journal[first..];
            }
            assert!(
                phase_start.elapsed() < PHASE_DEADLINE,
                "phase {phase} did not settle within {PHASE_DEADLINE:?}; last: {last_refusal}"
            );
            tokio::time::sleep(REQUEUE).await;
        }
    }

    /// Every step so far, with each membership change's answer. Consecutive steps that saw
    /// and decided the same (log positions aside) are folded into one line.
    pub fn describe(&self) -> String {
        // (what was seen and decided, log positions at the first, first and last time, count)
        let mut lines: Vec<(String, String, Duration, Duration, usize)> = Vec::new();
        for entry in &self.journal {
            let (line, positions) = describe_outcome(&entry.outcome);
            let line = format!("[{}] {line}", entry.phase);
            match lines.last_mut() {
                Some((last, _, _, until, count)) if *last == line => {
                    *until = entry.at;
                    *count += 1;
                }
                _ => lines.push((line, positions, entry.at, entry.at, 1)),
            }
        }
        let mut text = String::new();
        for (line, positions, at, until, count) in lines {
            let repeats = match count {
                1 => String::new(),
                n => format!(" (x{n} until +{:.2}s)", until.as_secs_f64()),
            };
            writeln!(
                text,
                "+{:6.2}s {line}{repeats} {positions}",
                at.as_secs_f64()
            )
            .expect("writing to a String");
        }
        text.push_str("membership changes asked of the leader:\n");
        let changes = self
            .membership
            .changes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for record in changes.iter() {
            writeln!(
                text,
                "+{:6.2}s {:?} -> {:?}",
                record.at.as_secs_f64(),
                record.change,
                record.result
            )
            .expect("writing to a String");
        }
        text
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let steps = self.describe();
            eprintln!("\n---------- the driver's steps ----------\n{steps}");
            // Kept with the pods' logs, for a failure in a run whose output is gone.
            self.workload.keep_file("driver-steps.txt", &steps);
        }
    }
}

/// What a step saw and decided: the action, the leader, the members and the pods; and apart,
/// the log positions (the leader's commit index, each member's match index).
fn describe_outcome(outcome: &Result<Step, String>) -> (String, String) {
    let step = match outcome {
        Ok(step) => step,
        Err(error) => return (format!("step failed: {error}"), String::new()),
    };
    let o = &step.observed;
    let (cluster, positions) = match &o.cluster {
        None => ("no leader answered".to_string(), String::new()),
        Some(view) => {
            let members: Vec<String> = view
                .members
                .iter()
                .map(|m| match m.role {
                    MemberRole::Voter => format!("{}V", m.id),
                    MemberRole::Learner => format!("{}L", m.id),
                })
                .collect();
            let matches: Vec<String> = view
                .members
                .iter()
                .map(|m| format!("{}@{}", m.id, m.match_index))
                .collect();
            (
                format!(
                    "leader {} members [{}]",
                    view.leader.map_or("-".into(), |l| l.to_string()),
                    members.join(" ")
                ),
                format!(
                    "(commit {}, match {})",
                    view.commit_index,
                    matches.join(" ")
                ),
            )
        }
    };
    let pods: Vec<String> = o
        .pods
        .iter()
        .map(|p| {
            format!(
                "{}:{}{}{}",
                p.ordinal,
                p.revision,
                if p.ready { "+ready" } else { "-unready" },
                match p.volume {
                    Volume::Claimed => "",
                    Volume::Fresh => "-fresh",
                }
            )
        })
        .collect();
    let line = format!(
        "{:?} | {cluster} | sts {} | pods [{}]",
        step.action,
        o.stateful_set.as_ref().map_or("-".into(), |s| format!(
            "{}@{}",
            s.replicas, s.update_revision
        )),
        pods.join(" ")
    );
    (line, positions)
}
