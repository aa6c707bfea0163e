//! The membership driver: observe, decide one step, take it.
//!
//! The driver knows nothing of Kubernetes. It sees the cluster through two small interfaces:
//! a [`Workload`] (the pods, their volumes, the StatefulSet and the founding record: in
//! Kubernetes, objects in the API server; in tests, node processes on this machine) and the
//! [`Membership`] (the Raft group through its leader's Admin API). Each [`step`] observes both
//! afresh, asks [`decide`] for the one next action and takes it, so a driver stopped between
//! any two steps, or replaced, carries on from what the next one observes.

use std::collections::BTreeMap;
use std::future::Future;

use crate::crd::DEngineClusterSpec;
use crate::decide::{decide, NextAction};
use crate::observed::{
    ClusterView, Limits, NodeId, ObjectsState, Observed, Ordinal, PodState, StatefulSetState,
};
use crate::Error;

/// What the workload side shows of a cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadView {
    pub objects: ObjectsState,
    pub founded: bool,
    pub stateful_set: Option<StatefulSetState>,
    pub pods: Vec<PodState>,
    /// Where the operator reaches each running node's Admin API.
    pub admin_endpoints: BTreeMap<NodeId, String>,
    /// The node version each pod runs (its image tag), for the status.
    pub versions: BTreeMap<Ordinal, String>,
    /// The issue of the operator's certificates each pod was made with (its template's serial;
    /// `None` for a pod made before any), for a warning when a renewal does not reach it.
    pub certificate_serials: BTreeMap<Ordinal, Option<String>>,
}

/// The pods, volumes and objects of one cluster.
pub trait Workload: Send + Sync {
    /// Everything the workload side shows now.
    fn observe(&self) -> impl Future<Output = Result<WorkloadView, Error>> + Send;
    /// Creates or updates the owned objects from the spec, keeping the StatefulSet's replicas
    /// and the founding record as observed.
    fn apply_objects(&self, seen: &WorkloadView) -> impl Future<Output = Result<(), Error>> + Send;
    /// Sets the number of pods.
    fn set_replicas(&self, replicas: u32) -> impl Future<Output = Result<(), Error>> + Send;
    /// Marks pod `ordinal`'s volume as holding its node's data.
    fn claim_volume(&self, ordinal: Ordinal) -> impl Future<Output = Result<(), Error>> + Send;
    /// Records that the cluster was founded: every pod started from now on joins.
    fn record_founded(&self) -> impl Future<Output = Result<(), Error>> + Send;
    /// Deletes pod `ordinal` to have it recreated from the current template.
    fn delete_pod(&self, ordinal: Ordinal) -> impl Future<Output = Result<(), Error>> + Send;
    /// The peer address the node in pod `ordinal` advertises.
    fn peer_address(&self, ordinal: Ordinal) -> String;
}

/// One membership change, asked of the leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MembershipChange {
    AddLearner { id: NodeId, peer_address: String },
    Promote { id: NodeId },
    Remove { id: NodeId },
    TransferLeadership { to: NodeId },
}

/// The Raft group, through its Admin API.
pub trait Membership: Send + Sync {
    /// The leader's view of the group, asking the nodes at `endpoints` until one leads or
    /// names a leader that answers. `None` when no leader answered.
    fn view(
        &self,
        endpoints: &BTreeMap<NodeId, String>,
    ) -> impl Future<Output = Option<ClusterView>> + Send;
    /// Asks `leader`, at `leader_endpoint`, for one change.
    fn change(
        &self,
        leader: NodeId,
        leader_endpoint: &str,
        change: &MembershipChange,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

/// What one step saw and did.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    pub observed: Observed,
    pub workload: WorkloadView,
    pub action: NextAction,
}

/// Observes the cluster, decides the next action and takes it.
pub async fn step<W: Workload, M: Membership>(
    spec: &DEngineClusterSpec,
    limits: &Limits,
    workload: &W,
    membership: &M,
) -> Result<Step, Error> {
    let seen = workload.observe().await?;
    let cluster = membership.view(&seen.admin_endpoints).await;
    let observed = Observed {
        spec: spec.clone(),
        limits: limits.clone(),
        objects: seen.objects,
        founded: seen.founded,
        stateful_set: seen.stateful_set.clone(),
        pods: seen.pods.clone(),
        cluster,
    };
    let action = decide(&observed);
    crate::failpoints::check("operator::before_action")?;
    take(&action, &observed, &seen, workload, membership).await?;
    crate::failpoints::check("operator::after_action")?;
    Ok(Step {
        observed,
        workload: seen,
        action,
    })
}

/// Takes `action`: one call to the workload or to the leader, or none.
async fn take<W: Workload, M: Membership>(
    action: &NextAction,
    observed: &Observed,
    seen: &WorkloadView,
    workload: &W,
    membership: &M,
) -> Result<(), Error> {
    let change = match action {
        NextAction::Paused
        | NextAction::WaitForPod { .. }
        | NextAction::WaitForLeader
        | NextAction::WaitForCatchUp { .. }
        | NextAction::ReportDegraded { .. }
        | NextAction::Done => return Ok(()),
        NextAction::ApplyObjects => return workload.apply_objects(seen).await,
        NextAction::Bootstrap => return workload.set_replicas(1).await,
        NextAction::ClaimVolume { ordinal } => return workload.claim_volume(*ordinal).await,
        NextAction::RecordFounded => return workload.record_founded().await,
        NextAction::GrowStatefulSet { to } | NextAction::ShrinkStatefulSet { to } => {
            return workload.set_replicas(*to).await
        }
        NextAction::UpgradePod { ordinal } => return workload.delete_pod(*ordinal).await,
        NextAction::AddLearner { ordinal } => MembershipChange::AddLearner {
            id: NodeId::of_ordinal(*ordinal),
            peer_address: workload.peer_address(*ordinal),
        },
        NextAction::PromoteLearner { id } => MembershipChange::Promote { id: *id },
        NextAction::RemoveMember { id } => MembershipChange::Remove { id: *id },
        NextAction::ReplaceMember { ordinal } => MembershipChange::Remove {
            id: NodeId::of_ordinal(*ordinal),
        },
        NextAction::TransferLeadership { to, .. } => {
            MembershipChange::TransferLeadership { to: *to }
        }
    };
    let leader = observed
        .cluster
        .as_ref()
        .and_then(|c| c.leader)
        .ok_or_else(|| Error::Invalid("a membership change was decided without a leader".into()))?;
    let endpoint = seen
        .admin_endpoints
        .get(&leader)
        .ok_or_else(|| Error::Admin {
            endpoint: format!("node {leader}"),
            message: "the leader's pod has no address".to_string(),
        })?;
    membership.change(leader, endpoint, &change).await
}
