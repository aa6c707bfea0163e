//! The simulated cluster: the mocked API server, a StatefulSet controller and kubelet that
//! make pods and claims from what the operator applies, and the Raft group those pods run.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dengine_operator::backup::Destination;
use dengine_operator::crd::{DEngineCluster, DEngineClusterSpec};
use dengine_operator::kubernetes::{reconcile_with, Context, ControllerConfig, DestinationFactory};
use dengine_operator::metrics::Metrics;
use dengine_operator::observed::Limits;
use kube::Client;
use object_store::memory::InMemory;
use serde_json::{json, Value};

use super::api_server::{self, Store};
use super::raft::{Group, SimulatedMembership};

pub const NS: &str = "shop";
pub const NAME: &str = "orders";
pub const TOKEN: &str = "s3cret";

pub struct World {
    pub client: Client,
    /// Where the cluster's backups go: any `spec.backup.s3` bucket, in memory.
    pub backups: Arc<InMemory>,
    pub store: Arc<Mutex<Store>>,
    pub group: Arc<Mutex<Group>>,
    pub ctx: Arc<Context>,
    /// Every reconcile's result, in order.
    pub results: Vec<Result<(), String>>,
}

fn fnv(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:08x}", hash >> 32)
}

impl World {
    /// A namespace with the admin token Secret and a DEngineCluster of `spec`.
    pub fn new(spec: DEngineClusterSpec) -> World {
        let store = Arc::new(Mutex::new(Store::default()));
        {
            let mut s = store.lock().unwrap();
            s.create(
                "secrets",
                NS,
                json!({
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": { "name": spec.auth.admin_token_secret.name },
                    "data": { "token": "czNjcmV0Cg==" },
                }),
            );
            s.create(
                "dengineclusters",
                NS,
                json!({
                    "apiVersion": "dengine.io/v1alpha1", "kind": "DEngineCluster",
                    "metadata": { "name": NAME },
                    "spec": serde_json::to_value(&spec).unwrap(),
                }),
            );
        }
        let client = api_server::client(store.clone());
        let backups = Arc::new(InMemory::new());
        let ctx = Self::operator_storing(&client, backups.clone());
        World {
            backups,
            store,
            group: Arc::new(Mutex::new(Group::default())),
            client,
            ctx,
            results: Vec::new(),
        }
    }

    /// A new operator: what a restarted process would build, its backups going to `backups`.
    pub fn operator_storing(client: &Client, backups: Arc<InMemory>) -> Arc<Context> {
        let destinations: DestinationFactory = Arc::new(move |spec, prefix, _credentials| {
            Ok(Destination::new(
                backups.clone(),
                format!("s3://{}", spec.bucket),
                prefix,
            ))
        });
        Arc::new(
            Context::new(
                client.clone(),
                Arc::new(Metrics::new()),
                ControllerConfig {
                    namespaces: vec![NS.into()],
                    limits: Limits {
                        degraded_after: Duration::from_secs(300),
                        ..Limits::default()
                    },
                    admin_timeout: Duration::from_secs(1),
                    instance: Some("test".into()),
                },
            )
            .with_backup_destinations(destinations)
            .with_backup_job_poll(Duration::from_millis(5)),
        )
    }

    /// A new operator for this world, after the last one died.
    #[allow(dead_code)]
    pub fn operator_for(world: &World) -> Arc<Context> {
        Self::operator_storing(&world.client, world.backups.clone())
    }

    pub fn cluster(&self) -> DEngineCluster {
        let store = self.store.lock().unwrap();
        let value = store
            .get("dengineclusters", NS, NAME)
            .expect("the cluster")
            .clone();
        serde_json::from_value(value).expect("a DEngineCluster")
    }

    /// A user changes the spec.
    pub fn set_spec(&self, spec: &DEngineClusterSpec) {
        self.store.lock().unwrap().update_spec(
            "dengineclusters",
            NS,
            NAME,
            serde_json::to_value(spec).unwrap(),
        );
    }

    /// One reconcile by the current operator, then the simulated controllers catch up.
    pub async fn reconcile(&mut self) -> Result<(), String> {
        let cluster = Arc::new(self.cluster());
        let membership = SimulatedMembership {
            group: self.group.clone(),
            token: String::new(),
        };
        let result = reconcile_with(cluster, self.ctx.clone(), |token, _tls| {
            SimulatedMembership {
                token,
                ..membership
            }
        })
        .await
        .map(drop)
        .map_err(|e| e.to_string());
        self.results.push(result.clone());
        self.settle();
        result
    }

    /// Reconciles until `done` holds, failing after `limit` reconciles.
    pub async fn run_until(&mut self, limit: usize, done: impl Fn(&World) -> bool) {
        for _ in 0..limit {
            let _ = self.reconcile().await;
            if done(self) {
                return;
            }
        }
        assert!(
            done(self),
            "not done after {limit} reconciles; events: {:?}; status: {}",
            self.event_reasons(),
            serde_json::to_string_pretty(&self.status()).unwrap()
        );
    }

    pub fn status(&self) -> Value {
        let store = self.store.lock().unwrap();
        store
            .get("dengineclusters", NS, NAME)
            .map(|c| c["status"].clone())
            .unwrap_or_default()
    }

    /// The `reason: note` of every Event recorded, in order; a repeat that kube's Recorder
    /// folded into a series (a patch of the first) counts as one more.
    pub fn event_reasons(&self) -> Vec<String> {
        let store = self.store.lock().unwrap();
        let describe = |event: &Value| {
            format!(
                "{}: {}",
                event["reason"].as_str().unwrap_or(""),
                event["note"].as_str().unwrap_or("")
            )
        };
        store
            .writes
            .iter()
            .filter_map(|w| match (w.target.as_str(), w.kind.as_str()) {
                ("events", "create") => Some(describe(&w.body)),
                (target, "merge") => {
                    let name = target.strip_prefix("events/")?;
                    store.get("events", NS, name).map(describe)
                }
                _ => None,
            })
            .collect()
    }

    pub fn events_with(&self, reason: &str) -> usize {
        self.event_reasons()
            .iter()
            .filter(|e| e.starts_with(&format!("{reason}:")))
            .count()
    }

    /// Settled: Running, with `voters` voters all ready and nothing else.
    pub fn running_with(&self, voters: usize) -> bool {
        let status = self.status();
        let members = status["members"].as_array().cloned().unwrap_or_default();
        status["phase"] == "Running"
            && members.len() == voters
            && members
                .iter()
                .all(|m| m["role"] == "voter" && m["ready"] == true)
    }

    /// The simulated StatefulSet controller and kubelet: pods and claims as the StatefulSet
    /// asks, nodes started from them, readiness from the Raft group.
    pub fn settle(&self) {
        let mut store = self.store.lock().unwrap();
        let mut group = self.group.lock().unwrap();
        let Some(set) = store.get("statefulsets", NS, NAME).cloned() else {
            return;
        };
        let replicas = set["spec"]["replicas"].as_u64().unwrap_or(0) as u32;
        let template = set["spec"]["template"].clone();
        let revision = format!("{NAME}-{}", fnv(template.to_string().as_bytes()));
        let join = store
            .get("configmaps", NS, &format!("{NAME}-config"))
            .and_then(|c| c["data"]["join"].as_str().map(str::to_string))
            .unwrap_or_default();
        let retain_on_scale_down =
            set["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain";

        // Pods beyond replicas go, with their claims unless kept.
        let pods: Vec<Value> = store.list("pods", NS).into_iter().cloned().collect();
        for pod in &pods {
            let name = pod["metadata"]["name"].as_str().unwrap_or("").to_string();
            let ordinal: u32 = name
                .rsplit('-')
                .next()
                .and_then(|o| o.parse().ok())
                .unwrap_or(0);
            if ordinal >= replicas {
                store.remove("pods", NS, &name);
                if !retain_on_scale_down {
                    store.remove("persistentvolumeclaims", NS, &format!("data-{name}"));
                }
            }
        }
        group.running.clear();
        for ordinal in 0..replicas {
            let pod_name = format!("{NAME}-{ordinal}");
            let claim_name = format!("data-{pod_name}");
            let id = u64::from(ordinal) + 1;
            let fresh_claim = store
                .get("persistentvolumeclaims", NS, &claim_name)
                .is_none();
            if fresh_claim {
                store.create(
                    "persistentvolumeclaims",
                    NS,
                    json!({
                        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                        "metadata": { "name": claim_name, "labels": template["metadata"]["labels"] },
                        "spec": { "accessModes": ["ReadWriteOnce"] },
                    }),
                );
            }
            if store.get("pods", NS, &pod_name).is_none() {
                // The node starts: founding only as pod 0 with an empty volume while the
                // ConfigMap says so; a member with an empty volume holds nothing.
                if fresh_claim && group.members.contains_key(&id) {
                    group.empty.insert(id);
                }
                if ordinal == 0 && join == "false" && fresh_claim {
                    group.found(id);
                }
                let mut labels = template["metadata"]["labels"].clone();
                labels["controller-revision-hash"] = json!(revision);
                store.create(
                    "pods",
                    NS,
                    json!({
                        "apiVersion": "v1", "kind": "Pod",
                        "metadata": { "name": pod_name, "labels": labels,
                                      "annotations": template["metadata"]["annotations"] },
                        "spec": template["spec"],
                        "status": { "phase": "Running", "podIP": format!("10.0.0.{}", ordinal + 1) },
                    }),
                );
            }
            group.running.insert(id);
        }
        group.elect();
        let mut ready_count = 0;
        for ordinal in 0..replicas {
            let id = u64::from(ordinal) + 1;
            let ready = group.ready(id);
            ready_count += u32::from(ready);
            if let Some(pod) = store.get_mut("pods", NS, &format!("{NAME}-{ordinal}")) {
                pod["status"]["conditions"] = json!([{
                    "type": "Ready",
                    "status": if ready { "True" } else { "False" },
                    "lastTransitionTime": k8s_openapi::jiff::Timestamp::now().to_string(),
                }]);
            }
        }
        if let Some(set) = store.get_mut("statefulsets", NS, NAME) {
            set["status"] = json!({
                "replicas": replicas,
                "readyReplicas": ready_count,
                "updateRevision": revision,
                "currentRevision": revision,
            });
        }
    }

    /// A member's volume is lost: its claim and pod are deleted and come back empty.
    pub fn lose_volume(&self, ordinal: u32) {
        let mut store = self.store.lock().unwrap();
        store.remove(
            "persistentvolumeclaims",
            NS,
            &format!("data-{NAME}-{ordinal}"),
        );
        store.remove("pods", NS, &format!("{NAME}-{ordinal}"));
        drop(store);
        self.settle();
    }
}

/// The condition of type `type_` in `status`.
pub fn condition(status: &Value, type_: &str) -> Value {
    status["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == type_))
        .cloned()
        .unwrap_or_else(|| panic!("no {type_} condition in {status}"))
}
