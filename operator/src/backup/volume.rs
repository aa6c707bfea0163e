//! Backups into a PersistentVolumeClaim: the operator cannot mount a claim, so each backup is a
//! Job of the node image (`objects::backup_job`) that streams it from the leader into the
//! claim with `dengine snapshot save-into`. This module reads how such a Job ended: from the
//! JSON report its container leaves as the termination message, or from what Kubernetes says
//! about a pod that never ran.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use serde::Deserialize;

use super::BackupFailure;

/// What `dengine snapshot save-into --report-to` writes.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
pub struct SaveReport {
    pub ok: bool,
    /// The file written, relative to the claim's root.
    #[serde(default)]
    pub object: Option<String>,
    #[serde(default)]
    pub revision: Option<i64>,
    #[serde(default)]
    pub index: Option<u64>,
    #[serde(default)]
    pub size_bytes: Option<u64>,
    /// How many backups retention deleted, and the first few of them.
    #[serde(default)]
    pub deleted_count: usize,
    #[serde(default)]
    pub deleted: Vec<String>,
    /// Why retention could not delete the oldest (the backup was kept).
    #[serde(default)]
    pub retention_failed: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// Why a pod that is not running yet never will: waiting reasons Kubernetes does not get over
/// without someone changing something (an image, a Secret, a claim).
const STUCK_REASONS: [&str; 4] = [
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
];

/// How the backup Job ended: `None` while it runs (or waits to be scheduled), the report of
/// a backup written, or why there is none.
pub fn job_outcome(job: &Job, pod: Option<&Pod>) -> Option<Result<SaveReport, BackupFailure>> {
    let status = job.status.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let container = pod.and_then(|pod| {
        pod.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()
            .cloned()
    });
    let terminated = container
        .as_ref()
        .and_then(|c| c.state.as_ref())
        .and_then(|state: &ContainerState| state.terminated.clone());
    let report = terminated
        .as_ref()
        .and_then(|t| t.message.as_deref())
        .map(|text| {
            serde_json::from_str::<SaveReport>(text.trim()).map_err(|_| text.trim().to_string())
        });
    if status.succeeded.unwrap_or(0) > 0 {
        return Some(match report {
            Some(Ok(report)) if report.ok && report.object.is_some() => Ok(report),
            _ => Err(job_failed(format!(
                "the backup Job {name} succeeded but left no report of what it wrote"
            ))),
        });
    }
    let failed_condition = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Failed" && c.status == "True");
    if status.failed.unwrap_or(0) > 0 || failed_condition.is_some() {
        return Some(Err(match report {
            Some(Ok(SaveReport {
                ok: false,
                reason,
                message,
                ..
            })) => BackupFailure {
                reason: known_reason(reason.as_deref()),
                message: message.unwrap_or_else(|| format!("the backup Job {name} failed")),
            },
            Some(Err(text)) if !text.is_empty() => {
                job_failed(format!("the backup Job {name} failed: {text}"))
            }
            _ => {
                let why = failed_condition
                    .map(|c| {
                        format!(
                            "{}: {}",
                            c.reason.clone().unwrap_or_default(),
                            c.message.clone().unwrap_or_default()
                        )
                    })
                    .unwrap_or_else(|| "its pod failed".to_string());
                job_failed(format!(
                    "the backup Job {name} failed ({why}){}",
                    pod_state(pod)
                ))
            }
        }));
    }
    let waiting = container
        .as_ref()
        .and_then(|c| c.state.as_ref())
        .and_then(|state| state.waiting.clone())
        .filter(|w| STUCK_REASONS.contains(&w.reason.as_deref().unwrap_or_default()));
    waiting.map(|w| {
        Err(job_failed(format!(
            "the backup Job {name}'s pod cannot start: {}: {}",
            w.reason.unwrap_or_default(),
            w.message.unwrap_or_default()
        )))
    })
}

/// The reasons `save-into` reports, as the condition's reasons; anything else is the Job's.
fn known_reason(reason: Option<&str>) -> &'static str {
    const KNOWN: [&str; 6] = [
        "SourceFailed",
        "BackupCorrupt",
        "UploadFailed",
        "DestinationInvalid",
        "UnsupportedFormat",
        "TimedOut",
    ];
    KNOWN
        .into_iter()
        .find(|known| Some(*known) == reason)
        .unwrap_or("JobFailed")
}

fn job_failed(message: String) -> BackupFailure {
    BackupFailure {
        reason: "JobFailed",
        message,
    }
}

/// What the pod was doing, for a Job that failed without a word of its own (a deadline passed
/// while it could not be scheduled, say).
fn pod_state(pod: Option<&Pod>) -> String {
    let Some(status) = pod.and_then(|pod| pod.status.as_ref()) else {
        return "; it had no pod".to_string();
    };
    let phase = status.phase.clone().unwrap_or_default();
    let why = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.status == "False" && c.message.is_some())
        .and_then(|c| c.message.clone())
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    format!("; its pod was {phase}{why}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(status: serde_json::Value) -> Job {
        serde_json::from_value(json!({
            "metadata": { "name": "orders-backup-1" },
            "status": status,
        }))
        .unwrap()
    }

    fn pod(container_state: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "orders-backup-1-x" },
            "status": {
                "phase": "Pending",
                "containerStatuses": [{
                    "name": "backup", "image": "i", "imageID": "", "ready": false,
                    "restartCount": 0, "state": container_state,
                }],
            },
        }))
        .unwrap()
    }

    fn terminated(exit_code: i32, message: &str) -> Pod {
        pod(json!({ "terminated": { "exitCode": exit_code, "message": message } }))
    }

    #[test]
    fn a_job_running_or_pending_has_no_outcome_yet() {
        assert_eq!(job_outcome(&job(json!({ "active": 1 })), None), None);
        let pulling = pod(json!({ "waiting": { "reason": "ContainerCreating" } }));
        assert_eq!(
            job_outcome(&job(json!({ "active": 1 })), Some(&pulling)),
            None
        );
    }

    #[test]
    fn a_succeeded_job_reports_what_it_wrote() {
        let report = r#"{"ok":true,"object":"shop/orders/shop.orders-20261206T120000.000Z.dengine-backup","revision":9,"index":12,"size_bytes":300,"deleted":["old"]}"#;
        let outcome = job_outcome(
            &job(json!({ "succeeded": 1 })),
            Some(&terminated(0, report)),
        );
        let report = outcome.unwrap().unwrap();
        assert_eq!(report.revision, Some(9));
        assert_eq!(report.index, Some(12));
        assert_eq!(report.deleted, vec!["old".to_string()]);
        // Succeeded without a report: not taken for a backup.
        let silent = job_outcome(&job(json!({ "succeeded": 1 })), Some(&terminated(0, "")));
        assert_eq!(silent.unwrap().unwrap_err().reason, "JobFailed");
    }

    #[test]
    fn a_failed_job_says_why_in_its_own_words_or_kubernetes() {
        let failed = job(json!({ "failed": 1 }));
        let reported = r#"{"ok":false,"reason":"BackupCorrupt","message":"the data received does not match the checksum in its header"}"#;
        let failure = job_outcome(&failed, Some(&terminated(1, reported)))
            .unwrap()
            .unwrap_err();
        assert_eq!(failure.reason, "BackupCorrupt");
        assert!(failure.message.contains("checksum"), "{failure:?}");

        let logs = job_outcome(&failed, Some(&terminated(1, "Error: no such file")))
            .unwrap()
            .unwrap_err();
        assert_eq!(logs.reason, "JobFailed");
        assert!(logs.message.contains("no such file"), "{logs:?}");

        let deadline = job(json!({
            "failed": 0,
            "conditions": [{ "type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                             "message": "Job was active longer than specified deadline" }],
        }));
        let unscheduled: Pod = serde_json::from_value(json!({
            "status": { "phase": "Pending", "conditions": [{
                "type": "PodScheduled", "status": "False",
                "message": "0/3 nodes are available: 3 node(s) had volume node affinity conflict."
            }] },
        }))
        .unwrap();
        let failure = job_outcome(&deadline, Some(&unscheduled))
            .unwrap()
            .unwrap_err();
        assert!(
            failure.message.contains("DeadlineExceeded")
                && failure.message.contains("volume node affinity conflict"),
            "{failure:?}"
        );
    }

    #[test]
    fn a_pod_that_cannot_start_fails_the_backup_at_once() {
        let missing_secret = pod(json!({ "waiting": {
            "reason": "CreateContainerConfigError",
            "message": "secret \"orders-admin\" not found",
        } }));
        let failure = job_outcome(&job(json!({ "active": 1 })), Some(&missing_secret))
            .unwrap()
            .unwrap_err();
        assert!(failure.message.contains("orders-admin"), "{failure:?}");
    }
}
