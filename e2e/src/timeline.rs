//! Timelines recorded while a scenario runs, and the checks made on them: pods never more than
//! one not ready at a time during a rolling upgrade, pods restarted in the expected order, and a
//! condition never false for longer than allowed.
//!
//! Times are milliseconds since the runner started, as recorded by the runner's watches.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

/// What a pod watch saw of one pod at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSample {
    pub at_ms: u64,
    pub pod: String,
    pub uid: String,
    /// The pod's Ready condition is True and it is not being deleted.
    pub ready: bool,
    /// The pod is gone (a watch delete) or being deleted (it has a deletion timestamp).
    pub gone: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PodState {
    Ready(String),
    NotReady(String),
    Gone,
}

/// The largest number of `members` that were not ready at the same moment, over `samples` (in
/// the order recorded), with the moment and the pods; members start as ready at `from_ms`
/// (the scenario starts from a healthy cluster), and only samples at or after `from_ms` count.
pub fn most_not_ready_at_once(
    samples: &[PodSample],
    members: &[String],
    from_ms: u64,
) -> (usize, u64, Vec<String>) {
    let members: BTreeSet<&str> = members.iter().map(String::as_str).collect();
    // Each member's state as of `from_ms`: what the samples before it say, ready if nothing.
    let mut state: BTreeMap<&str, PodState> = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.at_ms < from_ms) {
        if members.contains(sample.pod.as_str()) {
            state.insert(&sample.pod, state_of(sample));
        }
    }
    let not_ready = |state: &BTreeMap<&str, PodState>| -> Vec<String> {
        members
            .iter()
            .filter(|m| !matches!(state.get(*m), None | Some(PodState::Ready(_))))
            .map(|m| m.to_string())
            .collect()
    };
    let at_start = not_ready(&state);
    let mut worst = (at_start.len(), from_ms, at_start);
    for sample in samples.iter().filter(|s| s.at_ms >= from_ms) {
        if !members.contains(sample.pod.as_str()) {
            continue;
        }
        // A sample of an old incarnation that arrives after the new one was seen changes
        // nothing: the name now belongs to the new pod.
        let stale = matches!(state.get(sample.pod.as_str()),
            Some(PodState::Ready(uid) | PodState::NotReady(uid)) if *uid != sample.uid && sample.gone);
        if stale {
            continue;
        }
        state.insert(&sample.pod, state_of(sample));
        let down = not_ready(&state);
        if down.len() > worst.0 {
            worst = (down.len(), sample.at_ms, down);
        }
    }
    worst
}

fn state_of(sample: &PodSample) -> PodState {
    if sample.gone {
        PodState::Gone
    } else if sample.ready {
        PodState::Ready(sample.uid.clone())
    } else {
        PodState::NotReady(sample.uid.clone())
    }
}

/// The pods that were replaced (seen under a new uid) after `from_ms`, in the order their old
/// incarnation stopped being ready; each pod once, at its first replacement.
pub fn replacement_order(samples: &[PodSample], from_ms: u64) -> Vec<(String, u64)> {
    let mut uid_at_start: BTreeMap<&str, &str> = BTreeMap::new();
    for sample in samples.iter().filter(|s| s.at_ms < from_ms && !s.gone) {
        uid_at_start.insert(&sample.pod, &sample.uid);
    }
    // When each pod's original incarnation was last seen ready and first seen not ready.
    let mut went_down: BTreeMap<&str, u64> = BTreeMap::new();
    let mut replaced: BTreeSet<&str> = BTreeSet::new();
    let mut order = Vec::new();
    for sample in samples.iter().filter(|s| s.at_ms >= from_ms) {
        let Some(original) = uid_at_start.get(sample.pod.as_str()) else {
            continue;
        };
        if sample.uid == *original {
            if !sample.ready || sample.gone {
                went_down.entry(&sample.pod).or_insert(sample.at_ms);
            }
        } else if replaced.insert(&sample.pod) {
            let at = went_down
                .get(sample.pod.as_str())
                .copied()
                .unwrap_or(sample.at_ms);
            order.push((sample.pod.clone(), at));
        }
    }
    order.sort_by_key(|(_, at)| *at);
    order
}

/// A readable listing of the samples from `from_ms` on, for failure messages.
pub fn describe(samples: &[PodSample], from_ms: u64) -> String {
    let mut text = String::new();
    for s in samples.iter().filter(|s| s.at_ms >= from_ms) {
        let state = if s.gone {
            "gone"
        } else if s.ready {
            "ready"
        } else {
            "not ready"
        };
        let uid: String = s.uid.chars().take(8).collect();
        let _ = writeln!(
            text,
            "    {:>8.1}s {} ({uid}) {state}",
            s.at_ms as f64 / 1000.0,
            s.pod
        );
    }
    text
}

/// The longest stretch, within `[from_ms, to_ms]`, during which the condition was false, given
/// its observed values in time order; the value before `from_ms` carries into the window, and an
/// unknown value (nothing observed yet) counts as true.
pub fn longest_false(samples: &[(u64, bool)], from_ms: u64, to_ms: u64) -> (u64, u64) {
    let mut value = samples
        .iter()
        .take_while(|(at, _)| *at < from_ms)
        .last()
        .map(|(_, v)| *v)
        .unwrap_or(true);
    let mut since = from_ms;
    let mut longest = (0, from_ms);
    for (at, v) in samples
        .iter()
        .filter(|(at, _)| *at >= from_ms && *at <= to_ms)
    {
        if value != *v {
            if !value {
                let stretch = at - since;
                if stretch > longest.0 {
                    longest = (stretch, since);
                }
            }
            value = *v;
            since = *at;
        }
    }
    if !value {
        let stretch = to_ms.saturating_sub(since);
        if stretch > longest.0 {
            longest = (stretch, since);
        }
    }
    longest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(at_ms: u64, pod: &str, uid: &str, ready: bool) -> PodSample {
        PodSample {
            at_ms,
            pod: pod.into(),
            uid: uid.into(),
            ready,
            gone: false,
        }
    }

    fn gone(at_ms: u64, pod: &str, uid: &str) -> PodSample {
        PodSample {
            at_ms,
            pod: pod.into(),
            uid: uid.into(),
            ready: false,
            gone: true,
        }
    }

    fn members() -> Vec<String> {
        vec!["e2e-0".into(), "e2e-1".into(), "e2e-2".into()]
    }

    /// Three pods ready, then each restarted in turn: down, gone, back under a new uid, ready.
    fn rolling(order: &[&str]) -> Vec<PodSample> {
        let mut samples = vec![
            s(0, "e2e-0", "a0", true),
            s(0, "e2e-1", "a1", true),
            s(0, "e2e-2", "a2", true),
        ];
        let mut at = 1000;
        for pod in order {
            let old = format!("a{}", &pod[4..]);
            let new = format!("b{}", &pod[4..]);
            samples.push(s(at, pod, &old, false));
            samples.push(gone(at + 100, pod, &old));
            samples.push(s(at + 200, pod, &new, false));
            samples.push(s(at + 300, pod, &new, true));
            at += 1000;
        }
        samples
    }

    #[test]
    fn one_pod_at_a_time_is_at_most_one_not_ready() {
        let samples = rolling(&["e2e-2", "e2e-1", "e2e-0"]);
        let (most, _, _) = most_not_ready_at_once(&samples, &members(), 500);
        assert_eq!(most, 1);
    }

    #[test]
    fn two_pods_down_together_are_caught_with_when_and_which() {
        let mut samples = rolling(&["e2e-2"]);
        // e2e-1 goes down before e2e-2 came back.
        samples.insert(5, s(1150, "e2e-1", "a1", false));
        let (most, at, pods) = most_not_ready_at_once(&samples, &members(), 500);
        assert_eq!(most, 2);
        assert_eq!(at, 1150);
        assert_eq!(pods, vec!["e2e-1".to_string(), "e2e-2".to_string()]);
    }

    #[test]
    fn a_missing_pod_counts_as_not_ready_until_its_new_incarnation_is() {
        let mut samples = rolling(&[]);
        samples.push(gone(1000, "e2e-2", "a2"));
        samples.push(s(1500, "e2e-0", "a0", false));
        let (most, _, pods) = most_not_ready_at_once(&samples, &members(), 500);
        assert_eq!(most, 2, "{pods:?}");
    }

    #[test]
    fn a_late_delete_of_the_old_incarnation_does_not_take_the_new_one_down() {
        let samples = vec![
            s(0, "e2e-0", "a0", true),
            s(0, "e2e-1", "a1", true),
            s(1000, "e2e-1", "b1", true),
            gone(1100, "e2e-1", "a1"),
            s(1200, "e2e-0", "a0", false),
        ];
        let (most, _, _) = most_not_ready_at_once(&samples, &["e2e-0".into(), "e2e-1".into()], 500);
        assert_eq!(most, 1);
    }

    #[test]
    fn samples_before_the_window_set_the_start_but_do_not_count() {
        let samples = vec![
            s(0, "e2e-0", "a0", false),
            s(0, "e2e-1", "a1", false),
            s(100, "e2e-0", "a0", true),
            s(200, "e2e-1", "a1", true),
        ];
        let pair = ["e2e-0".to_string(), "e2e-1".to_string()];
        // At 150 only e2e-1 is still not ready, as the samples before the window say.
        assert_eq!(most_not_ready_at_once(&samples, &pair, 150).0, 1);
        assert_eq!(most_not_ready_at_once(&samples, &pair, 250).0, 0);
        assert_eq!(most_not_ready_at_once(&samples, &pair, 0).0, 2);
    }

    #[test]
    fn pods_outside_the_members_are_ignored() {
        let mut samples = rolling(&["e2e-2"]);
        samples.push(s(1050, "e2e-3", "x", false));
        let (most, _, _) = most_not_ready_at_once(&samples, &members(), 500);
        assert_eq!(most, 1);
    }

    #[test]
    fn replacement_order_follows_when_each_pod_went_down() {
        let samples = rolling(&["e2e-2", "e2e-1", "e2e-0"]);
        let order: Vec<String> = replacement_order(&samples, 500)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(order, ["e2e-2", "e2e-1", "e2e-0"]);

        let samples = rolling(&["e2e-0", "e2e-2"]);
        let order: Vec<String> = replacement_order(&samples, 500)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(order, ["e2e-0", "e2e-2"], "e2e-1 was never replaced");
    }

    #[test]
    fn a_pod_replaced_before_the_window_is_not_a_replacement_in_it() {
        let samples = rolling(&["e2e-1"]);
        assert!(replacement_order(&samples, 5000).is_empty());
    }

    #[test]
    fn longest_false_measures_each_stretch_and_an_open_one() {
        let samples = [
            (0, true),
            (1000, false),
            (1500, true),
            (3000, false),
            (6000, true),
        ];
        assert_eq!(longest_false(&samples, 0, 10_000), (3000, 3000));
        assert_eq!(longest_false(&samples, 0, 2000), (500, 1000));
        // False carried into the window from before it, and still false at its end.
        assert_eq!(longest_false(&[(0, false)], 100, 400), (300, 100));
        assert_eq!(longest_false(&[], 0, 100), (0, 0));
        assert_eq!(longest_false(&[(50, true)], 0, 100), (0, 0));
    }

    #[test]
    fn describe_lists_the_window() {
        let text = describe(&rolling(&["e2e-2"]), 500);
        assert!(text.contains("e2e-2 (a2) not ready"), "{text}");
        assert!(text.contains("e2e-2 (b2) ready"), "{text}");
        assert!(!text.contains("e2e-0"), "{text}");
    }
}
