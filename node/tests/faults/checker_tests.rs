//! The linearizability checker and the shrinker on small hand-made histories, and on random
//! histories that are linearizable by construction.

use std::time::{Duration, Instant};

use super::history::{Call, Op, Outcome, Policy, Ret, Value};
use super::linearizability::{check, step, Verdict};
use super::rng::Rng;
use super::shrink::shrink;

const BUDGET: u64 = 1_000_000;

/// An operation on key `k`, with times in milliseconds.
fn op(from_ms: u64, to_ms: u64, call: Call, outcome: Outcome) -> Op {
    Op {
        id: 0,
        client: 0,
        node: 1,
        key: "k".into(),
        call,
        invoke: from_ms * 1_000_000,
        complete: to_ms * 1_000_000,
        outcome,
        revision: None,
        lifetime: (1, 1),
        via_etcd: false,
    }
}

/// A history of one key, built in milliseconds.
#[derive(Default)]
struct History {
    ops: Vec<Op>,
}

impl History {
    fn add(&mut self, from_ms: u64, to_ms: u64, call: Call, outcome: Outcome) -> &mut Self {
        let mut op = op(from_ms, to_ms, call, outcome);
        op.id = self.ops.len();
        op.client = self.ops.len();
        self.ops.push(op);
        self
    }

    fn write(&mut self, from: u64, to: u64, value: Value, prev: Option<Value>) -> &mut Self {
        self.add(
            from,
            to,
            Call::Write { value },
            Outcome::Ok(Ret::Write { prev }),
        )
    }

    fn write_unknown(&mut self, from: u64, value: Value) -> &mut Self {
        self.add(
            from,
            from + 2_000,
            Call::Write { value },
            Outcome::Unknown("deadline".into()),
        )
    }

    fn read(&mut self, from: u64, to: u64, value: Option<Value>) -> &mut Self {
        self.add(
            from,
            to,
            Call::Read {
                policy: Policy::Linearizable,
            },
            Outcome::Ok(Ret::Read { value }),
        )
    }

    fn cas(
        &mut self,
        (from, to): (u64, u64),
        expected: Option<Value>,
        new: Value,
        succeeded: bool,
        current: Option<Value>,
    ) -> &mut Self {
        self.add(
            from,
            to,
            Call::Cas { expected, new },
            Outcome::Ok(Ret::Cas { succeeded, current }),
        )
    }

    fn delete(&mut self, from: u64, to: u64, prev: Option<Value>) -> &mut Self {
        self.add(
            from,
            to,
            Call::Delete,
            Outcome::Ok(Ret::Delete {
                deleted: prev.is_some(),
                prev,
            }),
        )
    }

    fn verdict(&self) -> Verdict {
        check(&self.ops, BUDGET)
    }

    fn is_linearizable(&self) -> bool {
        self.verdict() == Verdict::Linearizable
    }

    fn is_violation(&self) -> bool {
        matches!(self.verdict(), Verdict::Violation { .. })
    }
}

#[test]
fn a_sequential_history_of_every_operation_is_linearizable() {
    let mut h = History::default();
    h.read(0, 1, None)
        .write(2, 3, 1, None)
        .read(4, 5, Some(1))
        .write(6, 7, 2, Some(1))
        .cas((8, 9), Some(2), 3, true, Some(2))
        .cas((10, 11), Some(2), 4, false, Some(3))
        .cas((12, 13), None, 5, false, Some(3))
        .delete(14, 15, Some(3))
        .delete(16, 17, None)
        .cas((18, 19), None, 6, true, None)
        .read(20, 21, Some(6));
    assert!(h.is_linearizable(), "{:?}", h.verdict());
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    let mut before = History::default();
    before.write(0, 10, 1, None).read(5, 6, None);
    assert!(before.is_linearizable());
    let mut after = History::default();
    after.write(0, 10, 1, None).read(5, 6, Some(1));
    assert!(after.is_linearizable());
    // Two concurrent writes linearize in either order, and reads must agree with one order.
    let mut order = History::default();
    order
        .write(0, 10, 1, None)
        .write(0, 10, 2, Some(1))
        .read(11, 12, Some(2))
        .read(13, 14, Some(2));
    assert!(order.is_linearizable());
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_a_violation() {
    let mut h = History::default();
    h.write(0, 1, 1, None)
        .write(2, 3, 2, Some(1))
        .read(4, 5, Some(1));
    assert!(h.is_violation());
}

#[test]
fn a_lost_acknowledged_write_is_a_violation() {
    let mut h = History::default();
    h.write(0, 1, 1, None).read(2, 3, None);
    assert!(h.is_violation());
}

#[test]
fn a_compare_and_swap_that_succeeds_on_a_wrong_value_is_a_violation() {
    let mut wrong_current = History::default();
    wrong_current
        .write(0, 1, 1, None)
        .cas((2, 3), Some(2), 3, true, Some(2));
    assert!(wrong_current.is_violation());
    // Even with the current value reported right, succeeding against 2 when 1 is stored is
    // wrong.
    let mut wrong_outcome = History::default();
    wrong_outcome
        .write(0, 1, 1, None)
        .cas((2, 3), Some(2), 3, true, Some(1));
    assert!(wrong_outcome.is_violation());
    // And failing when the value did match.
    let mut wrong_failure = History::default();
    wrong_failure
        .write(0, 1, 1, None)
        .cas((2, 3), Some(1), 3, false, Some(1));
    assert!(wrong_failure.is_violation());
}

#[test]
fn a_write_reporting_a_wrong_previous_value_is_a_violation() {
    let mut h = History::default();
    h.write(0, 1, 1, None).write(2, 3, 2, None);
    assert!(h.is_violation());
}

#[test]
fn an_unknown_write_may_take_effect_late_or_never() {
    let mut late = History::default();
    late.write_unknown(0, 1)
        .read(10, 11, None)
        .read(20, 21, Some(1));
    assert!(late.is_linearizable());
    let mut never = History::default();
    never.write_unknown(0, 1).read(100, 101, None);
    assert!(never.is_linearizable());
    // Once taken effect it stays, with nothing to remove it.
    let mut undone = History::default();
    undone
        .write_unknown(0, 1)
        .read(10, 11, Some(1))
        .read(20, 21, None);
    assert!(undone.is_violation());
    // It cannot take effect before it was invoked.
    let mut early = History::default();
    early.read(0, 1, Some(1)).write_unknown(5, 1);
    assert!(early.is_violation());
}

#[test]
fn an_unknown_delete_or_compare_and_swap_may_explain_a_change() {
    let mut delete = History::default();
    delete.write(0, 1, 1, None).add(
        2,
        2_000,
        Call::Delete,
        Outcome::Unknown("connection lost".into()),
    );
    delete.read(3, 4, Some(1)).read(5, 6, None);
    assert!(delete.is_linearizable());

    let mut cas = History::default();
    cas.write(0, 1, 1, None).add(
        2,
        2_000,
        Call::Cas {
            expected: Some(1),
            new: 2,
        },
        Outcome::Unknown("deadline".into()),
    );
    cas.read(10, 11, Some(2));
    assert!(cas.is_linearizable());
    // It swaps only once: back to 1 is impossible.
    cas.read(12, 13, Some(1));
    assert!(cas.is_violation());
}

#[test]
fn failed_operations_did_not_happen() {
    let mut h = History::default();
    h.add(
        0,
        1,
        Call::Write { value: 1 },
        Outcome::Fail("invalid argument".into()),
    )
    .read(2, 3, Some(1));
    assert!(h.is_violation());
}

/// A random history of one key that is linearizable by construction: operations take effect
/// in order at increasing instants inside their (overlapping) intervals; some answers are
/// forgotten (unknown), and some unknown writes never take effect.
fn random_linearizable_history(rng: &mut Rng, length: usize) -> Vec<Op> {
    let mut h = History::default();
    let mut state: Option<Value> = None;
    let mut at = 10u64;
    for next_value in 1..=length as Value {
        at += rng.between(1, 4);
        let (from, to) = (at - rng.below(8).min(at), at + rng.below(8));
        let call = match rng.below(5) {
            0 | 1 => Call::Write { value: next_value },
            2 => Call::Cas {
                expected: if rng.chance(50) {
                    state
                } else {
                    Some(next_value + 99)
                },
                new: next_value,
            },
            3 => Call::Delete,
            _ => Call::Read {
                policy: Policy::Linearizable,
            },
        };
        if rng.chance(5) && call != Call::Delete {
            // A write that timed out and never took effect.
            if let Call::Write { value } = call {
                h.write_unknown(from, value);
            }
            continue;
        }
        let ret = match &call {
            Call::Write { .. } => Ret::Write { prev: state },
            Call::Cas { expected, .. } => Ret::Cas {
                succeeded: state == *expected,
                current: state,
            },
            Call::Delete => Ret::Delete {
                deleted: state.is_some(),
                prev: state,
            },
            Call::Read { .. } => Ret::Read { value: state },
        };
        let op_for_model = op(0, 0, call.clone(), Outcome::Ok(ret.clone()));
        state = step(state, &op_for_model).expect("the model accepts its own answer");
        let outcome = match rng.chance(10) {
            true => Outcome::Unknown("deadline".into()),
            false => Outcome::Ok(ret),
        };
        h.add(from, to, call, outcome);
    }
    h.ops
}

#[test]
fn random_histories_linearizable_by_construction_are_accepted() {
    let mut rng = Rng::new(7);
    for round in 0..200 {
        let ops = random_linearizable_history(&mut rng, 60);
        assert_eq!(
            check(&ops, BUDGET),
            Verdict::Linearizable,
            "round {round}: {ops:#?}"
        );
    }
}

#[test]
fn the_shrinker_finds_the_few_operations_that_explain_a_violation() {
    let mut rng = Rng::new(11);
    let mut ops = random_linearizable_history(&mut rng, 300);
    // A write acknowledged, then read back as the value before it.
    let last = ops.iter().map(|op| op.complete).max().unwrap_or(0) / 1_000_000;
    let mut tail = History {
        ops: std::mem::take(&mut ops),
    };
    // 9_001 written (answer lost), read back, overwritten by 9_002, then read back again.
    tail.add(
        last + 10,
        last + 11,
        Call::Write { value: 9_001 },
        Outcome::Unknown("deadline".into()),
    )
    .read(last + 20, last + 21, Some(9_001))
    .write(last + 30, last + 31, 9_002, Some(9_001))
    .read(last + 40, last + 41, Some(9_001));
    let ops = tail.ops;
    assert!(matches!(check(&ops, BUDGET), Verdict::Violation { .. }));
    let shrunk = shrink(&ops, Instant::now() + Duration::from_secs(20));
    for small in [&shrunk.witness, &shrunk.core] {
        assert!(
            matches!(check(small, BUDGET), Verdict::Violation { .. }),
            "{small:#?}"
        );
    }
    let shown: Vec<String> = shrunk.core.iter().map(|op| op.to_string()).collect();
    assert!(
        shrunk.core.len() <= 4,
        "not shrunk enough ({} ops):\n{}",
        shrunk.core.len(),
        shown.join("\n")
    );
    assert!(shrunk
        .core
        .iter()
        .any(|op| op.ret() == Some(&Ret::Read { value: Some(9_001) })));
}

#[test]
fn a_search_out_of_budget_gives_up_instead_of_guessing() {
    let mut rng = Rng::new(3);
    let ops = random_linearizable_history(&mut rng, 200);
    assert_eq!(check(&ops, 10), Verdict::GaveUp);
}

#[test]
fn a_history_the_checker_cannot_decide_fails_the_run() {
    let mut rng = Rng::new(3);
    let ops = random_linearizable_history(&mut rng, 200);
    let mut findings = super::checks::Findings::default();
    super::checks::linearizable_within(&ops, 10, &mut findings);
    assert_eq!(findings.violations.len(), 1, "{:?}", findings.violations);
    assert!(findings.violations[0].contains("UNDECIDED"));
}

#[test]
fn an_unknown_write_that_only_an_unknown_compare_and_swap_built_on_is_kept() {
    // 1 is never read, but the swap from 1 to 2 can only have happened on top of it.
    let mut h = History::default();
    h.write_unknown(0, 1).add(
        5,
        2_000,
        Call::Cas {
            expected: Some(1),
            new: 2,
        },
        Outcome::Unknown("deadline".into()),
    );
    h.read(10, 11, Some(2));
    assert!(h.is_linearizable(), "{:?}", h.verdict());
}

#[test]
fn many_unknown_deletes_keep_the_search_small() {
    // A long outage: every client's delete timed out, and writes and reads went on around
    // them. Without treating interchangeable unknown deletes alike, the search would try every
    // subset of them.
    let mut h = History::default();
    let mut prev = None;
    for i in 0..200u64 {
        let t = 10 * i;
        h.add(
            t,
            t + 3_000,
            Call::Delete,
            Outcome::Unknown("deadline".into()),
        );
        h.write(t + 1, t + 2, i + 1, prev);
        h.read(t + 3, t + 4, Some(i + 1));
        prev = Some(i + 1);
    }
    h.read(2_100, 2_101, None);
    assert_eq!(check(&h.ops, 5_000_000), Verdict::Linearizable);
    // Still sound: a value cannot come back after the deletes.
    h.read(2_200, 2_201, Some(200));
    assert!(matches!(
        check(&h.ops, 5_000_000),
        Verdict::Violation { .. }
    ));
}
