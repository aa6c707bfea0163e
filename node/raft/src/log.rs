//! The replicated log as the core sees it: a compacted prefix (the snapshot point), the
//! entries after it, and three cursors.
//!
//! `stable <= last_index`: entries up to `stable` are on disk; the rest are waiting for the
//! next `Ready` to persist them. `applied <= committed`: entries up to `applied` were handed out
//! to the state machine. Entries are handed out for applying only once they are both committed
//! and stable, so a node never applies what it could lose in a crash.
//!
//! The whole unsnapshotted log is kept in memory: coordination data is small and the log is
//! compacted after every snapshot, and it keeps the core free of I/O.

use super::{LogIndex, Term};
use crate::proto::{Entry, Snapshot};

#[derive(Debug, Clone)]
pub struct RaftLog {
    snapshot_index: LogIndex,
    snapshot_term: Term,
    /// `entries[i].index == snapshot_index + 1 + i`.
    entries: Vec<Entry>,
    committed: LogIndex,
    applied: LogIndex,
    stable: LogIndex,
    /// A snapshot received from the leader, not yet handed out for installing.
    pending_snapshot: Option<Snapshot>,
    /// How many times a suffix was truncated: the configuration must then be recomputed.
    truncations: u64,
}

impl RaftLog {
    /// A log restored from storage: everything given is stable, nothing beyond `applied` is
    /// known to be applied.
    pub fn restore(
        snapshot_index: LogIndex,
        snapshot_term: Term,
        entries: Vec<Entry>,
        committed: LogIndex,
        applied: LogIndex,
    ) -> Self {
        let last = snapshot_index + entries.len() as u64;
        let committed = committed.clamp(snapshot_index, last);
        Self {
            snapshot_index,
            snapshot_term,
            entries,
            committed,
            applied: applied.clamp(snapshot_index, committed),
            stable: last,
            pending_snapshot: None,
            truncations: 0,
        }
    }

    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot_index
    }

    pub fn first_index(&self) -> LogIndex {
        self.snapshot_index + 1
    }

    pub fn last_index(&self) -> LogIndex {
        self.snapshot_index + self.entries.len() as u64
    }

    pub fn last_term(&self) -> Term {
        self.entries
            .last()
            .map(|e| e.term)
            .unwrap_or(self.snapshot_term)
    }

    pub fn truncations(&self) -> u64 {
        self.truncations
    }

    pub fn committed(&self) -> LogIndex {
        self.committed
    }

    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    pub fn stable(&self) -> LogIndex {
        self.stable
    }

    /// The term of the entry at `index`, or `None` if it is compacted or beyond the end.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        self.entry(index).map(|e| e.term)
    }

    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snapshot_index {
            return None;
        }
        self.entries.get((index - self.snapshot_index - 1) as usize)
    }

    pub fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term(index) == Some(term)
    }

    /// Raft §5.4.1: a candidate's log is at least as up to date as ours.
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// Entries from `from` on, at least one if there is one, then up to `max_bytes` of data.
    /// `None` when `from` is compacted (the follower needs a snapshot).
    pub fn entries_from(
        &self,
        from: LogIndex,
        max_bytes: usize,
        max_count: usize,
    ) -> Option<Vec<Entry>> {
        if from <= self.snapshot_index {
            return None;
        }
        let start = (from - self.snapshot_index - 1) as usize;
        let mut size = 0usize;
        let mut out = Vec::new();
        for entry in self.entries.iter().skip(start).take(max_count.max(1)) {
            size += entry.data.len() + 24;
            if !out.is_empty() && size > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        Some(out)
    }

    /// The leader's append: entries get the next indexes.
    pub fn append(&mut self, entries: Vec<Entry>) -> LogIndex {
        for entry in entries {
            debug_assert_eq!(entry.index, self.last_index() + 1);
            self.entries.push(entry);
        }
        self.last_index()
    }

    /// The follower's append (Raft figure 2, AppendEntries receiver steps 2-5). Returns the
    /// index of the last entry known to match the leader, or `None` if the log does not contain
    /// (prev_index, prev_term).
    pub fn maybe_append(
        &mut self,
        prev_index: LogIndex,
        prev_term: Term,
        leader_commit: LogIndex,
        entries: Vec<Entry>,
    ) -> Option<LogIndex> {
        if prev_index < self.snapshot_index {
            // Part of the append is already compacted here; those entries are committed and
            // therefore match. Skip them.
            let skip = (self.snapshot_index - prev_index) as usize;
            if skip > entries.len() {
                return Some(self.snapshot_index);
            }
            let rest: Vec<Entry> = entries.into_iter().skip(skip).collect();
            return self.maybe_append(self.snapshot_index, self.snapshot_term, leader_commit, rest);
        }
        if !self.matches(prev_index, prev_term) {
            return None;
        }
        let last_new = prev_index + entries.len() as u64;
        for entry in entries {
            match self.term(entry.index) {
                Some(term) if term == entry.term => continue,
                Some(_) => {
                    // A conflict: drop this entry and all that follow (figure 2, step 3). The
                    // committed prefix never conflicts; a leader never overwrites it.
                    assert!(
                        entry.index > self.committed,
                        "conflict at committed index {} (commit {})",
                        entry.index,
                        self.committed
                    );
                    self.truncate_from(entry.index);
                    self.entries.push(entry);
                }
                None => self.entries.push(entry),
            }
        }
        self.commit_to(leader_commit.min(last_new));
        Some(last_new)
    }

    fn truncate_from(&mut self, index: LogIndex) {
        let keep = (index - self.snapshot_index - 1) as usize;
        self.entries.truncate(keep);
        self.stable = self.stable.min(index - 1);
        self.truncations += 1;
    }

    /// For fast back-off: the largest index at or below `index` whose term is at most `term`,
    /// with that term. Lets a leader skip a whole conflicting term in one round trip.
    pub fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut index = index.min(self.last_index());
        loop {
            match self.term(index) {
                Some(t) if t > term => index -= 1,
                Some(t) => return (index, t),
                None => return (index, 0),
            }
        }
    }

    pub fn commit_to(&mut self, index: LogIndex) -> bool {
        if index > self.committed {
            assert!(index <= self.last_index(), "commit {index} beyond the log");
            self.committed = index;
            true
        } else {
            false
        }
    }

    /// Entries not yet handed out for persisting.
    pub fn unstable_entries(&self) -> &[Entry] {
        let from = (self.stable - self.snapshot_index) as usize;
        &self.entries[from.min(self.entries.len())..]
    }

    pub fn has_unstable(&self) -> bool {
        self.stable < self.last_index()
    }

    /// Everything up to `index` was handed out for persisting.
    pub fn stable_to(&mut self, index: LogIndex) {
        self.stable = self.stable.max(index.min(self.last_index()));
    }

    /// Committed, stable entries not yet handed out for applying.
    pub fn next_committed(&self, max_bytes: usize) -> Vec<Entry> {
        let upto = self.committed.min(self.stable);
        if upto <= self.applied {
            return Vec::new();
        }
        let mut out = self
            .entries_from(self.applied + 1, max_bytes, usize::MAX)
            .unwrap_or_default();
        out.retain(|e| e.index <= upto);
        out
    }

    pub fn has_next_committed(&self) -> bool {
        self.committed.min(self.stable) > self.applied
    }

    pub fn applied_to(&mut self, index: LogIndex) {
        self.applied = self.applied.max(index.min(self.committed));
    }

    /// Replaces the log with a snapshot from the leader. The snapshot waits for the next
    /// `Ready`, which installs it before anything after it.
    pub fn restore_snapshot(&mut self, snapshot: Snapshot) {
        let meta = snapshot.metadata.clone().unwrap_or_default();
        self.snapshot_index = meta.index;
        self.snapshot_term = meta.term;
        self.entries.clear();
        self.committed = meta.index;
        self.applied = meta.index;
        self.stable = meta.index;
        self.pending_snapshot = Some(snapshot);
    }

    pub fn take_pending_snapshot(&mut self) -> Option<Snapshot> {
        self.pending_snapshot.take()
    }

    pub fn has_pending_snapshot(&self) -> bool {
        self.pending_snapshot.is_some()
    }

    /// Drops entries up to `index` after the state machine took a snapshot there.
    pub fn compact_to(&mut self, index: LogIndex) {
        let index = index.min(self.applied).min(self.stable);
        if index <= self.snapshot_index {
            return;
        }
        let Some(term) = self.term(index) else {
            return;
        };
        let drop = (index - self.snapshot_index) as usize;
        self.entries.drain(..drop);
        self.snapshot_index = index;
        self.snapshot_term = term;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: LogIndex, term: Term) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn log_with_terms(terms: &[Term]) -> RaftLog {
        let entries = terms
            .iter()
            .enumerate()
            .map(|(i, &t)| entry(i as u64 + 1, t))
            .collect();
        RaftLog::restore(0, 0, entries, 0, 0)
    }

    #[test]
    fn append_truncates_a_conflicting_suffix_and_marks_it_unstable() {
        let mut log = log_with_terms(&[1, 1, 2, 2]);
        assert_eq!(log.stable(), 4);
        let last = log.maybe_append(2, 1, 0, vec![entry(3, 3), entry(4, 3), entry(5, 3)]);
        assert_eq!(last, Some(5));
        assert_eq!(log.term(3), Some(3));
        assert_eq!(log.stable(), 2);
        assert_eq!(log.unstable_entries().len(), 3);
    }

    #[test]
    fn append_rejects_a_missing_predecessor_and_ignores_duplicates() {
        let mut log = log_with_terms(&[1, 1, 2]);
        assert_eq!(log.maybe_append(3, 1, 0, vec![]), None);
        assert_eq!(log.maybe_append(5, 2, 0, vec![]), None);
        assert_eq!(log.maybe_append(1, 1, 2, vec![entry(2, 1)]), Some(2));
        assert_eq!(
            log.last_index(),
            3,
            "a matching entry must not truncate what follows"
        );
        assert_eq!(log.committed(), 2);
    }

    #[test]
    fn committed_entries_wait_until_stable() {
        let mut log = log_with_terms(&[1]);
        log.append(vec![entry(2, 1), entry(3, 1)]);
        log.commit_to(3);
        assert_eq!(log.next_committed(usize::MAX).len(), 1);
        log.stable_to(3);
        assert_eq!(log.next_committed(usize::MAX).len(), 3);
        log.applied_to(3);
        assert!(!log.has_next_committed());
    }

    #[test]
    fn find_conflict_by_term_skips_a_whole_term() {
        let log = log_with_terms(&[1, 1, 1, 4, 4, 4, 4]);
        assert_eq!(log.find_conflict_by_term(7, 3), (3, 1));
        assert_eq!(log.find_conflict_by_term(7, 4), (7, 4));
        assert_eq!(log.find_conflict_by_term(10, 2), (3, 1));
    }

    #[test]
    fn compaction_keeps_terms_and_indexes() {
        let mut log = log_with_terms(&[1, 1, 2, 2, 3]);
        log.commit_to(5);
        log.applied_to(4);
        log.compact_to(3);
        assert_eq!(log.first_index(), 4);
        assert_eq!(log.term(3), Some(2));
        assert_eq!(log.term(2), None);
        assert_eq!(log.entries_from(3, usize::MAX, 10), None);
        assert_eq!(log.entries_from(4, usize::MAX, 10).unwrap().len(), 2);
        // An append that overlaps the compacted prefix is accepted.
        assert_eq!(
            log.maybe_append(1, 1, 5, vec![entry(2, 1), entry(3, 2), entry(4, 2)]),
            Some(4)
        );
        assert_eq!(log.last_index(), 5);
    }
}
