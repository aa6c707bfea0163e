//! The world's state, how it moves on by itself (`tick`), and what the operator sees of it
//! (`observe`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use dengine_operator::crd::DEngineClusterSpec;
use dengine_operator::observed::{
    quorum, ClusterView, Limits, MemberRole, MemberView, NodeId, ObjectsState, Observed, Ordinal,
    PodPhase, PodState, StatefulSetState, Volume,
};

use super::rng::Rng;

/// Time between two ticks of the world.
pub const TICK: Duration = Duration::from_secs(15);
/// Entries committed per tick while the cluster has a leader: clients keep writing.
const WRITES_PER_TICK: u64 = 500;
/// Entries a member catches up per tick.
const CATCH_UP_PER_TICK: u64 = 8_000;
/// Entries the founder holds when it is first observed, so that new members must catch up.
const FOUNDING_ENTRIES: u64 = 20_000;

pub struct Pod {
    pub revision: String,
    pub running: bool,
    /// When it last stopped being ready, or was created; `None` while ready.
    pub unready_since: Option<Duration>,
}

pub struct Claim {
    /// Marked by the operator (`ClaimVolume`).
    pub marked: bool,
    /// The cluster whose data it holds (`None`: empty).
    pub cluster: Option<u64>,
}

#[derive(Default)]
pub struct Raft {
    pub members: BTreeMap<NodeId, MemberRole>,
    pub leader: Option<NodeId>,
    pub commit: u64,
    pub matched: BTreeMap<NodeId, u64>,
    pub heard: BTreeMap<NodeId, Duration>,
    /// The cluster id of the current cluster (the number of its bootstrap).
    pub cluster: Option<u64>,
}

pub struct StatefulSet {
    pub replicas: u32,
    pub update_revision: String,
}

pub struct World {
    pub spec: DEngineClusterSpec,
    pub limits: Limits,
    pub applied_revision: Option<String>,
    pub founded: bool,
    pub stateful_set: Option<StatefulSet>,
    pub pods: BTreeMap<Ordinal, Pod>,
    pub claims: BTreeMap<Ordinal, Claim>,
    pub raft: Raft,
    pub clock: Duration,
    pub rng: Rng,
    /// How many times a pod founded a cluster.
    pub bootstraps: u32,
    /// Pods that cannot be scheduled (their node is gone) until the time given.
    pub unschedulable: BTreeMap<Ordinal, Duration>,
    /// Revisions whose pods crash at start.
    pub broken_revisions: BTreeSet<String>,
    /// Each pod deleted by `UpgradePod`, in order.
    pub upgraded: Vec<Ordinal>,
}

impl World {
    pub fn new(spec: DEngineClusterSpec, seed: u64) -> World {
        World {
            spec,
            limits: Limits::default(),
            applied_revision: None,
            founded: false,
            stateful_set: None,
            pods: BTreeMap::new(),
            claims: BTreeMap::new(),
            raft: Raft::default(),
            clock: Duration::from_secs(1_000),
            rng: Rng::new(seed),
            bootstraps: 0,
            unschedulable: BTreeMap::new(),
            broken_revisions: BTreeSet::new(),
            upgraded: Vec::new(),
        }
    }

    /// The StatefulSet template revision the spec asks for.
    pub fn wanted_revision(&self) -> String {
        format!("rev-{}", self.spec.node_image())
    }

    /// Whether the node in pod `k` is up: running, with data of the current cluster.
    pub fn is_up(&self, k: Ordinal) -> bool {
        self.pods.get(&k).is_some_and(|p| p.running)
            && self
                .claims
                .get(&k)
                .is_some_and(|c| c.cluster.is_some() && c.cluster == self.raft.cluster)
    }

    /// Voters that are up and whose volume was never lost: those that count for a quorum.
    pub fn live_voters(&self) -> usize {
        self.voters()
            .into_iter()
            .filter(|id| {
                let k = id.ordinal().expect("ids of pods");
                self.is_up(k) && self.claims.get(&k).is_some_and(|c| c.marked)
            })
            .count()
    }

    pub fn voters(&self) -> Vec<NodeId> {
        self.raft
            .members
            .iter()
            .filter(|(_, r)| **r == MemberRole::Voter)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The operator's safety property: a quorum of voters up with their volumes intact.
    pub fn has_safe_quorum(&self) -> bool {
        self.live_voters() >= quorum(self.voters().len())
    }

    /// What Raft itself needs to elect and commit: a quorum of voters up, whatever they hold.
    fn has_quorum(&self) -> bool {
        self.up_voters().len() >= quorum(self.voters().len())
    }

    fn is_ready(&self, k: Ordinal) -> bool {
        let id = NodeId::of_ordinal(k);
        self.is_up(k) && self.raft.members.contains_key(&id) && self.raft.leader.is_some()
    }

    /// Brings every pod's readiness record up to date.
    pub fn refresh_readiness(&mut self) {
        let ready: BTreeMap<Ordinal, bool> =
            self.pods.keys().map(|&k| (k, self.is_ready(k))).collect();
        for (k, pod) in &mut self.pods {
            match (ready[k], pod.unready_since) {
                (true, Some(_)) => pod.unready_since = None,
                (false, None) => pod.unready_since = Some(self.clock),
                _ => {}
            }
        }
    }

    /// The world moves on: pods start, nodes found or join clusters, catch up, elect.
    pub fn tick(&mut self) {
        self.clock += TICK;
        self.start_pods();
        self.adopt_joiners();
        self.elect();
        if self.raft.leader.is_some() && self.has_quorum() {
            self.raft.commit += WRITES_PER_TICK;
        }
        self.replicate();
        if self.rng.chance(10) {
            self.move_leadership_at_random();
        }
        self.refresh_readiness();
    }

    fn is_schedulable(&self, k: Ordinal) -> bool {
        self.unschedulable
            .get(&k)
            .is_none_or(|until| self.clock >= *until)
    }

    fn start_pods(&mut self) {
        let starting: Vec<Ordinal> = self
            .pods
            .iter()
            .filter(|(k, p)| {
                !p.running
                    && self.is_schedulable(**k)
                    && !self.broken_revisions.contains(&p.revision)
            })
            .map(|(k, _)| *k)
            .collect();
        for k in starting {
            self.pods.get_mut(&k).expect("listed").running = true;
            let claim = self
                .claims
                .get_mut(&k)
                .expect("the StatefulSet made the claim");
            if claim.cluster.is_none() && !self.founded && k == 0 {
                // Not in join mode: the founder bootstraps a one-member cluster.
                self.bootstraps += 1;
                let cluster = u64::from(self.bootstraps);
                claim.cluster = Some(cluster);
                let id = NodeId::of_ordinal(0);
                self.raft = Raft {
                    members: BTreeMap::from([(id, MemberRole::Voter)]),
                    leader: Some(id),
                    commit: FOUNDING_ENTRIES,
                    matched: BTreeMap::from([(id, FOUNDING_ENTRIES)]),
                    heard: BTreeMap::from([(id, self.clock)]),
                    cluster: Some(cluster),
                };
            }
        }
    }

    /// A node in join mode with an empty volume adopts the cluster of the first leader that
    /// reaches it: the leader reaches every member's address, whatever its volume holds.
    fn adopt_joiners(&mut self) {
        for (k, pod) in &self.pods {
            let id = NodeId::of_ordinal(*k);
            let claim = self.claims.get_mut(k).expect("every pod has a claim");
            if pod.running
                && claim.cluster.is_none()
                && self.raft.members.contains_key(&id)
                && self.raft.leader.is_some()
            {
                claim.cluster = self.raft.cluster;
                self.raft.matched.insert(id, 0);
            }
        }
    }

    fn elect(&mut self) {
        let leader_ok = self.raft.leader.is_some_and(|l| {
            self.raft.members.get(&l) == Some(&MemberRole::Voter)
                && self.is_up(l.ordinal().expect("pod id"))
        });
        if leader_ok {
            return;
        }
        self.raft.leader = None;
        if !self.has_quorum() {
            return;
        }
        let candidates: Vec<NodeId> = self.up_voters();
        let best = candidates
            .iter()
            .map(|id| self.raft.matched.get(id).copied().unwrap_or(0))
            .max();
        let most_up_to_date: Vec<NodeId> = candidates
            .into_iter()
            .filter(|id| Some(self.raft.matched.get(id).copied().unwrap_or(0)) == best)
            .collect();
        if !most_up_to_date.is_empty() {
            let pick = self.rng.below(most_up_to_date.len() as u64) as usize;
            self.raft.leader = Some(most_up_to_date[pick]);
        }
    }

    fn up_voters(&self) -> Vec<NodeId> {
        self.voters()
            .into_iter()
            .filter(|id| self.is_up(id.ordinal().expect("pod id")))
            .collect()
    }

    fn replicate(&mut self) {
        let Some(leader) = self.raft.leader else {
            return;
        };
        self.raft.matched.insert(leader, self.raft.commit);
        let members: Vec<NodeId> = self.raft.members.keys().copied().collect();
        for id in members {
            if !self.is_up(id.ordinal().expect("pod id")) {
                continue;
            }
            let matched = self.raft.matched.entry(id).or_insert(0);
            *matched = (*matched + CATCH_UP_PER_TICK).min(self.raft.commit);
            self.raft.heard.insert(id, self.clock);
        }
    }

    fn move_leadership_at_random(&mut self) {
        let commit = self.raft.commit;
        let caught_up: Vec<NodeId> = self
            .up_voters()
            .into_iter()
            .filter(|id| self.raft.matched.get(id) == Some(&commit))
            .collect();
        if self.raft.leader.is_some() && !caught_up.is_empty() {
            let pick = self.rng.below(caught_up.len() as u64) as usize;
            self.raft.leader = Some(caught_up[pick]);
        }
    }

    /// What the operator sees: rebuilt from the world alone every time, as after a restart.
    pub fn observe(&self) -> Observed {
        let objects = match &self.applied_revision {
            None => ObjectsState::Missing,
            Some(r) if *r != self.wanted_revision() => ObjectsState::Outdated,
            Some(_) => ObjectsState::Current,
        };
        let pods = self
            .pods
            .iter()
            .map(|(k, p)| PodState {
                ordinal: *k,
                revision: p.revision.clone(),
                phase: if p.running {
                    PodPhase::Running
                } else {
                    PodPhase::Pending
                },
                ready: p.unready_since.is_none(),
                unready_for: p.unready_since.map_or(Duration::ZERO, |s| self.clock - s),
                deleting: false,
                volume: if self.claims[k].marked {
                    Volume::Claimed
                } else {
                    Volume::Fresh
                },
            })
            .collect::<Vec<_>>();
        Observed {
            spec: self.spec.clone(),
            limits: self.limits.clone(),
            objects,
            founded: self.founded,
            stateful_set: self.stateful_set.as_ref().map(|s| StatefulSetState {
                replicas: s.replicas,
                ready_replicas: pods.iter().filter(|p| p.ready).count() as u32,
                update_revision: s.update_revision.clone(),
            }),
            pods,
            cluster: self.cluster_view(),
        }
    }

    fn cluster_view(&self) -> Option<ClusterView> {
        let answering = self.pods.keys().any(|&k| self.is_up(k));
        if !answering {
            return None;
        }
        let leader = self.raft.leader;
        Some(ClusterView {
            leader,
            commit_index: self.raft.commit,
            members: self
                .raft
                .members
                .iter()
                .map(|(id, role)| MemberView {
                    id: *id,
                    role: *role,
                    match_index: self.raft.matched.get(id).copied().unwrap_or(0),
                    last_contact: leader.map(|_| {
                        self.raft
                            .heard
                            .get(id)
                            .map_or(Duration::from_secs(100_000), |h| self.clock - *h)
                    }),
                    connection_error: None,
                })
                .collect(),
        })
    }

    /// Pod `ordinal`'s Kubernetes node goes away: the pod is deleted, and the one made anew
    /// cannot be scheduled for `down_for`.
    pub fn lose_node(&mut self, ordinal: Ordinal, down_for: Duration) {
        self.pods.remove(&ordinal);
        self.unschedulable
            .insert(ordinal, self.clock.saturating_add(down_for));
        if self.raft.leader == Some(NodeId::of_ordinal(ordinal)) {
            self.raft.leader = None;
        }
        self.reconcile_stateful_set();
        self.refresh_readiness();
    }

    /// Pods whose revision is not the StatefulSet's update revision.
    pub fn outdated_pods(&self) -> usize {
        let Some(sts) = &self.stateful_set else {
            return 0;
        };
        self.pods
            .values()
            .filter(|p| p.revision != sts.update_revision)
            .count()
    }

    /// The StatefulSet controller: pods and claims for every ordinal below `replicas`.
    pub fn reconcile_stateful_set(&mut self) {
        let Some(sts) = &self.stateful_set else {
            return;
        };
        for k in 0..sts.replicas {
            self.claims.entry(k).or_insert(Claim {
                marked: false,
                cluster: None,
            });
            self.pods.entry(k).or_insert(Pod {
                revision: sts.update_revision.clone(),
                running: false,
                unready_since: Some(self.clock),
            });
        }
    }
}
