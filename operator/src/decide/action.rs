//! The steps the operator can take, one per reconcile.

use std::fmt;
use std::time::Duration;

use crate::observed::{NodeId, Ordinal};

/// The one next step for a cluster. Each is a single call to the Kubernetes API or to the
/// leader's Admin API (or none), so a crash leaves the cluster either before or after it, and
/// targets are absolute (`to`, not `by`) so that a step repeated after a crash does no harm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NextAction {
    /// `spec.paused`: change nothing.
    Paused,
    /// Create or update the owned objects (Services, ConfigMap, PodDisruptionBudget,
    /// StatefulSet) from the spec, leaving the StatefulSet's replicas as they are (0 when it
    /// is created). The ConfigMap's founding record is written as observed, never cleared.
    ApplyObjects,
    /// Set the StatefulSet's replicas to 1: pod 0 founds a one-member cluster. Decided only
    /// when there is no sign of a cluster at all.
    Bootstrap,
    /// Mark pod `ordinal`'s volume claim as holding its node's data, before the node becomes
    /// a member (see [`crate::observed::Volume`]).
    ClaimVolume { ordinal: Ordinal },
    /// Write the founding record into the ConfigMap: every pod started from now on joins.
    RecordFounded,
    /// Nothing to do until pod `ordinal` runs (or is ready, if it should be).
    WaitForPod { ordinal: Ordinal },
    /// Nothing to do until the cluster has a leader that answers.
    WaitForLeader,
    /// Ask the leader to add pod `ordinal`'s node (id ordinal + 1, at its peer address) as a
    /// learner: it receives the log but does not vote.
    AddLearner { ordinal: Ordinal },
    /// Nothing to do until member `id` is caught up with the leader and heard from.
    WaitForCatchUp { id: NodeId },
    /// Ask the leader to make learner `id` a voter.
    PromoteLearner { id: NodeId },
    /// Set the StatefulSet's replicas to `to`: new pods start in join mode.
    GrowStatefulSet { to: u32 },
    /// Ask leader `from` to hand leadership to voter `to`, before `from` is removed or
    /// restarted.
    TransferLeadership { from: NodeId, to: NodeId },
    /// Ask the leader to remove member `id`.
    RemoveMember { id: NodeId },
    /// Set the StatefulSet's replicas to `to`, once the members above it were removed.
    ShrinkStatefulSet { to: u32 },
    /// Pod `ordinal` came back with an empty volume: ask the leader to remove its node's old
    /// identity, so that it can be added again as a learner like a new member.
    ReplaceMember { ordinal: Ordinal },
    /// Delete pod `ordinal`, whose revision is outdated; the StatefulSet (`OnDelete`) recreates
    /// it from the current template.
    UpgradePod { ordinal: Ordinal },
    /// Something has been wrong too long, or the next step would risk the quorum: report it
    /// (the Degraded condition and an Event) and change nothing.
    ReportDegraded { reason: DegradedReason },
    /// The cluster is as the spec asks and healthy.
    Done,
}

/// Why a cluster is Degraded. [`DegradedReason::reason`] is the condition's reason;
/// `Display` is its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DegradedReason {
    /// No node answered with a leader for this long.
    NoLeader { for_: Duration },
    /// A pod the next step needs has not been running (or ready) for this long.
    PodNotReady { ordinal: Ordinal, for_: Duration },
    /// A member has been unhealthy (not ready, not heard from, or behind) for this long.
    MemberUnhealthy { id: NodeId, for_: Duration },
    /// Removing (or adding a vote for) `id` would leave fewer healthy voters than a quorum:
    /// `healthy` of `voters`.
    QuorumAtRisk {
        id: NodeId,
        healthy: usize,
        voters: usize,
    },
    /// Leadership must move off `from`, but no other voter is healthy.
    NoTransferTarget { from: NodeId },
}

impl DegradedReason {
    /// The condition's machine-readable reason.
    pub fn reason(&self) -> &'static str {
        match self {
            DegradedReason::NoLeader { .. } => "NoLeader",
            DegradedReason::PodNotReady { .. } => "PodNotReady",
            DegradedReason::MemberUnhealthy { .. } => "MemberUnhealthy",
            DegradedReason::QuorumAtRisk { .. } => "QuorumAtRisk",
            DegradedReason::NoTransferTarget { .. } => "NoTransferTarget",
        }
    }

    /// The same as `Display` without the durations, for an Event: the API server folds
    /// repeated Events into a series that keeps its first message, so a number that grows
    /// belongs in the condition (whose message is rewritten) and not here.
    pub fn without_durations(&self) -> String {
        match self {
            DegradedReason::NoLeader { .. } => "no member knows a leader".to_string(),
            DegradedReason::PodNotReady { ordinal, .. } => {
                format!("pod {ordinal} is not ready; see its events and logs")
            }
            DegradedReason::MemberUnhealthy { id, .. } => {
                format!("member {id} is unhealthy; the operator waits for it and removes nothing")
            }
            DegradedReason::QuorumAtRisk { .. } | DegradedReason::NoTransferTarget { .. } => {
                self.to_string()
            }
        }
    }
}

impl fmt::Display for DegradedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DegradedReason::NoLeader { for_ } => {
                write!(f, "no member has known a leader for {}s", for_.as_secs())
            }
            DegradedReason::PodNotReady { ordinal, for_ } => write!(
                f,
                "pod {ordinal} has not been ready for {}s; see its events and logs",
                for_.as_secs()
            ),
            DegradedReason::MemberUnhealthy { id, for_ } => write!(
                f,
                "member {id} has been unhealthy for {}s; the operator waits for it and removes nothing",
                for_.as_secs()
            ),
            DegradedReason::QuorumAtRisk { id, healthy, voters } => write!(
                f,
                "changing member {id} would leave {healthy} healthy of {voters} voters, fewer than a quorum; \
                 waiting for the unhealthy members to recover"
            ),
            DegradedReason::NoTransferTarget { from } => write!(
                f,
                "leadership must move off member {from}, but no other voter is healthy"
            ),
        }
    }
}
