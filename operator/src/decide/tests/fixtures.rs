//! Chained builders of observed clusters: `healthy(3).want(5).pod(2, not_ready(30))`.

use std::time::Duration;

use crate::crd::DEngineClusterSpec;
use crate::decide::{decide, NextAction};
use crate::observed::{
    ClusterView, Limits, MemberRole, MemberView, NodeId, ObjectsState, Observed, PodPhase,
    PodState, StatefulSetState, Volume,
};

/// The commit index of every fixture cluster.
pub const COMMIT: u64 = 50_000;

pub fn spec(replicas: i32) -> DEngineClusterSpec {
    DEngineClusterSpec::example(replicas)
}

pub struct Fixture(pub Observed);

/// Nothing exists yet: a DEngineCluster just created.
pub fn fresh(replicas: i32) -> Fixture {
    Fixture(Observed {
        spec: spec(replicas),
        limits: Limits::default(),
        objects: ObjectsState::Missing,
        founded: false,
        stateful_set: None,
        pods: Vec::new(),
        cluster: None,
    })
}

/// A settled, healthy cluster of `n` voters led by node 1, every pod at revision `r1`.
pub fn healthy(n: u32) -> Fixture {
    Fixture(Observed {
        spec: spec(n as i32),
        limits: Limits::default(),
        objects: ObjectsState::Current,
        founded: true,
        stateful_set: Some(StatefulSetState {
            replicas: n,
            ready_replicas: n,
            update_revision: "r1".to_string(),
        }),
        pods: (0..n).map(ready_pod).collect(),
        cluster: Some(ClusterView {
            leader: Some(NodeId(1)),
            commit_index: COMMIT,
            members: (0..n)
                .map(|k| caught_up(NodeId::of_ordinal(k), MemberRole::Voter))
                .collect(),
        }),
    })
}

fn ready_pod(ordinal: u32) -> PodState {
    PodState {
        ordinal,
        revision: "r1".to_string(),
        phase: PodPhase::Running,
        ready: true,
        unready_for: Duration::ZERO,
        deleting: false,
        volume: Volume::Claimed,
    }
}

fn caught_up(id: NodeId, role: MemberRole) -> MemberView {
    MemberView {
        id,
        role,
        match_index: COMMIT,
        last_contact: Some(Duration::from_millis(100)),
        connection_error: None,
    }
}

impl Fixture {
    pub fn decide(&self) -> NextAction {
        decide(&self.0)
    }

    pub fn want(mut self, replicas: i32) -> Self {
        self.0.spec.replicas = replicas;
        self
    }

    pub fn paused(mut self) -> Self {
        self.0.spec.paused = true;
        self
    }

    pub fn objects(mut self, state: ObjectsState) -> Self {
        self.0.objects = state;
        self
    }

    pub fn not_founded(mut self) -> Self {
        self.0.founded = false;
        self
    }

    /// The StatefulSet exists with `replicas`; nothing else changes.
    pub fn stateful_set(mut self, replicas: u32) -> Self {
        let revision = self.update_revision_now();
        self.0.stateful_set = Some(StatefulSetState {
            replicas,
            ready_replicas: 0,
            update_revision: revision,
        });
        self
    }

    pub fn no_stateful_set(mut self) -> Self {
        self.0.stateful_set = None;
        self
    }

    pub fn update_revision(mut self, revision: &str) -> Self {
        if let Some(s) = self.0.stateful_set.as_mut() {
            s.update_revision = revision.to_string();
        }
        self
    }

    fn update_revision_now(&self) -> String {
        self.0
            .stateful_set
            .as_ref()
            .map_or("r1".to_string(), |s| s.update_revision.clone())
    }

    /// A ready pod with a marked volume at the current revision.
    pub fn with_pod(mut self, ordinal: u32) -> Self {
        self.0.pods.retain(|p| p.ordinal != ordinal);
        let mut pod = ready_pod(ordinal);
        pod.revision = self.update_revision_now();
        self.0.pods.push(pod);
        self
    }

    /// A pod just created by the StatefulSet: running in join mode, not ready, fresh volume.
    pub fn with_new_pod(mut self, ordinal: u32) -> Self {
        self.0.pods.retain(|p| p.ordinal != ordinal);
        let mut pod = ready_pod(ordinal);
        pod.revision = self.update_revision_now();
        pod.ready = false;
        pod.unready_for = Duration::from_secs(5);
        pod.volume = Volume::Fresh;
        self.0.pods.push(pod);
        self
    }

    pub fn pod(mut self, ordinal: u32, change: impl FnOnce(&mut PodState)) -> Self {
        let pod = self
            .0
            .pods
            .iter_mut()
            .find(|p| p.ordinal == ordinal)
            .expect("the fixture has this pod");
        change(pod);
        self
    }

    pub fn no_pod(mut self, ordinal: u32) -> Self {
        self.0.pods.retain(|p| p.ordinal != ordinal);
        self
    }

    /// A caught-up member.
    pub fn with_member(mut self, id: u64, role: MemberRole) -> Self {
        let view = self.view();
        view.members.retain(|m| m.id != NodeId(id));
        view.members.push(caught_up(NodeId(id), role));
        self
    }

    pub fn member(mut self, id: u64, change: impl FnOnce(&mut MemberView)) -> Self {
        let member = self
            .view()
            .members
            .iter_mut()
            .find(|m| m.id == NodeId(id))
            .expect("the fixture has this member");
        change(member);
        self
    }

    pub fn no_member(mut self, id: u64) -> Self {
        self.view().members.retain(|m| m.id != NodeId(id));
        self
    }

    pub fn leader(mut self, id: u64) -> Self {
        self.view().leader = Some(NodeId(id));
        self
    }

    pub fn no_leader(mut self) -> Self {
        self.view().leader = None;
        for m in &mut self.view().members {
            m.last_contact = None;
        }
        self
    }

    pub fn no_cluster_view(mut self) -> Self {
        self.0.cluster = None;
        self
    }

    fn view(&mut self) -> &mut ClusterView {
        self.0.cluster.get_or_insert_with(|| ClusterView {
            leader: None,
            commit_index: COMMIT,
            members: Vec::new(),
        })
    }
}

/// Pod changes.
pub fn not_ready(seconds: u64) -> impl FnOnce(&mut PodState) {
    move |p| {
        p.ready = false;
        p.unready_for = Duration::from_secs(seconds);
    }
}

pub fn pending(seconds: u64) -> impl FnOnce(&mut PodState) {
    move |p| {
        p.phase = PodPhase::Pending;
        p.ready = false;
        p.unready_for = Duration::from_secs(seconds);
    }
}

pub fn deleting(p: &mut PodState) {
    p.deleting = true;
    p.ready = false;
}

pub fn fresh_volume(p: &mut PodState) {
    p.volume = Volume::Fresh;
}

pub fn at_revision(revision: &'static str) -> impl FnOnce(&mut PodState) {
    move |p| p.revision = revision.to_string()
}

/// Member changes.
pub fn behind(entries: u64) -> impl FnOnce(&mut MemberView) {
    move |m| m.match_index = COMMIT - entries
}

pub fn silent(seconds: u64) -> impl FnOnce(&mut MemberView) {
    move |m| m.last_contact = Some(Duration::from_secs(seconds))
}

/// Longer than `Limits::default().degraded_after`.
pub const TOO_LONG: u64 = 301;
