//! Shrinking a non-linearizable history of one key to a small one a person can read.
//!
//! Every step is a *relaxation*: the smaller history allows at least every behaviour the
//! larger one allowed, so if it still cannot be linearized, neither could the original; what
//! is printed is a genuine witness, not merely some failing history. The relaxations:
//! - cut the history at a time T, as an observer at T would have seen it: operations answered
//!   by T are kept, those still running at T become unknown, later ones are dropped (they
//!   could only take effect after T);
//! - drop a read or a failed compare-and-swap (they observe, they change nothing);
//! - forget the answer of a write, delete or successful compare-and-swap (it becomes unknown:
//!   it may take effect any time after its invocation, or never).
//!
//! Effort is bounded by a wall-clock deadline and a step budget per check; a check that runs
//! out of budget counts as "does not fail", so shrinking never reports a guess.

use std::time::Instant;

use super::history::{Call, Nanos, Op, Outcome, Ret};
use super::linearizability::{check, prepare, Verdict};

/// Search steps allowed to each check while shrinking.
const STEPS_PER_CHECK: u64 = 2_000_000;

fn fails(ops: &[Op]) -> bool {
    matches!(check(ops, STEPS_PER_CHECK), Verdict::Violation { .. })
}

fn forget_answer(op: &Op, why: &str) -> Op {
    let mut relaxed = op.clone();
    let answered = match &op.outcome {
        Outcome::Ok(ret) => format!("{ret:?}"),
        other => format!("{other:?}"),
    };
    relaxed.outcome = Outcome::Unknown(format!("{why}; it answered {answered}"));
    relaxed
}

/// The history as an observer at time `cut` saw it.
fn cut_at(ops: &[Op], cut: Nanos) -> Vec<Op> {
    ops.iter()
        .filter(|op| op.invoke <= cut)
        .map(|op| match op.is_ok() && op.complete > cut {
            true => forget_answer(op, "answered after the cut"),
            false => op.clone(),
        })
        .collect()
}

/// `op` relaxed: `None` to drop it.
fn relax(op: &Op) -> Option<Op> {
    match (&op.call, op.ret()) {
        (_, None) => Some(op.clone()),
        (Call::Read { .. }, Some(_)) => None,
        (Call::Cas { .. }, Some(Ret::Cas { succeeded: false, .. })) => None,
        (_, Some(_)) => Some(forget_answer(op, "relaxed by the shrinker")),
    }
}

/// The smallest failing relaxation of `ops` found before `deadline`. `ops` must fail.
pub fn shrink(ops: &[Op], deadline: Instant) -> Vec<Op> {
    let mut current = prepare(ops);
    // The earliest cut that still fails, by bisection over the times answers came back.
    let mut cuts: Vec<Nanos> = current
        .iter()
        .filter(|op| op.is_ok())
        .map(|op| op.complete)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let (mut low, mut high) = (0usize, cuts.len());
    while low < high && Instant::now() < deadline {
        let middle = (low + high) / 2;
        if fails(&cut_at(&current, cuts[middle])) {
            high = middle;
        } else {
            low = middle + 1;
        }
    }
    if high < cuts.len() {
        current = prepare(&cut_at(&current, cuts[high]));
    }
    // Relax chunks of operations, halving the chunk size (delta debugging), then one at a time
    // until nothing more can go.
    let mut chunk = (current.len() / 2).max(1);
    loop {
        let mut changed = false;
        let mut start = 0;
        while start < current.len() && Instant::now() < deadline {
            let end = (start + chunk).min(current.len());
            let candidate: Vec<Op> = current[..start]
                .iter()
                .cloned()
                .chain(current[start..end].iter().filter_map(relax))
                .chain(current[end..].iter().cloned())
                .collect();
            let candidate = prepare(&candidate);
            if candidate_differs(&candidate, &current) && fails(&candidate) {
                current = candidate;
                changed = true;
            } else {
                start = end;
            }
        }
        if Instant::now() >= deadline || (chunk == 1 && !changed) {
            return current;
        }
        chunk = (chunk / 2).max(1);
    }
}

fn candidate_differs(candidate: &[Op], current: &[Op]) -> bool {
    candidate.len() != current.len()
        || candidate
            .iter()
            .zip(current)
            .any(|(a, b)| a.outcome != b.outcome)
}
