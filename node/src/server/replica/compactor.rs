//! Compaction by age, etcd's `--auto-compaction-mode=periodic`: the leader notes the revision
//! now and then, and once a note is older than the retention it proposes compacting to that
//! revision, so at least the retention's worth of history stays readable and watchable.
//!
//! Only the leader compacts this way, through the log like a client's Compact, so every
//! member drops the same history. A new leader starts noting afresh: it compacts a retention
//! after its election at the earliest, never earlier than the retention promises.

use std::collections::VecDeque;
use std::time::Duration;

/// How often a revision is noted: a tenth of the retention, as etcd's periodic compactor
/// does, at most an hour.
fn interval(retention: Duration) -> Duration {
    (retention / 10).min(Duration::from_secs(3600))
}

#[derive(Debug)]
pub struct PeriodicCompactor {
    /// Zero: off.
    retention: Duration,
    /// (when, revision then), oldest first.
    notes: VecDeque<(Duration, i64)>,
}

impl PeriodicCompactor {
    pub fn new(retention: Duration) -> Self {
        Self {
            retention,
            notes: VecDeque::new(),
        }
    }

    /// Leadership changed: notes taken under another leader say nothing about this one's.
    pub fn reset(&mut self) {
        self.notes.clear();
    }

    /// Notes `revision` at `now` if a note is due; answers the revision to compact to if a
    /// note aged past the retention and compacting to it drops something.
    pub fn due(&mut self, now: Duration, revision: i64, compacted: i64) -> Option<i64> {
        if self.retention.is_zero() {
            return None;
        }
        let note_due = self
            .notes
            .back()
            .is_none_or(|&(noted, _)| now >= noted + interval(self.retention));
        if note_due {
            self.notes.push_back((now, revision));
        }
        let mut target = None;
        while let Some(&(noted, revision)) = self.notes.front() {
            if now < noted + self.retention {
                break;
            }
            target = Some(revision);
            self.notes.pop_front();
        }
        target.filter(|&revision| revision > compacted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn compacts_to_the_revision_of_one_retention_ago() {
        let mut compactor = PeriodicCompactor::new(10 * S);
        assert_eq!(compactor.due(Duration::ZERO, 5, 0), None);
        assert_eq!(compactor.due(S, 7, 0), None);
        assert_eq!(compactor.due(2 * S, 9, 0), None);
        // Ten seconds after the first note: the revision then (5) may go.
        assert_eq!(compactor.due(10 * S, 20, 0), Some(5));
        // A second later, the note of second 1 (7) is old enough.
        assert_eq!(compactor.due(11 * S, 21, 5), Some(7));
        // Nothing to drop when the history was compacted past it meanwhile.
        assert_eq!(compactor.due(12 * S, 22, 30), None);
    }

    #[test]
    fn a_new_leader_waits_a_whole_retention_and_zero_is_off() {
        let mut compactor = PeriodicCompactor::new(10 * S);
        compactor.due(Duration::ZERO, 5, 0);
        compactor.reset();
        assert_eq!(compactor.due(10 * S, 20, 0), None);
        assert_eq!(compactor.due(20 * S, 30, 0), Some(20));
        let mut off = PeriodicCompactor::new(Duration::ZERO);
        assert_eq!(off.due(Duration::ZERO, 5, 0), None);
        assert_eq!(off.due(1000 * S, 50, 0), None);
    }
}
