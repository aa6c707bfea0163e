//! The StatefulSet: one pod per member, each running the node as a sidecar beside the
//! application's containers.
//!
//! - `OnDelete` updates: a new template restarts nothing by itself; the operator deletes one
//!   outdated pod at a time, in the order that never loses the quorum.
//! - `Parallel` pod management: after an outage every member's pod must come back at once to
//!   restore the quorum; `OrderedReady` would wait for pod 0 to be ready, which it cannot be
//!   without a quorum.
//! - The node reads whether to found or join from the ConfigMap when it starts
//!   (`DENGINE_JOIN`), its id from its pod name, and the admin token from the Secret.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, ConfigMapKeySelector, Container, ContainerPort, EnvVar, EnvVarSource,
    HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodAffinityTerm, PodAntiAffinity,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile, SecretKeySelector,
    SecretVolumeSource, SecurityContext, TopologySpreadConstraint, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::Decided;
use super::{
    owned_meta, selector_labels, with_spec_hash, Names, DATA_DIR, DATA_VOLUME, JOIN_KEY,
    RESTORE_FILE, RESTORE_KEY,
};
use crate::crd::{DEngineCluster, RestoreSource, NODE_CONTAINER_NAME};

/// The user the node runs as: the images' non-root user.
pub(super) const NODE_USER: i64 = 65532;

/// Where the admin token Secret is mounted.
pub(super) const ADMIN_TOKEN_DIR: &str = "/etc/dengine/admin";
const ADMIN_TOKEN_VOLUME: &str = "admin-token";

/// On the pod template, with `spec.tls.generate`: the serial of the certificates the pods run
/// with.
pub const CERTIFICATES_ANNOTATION: &str = "dengine.io/certificates-serial";

/// Where the TLS Secret (`tls.crt`, `tls.key`, `ca.crt`) is mounted.
pub(super) const TLS_DIR: &str = "/etc/dengine/tls";
pub(super) const TLS_VOLUME: &str = "tls";

/// The StatefulSet with `replicas` pods. The operator alone changes replicas, one member at a
/// time; everything else comes from the spec. The spec hash leaves replicas out, so that it
/// tells only whether the rest is as the spec asks.
pub fn stateful_set(cluster: &DEngineCluster, replicas: u32) -> StatefulSet {
    stateful_set_for(
        cluster,
        Decided {
            replicas,
            founded: true,
        },
    )
}

/// The StatefulSet as the operator decided it: `replicas` pods, and, on a cluster founded from
/// a backup in a claim, the claim mounted into the pods until the founding is recorded. Only
/// pod 0 exists until then; dropping the claim after changes the template, which restarts pod 0
/// once, the safe way, and lets every later pod schedule free of it.
pub fn stateful_set_for(cluster: &DEngineCluster, decided: Decided) -> StatefulSet {
    let mut set = with_spec_hash(build(cluster, decided.founded));
    if let Some(spec) = set.spec.as_mut() {
        spec.replicas = Some(i32::try_from(decided.replicas).unwrap_or(i32::MAX));
    }
    set
}

/// The StatefulSet with no pods.
fn build(cluster: &DEngineCluster, founded: bool) -> StatefulSet {
    let spec = &cluster.spec;
    let names = Names::of(cluster);
    let whenever = |retain: bool| if retain { "Retain" } else { "Delete" }.to_string();
    StatefulSet {
        metadata: owned_meta(cluster, names.stateful_set()),
        spec: Some(StatefulSetSpec {
            replicas: Some(0),
            service_name: Some(names.peer_service()),
            pod_management_policy: Some("Parallel".to_string()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".to_string()),
                rolling_update: None,
            }),
            selector: LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_scaled: Some(whenever(spec.storage.retain_on_scale_down)),
                    when_deleted: Some(whenever(spec.storage.retain_on_delete)),
                },
            ),
            template: pod_template(cluster, founded),
            volume_claim_templates: Some(vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some(DATA_VOLUME.to_string()),
                    labels: Some(selector_labels(cluster)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".to_string()]),
                    storage_class_name: spec.storage.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(spec.storage.size.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The application's template with the node added: as a native sidecar (an init container
/// that keeps running, started before and stopped after the application's containers) when the
/// application brings containers, as the only container otherwise.
fn pod_template(cluster: &DEngineCluster, founded: bool) -> PodTemplateSpec {
    let app = cluster.spec.app.clone().unwrap_or_default().0;
    let mut meta = app.metadata.unwrap_or_default();
    let mut labels = meta.labels.take().unwrap_or_default();
    labels.extend(selector_labels(cluster));
    meta.labels = Some(labels);
    if let Some(certificates) = cluster
        .status
        .as_ref()
        .and_then(|status| status.certificates.as_ref())
        .filter(|_| cluster.spec.tls.as_ref().is_some_and(|tls| tls.generate))
    {
        // Renewed certificates change the template, and so restart the pods the safe way.
        meta.annotations
            .get_or_insert_with(Default::default)
            .insert(
                CERTIFICATES_ANNOTATION.to_string(),
                certificates.serial.clone(),
            );
    }
    // Fields of the application's metadata that a template may not carry.
    meta.name = None;
    meta.namespace = None;

    let has_app = cluster.spec.app.is_some();
    let mut pod = app.spec.unwrap_or_default();
    let mut node = node_container(cluster, has_app);
    // The restore container runs to completion before the node starts (init containers start
    // in order, and the node's sidecar is one of them when an application runs beside it).
    let mut init: Vec<Container> = restore_container(cluster, founded).into_iter().collect();
    if has_app {
        node.restart_policy = Some("Always".to_string());
        init.push(node);
    } else {
        pod.containers = vec![node];
    }
    init.extend(pod.init_containers.take().unwrap_or_default());
    pod.init_containers = (!init.is_empty()).then_some(init);
    let mut volumes = pod.volumes.take().unwrap_or_default();
    volumes.push(admin_token_volume(cluster));
    if let Some(claim) = restore_claim(cluster).filter(|_| !founded) {
        volumes.push(Volume {
            name: RESTORE_SOURCE_VOLUME.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.to_string(),
                read_only: Some(true),
            }),
            ..Volume::default()
        });
    }
    if let Some(tls) = &cluster.spec.tls {
        volumes.push(Volume {
            name: TLS_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls.secret_name.clone()),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
    }
    pod.volumes = Some(volumes);
    // The data volume must be writable by the node's non-root user.
    let security = pod
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    security.fs_group.get_or_insert(NODE_USER);
    pod.affinity = affinity(cluster);
    let mut spread = pod.topology_spread_constraints.take().unwrap_or_default();
    spread.extend(
        cluster
            .spec
            .scheduling
            .topology_spread_constraints
            .iter()
            .cloned(),
    );
    // A zone constraint of the user's own stands instead (Kubernetes refuses two on one key
    // with the same whenUnsatisfiable).
    if !spread.iter().any(|c| c.topology_key == ZONE_KEY) {
        spread.extend(zone_spread(cluster));
    }
    pod.topology_spread_constraints = (!spread.is_empty()).then_some(spread);
    if !cluster.spec.scheduling.tolerations.is_empty() {
        let mut tolerations = pod.tolerations.take().unwrap_or_default();
        tolerations.extend(cluster.spec.scheduling.tolerations.iter().cloned());
        pod.tolerations = Some(tolerations);
    }
    PodTemplateSpec {
        metadata: Some(meta),
        spec: Some(pod),
    }
}

/// The spec's affinity, with a required anti-affinity on the hostname when members are spread
/// across Kubernetes nodes.
fn affinity(cluster: &DEngineCluster) -> Option<Affinity> {
    let scheduling = &cluster.spec.scheduling;
    let mut affinity = scheduling.affinity.clone();
    if scheduling.spread_across_nodes {
        let term = PodAffinityTerm {
            label_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(cluster)),
                ..LabelSelector::default()
            }),
            topology_key: "kubernetes.io/hostname".to_string(),
            ..PodAffinityTerm::default()
        };
        let anti = affinity
            .get_or_insert_with(Affinity::default)
            .pod_anti_affinity
            .get_or_insert_with(PodAntiAffinity::default);
        anti.required_during_scheduling_ignored_during_execution
            .get_or_insert_with(Vec::new)
            .push(term);
    }
    affinity
}

/// The nodes' zone label.
const ZONE_KEY: &str = "topology.kubernetes.io/zone";

/// The topology spread constraint that balances the members across zones, unless turned off.
fn zone_spread(cluster: &DEngineCluster) -> Option<TopologySpreadConstraint> {
    let when = cluster
        .spec
        .scheduling
        .spread_across_zones
        .when_unsatisfiable()?;
    Some(TopologySpreadConstraint {
        max_skew: 1,
        topology_key: ZONE_KEY.to_string(),
        when_unsatisfiable: when.to_string(),
        label_selector: Some(LabelSelector {
            match_labels: Some(selector_labels(cluster)),
            ..LabelSelector::default()
        }),
        ..TopologySpreadConstraint::default()
    })
}

/// The name of the container that fetches the backup a cluster is founded from.
pub const RESTORE_CONTAINER_NAME: &str = "restore";

/// Where pod 0's restore container finds the claim a backup in a claim is read from.
const RESTORE_SOURCE_DIR: &str = "/var/lib/dengine-restore-source";
const RESTORE_SOURCE_VOLUME: &str = "restore-source";

/// On a cluster founded from a backup: the container that downloads and checks it onto pod 0's
/// volume before the node starts (`dengine snapshot fetch`, from the node's image). It does
/// nothing in a pod that joins, and removes the file once the cluster is founded. Its result,
/// or its error, is its termination message, which the operator reports in the status.
fn restore_container(cluster: &DEngineCluster, founded: bool) -> Option<Container> {
    let restore = cluster.spec.restore_from.as_ref()?;
    let names = Names::of(cluster);
    let mut mounts = vec![VolumeMount {
        name: DATA_VOLUME.to_string(),
        mount_path: DATA_DIR.to_string(),
        ..VolumeMount::default()
    }];
    let location = match restore.source() {
        RestoreSource::S3(location) => location.to_string(),
        RestoreSource::Volume { path, .. } => {
            // Once founded the claim is gone from the pods, and the container only joins.
            if !founded {
                mounts.push(VolumeMount {
                    name: RESTORE_SOURCE_VOLUME.to_string(),
                    mount_path: RESTORE_SOURCE_DIR.to_string(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                });
            }
            format!("{RESTORE_SOURCE_DIR}/{path}")
        }
    };
    let mut args = vec![
        "snapshot".to_string(),
        "fetch".to_string(),
        location,
        RESTORE_FILE.to_string(),
        "--report-to".to_string(),
        "/dev/termination-log".to_string(),
    ];
    let mut variables = vec![join_from_config_map(&names)];
    let access = &restore.access;
    if let RestoreSource::S3(_) = restore.source() {
        if access.virtual_hosted_style {
            args.push("--virtual-hosted-style".to_string());
        }
        variables.push(env("AWS_REGION", access.region.clone()));
    }
    if let Some(endpoint) = &access.endpoint {
        variables.push(env("AWS_ENDPOINT_URL", endpoint.clone()));
    }
    if let Some(secret) = &access.credentials_secret {
        for (key, optional) in [
            ("AWS_ACCESS_KEY_ID", false),
            ("AWS_SECRET_ACCESS_KEY", false),
            ("AWS_SESSION_TOKEN", true),
        ] {
            variables.push(EnvVar {
                name: key.to_string(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.clone(),
                        key: key.to_string(),
                        optional: Some(optional),
                    }),
                    ..EnvVarSource::default()
                }),
            });
        }
    }
    Some(Container {
        name: RESTORE_CONTAINER_NAME.to_string(),
        image: Some(cluster.spec.node_image()),
        image_pull_policy: cluster
            .spec
            .image_pull_policy
            .map(|p| p.as_str().to_string()),
        command: Some(vec!["/usr/local/bin/dengine".to_string()]),
        args: Some(args),
        env: Some(variables),
        // A failure's message is the last lines it wrote, which say what went wrong.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        volume_mounts: Some(mounts),
        security_context: Some(restricted_security_context()),
        ..Container::default()
    })
}

/// The claim a cluster is restored from, for a backup in a claim.
fn restore_claim(cluster: &DEngineCluster) -> Option<&str> {
    match cluster.spec.restore_from.as_ref()?.source() {
        RestoreSource::Volume { claim, .. } => Some(claim),
        RestoreSource::S3(_) => None,
    }
}

/// `DENGINE_JOIN` from the founding record: whether the pod joins a founded cluster.
fn join_from_config_map(names: &Names) -> EnvVar {
    config_map_env("DENGINE_JOIN", names, JOIN_KEY)
}

fn config_map_env(name: &str, names: &Names, key: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: names.config_map(),
                key: key.to_string(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
    }
}

pub(super) fn env(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn env_from_field(name: &str, field: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: field.to_string(),
                api_version: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("metrics".to_string()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_string()),
        container_port: port,
        protocol: Some("TCP".to_string()),
        ..ContainerPort::default()
    }
}

/// The node container. Its client API listens on the pod's loopback interface when an
/// application runs beside it, and on the pod network (behind the client Service) when not.
fn node_container(cluster: &DEngineCluster, has_app: bool) -> Container {
    let spec = &cluster.spec;
    let names = Names::of(cluster);
    let ports = &spec.ports;
    let client_host = if has_app { "127.0.0.1" } else { "0.0.0.0" };
    let founder = format!("1={}", names.peer_address(0, ports.peer));
    let mut tls_env = Vec::new();
    let mut tls_mounts = Vec::new();
    if let Some(tls) = &spec.tls {
        // Issued by the operator, each member has its own pair, named after its pod (Kubernetes
        // expands $(POD_NAME), defined above); a user's Secret has one pair for all.
        let (cert, key) = match tls.generate {
            true => ("$(POD_NAME).crt", "$(POD_NAME).key"),
            false => ("tls.crt", "tls.key"),
        };
        tls_env.extend([
            env("DENGINE_TLS_CERT_FILE", format!("{TLS_DIR}/{cert}")),
            env("DENGINE_TLS_KEY_FILE", format!("{TLS_DIR}/{key}")),
            env("DENGINE_TLS_CA_FILE", format!("{TLS_DIR}/ca.crt")),
        ]);
        if !has_app {
            // The client listener is on the pod network behind the client Service.
            tls_env.push(env("DENGINE_CLIENT_TLS", "true"));
        }
        tls_mounts.push(VolumeMount {
            name: TLS_VOLUME.to_string(),
            mount_path: TLS_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    Container {
        name: NODE_CONTAINER_NAME.to_string(),
        image: Some(spec.node_image()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        env: Some(
            vec![
                env_from_field("POD_NAME", "metadata.name"),
                env_from_field("POD_NAMESPACE", "metadata.namespace"),
                env("DENGINE_DATA_DIR", DATA_DIR),
                env(
                    "DENGINE_CLIENT_LISTEN",
                    format!("{client_host}:{}", ports.client),
                ),
                env("DENGINE_PEER_LISTEN", format!("0.0.0.0:{}", ports.peer)),
                env(
                    "DENGINE_METRICS_LISTEN",
                    format!("0.0.0.0:{}", ports.metrics),
                ),
                env(
                    "DENGINE_ADVERTISE_PEER",
                    names.advertised_peer_template(ports.peer),
                ),
                env("DENGINE_INITIAL_CLUSTER", founder),
                env("DENGINE_CLUSTER_TOKEN", names.cluster_token()),
                join_from_config_map(&names),
                env(
                    "DENGINE_ADMIN_TOKEN_FILE",
                    format!("{ADMIN_TOKEN_DIR}/token"),
                ),
                env(
                    "DENGINE_DEFAULT_READ_POLICY",
                    spec.default_read_policy.as_flag(),
                ),
                env("DENGINE_LOG_FORMAT", "json"),
            ]
            .into_iter()
            .chain(tls_env)
            .chain(
                spec.restore_from
                    .is_some()
                    .then(|| config_map_env("DENGINE_RESTORE_FROM", &names, RESTORE_KEY)),
            )
            .collect(),
        ),
        ports: Some(vec![
            container_port("client", ports.client),
            container_port("peer", ports.peer),
            container_port("metrics", ports.metrics),
        ]),
        // Replaying a long log can take a while; the startup probe holds the others off.
        startup_probe: Some(http_probe("/startupz", 2, 150)),
        liveness_probe: Some(http_probe("/livez", 5, 6)),
        readiness_probe: Some(http_probe("/readyz", 2, 2)),
        resources: Some(spec.resources.clone()),
        volume_mounts: Some(
            vec![
                VolumeMount {
                    name: DATA_VOLUME.to_string(),
                    mount_path: DATA_DIR.to_string(),
                    ..VolumeMount::default()
                },
                admin_token_mount(),
            ]
            .into_iter()
            .chain(tls_mounts)
            .collect(),
        ),
        security_context: Some(restricted_security_context()),
        ..Container::default()
    }
}

/// The admin token Secret's key, as the file `token`.
pub(super) fn admin_token_volume(cluster: &DEngineCluster) -> Volume {
    Volume {
        name: ADMIN_TOKEN_VOLUME.to_string(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(cluster.spec.auth.admin_token_secret.name.clone()),
            items: Some(vec![KeyToPath {
                key: cluster.spec.auth.admin_token_secret.key.clone(),
                path: "token".to_string(),
                mode: None,
            }]),
            default_mode: Some(0o440),
            optional: None,
        }),
        ..Volume::default()
    }
}

/// Where the admin token volume is mounted: the file `token` under it.
pub(super) fn admin_token_mount() -> VolumeMount {
    VolumeMount {
        name: ADMIN_TOKEN_VOLUME.to_string(),
        mount_path: ADMIN_TOKEN_DIR.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// The node's user, a read-only root filesystem, no privileges: the restricted Pod Security
/// Standard.
pub(super) fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(NODE_USER),
        run_as_group: Some(NODE_USER),
        read_only_root_filesystem: Some(true),
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_string()]),
            add: None,
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_string(),
            localhost_profile: None,
        }),
        ..SecurityContext::default()
    }
}

/// The pod spec of a built StatefulSet (for tests and status).
pub fn pod_spec(set: &StatefulSet) -> Option<&PodSpec> {
    set.spec.as_ref()?.template.spec.as_ref()
}
