//! The DEngineClusters the scenarios create, and the bad ones scenario 7 expects the API server
//! to refuse, with the words it must refuse them with.
//!
//! Everything here is a pure function of [`SpecOptions`], so the unit tests in `tests/`
//! validate exactly what the runner sends against the committed CRD
//! (`crds/dengineclusters.dengine.io.yaml`): its OpenAPI schema and its CEL rules, evaluated
//! locally with kube's `cel` feature.

use std::collections::BTreeMap;

use dengine_operator::crd::{
    AppTemplate, Auth, DEngineCluster, DEngineClusterSpec, ImagePullPolicy, Ports, ReadPolicy,
    RestoreFrom, S3Access, Scheduling, SecretKeyRef, Storage,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EnvVar, EnvVarSource, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSpec, PodTemplateSpec, ResourceRequirements, SecurityContext,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

/// The name of the application container in every cluster pod.
pub const APP_CONTAINER: &str = "app";

/// The key prefix the writers write under.
pub const KEY_PREFIX: &str = "e2e/";

/// The cluster the scenarios 1 to 6 drive.
pub const CLUSTER: &str = "e2e";

/// The Secret holding the admin token, created by the runner in its namespace.
pub const ADMIN_SECRET: &str = "e2e-admin";

/// What the runner was told about images and the Kubernetes cluster it runs on.
#[derive(Clone, Debug, PartialEq)]
pub struct SpecOptions {
    pub namespace: String,
    /// The node image without a tag, e.g. `ghcr.io/d-engine/dengine`.
    pub node_image: String,
    /// The node image tag the clusters start on.
    pub node_tag: String,
    /// The application image with its tag.
    pub app_image: String,
    /// Members on distinct Kubernetes nodes (needs as many schedulable nodes as members).
    pub spread_across_nodes: bool,
    pub storage_class: Option<String>,
    pub storage_size: String,
    /// The writer's pause between writes, e.g. `200ms`.
    pub write_interval: String,
}

impl SpecOptions {
    /// Options for tests and examples.
    pub fn example() -> Self {
        SpecOptions {
            namespace: "dengine-e2e-test".to_string(),
            node_image: "ghcr.io/d-engine/dengine".to_string(),
            node_tag: "e2e".to_string(),
            app_image: "ghcr.io/d-engine/dengine-e2e-app:e2e".to_string(),
            spread_across_nodes: true,
            storage_class: None,
            storage_size: "256Mi".to_string(),
            write_interval: "200ms".to_string(),
        }
    }
}

/// The scenarios' cluster: `replicas` members on the node tag, each pod running the writer
/// beside its node, volumes removed on scale-down and kept on delete (scenario 6 checks both).
pub fn cluster(options: &SpecOptions, replicas: i32) -> DEngineCluster {
    let spec = DEngineClusterSpec {
        replicas,
        image: options.node_image.clone(),
        version: options.node_tag.clone(),
        // The images are loaded onto the nodes (kind) or pushed under a tag the run made.
        image_pull_policy: Some(ImagePullPolicy::IfNotPresent),
        storage: Storage {
            size: options.storage_size.clone(),
            storage_class_name: options.storage_class.clone(),
            retain_on_scale_down: false,
            retain_on_delete: true,
        },
        resources: ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".to_string())),
                ("memory".to_string(), Quantity("64Mi".to_string())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("512Mi".to_string()),
            )])),
            ..ResourceRequirements::default()
        },
        app: Some(app_template(options)),
        default_read_policy: ReadPolicy::Linearizable,
        auth: Auth {
            admin_token_secret: SecretKeyRef {
                name: ADMIN_SECRET.to_string(),
                key: "token".to_string(),
            },
        },
        scheduling: Scheduling {
            spread_across_nodes: options.spread_across_nodes,
            ..Scheduling::default()
        },
        // The default ports, not paused, and whatever the operator's spec adds with its
        // defaults (the example is the operator's own small valid spec).
        ..DEngineClusterSpec::example(replicas)
    };
    named(CLUSTER, &options.namespace, spec)
}

fn named(name: &str, namespace: &str, spec: DEngineClusterSpec) -> DEngineCluster {
    let mut cluster = DEngineCluster::new(name, spec);
    cluster.metadata.namespace = Some(namespace.to_string());
    cluster
}

/// The claim scenarios 8 and 9 keep backups in (the user's, so the runner makes it).
pub const BACKUP_CLAIM: &str = "e2e-backups";

/// The backup claim: ReadWriteOnce, of the scenarios' storage class and size.
pub fn backup_claim(options: &SpecOptions) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(BACKUP_CLAIM.to_string()),
            namespace: Some(options.namespace.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".to_string()]),
            storage_class_name: options.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(options.storage_size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Scenario 8's `spec.backup`: every minute into the backup claim, two kept.
pub fn backups_into_claim() -> Value {
    json!({
        "schedule": "* * * * *",
        "keep": 2,
        "persistentVolumeClaim": { "claimName": BACKUP_CLAIM },
    })
}

/// Scenario 9's cluster: three members founded from the backup at `location`.
pub fn restored_cluster(options: &SpecOptions, location: &str) -> DEngineCluster {
    let mut cluster = cluster(options, 3);
    cluster.spec.restore_from = Some(RestoreFrom {
        location: location.to_string(),
        access: S3Access::default(),
    });
    cluster
}

/// The writer application: one container beside the node, writing through 127.0.0.1.
pub fn app_template(options: &SpecOptions) -> AppTemplate {
    let container = Container {
        name: APP_CONTAINER.to_string(),
        image: Some(options.app_image.clone()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        args: Some(vec![
            "write".to_string(),
            "--endpoint".to_string(),
            format!("127.0.0.1:{}", Ports::default().client),
            "--prefix".to_string(),
            KEY_PREFIX.to_string(),
            "--interval".to_string(),
            options.write_interval.clone(),
        ]),
        env: Some(vec![EnvVar {
            name: "POD_NAME".to_string(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".to_string(),
                    api_version: None,
                }),
                ..EnvVarSource::default()
            }),
        }]),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("10m".to_string())),
                ("memory".to_string(), Quantity("16Mi".to_string())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("128Mi".to_string()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        ..Container::default()
    };
    AppTemplate(PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(BTreeMap::from([(
                "dengine-e2e/role".to_string(),
                "writer".to_string(),
            )])),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            containers: vec![container],
            // The writer stops at once on SIGTERM; no need to wait 30 s for a deleted pod.
            termination_grace_period_seconds: Some(10),
            ..PodSpec::default()
        }),
    })
}

/// A small cluster that never starts (`paused`), for updates that must be refused.
pub fn paused_cluster(options: &SpecOptions, name: &str) -> DEngineCluster {
    let mut cluster = cluster(options, 1);
    cluster.metadata.name = Some(name.to_string());
    cluster.spec.paused = true;
    cluster.spec.app = None;
    cluster
}

/// One bad input and what the API server must answer.
#[derive(Clone, Debug)]
pub struct BadInput {
    /// What the user did wrong, for the report.
    pub what: &'static str,
    /// The object, as JSON, created as is (when `old` is `None`) or as an update of `old`.
    pub object: Value,
    /// The stored object an update starts from.
    pub old: Option<Value>,
    /// The field the error names, as the API server writes it (`spec.replicas`).
    pub field: &'static str,
    /// Words the error message must contain.
    pub words: &'static str,
}

/// The bad inputs of scenario 7. The messages are the CRD's own: the schema's maximum for
/// replicas, and the CEL rules' messages (operator/src/crd/storage.rs, app.rs).
pub fn bad_inputs(options: &SpecOptions) -> Vec<BadInput> {
    let base = to_json(&cluster(options, 1));

    let mut replicas = base.clone();
    replicas["metadata"]["name"] = json!("e2e-bad-replicas");
    replicas["spec"]["replicas"] = json!(9);

    let mut container = base.clone();
    container["metadata"]["name"] = json!("e2e-bad-container");
    container["spec"]["app"]["spec"]["containers"]
        .as_array_mut()
        .expect("the app has containers")
        .push(json!({ "name": "dengine", "image": options.app_image }));

    let stored = to_json(&paused_cluster(options, "e2e-bad-storage"));
    let mut resized = stored.clone();
    resized["spec"]["storage"]["size"] = json!(bigger(&options.storage_size));

    vec![
        BadInput {
            what: "9 replicas (the most is 7)",
            object: replicas,
            old: None,
            field: "spec.replicas",
            words: "should be less than or equal to 7",
        },
        BadInput {
            what: "an application container named dengine",
            object: container,
            old: None,
            field: "spec.app.spec",
            words: "the container name dengine is taken by the node sidecar",
        },
        BadInput {
            what: "the storage size changed after creation",
            object: resized,
            old: Some(stored),
            field: "spec.storage.size",
            words: "size cannot change after creation",
        },
    ]
}

/// A size other than `size` (twice it when it is a plain `<number><unit>`).
fn bigger(size: &str) -> String {
    let digits: String = size.chars().take_while(char::is_ascii_digit).collect();
    match digits.parse::<u64>() {
        Ok(n) => format!("{}{}", n * 2, &size[digits.len()..]),
        Err(_) => "2Gi".to_string(),
    }
}

/// An object as the JSON sent to the API server.
pub fn to_json(cluster: &DEngineCluster) -> Value {
    serde_json::to_value(cluster).expect("a DEngineCluster serializes")
}

#[cfg(test)]
mod tests;
