//! Backups from the controller's side: once per reconcile, after the membership step, it
//! collects the backup that finished (status, condition, Event, metrics), and starts the one
//! that is due. A backup runs as a task of its own, so a large one never holds a reconcile
//! up; the next reconcile after it ends records how it went.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Event, EventType};
use kube::{Api, ResourceExt};
use object_store::path::Path;
use tokio::task::JoinHandle;

use crate::backup::{
    due, write_backup, BackupFailure, BackupSource, Destination, S3Credentials, Schedule, Trigger,
    Written,
};
use crate::crd::{DEngineCluster, S3Destination, BACKUP_REQUEST_ANNOTATION};
use crate::driver::Step;
use crate::metrics::ClusterLabels;
use crate::status::{
    set_condition, BackupStatus, CompletedBackup, ConditionType, DEngineClusterStatus,
    FailedBackup, RunningBackup,
};

use super::controller::Context;

/// Makes the destination a spec names (tests give an in-memory store).
pub type DestinationFactory = Arc<
    dyn Fn(&S3Destination, String, Option<S3Credentials>) -> Result<Destination, BackupFailure>
        + Send
        + Sync,
>;

/// The destination factory that talks to S3.
pub fn s3_destinations() -> DestinationFactory {
    Arc::new(Destination::s3)
}

/// How often a reconcile looks at a backup in progress.
const RUNNING_RECHECK: Duration = Duration::from_secs(5);

/// The backups in progress, one per cluster at most.
#[derive(Default)]
pub struct Backups {
    running: Mutex<HashMap<ClusterLabels, JoinHandle<Result<Finished, BackupFailure>>>>,
}

impl Backups {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        HashMap<ClusterLabels, JoinHandle<Result<Finished, BackupFailure>>>,
    > {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The finished backup of `cluster`, if one finished; `Err(())` while one still runs.
    fn take_finished(
        &self,
        cluster: &ClusterLabels,
    ) -> Result<Option<JoinHandle<Result<Finished, BackupFailure>>>, ()> {
        let mut running = self.lock();
        match running.get(cluster) {
            None => Ok(None),
            Some(task) if task.is_finished() => Ok(running.remove(cluster)),
            Some(_) => Err(()),
        }
    }

    /// `cluster` is gone: its backup in progress is stopped.
    pub fn forget(&self, cluster: &ClusterLabels) {
        if let Some(task) = self.lock().remove(cluster) {
            task.abort();
        }
    }
}

/// A backup written, checked and retention applied.
struct Finished {
    written: Written,
    location: String,
    finished: Timestamp,
    /// What retention deleted, or why it could not.
    pruned: Result<Vec<Path>, BackupFailure>,
}

/// One look at `cluster`'s backups: records the one that finished into `status`, starts the
/// one due. Returns how soon to look again for backups' sake.
pub async fn look<S>(
    ctx: &Context,
    cluster: &DEngineCluster,
    step: &Step,
    source: &S,
    status: &mut DEngineClusterStatus,
    now: Timestamp,
) -> Option<Duration>
where
    S: BackupSource,
{
    let labels = ClusterLabels {
        namespace: cluster.namespace().unwrap_or_default(),
        cluster: cluster.name_any(),
    };
    let requested = cluster
        .annotations()
        .get(BACKUP_REQUEST_ANNOTATION)
        .cloned();
    let spec = cluster.spec.backup.as_ref();
    if spec.is_none() && requested.is_none() && status.backup.is_none() {
        return None;
    }
    let mut backup = status.backup.clone().unwrap_or_default();
    let mut outcome = None;
    match ctx.backups.take_finished(&labels) {
        Err(()) => {
            status.backup = Some(backup);
            return Some(RUNNING_RECHECK);
        }
        Ok(Some(task)) => {
            outcome = Some(match task.await {
                Ok(result) => result,
                Err(error) => Err(BackupFailure {
                    reason: "Interrupted",
                    message: format!("the backup task ended: {error}"),
                }),
            });
        }
        Ok(None) if backup.running.is_some() => {
            outcome = Some(Err(BackupFailure {
                reason: "Interrupted",
                message: "the operator restarted (or another replica took over) while taking it; \
                          the next one is taken as scheduled"
                    .to_string(),
            }));
        }
        Ok(None) => {}
    }
    if let Some(outcome) = outcome {
        backup.running = None;
        record(ctx, cluster, &labels, &mut backup, status, outcome, now).await;
    }

    let schedule = spec.map(|spec| {
        Schedule::parse(&spec.schedule).map_err(|message| BackupFailure {
            reason: "InvalidSchedule",
            message,
        })
    });
    if let Some(Err(invalid)) = &schedule {
        let reported = status
            .conditions
            .iter()
            .any(|c| c.type_ == "BackupFailed" && c.status == "True" && c.reason == invalid.reason);
        fail_condition(status, invalid, now);
        if !reported {
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "BackupFailed",
                invalid.reason,
                invalid.message.clone(),
            )
            .await;
        }
    }
    let valid = schedule.as_ref().and_then(|parsed| parsed.as_ref().ok());
    let (trigger, counted) = due(valid, &backup, requested.as_deref(), now);
    backup = counted;
    if let Some(trigger) = trigger {
        match &trigger {
            Trigger::Scheduled(time) => backup.last_schedule_time = Some(Time(*time)),
            Trigger::Requested(value) => backup.last_request = Some(value.clone()),
        }
        match start(ctx, cluster, step, source, &labels, now).await {
            Ok(()) => {
                backup.running = Some(RunningBackup {
                    started: Time(now),
                    reason: trigger.reason().to_string(),
                });
            }
            Err(failure) => {
                record(
                    ctx,
                    cluster,
                    &labels,
                    &mut backup,
                    status,
                    Err(failure),
                    now,
                )
                .await;
            }
        }
    }
    let wake = match (&backup.running, &schedule) {
        (Some(_), _) => Some(RUNNING_RECHECK),
        (None, Some(Ok(schedule))) => schedule.after(now).map(|next| {
            Duration::from_secs(
                u64::try_from(next.as_second() - now.as_second())
                    .unwrap_or(0)
                    .max(1),
            )
        }),
        _ => None,
    };
    status.backup = Some(backup);
    wake
}

/// Starts a backup of `cluster` from its leader, or says why it cannot.
async fn start<S: BackupSource>(
    ctx: &Context,
    cluster: &DEngineCluster,
    step: &Step,
    source: &S,
    labels: &ClusterLabels,
    now: Timestamp,
) -> Result<(), BackupFailure> {
    let Some(spec) = &cluster.spec.backup else {
        return Err(BackupFailure {
            reason: "NotConfigured",
            message:
                "a backup was requested, but the cluster has no spec.backup to say where it goes"
                    .to_string(),
        });
    };
    let leader = step
        .observed
        .cluster
        .as_ref()
        .and_then(|view| view.leader)
        .ok_or_else(|| BackupFailure {
            reason: "NoLeader",
            message: "no member answered as the leader; a backup is taken from the leader".into(),
        })?;
    let endpoint = step
        .workload
        .admin_endpoints
        .get(&leader)
        .cloned()
        .ok_or_else(|| BackupFailure {
            reason: "NoLeader",
            message: format!("the leader, node {leader}, has no address the operator can reach"),
        })?;
    let credentials = match &spec.s3.credentials_secret {
        Some(name) => Some(s3_credentials(ctx, &labels.namespace, name).await?),
        None => None,
    };
    let prefix = spec.s3.prefix_for(&labels.namespace, &labels.cluster);
    let destination = (ctx.backup_destinations)(&spec.s3, prefix, credentials)?;
    let keep = usize::try_from(spec.keep).unwrap_or(usize::MAX);
    let path = destination.object_for(&labels.cluster, now);
    let opening = source.open(leader, &endpoint);
    let cluster_name = labels.cluster.clone();
    let task = tokio::spawn(async move {
        let chunks = opening.await?;
        let written = write_backup(chunks, &destination, path).await?;
        let location = destination.location(&written.path);
        let pruned = destination.prune(&cluster_name, keep).await;
        Ok(Finished {
            written,
            location,
            finished: Timestamp::now(),
            pruned,
        })
    });
    ctx.backups.lock().insert(labels.clone(), task);
    Ok(())
}

/// The credentials in the Secret `name`: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, and
/// `AWS_SESSION_TOKEN` if present.
async fn s3_credentials(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<S3Credentials, BackupFailure> {
    let invalid = |message: String| BackupFailure {
        reason: "CredentialsInvalid",
        message,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|error| invalid(format!("reading Secret {namespace}/{name}: {error}")))?
        .ok_or_else(|| invalid(format!("Secret {namespace}/{name} does not exist")))?;
    let key = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|data| data.get(key))
            .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
            .map(|text| text.trim().to_string())
            .filter(|text| !text.is_empty())
    };
    let required = |name_of_key: &str| {
        key(name_of_key).ok_or_else(|| {
            invalid(format!(
                "Secret {namespace}/{name} has no `{name_of_key}` (it needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
            ))
        })
    };
    Ok(S3Credentials {
        access_key_id: required("AWS_ACCESS_KEY_ID")?,
        secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
        session_token: key("AWS_SESSION_TOKEN"),
    })
}

/// Records how a backup ended: the status, the condition, an Event and the metrics.
async fn record(
    ctx: &Context,
    cluster: &DEngineCluster,
    labels: &ClusterLabels,
    backup: &mut BackupStatus,
    status: &mut DEngineClusterStatus,
    outcome: Result<Finished, BackupFailure>,
    now: Timestamp,
) {
    match outcome {
        Ok(finished) => {
            let header = &finished.written.header;
            let completed = CompletedBackup {
                location: finished.location.clone(),
                finished: Time(finished.finished),
                revision: header.revision,
                index: header.metadata.as_ref().map_or(0, |m| m.index),
                size_bytes: finished.written.size_bytes,
            };
            ctx.metrics.backup_succeeded(
                labels,
                completed.size_bytes,
                finished.finished.as_second(),
            );
            set_condition(
                &mut status.conditions,
                ConditionType::BackupFailed,
                false,
                "BackupSucceeded",
                &format!("the last backup is {}", completed.location),
                cluster.metadata.generation,
                Time(now),
            );
            publish(
                ctx,
                cluster,
                EventType::Normal,
                "BackupSucceeded",
                // One Event per backup: the object's name tells them apart.
                &format!(
                    "Backup{}",
                    finished.written.path.filename().unwrap_or_default()
                ),
                format!(
                    "backed up revision {} (log index {}, {} bytes) to {}",
                    completed.revision, completed.index, completed.size_bytes, completed.location
                ),
            )
            .await;
            match finished.pruned {
                Ok(deleted) if !deleted.is_empty() => tracing::info!(
                    cluster = %labels.cluster,
                    deleted = ?deleted.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "deleted backups beyond the count kept"
                ),
                Ok(_) => {}
                Err(failure) => {
                    publish(
                        ctx,
                        cluster,
                        EventType::Warning,
                        "BackupRetentionFailed",
                        "Prune",
                        format!(
                            "the backup was kept, but deleting the oldest failed: {}",
                            failure.message
                        ),
                    )
                    .await
                }
            }
            backup.last_successful = Some(completed);
        }
        Err(failure) => {
            ctx.metrics.backup_failed(labels);
            fail_condition(status, &failure, now);
            publish(
                ctx,
                cluster,
                EventType::Warning,
                "BackupFailed",
                failure.reason,
                failure.message.clone(),
            )
            .await;
            backup.last_failed = Some(FailedBackup {
                time: Time(now),
                reason: failure.reason.to_string(),
                message: failure.message,
            });
        }
    }
}

fn fail_condition(status: &mut DEngineClusterStatus, failure: &BackupFailure, now: Timestamp) {
    let generation = status.observed_generation;
    set_condition(
        &mut status.conditions,
        ConditionType::BackupFailed,
        true,
        failure.reason,
        &failure.message,
        generation,
        Time(now),
    );
}

async fn publish(
    ctx: &Context,
    cluster: &DEngineCluster,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    let event = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: action.to_string(),
        secondary: None,
    };
    super::controller::publish(ctx, cluster, event).await;
}
