//! The cluster as seen through its leader: who is a member, who is healthy, and what a
//! membership change would do to the quorum.

use std::cmp::Reverse;
use std::time::Duration;

use super::action::{DegradedReason, NextAction};
use crate::observed::{quorum, ClusterView, MemberRole, MemberView, NodeId, Observed, Volume};

/// A cluster whose leader answered: the only view in which the operator changes membership,
/// since only the leader knows how far behind each member is and when it last heard from it.
pub(super) struct Led<'a> {
    pub o: &'a Observed,
    pub view: &'a ClusterView,
    pub leader: NodeId,
}

impl<'a> Led<'a> {
    /// The leader's view, if a leader answered and is a voter of its own configuration.
    pub fn new(o: &'a Observed) -> Option<Led<'a>> {
        let view = o.cluster.as_ref()?;
        let leader = view.leader?;
        let leads = view
            .members
            .iter()
            .any(|m| m.id == leader && m.role == MemberRole::Voter);
        leads.then_some(Led { o, view, leader })
    }

    /// The number of members `spec.replicas` asks for.
    pub fn wanted(&self) -> u32 {
        self.o.spec.member_count()
    }

    pub fn member(&self, id: NodeId) -> Option<&'a MemberView> {
        self.view.members.iter().find(|m| m.id == id)
    }

    pub fn voters(&self) -> impl Iterator<Item = &'a MemberView> + 'a {
        self.view
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
    }

    pub fn learners(&self) -> impl Iterator<Item = &'a MemberView> + 'a {
        self.view
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Learner)
    }

    /// Whether `id` belongs in a cluster of `spec.replicas` members.
    pub fn is_wanted(&self, id: NodeId) -> bool {
        id.ordinal().is_some_and(|k| k < self.wanted())
    }

    /// How many committed entries member `m` lacks.
    pub fn lag(&self, m: &MemberView) -> u64 {
        if m.id == self.leader {
            return 0;
        }
        self.view.commit_index.saturating_sub(m.match_index)
    }

    fn heard_from(&self, m: &MemberView) -> bool {
        m.id == self.leader
            || m.last_contact
                .is_some_and(|c| c <= self.o.limits.contact_timeout)
    }

    /// Healthy: its pod runs, is ready and kept its volume; the leader heard from it lately;
    /// it lacks no more than `max_lag` committed entries.
    pub fn is_healthy(&self, id: NodeId) -> bool {
        let Some(m) = self.member(id) else {
            return false;
        };
        let pod_ok = id
            .ordinal()
            .and_then(|k| self.o.pod(k))
            .is_some_and(|p| p.is_running() && p.ready && p.volume == Volume::Claimed);
        pod_ok && self.heard_from(m) && self.lag(m) <= self.o.limits.max_lag
    }

    /// How long member `id` has been unhealthy, as far as can be seen: its pod's time not
    /// ready, or the time since the leader heard from it. Zero when neither tells (a member
    /// that is only behind is taken to be catching up).
    pub fn unhealthy_for(&self, id: NodeId) -> Duration {
        let pod = id.ordinal().and_then(|k| self.o.pod(k));
        let not_ready = pod
            .filter(|p| !p.ready)
            .map_or(Duration::ZERO, |p| p.unready_for);
        let silent = self
            .member(id)
            .filter(|m| !self.heard_from(m))
            .and_then(|m| m.last_contact)
            .unwrap_or(Duration::ZERO);
        not_ready.max(silent)
    }

    /// The first unhealthy voter, by id.
    pub fn first_unhealthy_voter(&self) -> Option<NodeId> {
        let mut ids: Vec<NodeId> = self.voters().map(|m| m.id).collect();
        ids.sort();
        ids.into_iter().find(|&id| !self.is_healthy(id))
    }

    /// Whether removing member `id` leaves a quorum of healthy voters. Removing a learner
    /// always does; removing a voter must leave `quorum(voters - 1)` healthy voters.
    pub fn check_removal(&self, id: NodeId) -> Result<(), DegradedReason> {
        if self
            .member(id)
            .is_none_or(|m| m.role == MemberRole::Learner)
        {
            return Ok(());
        }
        let remaining: Vec<NodeId> = self.voters().map(|m| m.id).filter(|&v| v != id).collect();
        let healthy = remaining.iter().filter(|&&v| self.is_healthy(v)).count();
        if healthy >= quorum(remaining.len()) {
            Ok(())
        } else {
            Err(DegradedReason::QuorumAtRisk {
                id,
                healthy,
                voters: remaining.len(),
            })
        }
    }

    /// Whether promoting learner `id`, healthy itself, leaves a quorum of healthy voters.
    pub fn check_promotion(&self, id: NodeId) -> Result<(), DegradedReason> {
        let voters = self.voters().count() + 1;
        let healthy = self.voters().filter(|m| self.is_healthy(m.id)).count() + 1;
        if healthy >= quorum(voters) {
            Ok(())
        } else {
            Err(DegradedReason::QuorumAtRisk {
                id,
                healthy,
                voters,
            })
        }
    }

    /// Moves leadership off `from` to the healthy voter that `allowed` accepts, preferring
    /// those `preferred` picks, then the most up to date, then the lowest id.
    pub fn transfer_off(
        &self,
        from: NodeId,
        allowed: impl Fn(NodeId) -> bool,
        preferred: impl Fn(NodeId) -> bool,
    ) -> NextAction {
        let target = self
            .voters()
            .filter(|m| m.id != from && allowed(m.id) && self.is_healthy(m.id))
            .max_by_key(|m| (preferred(m.id), m.match_index, Reverse(m.id)));
        match target {
            Some(to) => NextAction::TransferLeadership { from, to: to.id },
            None => NextAction::ReportDegraded {
                reason: DegradedReason::NoTransferTarget { from },
            },
        }
    }
}
