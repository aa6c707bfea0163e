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
//! Forgetting answers leaves unknown deletes behind (a delete may take effect at any later
//! time, so it rarely goes away by itself). A last step drops those the failure does not
//! depend on: the history must still fail, at the same operation. That is not a relaxation,
//! so the result is the *core*, printed beside the *witness* it came from (core plus those
//! unknown deletes, which could not explain the history either).
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

/// A pure observation (a read, a failed compare-and-swap): dropping it is a relaxation.
fn observes_only(op: &Op) -> bool {
    matches!(
        (&op.call, op.ret()),
        (Call::Read { .. }, Some(_))
            | (
                Call::Cas { .. },
                Some(Ret::Cas {
                    succeeded: false,
                    ..
                })
            )
    )
}

/// The first pass drops observations; the second forgets the answers of operations that
/// changed the key (unknown operations make the search work harder, so they come last).
fn relax(op: &Op, pass: Pass) -> Option<Op> {
    match pass {
        Pass::DropObservations if observes_only(op) => None,
        Pass::ForgetAnswers if op.is_ok() && !observes_only(op) => {
            Some(forget_answer(op, "relaxed by the shrinker"))
        }
        _ => Some(op.clone()),
    }
}

#[derive(Debug, Clone, Copy)]
enum Pass {
    DropObservations,
    ForgetAnswers,
}

/// A shrunk history: both fail to linearize.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// A relaxation of the original history: its failure proves the original's.
    pub witness: Vec<Op>,
    /// The witness without the unknown operations its failure does not depend on.
    pub core: Vec<Op>,
}

/// The smallest failing relaxation of `ops` found before `deadline`, and its core. `ops` must
/// fail.
pub fn shrink(ops: &[Op], deadline: Instant) -> Shrunk {
    let witness = relax_while_failing(ops, deadline);
    let stuck_at = |ops: &[Op]| match check(ops, STEPS_PER_CHECK) {
        Verdict::Violation { stuck_at } => Some(stuck_at),
        _ => None,
    };
    let reason = stuck_at(&witness);
    let mut core = witness.clone();
    let mut index = 0;
    while index < core.len() && Instant::now() < deadline {
        if core[index].is_unknown() && core[index].call == Call::Delete {
            let mut candidate = core.clone();
            candidate.remove(index);
            if reason.is_some() && stuck_at(&candidate) == reason {
                core = candidate;
                continue;
            }
        }
        index += 1;
    }
    Shrunk { witness, core }
}

fn relax_while_failing(ops: &[Op], deadline: Instant) -> Vec<Op> {
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
    // Relax chunks of operations, halving the chunk size (delta debugging) down to single
    // operations, in each pass.
    for pass in [Pass::DropObservations, Pass::ForgetAnswers] {
        let mut chunk = (current.len() / 2).max(1);
        loop {
            let mut start = 0;
            while start < current.len() && Instant::now() < deadline {
                let end = (start + chunk).min(current.len());
                let candidate: Vec<Op> = current[..start]
                    .iter()
                    .cloned()
                    .chain(current[start..end].iter().filter_map(|op| relax(op, pass)))
                    .chain(current[end..].iter().cloned())
                    .collect();
                let candidate = prepare(&candidate);
                if candidate_differs(&candidate, &current) && fails(&candidate) {
                    current = candidate;
                } else {
                    start = end;
                }
            }
            if chunk == 1 || Instant::now() >= deadline {
                break;
            }
            chunk /= 2;
        }
    }
    current
}

fn candidate_differs(candidate: &[Op], current: &[Op]) -> bool {
    candidate.len() != current.len()
        || candidate
            .iter()
            .zip(current)
            .any(|(a, b)| a.outcome != b.outcome)
}
