//! The Job that takes one backup into a PersistentVolumeClaim (`spec.backup.persistentVolumeClaim`):
//! a pod of the node image mounting the claim, running `dengine snapshot save-into` against the
//! leader's admin API with the operator's credentials (the admin token; with TLS, the client
//! certificate the operator itself presents). Its result, or its failure, is its termination
//! message, which the operator reads into the status.
//!
//! The pod carries labels of its own, never the cluster's selector labels: a backup pod must not
//! count as a member for the Services, the PodDisruptionBudget or the StatefulSet.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Container, KeyToPath, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, ResourceRequirements, SecretVolumeSource, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::stateful_set::{
    admin_token_mount, admin_token_volume, env, restricted_security_context, ADMIN_TOKEN_DIR,
    NODE_USER, TLS_DIR, TLS_VOLUME,
};
use super::{owned_meta, Names};
use crate::crd::{DEngineCluster, VolumeDestination};
use crate::observed::Ordinal;

/// The label on a backup Job's pod naming its Job (Kubernetes adds its own too, but under two
/// names depending on the version).
pub const BACKUP_JOB_LABEL: &str = "dengine.io/backup-job";

/// The backup container's name.
pub const BACKUP_CONTAINER_NAME: &str = "backup";

/// Where the claim is mounted in the backup pod.
const BACKUPS_DIR: &str = "/backups";
const BACKUPS_VOLUME: &str = "backups";

/// How long a backup Job may run, pending included; the operator gives up at the same time.
pub const BACKUP_JOB_DEADLINE_SECONDS: i64 = 30 * 60;

/// A failed Job is kept this long for `kubectl logs` and `describe`; one that succeeded is
/// deleted by the operator once it has read the result.
const FAILED_JOB_KEPT_SECONDS: i32 = 24 * 60 * 60;

/// A backup taken into `claim` from the leader in pod `leader`, keeping `keep` backups.
pub fn backup_job(
    cluster: &DEngineCluster,
    name: &str,
    claim: &VolumeDestination,
    leader: Ordinal,
    keep: u32,
) -> Job {
    let names = Names::of(cluster);
    let spec = &cluster.spec;
    let scheme = if spec.tls.is_some() { "https" } else { "http" };
    let endpoint = format!("{scheme}://{}:{}", names.peer_host(leader), spec.ports.peer);
    let prefix = claim.prefix_for(&names.namespace, &names.cluster);
    let mut args = vec![
        "--endpoints".to_string(),
        endpoint,
        // The whole stream is bounded by the Job's deadline; this bounds connecting and the
        // node's first answer.
        "--timeout".to_string(),
        "60s".to_string(),
        "snapshot".to_string(),
        "save-into".to_string(),
        BACKUPS_DIR.to_string(),
        "--cluster".to_string(),
        format!("{}/{}", names.namespace, names.cluster),
        "--keep".to_string(),
        keep.max(1).to_string(),
        "--report-to".to_string(),
        "/dev/termination-log".to_string(),
    ];
    if !prefix.is_empty() {
        // One argument, so that a prefix starting with `-` is not taken for a flag.
        args.push(format!("--prefix={prefix}"));
    }
    let mut variables = vec![env(
        "DENGINE_ADMIN_TOKEN_FILE",
        format!("{ADMIN_TOKEN_DIR}/token"),
    )];
    let mut mounts = vec![
        VolumeMount {
            name: BACKUPS_VOLUME.to_string(),
            mount_path: BACKUPS_DIR.to_string(),
            ..VolumeMount::default()
        },
        admin_token_mount(),
    ];
    let mut volumes = vec![
        Volume {
            name: BACKUPS_VOLUME.to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.claim_name.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        },
        admin_token_volume(cluster),
    ];
    if let Some(tls) = &spec.tls {
        // The identity the operator presents: its own certificate from the CA Secret when the
        // operator issues them (only these three keys: the CA's key stays out of the pod),
        // the shared pair of a user's Secret otherwise.
        let (secret, items) = match tls.generate {
            true => (
                names.ca_secret(),
                vec![
                    ("ca.crt", "ca.crt"),
                    ("operator.crt", "tls.crt"),
                    ("operator.key", "tls.key"),
                ],
            ),
            false => (
                tls.secret_name.clone(),
                vec![
                    ("ca.crt", "ca.crt"),
                    ("tls.crt", "tls.crt"),
                    ("tls.key", "tls.key"),
                ],
            ),
        };
        volumes.push(Volume {
            name: TLS_VOLUME.to_string(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret),
                items: Some(
                    items
                        .into_iter()
                        .map(|(key, path)| KeyToPath {
                            key: key.to_string(),
                            path: path.to_string(),
                            mode: None,
                        })
                        .collect(),
                ),
                default_mode: Some(0o440),
                optional: None,
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: TLS_VOLUME.to_string(),
            mount_path: TLS_DIR.to_string(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
        variables.extend([
            env("DENGINE_CACERT", format!("{TLS_DIR}/ca.crt")),
            env("DENGINE_CERT", format!("{TLS_DIR}/tls.crt")),
            env("DENGINE_KEY", format!("{TLS_DIR}/tls.key")),
        ]);
    }
    let pod_labels = BTreeMap::from([
        (
            "app.kubernetes.io/name".to_string(),
            "dengine-backup".to_string(),
        ),
        (
            "app.kubernetes.io/instance".to_string(),
            names.cluster.clone(),
        ),
        (BACKUP_JOB_LABEL.to_string(), name.to_string()),
    ]);
    let container = Container {
        name: BACKUP_CONTAINER_NAME.to_string(),
        image: Some(spec.node_image()),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        command: Some(vec!["/usr/local/bin/dengine".to_string()]),
        args: Some(args),
        env: Some(variables),
        volume_mounts: Some(mounts),
        // A failure it could not report as JSON (it could not start, say) is its last lines.
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        // The stream passes through in parts of a few MiB.
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".to_string())),
                ("memory".to_string(), Quantity("64Mi".to_string())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("256Mi".to_string()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(restricted_security_context()),
        ..Container::default()
    };
    Job {
        metadata: ObjectMeta {
            labels: Some({
                let mut labels = owned_meta(cluster, String::new())
                    .labels
                    .unwrap_or_default();
                labels.insert(
                    "app.kubernetes.io/component".to_string(),
                    "backup".to_string(),
                );
                labels
            }),
            ..owned_meta(cluster, name.to_string())
        },
        spec: Some(JobSpec {
            // One attempt: the next is the next schedule time, or a new request.
            backoff_limit: Some(0),
            active_deadline_seconds: Some(BACKUP_JOB_DEADLINE_SECONDS),
            ttl_seconds_after_finished: Some(FAILED_JOB_KEPT_SECONDS),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    restart_policy: Some("Never".to_string()),
                    // It talks to a node, never to the Kubernetes API.
                    automount_service_account_token: Some(false),
                    // A private node image is pulled as the members' pods pull it.
                    image_pull_secrets: spec
                        .app
                        .as_ref()
                        .and_then(|app| app.0.spec.as_ref())
                        .and_then(|pod| pod.image_pull_secrets.clone()),
                    containers: vec![container],
                    volumes: Some(volumes),
                    // The volume must be writable by the node's non-root user.
                    security_context: Some(PodSecurityContext {
                        fs_group: Some(NODE_USER),
                        ..PodSecurityContext::default()
                    }),
                    tolerations: (!spec.scheduling.tolerations.is_empty())
                        .then(|| spec.scheduling.tolerations.clone()),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// The name of the backup Job started at `unix_seconds`: `<cluster>-backup-<seconds>`. A
/// cluster name too long for the whole to stay a valid label value (63 characters) is
/// shortened and followed by a few characters of the cluster's uid, so that two clusters whose
/// names start alike never make Jobs of one name.
pub fn backup_job_name(cluster: &str, uid: &str, unix_seconds: i64) -> String {
    let suffix = format!("-backup-{unix_seconds}");
    if cluster.len() + suffix.len() <= 63 {
        return format!("{cluster}{suffix}");
    }
    let tag: String = uid
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect();
    let room = 63usize.saturating_sub(suffix.len() + tag.len() + 1);
    let start: String = cluster.chars().take(room).collect();
    format!("{}-{tag}{suffix}", start.trim_end_matches(['-', '.']))
}
