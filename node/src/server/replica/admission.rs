//! Whether the leader may propose a membership change now, and which: the rules that keep a
//! change from costing the cluster its quorum, or from giving a vote to a learner that could
//! not yet use it safely. Pure: the replica hands it what the core knows.

use crate::proto::{ConfChange, ConfChangeType};
use crate::raft::{LogIndex, NodeId, RaftStatus};

use super::super::requests::MembershipRequest;
use super::super::vocabulary::ApiError;

/// What the leader knows when it is asked for a change.
pub struct LeaderView<'a> {
    /// The core's status, taken on the leader (so it lists every peer's progress).
    pub status: &'a RaftStatus,
    /// The index of the latest configuration in the leader's log.
    pub conf_index: LogIndex,
    /// A peer counts as healthy when heard from within this many ticks.
    pub election_ticks: u64,
}

impl LeaderView<'_> {
    /// The leader itself, or a peer heard from within an election timeout.
    fn healthy(&self, id: NodeId) -> bool {
        id == self.status.id
            || self
                .status
                .peers
                .iter()
                .any(|p| p.id == id && p.ticks_since_contact <= self.election_ticks)
    }

    fn matched(&self, id: NodeId) -> LogIndex {
        self.status
            .peers
            .iter()
            .find(|p| p.id == id)
            .map_or(0, |p| p.matched)
    }
}

/// The change to propose for `request`, or why not now.
///
/// - A learner is promoted only once it holds the configuration that made it a learner (or
///   it could not know it may vote), is within `max_lag` entries of the commit index, and was
///   heard from lately.
/// - A voter is removed only if the voters left that are healthy still make a quorum of the
///   voters left, unless forced.
/// - Adding a learner changes no quorum and is always allowed here (the core refuses an id
///   already in the configuration).
pub fn conf_change(
    request: MembershipRequest,
    view: &LeaderView<'_>,
) -> Result<ConfChange, ApiError> {
    let status = view.status;
    match request {
        MembershipRequest::AddLearner { id, address } => Ok(ConfChange {
            change_type: ConfChangeType::AddLearner as i32,
            node_id: id,
            address,
        }),
        MembershipRequest::Promote { id, max_lag } => {
            if !status.membership.is_learner(id) {
                return Err(ApiError::invalid(format!("node {id} is not a learner")));
            }
            let matched = view.matched(id);
            if matched < view.conf_index {
                return Err(ApiError::FailedPrecondition(format!(
                    "learner {id} has not yet received the current configuration (index {}, it holds {matched}); wait for it to catch up",
                    view.conf_index
                )));
            }
            let behind = status.commit.saturating_sub(matched);
            if behind > max_lag {
                return Err(ApiError::FailedPrecondition(format!(
                    "learner {id} is {behind} entries behind the commit index {} (at most {max_lag} allowed); wait for it to catch up",
                    status.commit
                )));
            }
            if !view.healthy(id) {
                return Err(ApiError::FailedPrecondition(format!(
                    "learner {id} has not been heard from within an election timeout"
                )));
            }
            Ok(ConfChange {
                change_type: ConfChangeType::PromoteLearner as i32,
                node_id: id,
                address: String::new(),
            })
        }
        MembershipRequest::Remove { id, force } => {
            if status.membership.is_voter(id) && !force {
                let remaining: Vec<NodeId> = status
                    .membership
                    .voters()
                    .iter()
                    .copied()
                    .filter(|&v| v != id)
                    .collect();
                let healthy = remaining.iter().filter(|&&v| view.healthy(v)).count();
                let quorum = remaining.len() / 2 + 1;
                if healthy < quorum {
                    return Err(ApiError::FailedPrecondition(format!(
                        "removing node {id} would leave {healthy} healthy voters of {}, fewer than a quorum of {quorum}; use force to remove anyway",
                        remaining.len()
                    )));
                }
            }
            Ok(ConfChange {
                change_type: ConfChangeType::RemoveNode as i32,
                node_id: id,
                address: String::new(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::raft::{Membership, PeerStatus, ProgressState, Role};

    const ELECTION_TICKS: u64 = 10;

    /// A leader (node 1) with `voters` and `learners`; `peers` as (id, matched, ticks since
    /// contact); commit 100, configuration at index 90.
    fn status(
        voters: &[NodeId],
        learners: &[NodeId],
        peers: &[(NodeId, LogIndex, u64)],
    ) -> RaftStatus {
        let addresses: BTreeMap<NodeId, String> = voters
            .iter()
            .chain(learners)
            .map(|&id| (id, format!("n{id}:2380")))
            .collect();
        RaftStatus {
            id: 1,
            term: 3,
            vote: 1,
            leader: 1,
            role: Role::Leader,
            commit: 100,
            applied: 100,
            last_index: 100,
            snapshot_index: 0,
            membership: Membership::new(
                voters.iter().copied().collect::<BTreeSet<_>>(),
                learners.iter().copied().collect::<BTreeSet<_>>(),
                addresses,
            ),
            peers: peers
                .iter()
                .map(|&(id, matched, ticks_since_contact)| PeerStatus {
                    id,
                    matched,
                    next: matched + 1,
                    state: ProgressState::Replicate,
                    ticks_since_contact,
                })
                .collect(),
        }
    }

    fn decide(request: MembershipRequest, status: &RaftStatus) -> Result<ConfChange, String> {
        let view = LeaderView {
            status,
            conf_index: 90,
            election_ticks: ELECTION_TICKS,
        };
        conf_change(request, &view).map_err(|e| e.to_string())
    }

    #[test]
    fn a_learner_is_promoted_once_it_holds_the_configuration_is_close_and_answers() {
        let promote = |max_lag| MembershipRequest::Promote { id: 4, max_lag };
        let caught_up = status(&[1, 2, 3], &[4], &[(2, 100, 1), (3, 100, 1), (4, 100, 1)]);
        let change = decide(promote(0), &caught_up).unwrap();
        assert_eq!(change.change_type, ConfChangeType::PromoteLearner as i32);
        assert_eq!(change.node_id, 4);

        let before_its_configuration = status(&[1, 2, 3], &[4], &[(4, 80, 1)]);
        let refused = decide(promote(1_000), &before_its_configuration).unwrap_err();
        assert!(
            refused.contains("not yet received the current configuration"),
            "{refused}"
        );

        let behind = status(&[1, 2, 3], &[4], &[(4, 95, 1)]);
        assert!(decide(promote(5), &behind).is_ok());
        let refused = decide(promote(4), &behind).unwrap_err();
        assert!(refused.contains("5 entries behind"), "{refused}");

        let silent = status(&[1, 2, 3], &[4], &[(4, 100, ELECTION_TICKS + 1)]);
        let refused = decide(promote(0), &silent).unwrap_err();
        assert!(refused.contains("not been heard from"), "{refused}");
    }

    #[test]
    fn only_a_learner_can_be_promoted() {
        let voters = status(&[1, 2, 3], &[], &[(2, 100, 1), (3, 100, 1)]);
        let refused = decide(MembershipRequest::Promote { id: 2, max_lag: 0 }, &voters);
        assert_eq!(refused.unwrap_err(), "node 2 is not a learner");
    }

    #[test]
    fn a_voter_is_removed_only_if_the_healthy_voters_left_make_a_quorum() {
        let remove = |id, force| MembershipRequest::Remove { id, force };
        // Five voters, node 5 silent: removing 4 leaves 1, 2, 3 healthy of four, a quorum.
        let one_down = status(
            &[1, 2, 3, 4, 5],
            &[],
            &[(2, 100, 1), (3, 100, 1), (4, 100, 1), (5, 40, 50)],
        );
        assert!(decide(remove(4, false), &one_down).is_ok());
        // Two silent: removing a healthy one leaves two healthy of four, not a quorum of three.
        let two_down = status(
            &[1, 2, 3, 4, 5],
            &[],
            &[(2, 100, 1), (3, 100, 1), (4, 40, 50), (5, 40, 50)],
        );
        let refused = decide(remove(3, false), &two_down).unwrap_err();
        assert!(
            refused.contains("would leave 2 healthy voters of 4, fewer than a quorum of 3"),
            "{refused}"
        );
        // Removing a silent one leaves three healthy of four: allowed.
        assert!(decide(remove(5, false), &two_down).is_ok());
        // Forced, anything goes.
        assert!(decide(remove(3, true), &two_down).is_ok());
    }

    #[test]
    fn learners_come_and_go_without_touching_a_quorum() {
        let all_silent = status(&[1, 2, 3], &[4], &[(2, 0, 99), (3, 0, 99), (4, 0, 99)]);
        assert!(decide(
            MembershipRequest::Remove {
                id: 4,
                force: false
            },
            &all_silent
        )
        .is_ok());
        let add = MembershipRequest::AddLearner {
            id: 5,
            address: "n5:2380".into(),
        };
        let change = decide(add, &all_silent).unwrap();
        assert_eq!(change.change_type, ConfChangeType::AddLearner as i32);
        assert_eq!(change.address, "n5:2380");
    }
}
