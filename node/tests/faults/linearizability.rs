//! Linearizability of a register, one key at a time.
//!
//! The search is Wing & Gong's, with Lowe's memoization ("Testing for linearizability",
//! Concurrency and Computation 2017), as in Porcupine: the history becomes a list of call and
//! return events in time order; the search repeatedly linearizes a call that is pending (its
//! operation takes effect now, and the register model must produce its answer), and backs up
//! when it meets a return whose call it has not linearized. A configuration (the set of
//! operations linearized, the register's value) that failed once is never explored again.
//!
//! Keys are independent registers, so a history is linearizable if and only if each key's
//! sub-history is (P-compositionality, Herlihy & Wing's locality): each key is checked alone,
//! which keeps every search small.
//!
//! An operation whose outcome is unknown (a timeout, a lost connection) may take effect at any
//! time after its invocation, or never: it returns at infinity. Linearizing it last changes
//! nothing any other operation observed, so the search is done once every operation with a
//! known answer is linearized.

use std::collections::HashSet;

use super::history::{Call, Nanos, Op, Outcome, Ret, Value, NEVER};
use super::rng::Rng;

/// The register's value: `None` when the key does not exist (its initial state).
pub type State = Option<Value>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Linearizable,
    /// No linearization exists. `stuck_at` is an operation (by id) whose answer the deepest
    /// attempt could not explain: where to start reading.
    Violation {
        stuck_at: Option<usize>,
    },
    /// The search used up its budget of steps without an answer.
    GaveUp,
}

/// The register: the state after `op` takes effect in `state`, or `None` if `op`'s answer
/// (when known) is not what the register would answer.
pub fn step(state: State, op: &Op) -> Option<State> {
    let ret = op.ret();
    match (&op.call, ret) {
        (Call::Write { value }, None) => Some(Some(*value)),
        (Call::Write { value }, Some(Ret::Write { prev })) => {
            (*prev == state).then_some(Some(*value))
        }
        (Call::Cas { expected, new }, ret) => {
            let holds = state == *expected;
            let answer_fits = match ret {
                None => true,
                Some(Ret::Cas { succeeded, current }) => *succeeded == holds && *current == state,
                Some(_) => false,
            };
            answer_fits.then_some(if holds { Some(*new) } else { state })
        }
        (Call::Delete, None) => Some(None),
        (Call::Delete, Some(Ret::Delete { deleted, prev })) => {
            (*deleted == state.is_some() && *prev == state).then_some(None)
        }
        (Call::Read { .. }, None) => Some(state),
        (Call::Read { .. }, Some(Ret::Read { value })) => (*value == state).then_some(state),
        _ => None,
    }
}

/// Values whose writes the search may need: those some operation with a known answer saw as
/// the key's state, and, since an unknown compare-and-swap can only take effect on the value
/// it expects, the expected values of unknown compare-and-swaps whose own value is needed (to
/// a fixpoint).
fn needed_values(ops: &[Op]) -> HashSet<Value> {
    let mut needed: HashSet<Value> = ops
        .iter()
        .filter_map(|op| match op.ret()? {
            Ret::Write { prev } => *prev,
            Ret::Cas { current, .. } => *current,
            Ret::Delete { prev, .. } => *prev,
            Ret::Read { value } => *value,
        })
        .collect();
    loop {
        let more: Vec<Value> = ops
            .iter()
            .filter(|op| op.is_unknown())
            .filter_map(|op| match op.call {
                Call::Cas {
                    expected: Some(expected),
                    new,
                } if needed.contains(&new) && !needed.contains(&expected) => Some(expected),
                _ => None,
            })
            .collect();
        if more.is_empty() {
            return needed;
        }
        needed.extend(more);
    }
}

/// The operations of one key that the search needs, in invocation order. Drops what cannot
/// matter, which keeps unknown operations (the expensive part of the search) few:
/// - failed operations (they did not happen) and eventual reads (not linearizable);
/// - reads with unknown outcome (they change nothing and answered nothing);
/// - unknown writes whose value nobody observed: values are unique and every answer reveals the
///   state it saw, so had such a write taken effect, it was overwritten before anyone looked;
///   leaving it out ("it never happened") explains the same answers (see [`needed_values`]
///   for the one subtlety, unknown compare-and-swaps that build on it);
/// - unknown operations invoked after every known answer: they may take effect last.
pub fn prepare(ops: &[Op]) -> Vec<Op> {
    let relevant: Vec<Op> = ops
        .iter()
        .filter(|op| op.is_linearizable_kind())
        .filter(|op| !matches!(op.outcome, Outcome::Fail(_)))
        .filter(|op| !(op.is_unknown() && matches!(op.call, Call::Read { .. })))
        .cloned()
        .collect();
    let needed = needed_values(&relevant);
    let last_answer = relevant
        .iter()
        .filter(|op| op.is_ok())
        .map(|op| op.complete)
        .max()
        .unwrap_or(0);
    let mut kept: Vec<Op> = relevant
        .into_iter()
        .filter(|op| {
            op.is_ok()
                || (op.invoke <= last_answer
                    && op.written_value().is_none_or(|v| needed.contains(&v)))
        })
        .collect();
    kept.sort_by_key(|op| (op.invoke, op.id));
    kept
}

/// Checks the operations of one key (prepared or not), within `budget` search steps.
pub fn check(ops: &[Op], budget: u64) -> Verdict {
    search(&prepare(ops), budget)
}

const NIL: usize = usize::MAX;

/// A call or return event in the doubly linked list the search lifts operations out of.
#[derive(Debug, Clone)]
struct Entry {
    op: usize,
    is_call: bool,
    /// The other event of the same operation.
    matching: usize,
    prev: usize,
    next: usize,
}

struct Events {
    entries: Vec<Entry>,
}

impl Events {
    /// Entry 0 is the head; the events follow in time order, calls before returns at equal
    /// times (touching operations count as concurrent, the permissive reading).
    fn new(ops: &[Op]) -> Self {
        let mut order: Vec<(Nanos, bool, usize)> = Vec::with_capacity(2 * ops.len());
        for (index, op) in ops.iter().enumerate() {
            order.push((op.invoke, false, index));
            let returns = if op.is_ok() { op.complete } else { NEVER };
            order.push((returns, true, index));
        }
        order.sort_unstable();
        let mut entries = vec![Entry {
            op: NIL,
            is_call: false,
            matching: NIL,
            prev: NIL,
            next: NIL,
        }];
        let mut call_of = vec![NIL; ops.len()];
        for (position, &(_, is_return, op)) in order.iter().enumerate() {
            let index = position + 1;
            let mut entry = Entry {
                op,
                is_call: !is_return,
                matching: NIL,
                prev: index - 1,
                next: if position + 1 < order.len() {
                    index + 1
                } else {
                    NIL
                },
            };
            if is_return {
                entry.matching = call_of[op];
                entries[call_of[op]].matching = index;
            } else {
                call_of[op] = index;
            }
            entries.push(entry);
        }
        entries[0].next = if order.is_empty() { NIL } else { 1 };
        Self { entries }
    }

    fn unlink(&mut self, index: usize) {
        let Entry { prev, next, .. } = self.entries[index];
        self.entries[prev].next = next;
        if next != NIL {
            self.entries[next].prev = prev;
        }
    }

    fn relink(&mut self, index: usize) {
        let Entry { prev, next, .. } = self.entries[index];
        self.entries[prev].next = index;
        if next != NIL {
            self.entries[next].prev = index;
        }
    }

    /// Takes an operation (its call and its return) out of the list.
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        self.unlink(self.entries[call].matching);
    }

    /// Puts back the operation lifted last (dancing links: the reverse order).
    fn unlift(&mut self, call: usize) {
        self.relink(self.entries[call].matching);
        self.relink(call);
    }
}

/// The search proper, on prepared operations.
pub fn search(ops: &[Op], budget: u64) -> Verdict {
    let mut events = Events::new(ops);
    // Zobrist hashing of the set of linearized operations: two independent 64-bit halves make
    // a false "already seen" (which could only turn a pass into a reported violation) as
    // unlikely as a 128-bit collision.
    let mut rng = Rng::new(0x5eed_0f11);
    let keys: Vec<(u64, u64)> = ops
        .iter()
        .map(|_| (rng.next_u64(), rng.next_u64()))
        .collect();
    let mut linearized = (0u64, 0u64);
    let mut seen: HashSet<(u64, u64, State)> = HashSet::new();
    let mut state: State = None;
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut pending_answers = ops.iter().filter(|op| op.is_ok()).count();
    let mut deepest = (0usize, None);
    // Whether an unknown delete was already tried at each depth of the stack. Unknown deletes
    // that may take effect now are interchangeable: each sets the register to absent, and each
    // stays available for ever (it returns at infinity). Trying only the first one per depth
    // keeps their number from doubling the configurations.
    let mut tried_unknown_delete = vec![false];
    let mut entry = events.entries[0].next;
    let mut steps = 0u64;
    loop {
        if pending_answers == 0 {
            return Verdict::Linearizable;
        }
        steps += 1;
        if steps > budget {
            return Verdict::GaveUp;
        }
        if entry == NIL {
            // Unreachable: a pending answer's return event lies ahead of the walk.
            return Verdict::Violation { stuck_at: None };
        }
        let current = events.entries[entry].clone();
        if current.is_call {
            let op = &ops[current.op];
            let is_unknown_delete = op.is_unknown() && op.call == Call::Delete;
            let depth = stack.len();
            if is_unknown_delete && tried_unknown_delete[depth] {
                entry = current.next;
                continue;
            }
            if let Some(next_state) = step(state, op) {
                let key = keys[current.op];
                let candidate = (linearized.0 ^ key.0, linearized.1 ^ key.1);
                if is_unknown_delete {
                    tried_unknown_delete[depth] = true;
                }
                if seen.insert((candidate.0, candidate.1, next_state)) {
                    stack.push((entry, state));
                    tried_unknown_delete.truncate(stack.len());
                    tried_unknown_delete.push(false);
                    state = next_state;
                    linearized = candidate;
                    if op.is_ok() {
                        pending_answers -= 1;
                    }
                    events.lift(entry);
                    entry = events.entries[0].next;
                    continue;
                }
            }
            entry = current.next;
        } else {
            // This operation returned before any way was found to linearize it: back up.
            if stack.len() >= deepest.0 {
                deepest = (stack.len(), Some(ops[current.op].id));
            }
            let Some((call, previous)) = stack.pop() else {
                return Verdict::Violation {
                    stuck_at: deepest.1,
                };
            };
            let op_index = events.entries[call].op;
            let key = keys[op_index];
            linearized = (linearized.0 ^ key.0, linearized.1 ^ key.1);
            state = previous;
            if ops[op_index].is_ok() {
                pending_answers += 1;
            }
            events.unlift(call);
            entry = events.entries[call].next;
        }
    }
}
