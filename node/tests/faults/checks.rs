//! Everything checked after a run, each check returning the broken promises it found.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::history::{Call, Millis, Op, Outcome, Policy, Ret, Value, FOREIGN};
use super::linearizability::{self, Verdict};
use super::shrink::shrink;
use super::watcher::WatchLog;

/// Search steps allowed to each key's linearizability check.
const SEARCH_BUDGET: u64 = 50_000_000;
/// Wall-clock time allowed to shrink one key's failing history.
const SHRINK_TIME: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub struct Findings {
    /// Broken promises: the test fails on any.
    pub violations: Vec<String>,
    /// Worth knowing, not failures.
    pub notes: Vec<String>,
}

impl Findings {
    fn violation(&mut self, what: String) {
        self.violations.push(what);
    }
}

fn listing(ops: &[Op]) -> String {
    ops.iter()
        .map(|op| format!("    {op}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes, compare-and-swaps, deletes, linearizable and lease reads, per key.
pub fn linearizable(ops: &[Op], findings: &mut Findings) {
    linearizable_within(ops, SEARCH_BUDGET, findings);
}

/// [`linearizable`] with `budget` search steps per key.
pub fn linearizable_within(ops: &[Op], budget: u64, findings: &mut Findings) {
    let mut by_key: BTreeMap<&str, Vec<Op>> = BTreeMap::new();
    for op in ops {
        by_key.entry(&op.key).or_default().push(op.clone());
    }
    for (key, ops) in by_key {
        let started = Instant::now();
        let verdict = linearizability::check(&ops, budget);
        let took = started.elapsed();
        match verdict {
            Verdict::Linearizable => findings.notes.push(format!(
                "key {key}: {} operations linearizable (checked in {took:.2?})",
                linearizability::prepare(&ops).len()
            )),
            // A history the checker cannot decide proves nothing: the run fails, so that a
            // workload that outgrows the checker is noticed rather than passed.
            Verdict::GaveUp => findings.violation(format!(
                "key {key}: UNDECIDED, the linearizability search gave up after {budget} \
                 steps ({took:.2?}) on {} operations; a history that cannot be checked fails \
                 the run",
                linearizability::prepare(&ops).len()
            )),
            Verdict::Violation { stuck_at } => {
                let shrunk = shrink(&ops, Instant::now() + SHRINK_TIME);
                let mut extra: Vec<String> = shrunk
                    .witness
                    .iter()
                    .filter(|op| !shrunk.core.iter().any(|c| c.id == op.id))
                    .map(|op| format!("#{}", op.id))
                    .collect();
                let added_back = extra.len();
                if extra.len() > 20 {
                    extra.truncate(20);
                    extra.push("...".into());
                }
                let stuck = stuck_at.map_or("?".to_string(), |id| format!("#{id}"));
                findings.violation(format!(
                    "key {key}: NOT LINEARIZABLE ({} operations; no linearization explains {stuck}).\n  \
                     Smallest failing sub-history found ({} operations; unknown ones may take effect any \
                     time after their invocation, or never):\n{}\n  \
                     It also fails with these {} unknown deletes added back (a relaxation of the \
                     recorded history, so this is a genuine witness): {}",
                    ops.len(),
                    shrunk.core.len(),
                    listing(&shrunk.core),
                    added_back,
                    extra.join(" ")
                ));
            }
        }
    }
}

/// Each written value and the write that wrote it (the workload never writes a value twice).
fn writes_by_value(ops: &[Op]) -> HashMap<Value, &Op> {
    ops.iter()
        .filter_map(|op| Some((op.written_value()?, op)))
        .collect()
}

/// Values a client or a watcher observed, with who saw them.
fn observations<'a>(ops: &'a [Op], watches: &'a [WatchLog]) -> Vec<(Value, &'a str, String)> {
    let mut seen = Vec::new();
    for op in ops {
        let values: Vec<Value> = match op.ret() {
            Some(Ret::Read { value }) => value.iter().copied().collect(),
            Some(Ret::Write { prev }) => prev.iter().copied().collect(),
            Some(Ret::Cas { current, .. }) => current.iter().copied().collect(),
            Some(Ret::Delete { prev, .. }) => prev.iter().copied().collect(),
            None => Vec::new(),
        };
        for value in values {
            seen.push((value, op.key.as_str(), format!("{op}")));
        }
    }
    for log in watches {
        for event in &log.events {
            if let Some(value) = event.value {
                seen.push((
                    value,
                    event.key.as_str(),
                    format!(
                        "watcher on node {} at revision {} ({} ms)",
                        log.node,
                        event.revision,
                        Millis(event.at)
                    ),
                ));
            }
        }
    }
    seen
}

/// No read of any policy, no answer and no watch event shows a value nobody wrote to that key,
/// or a value whose write had not even been invoked yet (eventual reads may be stale, never
/// invented); and a write the node refused for certain, or said was not applied, is never
/// seen.
pub fn no_invented_or_refused_values(ops: &[Op], watches: &[WatchLog], findings: &mut Findings) {
    let writes = writes_by_value(ops);
    for (value, key, who) in observations(ops, watches) {
        let Some(write) = writes.get(&value).filter(|w| w.key == key) else {
            let shown = if value == FOREIGN {
                "a value no client writes".to_string()
            } else {
                format!("value {value}, never written to {key}")
            };
            findings.violation(format!("{who}: observed {shown}"));
            continue;
        };
        if matches!(write.outcome, Outcome::Fail(_)) {
            findings.violation(format!(
                "{who}: observed {value}, whose write was refused for certain:\n    {write}"
            ));
        } else if write.claims_not_applied() {
            findings.violation(format!(
                "{who}: observed {value}, whose write the node said was not applied:\n    {write}"
            ));
        }
    }
    for op in ops {
        let Some(Ret::Read { value: Some(value) }) = op.ret() else {
            continue;
        };
        let Some(write) = writes.get(value) else {
            continue;
        };
        if write.invoke > op.complete {
            findings.violation(format!(
                "a read returned {value} before its write was invoked:\n    {op}\n    {write}"
            ));
        }
    }
}

/// Per client (each on one node), the header revision of successive reads never goes
/// backwards within one lifetime of the node. Across a restart it is only noted: the README
/// promises it too, but the brief of this suite does not.
pub fn read_revisions_monotonic(ops: &[Op], findings: &mut Findings) {
    let mut last: HashMap<usize, &Op> = HashMap::new();
    for op in ops {
        let (Some(Ret::Read { .. }), Some(revision)) = (op.ret(), op.revision) else {
            continue;
        };
        if let Some(previous) = last.get(&op.client) {
            let previous_revision = previous.revision.unwrap_or(0);
            if revision < previous_revision {
                // Lifetimes count per node: a client moved to another node (its own left
                // the cluster) starts afresh.
                let same_lifetime = previous.node == op.node
                    && previous.lifetime.0 == previous.lifetime.1
                    && op.lifetime == previous.lifetime;
                let what = format!(
                    "client {} read revision {revision} after revision {previous_revision}:\n    {previous}\n    {op}",
                    op.client
                );
                match same_lifetime {
                    true => findings.violation(format!("{what}\n  (same node, same process)")),
                    false => findings
                        .notes
                        .push(format!("{what}\n  (across a restart or change of node)")),
                }
            }
        }
        last.insert(op.client, op);
    }
}

/// Watch promises: per watcher, consecutive revisions (checked as events arrived); across
/// watchers, one event per revision; acknowledged writes appear at their revision with their
/// value; and replaying the events gives the final state read at the end.
pub fn watches(
    ops: &[Op],
    logs: &[WatchLog],
    final_state: &BTreeMap<String, Option<Value>>,
    findings: &mut Findings,
) {
    let mut merged: BTreeMap<i64, (String, Option<Value>, u64)> = BTreeMap::new();
    for log in logs {
        for anomaly in &log.anomalies {
            findings.violation(format!("watch: {anomaly}"));
        }
        if let Some(ended) = &log.ended {
            findings
                .notes
                .push(format!("watcher on node {} ended early: {ended}", log.node));
        }
        for event in &log.events {
            let seen = (event.key.clone(), event.value, log.node);
            match merged.get(&event.revision) {
                Some(other) if (&other.0, other.1) != (&seen.0, seen.1) => {
                    findings.violation(format!(
                        "watch: revision {} is {} {:?} on node {} but {} {:?} on node {}",
                        event.revision, other.0, other.1, other.2, seen.0, seen.1, seen.2
                    ))
                }
                Some(_) => {}
                None => {
                    merged.insert(event.revision, seen);
                }
            }
        }
    }
    for op in ops {
        let (Some(ret), Some(revision)) = (op.ret(), op.revision) else {
            continue;
        };
        let expected = match (ret, &op.call) {
            (Ret::Write { .. }, Call::Write { value }) => Some(Some(*value)),
            (
                Ret::Cas {
                    succeeded: true, ..
                },
                Call::Cas { new, .. },
            ) => Some(Some(*new)),
            (Ret::Delete { deleted: true, .. }, _) => Some(None),
            _ => None,
        };
        let (Some(expected), Some(event)) = (expected, merged.get(&revision)) else {
            continue;
        };
        if (event.0.as_str(), event.1) != (op.key.as_str(), expected) {
            findings.violation(format!(
                "watch: revision {revision} is {} {:?} (node {}), but this write was acknowledged at it:\n    {op}",
                event.0, event.1, event.2
            ));
        }
    }
    let complete = logs
        .iter()
        .any(|log| log.from == 1 && log.ended.is_none() && log.anomalies.is_empty());
    if complete {
        let mut replayed: BTreeMap<String, Option<Value>> = BTreeMap::new();
        for (key, value, _) in merged.values() {
            replayed.insert(key.clone(), *value);
        }
        for (key, value) in final_state {
            let from_events = replayed.get(key).copied().flatten();
            if from_events != *value {
                findings.violation(format!(
                    "watch: replaying the events gives {key} = {from_events:?}, the final read {value:?}"
                ));
            }
        }
    }
}

/// A summary of the history: counts, and why outcomes were unknown or failed.
pub fn summary(ops: &[Op]) -> String {
    let count = |f: &dyn Fn(&Op) -> bool| ops.iter().filter(|op| f(op)).count();
    let policy = |p: Policy| move |op: &Op| op.call == Call::Read { policy: p } && op.is_ok();
    // Reasons with numbers blanked out, so that "leader 2" and "leader 3" count together.
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for op in ops {
        if let Outcome::Unknown(why) | Outcome::Fail(why) = &op.outcome {
            let shape: String = why
                .chars()
                .map(|c| if c.is_ascii_digit() { '#' } else { c })
                .take(110)
                .collect();
            *reasons.entry(shape).or_default() += 1;
        }
    }
    let mut reasons: Vec<(usize, String)> = reasons.into_iter().map(|(r, n)| (n, r)).collect();
    reasons.sort_unstable_by(|a, b| b.cmp(a));
    let reasons: Vec<String> = reasons
        .iter()
        .map(|(n, reason)| format!("    {n:>6}  {reason}"))
        .collect();
    format!(
        "{} operations ({} through etcd's API): {} ok, {} unknown, {} failed; ok reads: {} \
         linearizable, {} lease, {} eventual\n  why not ok:\n{}",
        ops.len(),
        count(&|op| op.via_etcd),
        count(&|op| op.is_ok()),
        count(&|op| op.is_unknown()),
        count(&|op| matches!(op.outcome, Outcome::Fail(_))),
        count(&policy(Policy::Linearizable)),
        count(&policy(Policy::Lease)),
        count(&policy(Policy::Eventual)),
        reasons.join("\n")
    )
}

/// How one fault kind met the leader: the strikes at it, and the reads in flight meanwhile.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Coverage {
    pub leader_strikes: usize,
    pub lease_reads: usize,
    pub linearizable_reads: usize,
}

/// Per fault kind, how it met the leader: strikes at the leader, and the lease and
/// linearizable reads (any outcome) whose call overlapped one of them. A strike still in force
/// lasts until `end`.
pub fn fault_coverage(
    strikes: &[super::nemesis::Strike],
    ops: &[Op],
    end: super::history::Nanos,
) -> BTreeMap<&'static str, Coverage> {
    let mut coverage: BTreeMap<&'static str, Coverage> = BTreeMap::new();
    for strike in strikes.iter().filter(|s| s.leader) {
        let entry = coverage.entry(strike.fault.kind()).or_default();
        entry.leader_strikes += 1;
        let to = strike.to.unwrap_or(end);
        for op in ops {
            if op.invoke >= to || op.complete <= strike.from {
                continue;
            }
            match op.call {
                Call::Read {
                    policy: Policy::Lease,
                } => entry.lease_reads += 1,
                Call::Read {
                    policy: Policy::Linearizable,
                } => entry.linearizable_reads += 1,
                _ => {}
            }
        }
    }
    coverage
}

/// Every fault kind must have struck the leader while lease and linearizable reads were in
/// flight; a run where one did not cannot say anything about it, and fails.
pub fn every_fault_met_the_leader(
    coverage: &BTreeMap<&'static str, Coverage>,
    findings: &mut Findings,
) {
    for kind in super::nemesis::KINDS {
        let met = coverage
            .get(kind)
            .is_some_and(|c| c.leader_strikes > 0 && c.lease_reads > 0 && c.linearizable_reads > 0);
        if !met {
            findings.violation(format!(
                "fault kind {kind:?} never struck the leader while lease and linearizable reads \
                 were in flight ({:?}); the run proves nothing about it",
                coverage.get(kind)
            ));
        }
    }
}
