//! Everything the operator can see of one DEngineCluster, in plain structs: the spec, the
//! owned Kubernetes objects, each pod, and the Raft group as its Admin API reports it.
//!
//! Nothing here is remembered by the operator: the reconciler fills an [`Observed`] afresh from
//! the API server and the cluster before every decision, so a restarted operator sees exactly
//! what the one before it would have seen.

use std::fmt;
use std::time::Duration;

use crate::crd::DEngineClusterSpec;
pub use crate::status::MemberRole;

/// A StatefulSet ordinal: pod `<name>-<ordinal>`.
pub type Ordinal = u32;

/// A position in the Raft log.
pub type LogIndex = u64;

/// A Raft node id. A pod's node derives it from its name (`POD_NAME`): StatefulSet ordinal + 1,
/// so id 0 never names a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The id of the node in pod `ordinal`.
    pub fn of_ordinal(ordinal: Ordinal) -> NodeId {
        NodeId(u64::from(ordinal) + 1)
    }

    /// The ordinal of this node's pod; `None` for id 0 or an id beyond any StatefulSet.
    pub fn ordinal(self) -> Option<Ordinal> {
        self.0
            .checked_sub(1)
            .and_then(|o| Ordinal::try_from(o).ok())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How long the operator tolerates things, and what it counts as caught up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A member the leader has not heard from for longer is unhealthy. Above the node's
    /// election timeout (1 s by default), so that one lost heartbeat does not count.
    pub contact_timeout: Duration,
    /// A member further behind the commit index than this is not caught up: the node's
    /// `promote_max_lag` default, so the operator promotes when the leader would accept it.
    pub max_lag: u64,
    /// How long something may stay wrong (a member unhealthy, a pod not running, no leader,
    /// an upgraded pod not back) before the cluster is reported Degraded.
    pub degraded_after: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            contact_timeout: Duration::from_secs(3),
            max_lag: 1000,
            degraded_after: Duration::from_secs(300),
        }
    }
}

/// One DEngineCluster as the operator sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    /// What the user asks for.
    pub spec: DEngineClusterSpec,
    /// The operator's tolerances.
    pub limits: Limits,
    /// Whether the owned objects (Services, ConfigMap, PodDisruptionBudget, StatefulSet) match
    /// what the spec asks for, apart from the StatefulSet's replicas.
    pub objects: ObjectsState,
    /// The founding record in the cluster's ConfigMap: once set, every pod starts in join mode,
    /// so no pod can ever found a second cluster.
    pub founded: bool,
    /// The StatefulSet, when it exists.
    pub stateful_set: Option<StatefulSetState>,
    /// The StatefulSet's pods that exist, in any order.
    pub pods: Vec<PodState>,
    /// The Raft group as reported by the Admin API; `None` when no node answered.
    pub cluster: Option<ClusterView>,
}

/// Whether the owned objects match the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectsState {
    /// Some owned object does not exist.
    Missing,
    /// All exist, but some differ from what the spec asks for (a new version, new resources).
    Outdated,
    /// All exist as the spec asks.
    Current,
}

/// The StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatefulSetState {
    /// `spec.replicas`: how many pods it keeps.
    pub replicas: u32,
    /// `status.readyReplicas`.
    pub ready_replicas: u32,
    /// `status.updateRevision`: the revision of the current pod template. With the `OnDelete`
    /// update strategy a pod keeps its revision until the operator deletes it.
    pub update_revision: String,
}

/// One pod of the StatefulSet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodState {
    /// Its ordinal; its node id is ordinal + 1.
    pub ordinal: Ordinal,
    /// Its `controller-revision-hash`: the template revision it was created from.
    pub revision: String,
    /// `status.phase`.
    pub phase: PodPhase,
    /// Its Ready condition: the node's `/readyz`, a member that knows a leader and has applied
    /// what it knows is committed.
    pub ready: bool,
    /// How long it has not been ready: since the Ready condition last turned false, or since
    /// the pod was created if it never was ready. Zero while ready.
    pub unready_for: Duration,
    /// It has a deletion timestamp: it is going away.
    pub deleting: bool,
    /// What its volume holds, as far as the operator has recorded.
    pub volume: Volume,
}

impl PodState {
    /// The id of the node in this pod.
    pub fn node_id(&self) -> NodeId {
        NodeId::of_ordinal(self.ordinal)
    }

    /// Whether the node in it is up: running and not being deleted.
    pub fn is_running(&self) -> bool {
        self.phase == PodPhase::Running && !self.deleting
    }
}

/// A pod's `status.phase`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// What a pod's volume holds, as recorded by the operator on its PersistentVolumeClaim.
///
/// The operator marks a claim before it adds the pod's node to the cluster. A member whose pod
/// has an unmarked claim therefore lost its volume (the claim was deleted and made anew): its
/// node starts with an empty log, and must not stay a voter, since it would vote as if it still
/// held the entries it once acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Volume {
    /// Not marked: a new claim.
    Fresh,
    /// Marked as holding this pod's node's data.
    Claimed,
}

/// The Raft group as the Admin API reports it: `Status` and `MemberList` of the node that
/// answered. The reconciler asks the leader that any node names, since only the leader knows
/// each member's match index and last contact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    /// The answering node, when it is the leader. `None` when only followers answered (or
    /// none knows a leader): the operator then changes no membership.
    pub leader: Option<NodeId>,
    /// The leader's commit index.
    pub commit_index: LogIndex,
    /// Every member of the applied configuration.
    pub members: Vec<MemberView>,
}

/// One member as the leader sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberView {
    pub id: NodeId,
    pub role: MemberRole,
    /// The highest log index the leader knows the member holds.
    pub match_index: LogIndex,
    /// How long since the leader last heard from it; `None` when the view does not come from
    /// the leader, which alone knows.
    pub last_contact: Option<Duration>,
    /// Why the leader's last attempt to reach it failed, while it cannot (a name that does not
    /// resolve, a refused connection).
    pub connection_error: Option<String>,
}

impl Observed {
    /// The pod with this ordinal, if it exists.
    pub fn pod(&self, ordinal: Ordinal) -> Option<&PodState> {
        self.pods.iter().find(|p| p.ordinal == ordinal)
    }

    /// The StatefulSet's replicas; 0 when it does not exist.
    pub fn stateful_set_replicas(&self) -> u32 {
        self.stateful_set.as_ref().map_or(0, |s| s.replicas)
    }

    /// Whether a cluster has been founded: recorded so, or visible as members or marked
    /// volumes. Any one is enough: from then on no pod may found another.
    pub fn cluster_exists(&self) -> bool {
        self.founded
            || self.cluster.as_ref().is_some_and(|c| !c.members.is_empty())
            || self.pods.iter().any(|p| p.volume == Volume::Claimed)
    }
}

/// How many voters make a quorum of `voters`; 1 for an empty configuration, which no removal
/// may therefore reach.
pub fn quorum(voters: usize) -> usize {
    voters / 2 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_follow_ordinals() {
        assert_eq!(NodeId::of_ordinal(0), NodeId(1));
        assert_eq!(NodeId::of_ordinal(6), NodeId(7));
        assert_eq!(NodeId(1).ordinal(), Some(0));
        assert_eq!(NodeId(0).ordinal(), None);
        assert_eq!(NodeId(u64::MAX).ordinal(), None);
    }

    #[test]
    fn quorum_is_a_majority() {
        assert_eq!(quorum(0), 1);
        assert_eq!(quorum(1), 1);
        assert_eq!(quorum(2), 2);
        assert_eq!(quorum(3), 2);
        assert_eq!(quorum(4), 3);
        assert_eq!(quorum(5), 3);
        assert_eq!(quorum(7), 4);
    }
}
