//! Every reply the replica owes: writes and membership changes waiting to be applied, reads
//! waiting for a read index or for the state machine, and the rules by which each ends.
//!
//! A reply ends exactly once: with the outcome of its entry when that entry is applied as
//! proposed, `Dropped` when another entry took its place (a newer leader overwrote it),
//! `OutcomeUnknown` when a snapshot from the leader covers it, or the error that stops the
//! node.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use crate::kv::CommandOutcome;
use crate::raft::{LogIndex, Term};
use crate::server::requests::Applied;
use crate::server::vocabulary::ApiError;

type Reply<T> = oneshot::Sender<Result<T, ApiError>>;

fn answer<T>(reply: Reply<T>, result: Result<T, ApiError>) {
    // The asker may have given up (a deadline, a closed stream): nobody to tell.
    let _ = reply.send(result);
}

#[derive(Default)]
pub struct PendingReplies {
    /// Writes waiting to be applied: log index to (term, reply).
    writes: BTreeMap<LogIndex, (Term, Reply<Applied>)>,
    /// Membership changes waiting to be applied: log index to (term, reply).
    changes: BTreeMap<LogIndex, (Term, Reply<u64>)>,
    /// Linearizable reads not yet given a read-index request.
    new_reads: Vec<Reply<u64>>,
    /// Read-index requests in flight: request id to the reads sharing it.
    confirming_reads: BTreeMap<u64, Vec<Reply<u64>>>,
    /// Reads confirmed at an index, waiting for the state machine to get there.
    waiting_apply: Vec<(LogIndex, Reply<()>)>,
    next_read_request: u64,
}

impl PendingReplies {
    pub fn write_proposed(&mut self, index: LogIndex, term: Term, reply: Reply<Applied>) {
        self.writes.insert(index, (term, reply));
    }

    pub fn change_proposed(&mut self, index: LogIndex, term: Term, reply: Reply<u64>) {
        self.changes.insert(index, (term, reply));
    }

    pub fn read_asked(&mut self, reply: Reply<u64>) {
        self.new_reads.push(reply);
    }

    pub fn wait_applied(&mut self, index: LogIndex, reply: Reply<()>) {
        self.waiting_apply.push((index, reply));
    }

    /// The reads that arrived since the last round, under a new request id: one read-index
    /// round confirms them all. `None` when there are none.
    pub fn start_read_round(&mut self) -> Option<u64> {
        if self.new_reads.is_empty() {
            return None;
        }
        self.next_read_request += 1;
        let request = self.next_read_request;
        let reads = std::mem::take(&mut self.new_reads);
        self.confirming_reads.insert(request, reads);
        Some(request)
    }

    /// The round `request` could not even start.
    pub fn read_round_refused(&mut self, request: u64, error: ApiError) {
        for reply in self.confirming_reads.remove(&request).unwrap_or_default() {
            answer(reply, Err(error.clone()));
        }
    }

    /// The round `request` confirmed leadership: its reads may be served at `index`.
    pub fn read_confirmed(&mut self, request: u64, index: LogIndex) {
        for reply in self.confirming_reads.remove(&request).unwrap_or_default() {
            answer(reply, Ok(index));
        }
    }

    /// The round `request` can no longer be confirmed (leadership was lost).
    pub fn read_failed(&mut self, request: u64) {
        for reply in self.confirming_reads.remove(&request).unwrap_or_default() {
            answer(reply, Err(ApiError::leadership_changed()));
        }
    }

    /// The state machine applied up to `applied`: reads waiting for it go ahead.
    pub fn serve_applied(&mut self, applied: LogIndex) {
        if self.waiting_apply.is_empty() {
            return;
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiting_apply)
            .into_iter()
            .partition(|(index, _)| *index <= applied);
        self.waiting_apply = waiting;
        for (_, reply) in ready {
            answer(reply, Ok(()));
        }
    }

    /// Entries up to `last` were applied: `terms` holds the term of each, `outcomes` the
    /// outcome of each command. A write or change proposed at one of those indexes succeeds if
    /// the entry there is the one proposed (same term), and was dropped otherwise.
    pub fn applied(
        &mut self,
        last: LogIndex,
        terms: &BTreeMap<LogIndex, Term>,
        outcomes: Vec<(LogIndex, CommandOutcome)>,
    ) {
        for (index, outcome) in outcomes {
            let entry_term = terms.get(&index).copied().unwrap_or(0);
            if let Some((term, reply)) = self.writes.remove(&index) {
                let result = match term == entry_term {
                    true => Ok(Applied { outcome, term }),
                    false => Err(ApiError::leadership_changed()),
                };
                answer(reply, result);
            }
        }
        // Proposals whose index was applied without a command of theirs (overwritten by a
        // no-op or a membership change of a newer leader) were dropped.
        let later_changes = self.changes.split_off(&(last + 1));
        for (index, (term, reply)) in std::mem::replace(&mut self.changes, later_changes) {
            let result = match terms.get(&index) == Some(&term) {
                true => Ok(index),
                false => Err(ApiError::leadership_changed()),
            };
            answer(reply, result);
        }
        let later_writes = self.writes.split_off(&(last + 1));
        for (_, (_, reply)) in std::mem::replace(&mut self.writes, later_writes) {
            answer(reply, Err(ApiError::leadership_changed()));
        }
    }

    /// A snapshot from the leader replaced the state up to `index`: what was proposed at or
    /// below it can no longer be matched to its outcome.
    pub fn superseded_by_snapshot(&mut self, index: LogIndex) {
        let later_changes = self.changes.split_off(&(index + 1));
        for (_, (_, reply)) in std::mem::replace(&mut self.changes, later_changes) {
            answer(
                reply,
                Err(ApiError::OutcomeUnknown(
                    "the membership change was superseded by a snapshot; check the member list"
                        .into(),
                )),
            );
        }
        let later_writes = self.writes.split_off(&(index + 1));
        for (index, (term, reply)) in std::mem::replace(&mut self.writes, later_writes) {
            answer(
                reply,
                Err(ApiError::OutcomeUnknown(format!(
                    "the outcome of the write at index {index} (term {term}) was superseded by a \
                     snapshot; read the key to learn it"
                ))),
            );
        }
    }

    /// The node stops: everything still owed ends with `error`.
    pub fn fail_all(&mut self, error: ApiError) {
        let Self {
            writes,
            changes,
            new_reads,
            confirming_reads,
            waiting_apply,
            next_read_request: _,
        } = std::mem::take(self);
        for (_, (_, reply)) in changes {
            answer(reply, Err(error.clone()));
        }
        for (_, (_, reply)) in writes {
            answer(reply, Err(error.clone()));
        }
        for reply in new_reads
            .into_iter()
            .chain(confirming_reads.into_values().flatten())
        {
            answer(reply, Err(error.clone()));
        }
        for (_, reply) in waiting_apply {
            answer(reply, Err(error.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply<T>() -> (Reply<T>, oneshot::Receiver<Result<T, ApiError>>) {
        oneshot::channel()
    }

    #[test]
    fn a_write_succeeds_only_if_its_own_entry_is_applied() {
        let mut pending = PendingReplies::default();
        let (ours, mut ours_rx) = reply();
        let (overwritten, mut overwritten_rx) = reply();
        let (skipped, mut skipped_rx) = reply();
        let (later, mut later_rx) = reply();
        pending.write_proposed(5, 2, ours);
        pending.write_proposed(6, 2, overwritten);
        pending.write_proposed(7, 2, skipped);
        pending.write_proposed(9, 2, later);
        // 5 applied as proposed; 6 by another leader's command; 7 by a no-op (no outcome).
        let terms = BTreeMap::from([(5, 2), (6, 3), (7, 3)]);
        let outcome = CommandOutcome::Expire { deleted: false };
        pending.applied(7, &terms, vec![(5, outcome.clone()), (6, outcome)]);
        assert!(ours_rx.try_recv().unwrap().is_ok());
        assert_eq!(
            overwritten_rx.try_recv().unwrap().err(),
            Some(ApiError::leadership_changed())
        );
        assert_eq!(
            skipped_rx.try_recv().unwrap().err(),
            Some(ApiError::leadership_changed())
        );
        assert!(later_rx.try_recv().is_err(), "index 9 is not applied yet");
        pending.superseded_by_snapshot(10);
        assert!(matches!(
            later_rx.try_recv().unwrap(),
            Err(ApiError::OutcomeUnknown(_))
        ));
    }

    #[test]
    fn reads_share_a_round_and_wait_for_the_state_machine() {
        let mut pending = PendingReplies::default();
        assert_eq!(pending.start_read_round(), None);
        let (a, mut a_rx) = reply();
        let (b, mut b_rx) = reply();
        pending.read_asked(a);
        pending.read_asked(b);
        let round = pending.start_read_round().expect("two reads wait");
        pending.read_confirmed(round, 40);
        assert_eq!(a_rx.try_recv().unwrap().unwrap(), 40);
        assert_eq!(b_rx.try_recv().unwrap().unwrap(), 40);
        let (wait, mut wait_rx) = reply();
        pending.wait_applied(40, wait);
        pending.serve_applied(39);
        assert!(wait_rx.try_recv().is_err());
        pending.serve_applied(40);
        assert!(wait_rx.try_recv().unwrap().is_ok());
    }

    #[test]
    fn stopping_fails_everything_owed() {
        let mut pending = PendingReplies::default();
        let (write, mut write_rx) = reply();
        let (read, mut read_rx) = reply();
        let (confirming, mut confirming_rx) = reply();
        pending.write_proposed(3, 1, write);
        pending.read_asked(confirming);
        pending.start_read_round();
        pending.read_asked(read);
        pending.fail_all(ApiError::ShuttingDown);
        for result in [
            write_rx.try_recv().unwrap().map(|_| ()),
            read_rx.try_recv().unwrap().map(|_| ()),
            confirming_rx.try_recv().unwrap().map(|_| ()),
        ] {
            assert!(matches!(result, Err(ApiError::ShuttingDown)));
        }
    }
}
