//! What the leader knows about each follower's log, and how fast it may send to it.
//!
//! As in etcd's `tracker/progress.go`, a follower is in one of three states:
//! - `Probe`: the leader does not know where the follower's log ends; it sends one append at a
//!   time (per heartbeat) and backs off on rejection.
//! - `Replicate`: the follower is known to match; appends are pipelined, optimistically
//!   advancing `next`, with at most `max_inflight` appends unacknowledged.
//! - `Snapshot`: the follower needs entries that were compacted away; a snapshot is on its way
//!   and nothing else is sent until it is acknowledged.

use std::collections::VecDeque;

use super::LogIndex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressState {
    Probe,
    Replicate,
    Snapshot,
}

#[derive(Debug, Clone)]
pub struct Progress {
    /// The highest index known to be in the follower's log.
    pub matched: LogIndex,
    /// The next index to send.
    pub next: LogIndex,
    pub state: ProgressState,
    /// In `Probe`: an append was sent and the leader waits for its answer or a heartbeat.
    pub probe_sent: bool,
    /// In `Snapshot`: the index of the snapshot being sent.
    pub pending_snapshot: LogIndex,
    /// In `Snapshot`: ticks since it was sent. A snapshot whose outcome is never reported
    /// (lost on the way, or the report lost) is retried after a while instead of stalling
    /// the follower forever.
    pub snapshot_ticks: u64,
    /// Heard from since the last check-quorum round.
    pub recent_active: bool,
    /// Ticks since the leader last heard from this follower, for status.
    pub ticks_since_contact: u64,
    /// The leader clock of the newest heartbeat this follower answered, for leases.
    pub acked_clock: u64,
    /// The leader clock when `matched` last grew: a heartbeat sent after it that the follower
    /// answers with a shorter log proves the follower lost entries it acknowledged.
    pub matched_clock: u64,
    /// Last indexes of the appends in flight, oldest first.
    inflight: VecDeque<LogIndex>,
    max_inflight: usize,
}

impl Progress {
    pub fn new(next: LogIndex, max_inflight: usize) -> Self {
        Self {
            matched: 0,
            next,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            snapshot_ticks: 0,
            recent_active: false,
            ticks_since_contact: 0,
            acked_clock: 0,
            matched_clock: 0,
            inflight: VecDeque::new(),
            max_inflight: max_inflight.max(1),
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.snapshot_ticks = 0;
        self.state = state;
        self.inflight.clear();
    }

    pub fn become_probe(&mut self) {
        if self.state == ProgressState::Snapshot {
            // Resume right after the snapshot, whether or not we know it was installed.
            let snapshot = self.pending_snapshot;
            self.reset_state(ProgressState::Probe);
            self.next = (self.matched + 1).max(snapshot + 1);
        } else {
            self.reset_state(ProgressState::Probe);
            self.next = self.matched + 1;
        }
    }

    pub fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next = self.matched + 1;
    }

    pub fn become_snapshot(&mut self, snapshot_index: LogIndex) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// Records an acknowledgement up to `index`. Returns false when it tells nothing new.
    pub fn maybe_update(&mut self, index: LogIndex) -> bool {
        let updated = index > self.matched;
        if updated {
            self.matched = index;
            self.probe_sent = false;
        }
        self.next = self.next.max(index + 1);
        while self.inflight.front().is_some_and(|&last| last <= index) {
            self.inflight.pop_front();
        }
        updated
    }

    /// Handles a rejected append. `rejected` is the index the append was based on, `hint` the
    /// follower's suggestion of where to retry. Returns false for a stale rejection.
    pub fn maybe_decrease_to(&mut self, rejected: LogIndex, hint: LogIndex) -> bool {
        if hint < self.matched && rejected <= self.matched {
            // The follower no longer holds entries it acknowledged: it lost its disk and came
            // back under its id. (Or this is an old answer overtaken by a later one; probing
            // again from the hint then costs a resend, never safety: a lower match index only
            // holds commits back.) Without this the leader never probes below the old match.
            self.matched = hint;
            self.next = hint + 1;
            self.probe_sent = false;
            return true;
        }
        if self.state == ProgressState::Replicate {
            // A rejection of something already matched is a stale, reordered answer.
            if rejected <= self.matched {
                return false;
            }
            self.next = self.matched + 1;
            return true;
        }
        // In probe state only the answer to the latest probe (based on next - 1) counts.
        if self.next == 0 || self.next - 1 != rejected {
            return false;
        }
        self.next = hint.min(rejected).max(self.matched) + 1;
        self.probe_sent = false;
        true
    }

    /// Records that an append ending at `last` was sent.
    pub fn sent_append(&mut self, last: LogIndex, entries: usize) {
        match self.state {
            ProgressState::Replicate => {
                if entries > 0 {
                    self.next = last + 1;
                    self.inflight.push_back(last);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {}
        }
    }

    /// Whether the leader must hold off sending appends.
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= self.max_inflight,
            ProgressState::Snapshot => true,
        }
    }

    /// The follower no longer holds what it acknowledged (it lost its disk and came back under
    /// its id) and its log ends at `last`: probe from there.
    pub fn lost_entries(&mut self, last: LogIndex) {
        self.matched = self.matched.min(last);
        self.become_probe();
    }

    /// A heartbeat answer proves the follower is alive: probe again, and free a stuck window.
    pub fn on_heartbeat_response(&mut self) {
        self.probe_sent = false;
        if self.state == ProgressState::Replicate && self.inflight.len() >= self.max_inflight {
            // The oldest append may have been lost; the follower's answers will correct us.
            self.inflight.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicate_pipelines_up_to_the_window() {
        let mut p = Progress::new(1, 2);
        p.maybe_update(0);
        p.become_replicate();
        p.sent_append(5, 5);
        assert!(!p.is_paused());
        p.sent_append(10, 5);
        assert!(p.is_paused(), "two appends in flight fill a window of two");
        assert_eq!(p.next, 11);
        assert!(p.maybe_update(5));
        assert!(!p.is_paused());
        assert!(!p.maybe_update(3), "an old ack tells nothing new");
    }

    #[test]
    fn probe_sends_one_at_a_time_and_backs_off_with_the_hint() {
        let mut p = Progress::new(11, 4);
        p.sent_append(10, 0);
        assert!(p.is_paused());
        assert!(
            !p.maybe_decrease_to(7, 3),
            "a rejection of an older probe is stale"
        );
        assert!(p.maybe_decrease_to(10, 4));
        assert_eq!(p.next, 5);
        assert!(!p.is_paused());
    }

    #[test]
    fn replicate_rejection_falls_back_to_match() {
        let mut p = Progress::new(1, 4);
        p.maybe_update(6);
        p.become_replicate();
        p.sent_append(9, 3);
        assert!(
            !p.maybe_decrease_to(6, 6),
            "stale: 6 is already matched, and the follower still holds it"
        );
        assert!(p.maybe_decrease_to(8, 7));
        assert_eq!(p.next, 7);
    }

    #[test]
    fn a_follower_that_lost_what_it_acknowledged_is_probed_from_its_hint() {
        let mut p = Progress::new(1, 4);
        p.maybe_update(6);
        p.become_probe();
        // It answers the probe at its match index: it holds nothing there any more.
        assert!(p.maybe_decrease_to(6, 0));
        assert_eq!((p.matched, p.next), (0, 1));
        assert!(!p.is_paused());
    }

    #[test]
    fn after_a_snapshot_probing_resumes_past_it() {
        let mut p = Progress::new(3, 4);
        p.become_snapshot(50);
        assert!(p.is_paused());
        p.become_probe();
        assert_eq!(p.next, 51);
    }
}
