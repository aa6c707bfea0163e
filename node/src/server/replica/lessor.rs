//! When leases expire: the leader's part of etcd's lessor.
//!
//! Which leases exist is the state machine's (granted and revoked through the log); when each
//! expires is the leader's alone, kept on its monotonic clock, so a keepalive costs no write
//! and no replica ever compares wall clocks. The leader proposes a revoke for a lease whose
//! deadline passed; a new leader gives every lease what it had left at the last checkpoint (or
//! its whole TTL) plus an election timeout: keepalives sent to a leader that died were lost,
//! and no lease may expire because of that.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dengine_proto::etcd::etcdserverpb::LeaseCheckpoint;

use crate::kv::{Lease, Leases};

/// The most leases one revoke round or checkpoint proposes, as etcd's lessor batches them.
const BATCH: usize = 1000;

#[derive(Debug, Default)]
pub struct Lessor {
    /// Leader only: when each lease expires, as time since the replica started on its
    /// monotonic clock (not in ticks, which lag it: see `TickClock::elapsed`).
    deadlines: BTreeMap<i64, Duration>,
    /// Leases whose revoke is proposed and not yet applied, so each is proposed once.
    revoking: BTreeSet<i64>,
    /// A lease first seen by this leader starts counting from here at the earliest: the
    /// moment it took over plus an election timeout.
    resume_from: Duration,
}

fn seconds(ttl: i64) -> Duration {
    Duration::from_secs(ttl.max(0) as u64)
}

impl Lessor {
    /// This node became leader at `now`: every lease's clock starts over, `grace` later.
    pub fn promote(&mut self, now: Duration, grace: Duration) {
        self.deadlines.clear();
        self.revoking.clear();
        self.resume_from = now + grace;
    }

    /// This node no longer leads: it keeps no deadlines.
    pub fn demote(&mut self) {
        self.deadlines.clear();
        self.revoking.clear();
    }

    /// When `lease` expires, counting it from now if this leader has not seen it before.
    fn deadline(&mut self, lease: &Lease, now: Duration) -> Duration {
        let start = now.max(self.resume_from);
        *self
            .deadlines
            .entry(lease.record.id)
            .or_insert_with(|| start + seconds(lease.record.ttl_to_resume()))
    }

    /// The leases whose deadline passed and whose revoke is not proposed yet (at most a
    /// batch), marked as being revoked. Deadlines of leases that no longer exist are dropped.
    pub fn due(&mut self, leases: &Leases, now: Duration) -> Vec<i64> {
        self.deadlines.retain(|id, _| leases.contains(*id));
        self.revoking.retain(|id| leases.contains(*id));
        let mut due = Vec::new();
        for lease in leases.iter() {
            let id = lease.record.id;
            if self.deadline(lease, now) <= now && !self.revoking.contains(&id) {
                due.push(id);
                if due.len() == BATCH {
                    break;
                }
            }
        }
        self.revoking.extend(due.iter().copied());
        due
    }

    /// A proposed revoke failed (leadership lost, say): a later round may propose it again.
    pub fn revoke_not_proposed(&mut self, id: i64) {
        self.revoking.remove(&id);
    }

    /// A keepalive: the lease lives its whole TTL from now. `None` when it already expired
    /// (its revoke is on its way; etcd answers such a lease as not found).
    pub fn renew(&mut self, lease: &Lease, now: Duration) -> Option<i64> {
        if self.deadline(lease, now) <= now {
            return None;
        }
        self.deadlines
            .insert(lease.record.id, now + seconds(lease.record.ttl));
        Some(lease.record.ttl)
    }

    /// The seconds `lease` has left (rounded down, as etcd reports them); 0 once expired.
    pub fn remaining(&mut self, lease: &Lease, now: Duration) -> i64 {
        self.deadline(lease, now)
            .saturating_sub(now)
            .as_secs()
            .try_into()
            .unwrap_or(i64::MAX)
    }

    /// What each lease that has used part of its TTL has left, for a checkpoint (at most a
    /// batch, the leases with the least left first).
    pub fn checkpoints(&mut self, leases: &Leases, now: Duration) -> Vec<LeaseCheckpoint> {
        let mut points = Vec::new();
        for lease in leases.iter() {
            if self.revoking.contains(&lease.record.id) {
                continue;
            }
            let remaining_ttl = self.remaining(lease, now);
            if remaining_ttl < lease.record.ttl && remaining_ttl != lease.record.remaining_ttl {
                points.push(LeaseCheckpoint {
                    id: lease.record.id,
                    remaining_ttl,
                });
            }
        }
        points.sort_by_key(|point| point.remaining_ttl);
        points.truncate(BATCH);
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::LeaseRecord;

    fn leases(records: &[(i64, i64, i64)]) -> Leases {
        Leases::from_records(records.iter().map(|&(id, ttl, remaining_ttl)| LeaseRecord {
            id,
            ttl,
            remaining_ttl,
        }))
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_lease_expires_its_ttl_after_the_leader_first_sees_it_and_is_revoked_once() {
        let mut lessor = Lessor::default();
        lessor.promote(Duration::ZERO, Duration::ZERO);
        let all = leases(&[(1, 5, 0), (2, 10, 0)]);
        assert!(lessor.due(&all, Duration::ZERO).is_empty());
        assert!(lessor.due(&all, 4 * S).is_empty());
        assert_eq!(lessor.due(&all, 5 * S), vec![1]);
        // Proposed once: the next round leaves it alone until the revoke applies or fails.
        assert!(lessor.due(&all, 6 * S).is_empty());
        lessor.revoke_not_proposed(1);
        assert_eq!(lessor.due(&all, 6 * S), vec![1]);
        assert_eq!(lessor.due(&all, 10 * S), vec![2]);
    }

    #[test]
    fn a_keepalive_restarts_the_whole_ttl_but_cannot_revive_an_expired_lease() {
        let mut lessor = Lessor::default();
        let all = leases(&[(1, 5, 0)]);
        let lease = all.get(1).unwrap();
        assert!(lessor.due(&all, Duration::ZERO).is_empty());
        assert_eq!(lessor.renew(lease, 4 * S), Some(5));
        assert_eq!(lessor.remaining(lease, 4 * S), 5);
        assert!(lessor.due(&all, 8 * S).is_empty());
        assert_eq!(lessor.remaining(lease, 8 * S), 1);
        assert_eq!(lessor.renew(lease, 9 * S), None);
        assert_eq!(lessor.remaining(lease, 9 * S), 0);
    }

    #[test]
    fn a_new_leader_resumes_from_the_checkpoint_plus_an_election_timeout() {
        let mut lessor = Lessor::default();
        // Lease 1 was checkpointed with 3 s left; lease 2 never was.
        let all = leases(&[(1, 60, 3), (2, 10, 0)]);
        lessor.promote(100 * S, 2 * S);
        assert_eq!(lessor.remaining(all.get(1).unwrap(), 100 * S), 5);
        assert_eq!(lessor.remaining(all.get(2).unwrap(), 100 * S), 12);
        assert!(lessor.due(&all, 104 * S).is_empty());
        assert_eq!(lessor.due(&all, 105 * S), vec![1]);
    }

    #[test]
    fn checkpoints_name_the_leases_that_used_part_of_their_ttl() {
        let mut lessor = Lessor::default();
        let all = leases(&[(1, 60, 0), (2, 600, 0), (3, 30, 20)]);
        // Leases 1 and 2 have their whole TTL; lease 3 has the 20 s its record says.
        assert!(lessor.checkpoints(&all, Duration::ZERO).is_empty());
        let points = lessor.checkpoints(&all, 10 * S);
        let named: Vec<(i64, i64)> = points.iter().map(|p| (p.id, p.remaining_ttl)).collect();
        assert_eq!(named, vec![(3, 10), (1, 50), (2, 590)]);
    }
}
