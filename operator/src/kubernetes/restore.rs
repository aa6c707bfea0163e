//! A cluster founded from a backup, from the controller's side: until pod 0 has fetched and
//! checked the backup, each reconcile reads the restore container's outcome from pod 0 (its
//! termination message) into the status: what was restored, or why it could not be.
//!
//! Nothing else changes: pod 0's node starts only after the restore container succeeded, then
//! founds the cluster from the file, and the founding proceeds as for any cluster. A backup that
//! cannot be fetched or is damaged keeps pod 0 from starting a node at all, so there is never a
//! cluster founded from half a backup.

use k8s_openapi::api::core::v1::{ContainerState, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use serde::Deserialize;

use super::controller::{publish_note, Context};
use crate::crd::DEngineCluster;
use crate::objects::{Names, RESTORE_CONTAINER_NAME};
use crate::status::{set_condition, ConditionType, DEngineClusterStatus, RestoreStatus};
use crate::Error;

/// What `dengine snapshot fetch --report-to` writes.
#[derive(Deserialize)]
struct FetchReport {
    fetched: bool,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    revision: Option<i64>,
    #[serde(default)]
    file_bytes: Option<u64>,
}

/// One look at pod 0's restore container, while the status has no fetched backup.
pub async fn look(
    ctx: &Context,
    cluster: &DEngineCluster,
    status: &mut DEngineClusterStatus,
    now: Timestamp,
) -> Result<(), Error> {
    let Some(restore) = &cluster.spec.restore_from else {
        return Ok(());
    };
    let mut recorded = status.restore.clone().unwrap_or_else(|| RestoreStatus {
        location: restore.location.clone(),
        ..RestoreStatus::default()
    });
    if recorded.fetched.is_some() {
        return Ok(());
    }
    let namespace = cluster.namespace().unwrap_or_default();
    let names = Names::new(cluster.name_any(), &namespace);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &namespace);
    let outcome = pods
        .get_opt(&names.pod(0))
        .await?
        .and_then(|pod| restore_outcome(&pod));
    match outcome {
        Some(Outcome::Fetched { finished, report }) => {
            recorded.fetched = Some(finished.unwrap_or(Time(now)));
            recorded.revision = report.revision;
            recorded.index = report.index;
            recorded.size_bytes = report.file_bytes;
            set_condition(
                &mut status.conditions,
                ConditionType::RestoreFailed,
                false,
                "Restored",
                &format!("pod 0 fetched and checked {}", recorded.location),
                cluster.metadata.generation,
                Time(now),
            );
            let note = format!(
                "pod 0 fetched {} (revision {}); its node founds the cluster from it",
                recorded.location,
                report.revision.unwrap_or(0)
            );
            publish_note(
                ctx,
                cluster,
                EventType::Normal,
                "RestoreFetched",
                "Restore",
                note,
            )
            .await;
        }
        Some(Outcome::Failed { message }) => {
            let already = status
                .conditions
                .iter()
                .any(|c| c.type_ == "RestoreFailed" && c.status == "True" && c.message == message);
            set_condition(
                &mut status.conditions,
                ConditionType::RestoreFailed,
                true,
                "FetchFailed",
                &message,
                cluster.metadata.generation,
                Time(now),
            );
            if !already {
                publish_note(
                    ctx,
                    cluster,
                    EventType::Warning,
                    "RestoreFailed",
                    "Restore",
                    message,
                )
                .await;
            }
        }
        None => {}
    }
    status.restore = Some(recorded);
    Ok(())
}

/// How pod 0's restore container ended, if it did.
enum Outcome {
    Fetched {
        finished: Option<Time>,
        report: FetchReport,
    },
    Failed {
        message: String,
    },
}

fn restore_outcome(pod: &Pod) -> Option<Outcome> {
    let container = pod
        .status
        .as_ref()?
        .init_container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == RESTORE_CONTAINER_NAME)?;
    let terminated =
        |state: &Option<ContainerState>| state.as_ref().and_then(|s| s.terminated.clone());
    if let Some(done) = terminated(&container.state) {
        if done.exit_code == 0 {
            let report: FetchReport = serde_json::from_str(done.message.as_deref()?).ok()?;
            // A member that joins fetches nothing; pod 0 founding always fetches.
            return report.fetched.then_some(Outcome::Fetched {
                finished: done.finished_at,
                report,
            });
        }
        return Some(failed(done.exit_code, done.message));
    }
    // Waiting to be retried (CrashLoopBackOff): the last attempt's failure.
    terminated(&container.last_state)
        .filter(|last| last.exit_code != 0)
        .map(|last| failed(last.exit_code, last.message))
}

fn failed(exit_code: i32, message: Option<String>) -> Outcome {
    let text = message
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| format!("the restore container exited with status {exit_code}"));
    Outcome::Failed {
        message: format!("pod 0 could not fetch the backup; it retries: {text}"),
    }
}
