//! Operator steps, carried out as the Kubernetes API and the cluster's leader would, refusing
//! what they would refuse.

use dengine_operator::decide::NextAction;
use dengine_operator::observed::{quorum, MemberRole, NodeId};

use super::world::{StatefulSet, World};

impl World {
    /// Carries out `action`; `Err` says what the API server or the leader refused.
    pub fn apply(&mut self, action: &NextAction) -> Result<(), String> {
        match action {
            NextAction::ApplyObjects => {
                let revision = self.wanted_revision();
                self.applied_revision = Some(revision.clone());
                match &mut self.stateful_set {
                    Some(s) => s.update_revision = revision,
                    None => {
                        self.stateful_set = Some(StatefulSet {
                            replicas: 0,
                            update_revision: revision,
                        })
                    }
                }
            }
            NextAction::Bootstrap => self.scale(1)?,
            NextAction::GrowStatefulSet { to } | NextAction::ShrinkStatefulSet { to } => {
                self.scale(*to)?
            }
            NextAction::ClaimVolume { ordinal } => {
                let claim = self.claims.get_mut(ordinal).ok_or("no such claim")?;
                claim.marked = true;
            }
            NextAction::RecordFounded => self.founded = true,
            NextAction::AddLearner { ordinal } => {
                self.leader()?;
                let id = NodeId::of_ordinal(*ordinal);
                if self.raft.members.contains_key(&id) {
                    return Err(format!("node {id} is already a member"));
                }
                self.raft.members.insert(id, MemberRole::Learner);
                self.raft.matched.insert(id, 0);
                // The leader's record of a new member starts when it is added.
                self.raft.heard.insert(id, self.clock);
            }
            NextAction::PromoteLearner { id } => {
                self.leader()?;
                if self.raft.members.get(id) != Some(&MemberRole::Learner) {
                    return Err(format!("node {id} is not a learner"));
                }
                let lag = self.raft.commit - self.raft.matched.get(id).copied().unwrap_or(0);
                if lag > self.limits.max_lag || !self.is_up(id.ordinal().expect("pod id")) {
                    return Err(format!("node {id} is not caught up (lag {lag})"));
                }
                self.raft.members.insert(*id, MemberRole::Voter);
            }
            NextAction::RemoveMember { id } => self.remove(*id)?,
            NextAction::ReplaceMember { ordinal } => self.remove(NodeId::of_ordinal(*ordinal))?,
            NextAction::TransferLeadership { from, to } => {
                if self.leader()? != *from {
                    return Err(format!("node {from} does not lead"));
                }
                let up = self.is_up(to.ordinal().expect("pod id"));
                if self.raft.members.get(to) != Some(&MemberRole::Voter) || !up {
                    return Err(format!("node {to} cannot lead"));
                }
                self.raft.leader = Some(*to);
            }
            NextAction::UpgradePod { ordinal } => {
                let sts = self.stateful_set.as_ref().ok_or("no StatefulSet")?;
                let revision = sts.update_revision.clone();
                let pod = self.pods.get_mut(ordinal).ok_or("no such pod")?;
                // Deleted, and made anew from the current template by the StatefulSet.
                pod.revision = revision;
                pod.running = false;
                self.upgraded.push(*ordinal);
                if self.raft.leader == Some(NodeId::of_ordinal(*ordinal)) {
                    self.raft.leader = None;
                }
            }
            NextAction::Paused
            | NextAction::WaitForPod { .. }
            | NextAction::WaitForLeader
            | NextAction::WaitForCatchUp { .. }
            | NextAction::ReportDegraded { .. }
            | NextAction::Done => {}
        }
        self.refresh_readiness();
        Ok(())
    }

    fn leader(&self) -> Result<NodeId, String> {
        self.raft.leader.ok_or_else(|| "no leader".to_string())
    }

    fn scale(&mut self, to: u32) -> Result<(), String> {
        let retain = self.spec.storage.retain_on_scale_down;
        let sts = self.stateful_set.as_mut().ok_or("no StatefulSet")?;
        sts.replicas = to;
        self.pods.retain(|k, _| *k < to);
        if !retain {
            self.claims.retain(|k, _| *k < to);
        }
        self.reconcile_stateful_set();
        Ok(())
    }

    /// The leader's own check (the node's `RemoveMember` without `force`): the voters left that
    /// are up must be a quorum.
    fn remove(&mut self, id: NodeId) -> Result<(), String> {
        self.leader()?;
        let role = self
            .raft
            .members
            .get(&id)
            .ok_or(format!("node {id} is not a member"))?;
        if *role == MemberRole::Voter {
            let left: Vec<NodeId> = self.voters().into_iter().filter(|v| *v != id).collect();
            let up = left
                .iter()
                .filter(|v| self.is_up(v.ordinal().expect("pod id")))
                .count();
            if up < quorum(left.len()) {
                return Err(format!(
                    "removing node {id} would leave {up} of {} voters up",
                    left.len()
                ));
            }
        }
        self.raft.members.remove(&id);
        self.raft.matched.remove(&id);
        if self.raft.leader == Some(id) {
            self.raft.leader = None;
        }
        Ok(())
    }
}
