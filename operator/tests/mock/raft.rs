//! A simulated Raft group behind the Admin API: members, a leader, and which nodes run.
//!
//! Changes apply at once and every running member is caught up, except a node that lost its
//! data: it holds nothing until it is added again (and given a snapshot).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dengine_operator::backup::{BackupFailure, BackupSource, ChunkStream};
use dengine_operator::driver::{Membership, MembershipChange};
use dengine_operator::observed::{ClusterView, MemberRole, MemberView, NodeId};
use dengine_operator::Error;
use dengine_proto::v1::{BackupChunk, BackupHeader, SnapshotMetadata};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};

#[derive(Default, Debug)]
pub struct Group {
    pub members: BTreeMap<u64, MemberRole>,
    pub leader: Option<u64>,
    pub commit: u64,
    /// Nodes whose process runs (their pod runs).
    pub running: BTreeSet<u64>,
    /// Members that came back with an empty volume.
    pub empty: BTreeSet<u64>,
    /// How many times a cluster was founded: must stay at most 1.
    pub foundings: u32,
    /// Every change asked of the leader, in order.
    pub changes: Vec<MembershipChange>,
    /// Admin tokens the operator called with.
    pub tokens: BTreeSet<String>,
    /// Backups asked of a node, by node id.
    pub backups_from: Vec<u64>,
    /// Backup streams break off after half their data.
    pub backups_break: bool,
}

impl Group {
    pub fn voters(&self) -> Vec<u64> {
        self.members
            .iter()
            .filter(|(_, r)| **r == MemberRole::Voter)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Node `id` founds a one-member cluster.
    pub fn found(&mut self, id: u64) {
        self.foundings += 1;
        self.members = BTreeMap::from([(id, MemberRole::Voter)]);
        self.leader = Some(id);
        self.commit = 1;
    }

    /// Elects a leader if there is none (or it stopped): any running voter with data, when a
    /// quorum of voters runs.
    pub fn elect(&mut self) {
        if self.leader.is_some_and(|l| self.running.contains(&l)) {
            return;
        }
        let voters = self.voters();
        let up: Vec<u64> = voters
            .iter()
            .copied()
            .filter(|v| self.running.contains(v) && !self.empty.contains(v))
            .collect();
        self.leader = (up.len() > voters.len() / 2).then(|| up[0]);
    }

    /// Whether node `id` serves: a member, running, with a leader in the group.
    pub fn ready(&self, id: u64) -> bool {
        self.running.contains(&id) && self.members.contains_key(&id) && self.leader.is_some()
    }
}

/// The simulated group as the operator's [`Membership`].
#[derive(Clone)]
pub struct SimulatedMembership {
    pub group: Arc<Mutex<Group>>,
    pub token: String,
}

impl Membership for SimulatedMembership {
    async fn view(&self, endpoints: &BTreeMap<NodeId, String>) -> Option<ClusterView> {
        let group = self.group.lock().expect("group lock");
        let leader = group.leader?;
        endpoints.get(&NodeId(leader))?;
        // Far enough along that a member holding nothing is well behind.
        let commit = group.commit + 5000;
        let members = group
            .members
            .iter()
            .map(|(&id, &role)| {
                let up = group.running.contains(&id);
                MemberView {
                    id: NodeId(id),
                    role,
                    match_index: if group.empty.contains(&id) || !up {
                        0
                    } else {
                        commit
                    },
                    last_contact: Some(if up {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(60)
                    }),
                    connection_error: (!up).then(|| {
                        format!(
                            "transport error: dns error: no record for orders-{}",
                            id - 1
                        )
                    }),
                }
            })
            .collect();
        Some(ClusterView {
            leader: Some(NodeId(leader)),
            commit_index: commit,
            members,
        })
    }

    async fn change(
        &self,
        _leader: NodeId,
        _leader_endpoint: &str,
        change: &MembershipChange,
    ) -> Result<(), Error> {
        let mut group = self.group.lock().expect("group lock");
        group.tokens.insert(self.token.clone());
        group.changes.push(change.clone());
        group.commit += 1;
        let refuse = |message: &str| Error::Admin {
            endpoint: "simulated".into(),
            message: message.to_string(),
        };
        match change {
            MembershipChange::AddLearner { id, .. } => {
                if group.members.contains_key(&id.0) {
                    return Err(refuse("already a member"));
                }
                group.members.insert(id.0, MemberRole::Learner);
                group.empty.remove(&id.0);
            }
            MembershipChange::Promote { id } => match group.members.get_mut(&id.0) {
                Some(role) => *role = MemberRole::Voter,
                None => return Err(refuse("not a member")),
            },
            MembershipChange::Remove { id } => {
                if group.leader == Some(id.0) {
                    return Err(refuse("the leader cannot remove itself here"));
                }
                group.members.remove(&id.0);
            }
            MembershipChange::TransferLeadership { to } => {
                if !group.members.contains_key(&to.0) || !group.running.contains(&to.0) {
                    return Err(refuse("transfer target is not a running member"));
                }
                group.leader = Some(to.0);
            }
        }
        Ok(())
    }
}

/// The key-value revision of the simulated state at `commit` (not the index, so that a mix-up
/// of the two shows).
pub fn simulated_revision(commit: u64) -> i64 {
    commit as i64 + 1000
}

/// The state a simulated node backs up: a few bytes naming the commit index.
pub fn simulated_state(commit: u64) -> Vec<u8> {
    format!("the simulated group's state at commit {commit}").into_bytes()
}

impl BackupSource for SimulatedMembership {
    fn open(
        &self,
        id: NodeId,
        _endpoint: &str,
    ) -> BoxFuture<'static, Result<ChunkStream, BackupFailure>> {
        let mut group = self.group.lock().expect("group lock");
        group.backups_from.push(id.0);
        let data = simulated_state(group.commit);
        let header = BackupHeader {
            format: dengine_proto::backup::FORMAT,
            cluster_id: 7,
            metadata: Some(SnapshotMetadata {
                index: group.commit,
                term: 1,
                ..SnapshotMetadata::default()
            }),
            data_bytes: data.len() as u64,
            checksum: dengine_proto::backup::checksum(&data),
            revision: simulated_revision(group.commit),
        };
        let sent = if group.backups_break {
            data.len() / 2
        } else {
            data.len()
        };
        let chunks = vec![
            Ok(BackupChunk {
                header: Some(header),
                data: Default::default(),
            }),
            Ok(BackupChunk {
                header: None,
                data: data[..sent].to_vec().into(),
            }),
        ];
        futures::future::ready(Ok(futures::stream::iter(chunks).boxed())).boxed()
    }
}
