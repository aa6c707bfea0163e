//! The Events the operator records on a DEngineCluster, as the runner saw them, and the check
//! that the steps a scenario expects happened in order.
//!
//! The operator publishes through kube's `Recorder`: a step repeated within a few minutes (same
//! reason and action, e.g. `AddedLearner`/`AddLearnerNode2` when node 2 is replaced after it
//! was first added) updates the existing Event's series (count and last observed time) instead
//! of creating a new Event. The runner therefore records one occurrence per (Event, count) it
//! sees, at the Event's own time (`series.lastObservedTime`, else `eventTime`).

use std::fmt::Write as _;

/// One occurrence of an Event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Occurrence {
    /// The Event's time, microseconds since the Unix epoch, by the operator's clock: the order
    /// of the steps.
    pub at_us: i64,
    /// When the runner saw it, milliseconds since the runner started, by the runner's clock:
    /// whether it belongs to a scenario (the two clocks may differ).
    pub seen_ms: u64,
    pub reason: String,
    pub action: String,
    pub note: String,
}

/// One expected step: an Event reason, and the action when it names the target (e.g.
/// `AddLearnerNode2`, `DeletePod1`, `SetReplicas3`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub reason: String,
    pub action: Option<String>,
}

impl Expected {
    pub fn reason(reason: &str) -> Self {
        Expected {
            reason: reason.to_string(),
            action: None,
        }
    }

    pub fn step(reason: &str, action: impl Into<String>) -> Self {
        Expected {
            reason: reason.to_string(),
            action: Some(action.into()),
        }
    }

    fn matches(&self, occurrence: &Occurrence) -> bool {
        occurrence.reason == self.reason
            && self
                .action
                .as_ref()
                .is_none_or(|action| *action == occurrence.action)
    }

    fn describe(&self) -> String {
        match &self.action {
            Some(action) => format!("{} ({action})", self.reason),
            None => self.reason.clone(),
        }
    }
}

/// Sorts occurrences by time; occurrences at the same microsecond keep the order they were
/// seen in.
pub fn in_time_order(occurrences: &[Occurrence]) -> Vec<Occurrence> {
    let mut sorted = occurrences.to_vec();
    sorted.sort_by_key(|o| o.at_us);
    sorted
}

/// Checks that `expected` happened in this order among the occurrences the runner saw at or
/// after `from_ms` (other Events may come between), each after the previous one. Returns the
/// matched occurrences, or a message listing what was expected and what was seen.
pub fn check_order(
    occurrences: &[Occurrence],
    expected: &[Expected],
    from_ms: u64,
) -> Result<Vec<Occurrence>, String> {
    let sorted: Vec<Occurrence> = in_time_order(occurrences)
        .into_iter()
        .filter(|o| o.seen_ms >= from_ms)
        .collect();
    let mut matched = Vec::new();
    let mut next = 0;
    for want in expected {
        let found = sorted[next..]
            .iter()
            .position(|o| want.matches(o))
            .map(|i| next + i);
        match found {
            Some(index) => {
                matched.push(sorted[index].clone());
                next = index + 1;
            }
            None => {
                let mut message = format!(
                    "expected the Events {} in this order; {} {}",
                    list(expected),
                    want.describe(),
                    if sorted.iter().any(|o| want.matches(o)) {
                        "came too early"
                    } else {
                        "never came"
                    }
                );
                let _ = write!(message, "; seen:{}", describe(&sorted));
                return Err(message);
            }
        }
    }
    Ok(matched)
}

fn list(expected: &[Expected]) -> String {
    expected
        .iter()
        .map(Expected::describe)
        .collect::<Vec<_>>()
        .join(" -> ")
}

/// The occurrences one per line, for messages.
pub fn describe(occurrences: &[Occurrence]) -> String {
    if occurrences.is_empty() {
        return " none".to_string();
    }
    let mut text = String::new();
    for o in occurrences {
        let _ = write!(
            text,
            "\n    {:>8.1}s {} ({}): {}",
            o.seen_ms as f64 / 1000.0,
            o.reason,
            o.action,
            o.note
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(at_us: i64, reason: &str, action: &str) -> Occurrence {
        Occurrence {
            at_us,
            seen_ms: at_us as u64,
            reason: reason.into(),
            action: action.into(),
            note: String::new(),
        }
    }

    fn growth() -> Vec<Occurrence> {
        vec![
            o(10, "Grew", "SetReplicas2"),
            o(20, "ClaimedVolume", "ClaimVolumePod1"),
            o(30, "AddedLearner", "AddLearnerNode2"),
            o(40, "PromotedLearner", "PromoteNode2"),
            o(50, "Grew", "SetReplicas3"),
            o(60, "ClaimedVolume", "ClaimVolumePod2"),
            o(70, "AddedLearner", "AddLearnerNode3"),
            o(80, "PromotedLearner", "PromoteNode3"),
        ]
    }

    fn learners() -> Vec<Expected> {
        vec![
            Expected::step("AddedLearner", "AddLearnerNode2"),
            Expected::step("PromotedLearner", "PromoteNode2"),
            Expected::step("AddedLearner", "AddLearnerNode3"),
            Expected::step("PromotedLearner", "PromoteNode3"),
        ]
    }

    #[test]
    fn steps_in_order_with_others_between_pass() {
        let matched = check_order(&growth(), &learners(), 0).expect("in order");
        assert_eq!(matched.len(), 4);
        assert_eq!(matched[3].action, "PromoteNode3");
    }

    #[test]
    fn the_order_is_by_event_time_not_by_arrival() {
        let mut shuffled = growth();
        shuffled.reverse();
        assert!(check_order(&shuffled, &learners(), 0).is_ok());
    }

    #[test]
    fn a_step_out_of_order_fails_and_says_so() {
        let mut events = growth();
        // Node 3 promoted before node 2 was.
        events[7].at_us = 35;
        let error = check_order(&events, &learners(), 0).expect_err("out of order");
        assert!(
            error.contains("PromotedLearner (PromoteNode3) came too early"),
            "{error}"
        );
        assert!(error.contains("AddLearnerNode3"), "{error}");
    }

    #[test]
    fn a_missing_step_fails_and_lists_what_was_seen() {
        let events: Vec<Occurrence> = growth()
            .into_iter()
            .filter(|o| o.action != "PromoteNode2")
            .collect();
        let error = check_order(&events, &learners(), 0).expect_err("missing");
        assert!(
            error.contains("PromotedLearner (PromoteNode2) never came"),
            "{error}"
        );
        assert!(error.contains("AddedLearner (AddLearnerNode2)"), "{error}");
    }

    #[test]
    fn occurrences_before_the_start_do_not_count() {
        // Node 2's replacement: its earlier addition must not satisfy the new one.
        let mut events = growth();
        events.push(o(100, "ReplacingMember", "RemoveNode2"));
        let replacement = [
            Expected::reason("ReplacingMember"),
            Expected::step("AddedLearner", "AddLearnerNode2"),
            Expected::step("PromotedLearner", "PromoteNode2"),
        ];
        assert!(check_order(&events, &replacement, 90).is_err());
        events.push(o(110, "AddedLearner", "AddLearnerNode2"));
        events.push(o(120, "PromotedLearner", "PromoteNode2"));
        assert!(check_order(&events, &replacement, 90).is_ok());
    }

    #[test]
    fn a_reason_alone_matches_any_action() {
        let expected = [Expected::reason("Grew"), Expected::reason("Grew")];
        assert!(check_order(&growth(), &expected, 0).is_ok());
        let three = [
            Expected::reason("Grew"),
            Expected::reason("Grew"),
            Expected::reason("Grew"),
        ];
        assert!(check_order(&growth(), &three, 0).is_err());
    }
}
