//! A DEngineCluster's workload as Kubernetes objects: the StatefulSet, its pods and their
//! claims, the Services, the ConfigMap and the PodDisruptionBudget.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client, Resource};
use serde_json::json;

use super::observe::{pod_state, pod_version};
use crate::crd::DEngineCluster;
use crate::driver::{Workload, WorkloadView};
use crate::objects::{
    self, ClientService, Component, Decided, DisruptionBudget, FoundingRecord, Members, Names,
    PeerService, CERTIFICATES_ANNOTATION, CLAIM_MARK, JOIN_KEY, MANAGER, RESTORE_KEY, SPEC_HASH,
};
use crate::observed::{NodeId, ObjectsState, Ordinal, PodPhase, StatefulSetState};
use crate::Error;

/// One cluster's objects, read and written through the API server.
pub struct KubeWorkload {
    client: Client,
    cluster: Arc<DEngineCluster>,
    names: Names,
    now: Timestamp,
    /// The uid of each pod last observed: a pod is deleted only if it is still the one the
    /// decision was made about, not a newer pod under the same name.
    pod_uids: Mutex<BTreeMap<Ordinal, String>>,
}

impl KubeWorkload {
    /// The workload of `cluster`, observed as of `now`.
    pub fn new(
        client: Client,
        cluster: Arc<DEngineCluster>,
        now: Timestamp,
    ) -> Result<Self, Error> {
        let name = cluster
            .metadata
            .name
            .clone()
            .ok_or_else(|| Error::Invalid("has no name".into()))?;
        let namespace = cluster
            .metadata
            .namespace
            .clone()
            .ok_or_else(|| Error::Invalid(format!("{name} has no namespace")))?;
        Ok(KubeWorkload {
            client,
            cluster,
            names: Names::new(name, namespace),
            now,
            pod_uids: Mutex::new(BTreeMap::new()),
        })
    }

    fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.names.namespace)
    }

    fn list_params(&self) -> ListParams {
        ListParams::default().labels(&objects::selector_query(&self.cluster))
    }

    /// The object `C` as found, if it exists.
    async fn fetch<C: Component>(&self) -> Result<Option<C::Object>, Error> {
        Ok(self
            .api::<C::Object>()
            .get_opt(&C::name(&self.names))
            .await?)
    }

    /// Whether the object `C` as found is as the spec builds it.
    fn state_of<C: Component>(&self, found: Option<&C::Object>, decided: Decided) -> ObjectsState {
        let hash = |o: &C::Object| {
            o.meta()
                .annotations
                .as_ref()
                .and_then(|a| a.get(SPEC_HASH))
                .cloned()
        };
        match (C::build(&self.cluster, decided), found) {
            (Some(_), None) => ObjectsState::Missing,
            (Some(built), Some(found)) if hash(found) == hash(&built) => ObjectsState::Current,
            (Some(_), Some(_)) | (None, Some(_)) => ObjectsState::Outdated,
            (None, None) => ObjectsState::Current,
        }
    }

    /// Makes the object `C` as the spec builds it: server-side applied as the operator, taking
    /// over fields another manager set (the operator owns these objects), or deleted when the
    /// spec asks for none.
    async fn sync<C: Component>(&self, decided: Decided) -> Result<(), Error> {
        let api = self.api::<C::Object>();
        let name = C::name(&self.names);
        match C::build(&self.cluster, decided) {
            Some(object) => {
                api.patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&object),
                )
                .await?;
            }
            None => {
                if api.get_opt(&name).await?.is_some() {
                    api.delete(&name, &DeleteParams::default()).await?;
                }
            }
        }
        Ok(())
    }
}

/// The worse of two object states.
fn worst(a: ObjectsState, b: ObjectsState) -> ObjectsState {
    use ObjectsState::*;
    match (a, b) {
        (Missing, _) | (_, Missing) => Missing,
        (Outdated, _) | (_, Outdated) => Outdated,
        _ => Current,
    }
}

impl Workload for KubeWorkload {
    async fn observe(&self) -> Result<WorkloadView, Error> {
        let set = self.fetch::<Members>().await?;
        let config = self.fetch::<FoundingRecord>().await?;
        let founded = config
            .as_ref()
            .and_then(|c| c.data.as_ref())
            .and_then(|d| d.get(JOIN_KEY))
            .is_some_and(|v| v == "true");
        // Neither replicas nor the founding record is in a spec hash.
        let decided = Decided {
            replicas: 0,
            founded,
        };
        let peers = self.fetch::<PeerService>().await?;
        let clients = self.fetch::<ClientService>().await?;
        let budget = self.fetch::<DisruptionBudget>().await?;
        let objects = [
            self.state_of::<Members>(set.as_ref(), decided),
            self.state_of::<FoundingRecord>(config.as_ref(), decided),
            self.state_of::<PeerService>(peers.as_ref(), decided),
            self.state_of::<ClientService>(clients.as_ref(), decided),
            self.state_of::<DisruptionBudget>(budget.as_ref(), decided),
        ]
        .into_iter()
        .fold(ObjectsState::Current, worst);

        let pods = self.api::<Pod>().list(&self.list_params()).await?.items;
        let claims: BTreeMap<String, PersistentVolumeClaim> = self
            .api::<PersistentVolumeClaim>()
            .list(&self.list_params())
            .await?
            .items
            .into_iter()
            .filter_map(|c| Some((c.metadata.name.clone()?, c)))
            .collect();

        let peer_port = self.cluster.spec.ports.peer;
        let mut view = WorkloadView {
            objects,
            founded,
            stateful_set: set.as_ref().map(|s| StatefulSetState {
                replicas: s
                    .spec
                    .as_ref()
                    .and_then(|s| s.replicas)
                    .and_then(|r| u32::try_from(r).ok())
                    .unwrap_or(0),
                ready_replicas: s
                    .status
                    .as_ref()
                    .and_then(|s| s.ready_replicas)
                    .and_then(|r| u32::try_from(r).ok())
                    .unwrap_or(0),
                update_revision: s
                    .status
                    .as_ref()
                    .and_then(|s| s.update_revision.clone())
                    .unwrap_or_default(),
            }),
            pods: Vec::new(),
            admin_endpoints: BTreeMap::new(),
            versions: BTreeMap::new(),
            certificate_serials: BTreeMap::new(),
        };
        let mut uids = BTreeMap::new();
        for pod in &pods {
            let Some(ordinal) = pod
                .metadata
                .name
                .as_deref()
                .and_then(|n| self.names.ordinal_of(n))
            else {
                continue;
            };
            let claim = claims.get(&self.names.claim(ordinal));
            let Some(state) = pod_state(&self.names, pod, claim, self.now) else {
                continue;
            };
            if let Some(uid) = &pod.metadata.uid {
                uids.insert(ordinal, uid.clone());
            }
            if let Some(version) = pod_version(pod) {
                view.versions.insert(ordinal, version);
            }
            let serial = pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(CERTIFICATES_ANNOTATION))
                .cloned();
            view.certificate_serials.insert(ordinal, serial);
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.as_deref());
            if let (Some(ip), PodPhase::Running) = (ip, state.phase) {
                if !state.deleting {
                    view.admin_endpoints
                        .insert(NodeId::of_ordinal(ordinal), format!("{ip}:{peer_port}"));
                }
            }
            view.pods.push(state);
        }
        view.pods.sort_by_key(|p| p.ordinal);
        *self.pod_uids.lock().unwrap_or_else(|e| e.into_inner()) = uids;
        Ok(view)
    }

    async fn apply_objects(&self, seen: &WorkloadView) -> Result<(), Error> {
        let decided = Decided {
            replicas: seen.stateful_set.as_ref().map_or(0, |s| s.replicas),
            founded: seen.founded,
        };
        // The StatefulSet last: its pods find the ConfigMap and Services they start with.
        self.sync::<FoundingRecord>(decided).await?;
        self.sync::<PeerService>(decided).await?;
        self.sync::<ClientService>(decided).await?;
        self.sync::<DisruptionBudget>(decided).await?;
        self.sync::<Members>(decided).await
    }

    async fn set_replicas(&self, replicas: u32) -> Result<(), Error> {
        let patch = json!({ "spec": { "replicas": replicas } });
        self.api::<StatefulSet>()
            .patch(
                &self.names.stateful_set(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    async fn claim_volume(&self, ordinal: Ordinal) -> Result<(), Error> {
        let mark = NodeId::of_ordinal(ordinal).to_string();
        let patch = json!({ "metadata": { "annotations": { (CLAIM_MARK): mark } } });
        self.api::<PersistentVolumeClaim>()
            .patch(
                &self.names.claim(ordinal),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    async fn record_founded(&self) -> Result<(), Error> {
        let mut patch = json!({ "data": { (JOIN_KEY): "true" } });
        if self.cluster.spec.restore_from.is_some() {
            // Founded: no member is to restore from now on (one that joins must not).
            patch["data"][RESTORE_KEY] = json!("");
        }
        self.api::<ConfigMap>()
            .patch(
                &self.names.config_map(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        Ok(())
    }

    async fn delete_pod(&self, ordinal: Ordinal) -> Result<(), Error> {
        let uid = self
            .pod_uids
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&ordinal)
            .cloned();
        let params = DeleteParams {
            preconditions: uid.map(|uid| Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        self.api::<Pod>()
            .delete(&self.names.pod(ordinal), &params)
            .await?;
        Ok(())
    }

    fn peer_address(&self, ordinal: Ordinal) -> String {
        self.names
            .peer_address(ordinal, self.cluster.spec.ports.peer)
    }
}
