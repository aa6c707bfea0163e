//! Backups into a PersistentVolumeClaim, from the controller's side: a backup is a Job
//! (`objects::backup_job`) that the operator creates, watches until it ends, reads the result
//! of (`backup::volume`), and deletes once it succeeded. A Job that failed is kept a day for
//! `kubectl logs`; one whose pod cannot start, or that outlives its deadline and a margin, is
//! deleted, so that it never writes a backup nobody is waiting for. A Job's name follows from
//! the start the status records, so an operator that took over after a restart finds the Job
//! its predecessor started and waits for it ([`resume`]).

use std::time::Duration;

use futures::Future;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};

use super::backups::Finished;
use super::controller::Context;
use crate::backup::volume::{job_outcome, SaveReport};
use crate::backup::BackupFailure;
use crate::crd::{DEngineCluster, VolumeDestination};
use crate::objects::{backup_job, backup_job_name, BACKUP_JOB_DEADLINE_SECONDS, BACKUP_JOB_LABEL};
use crate::observed::Ordinal;
use crate::status::CompletedBackup;

/// Checks that the claim exists, creates the Job and returns the task that waits for it.
pub(super) async fn job_task(
    ctx: &Context,
    cluster: &DEngineCluster,
    claim: &VolumeDestination,
    keep: u32,
    leader: Ordinal,
    now: Timestamp,
) -> Result<impl Future<Output = Result<Finished, BackupFailure>> + Send + 'static, BackupFailure> {
    let namespace = cluster.namespace().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
    match claims.get_opt(&claim.claim_name).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(BackupFailure {
                reason: "DestinationInvalid",
                message: format!(
                    "PersistentVolumeClaim {namespace}/{} does not exist; the operator does not \
                     make the claim backups go to",
                    claim.claim_name
                ),
            })
        }
        Err(error) => {
            return Err(BackupFailure {
                reason: "DestinationInvalid",
                message: format!(
                    "reading PersistentVolumeClaim {namespace}/{}: {error}",
                    claim.claim_name
                ),
            })
        }
    }
    let name = backup_job_name(
        &cluster.name_any(),
        &cluster.uid().unwrap_or_default(),
        now.as_second(),
    );
    let job = backup_job(cluster, &name, claim, leader, keep);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &namespace);
    jobs.create(&PostParams::default(), &job)
        .await
        .map_err(|error| BackupFailure {
            reason: "JobFailed",
            message: format!("creating the backup Job {namespace}/{name}: {error}"),
        })?;
    Ok(waiting(ctx, namespace, name, claim))
}

/// Waits again for the backup Job started at `started`, which an operator that stopped
/// created; if it is gone, the backup was interrupted.
pub(super) fn resume(
    ctx: &Context,
    cluster: &DEngineCluster,
    claim: &VolumeDestination,
    started: Timestamp,
) -> impl Future<Output = Result<Finished, BackupFailure>> + Send + 'static {
    let name = backup_job_name(
        &cluster.name_any(),
        &cluster.uid().unwrap_or_default(),
        started.as_second(),
    );
    waiting(ctx, cluster.namespace().unwrap_or_default(), name, claim)
}

/// Waits for Job `name` and reads its report as a completed backup.
fn waiting(
    ctx: &Context,
    namespace: String,
    name: String,
    claim: &VolumeDestination,
) -> impl Future<Output = Result<Finished, BackupFailure>> + Send + 'static {
    let client = ctx.client.clone();
    let poll = ctx.backups.job_poll;
    let location_start = format!("pvc://{}/", claim.claim_name);
    async move {
        let report = wait_for(&client, &namespace, &name, poll).await?;
        Ok(finished(&location_start, report))
    }
}

/// How long the operator waits for a backup Job: its own deadline, then a margin for the Job
/// controller to mark it failed and for the operator to see it.
const JOB_WAIT: Duration = Duration::from_secs(BACKUP_JOB_DEADLINE_SECONDS as u64 + 120);

/// Waits until Job `name` ends, then deletes it unless it failed on its own (kept for its
/// logs).
async fn wait_for(
    client: &Client,
    namespace: &str,
    name: &str,
    poll: Duration,
) -> Result<SaveReport, BackupFailure> {
    let jobs: Api<Job> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods_of_job = ListParams::default().labels(&format!("{BACKUP_JOB_LABEL}={name}"));
    let give_up = tokio::time::Instant::now() + JOB_WAIT;
    loop {
        tokio::time::sleep(poll).await;
        if tokio::time::Instant::now() >= give_up {
            delete(&jobs, name).await;
            return Err(BackupFailure {
                reason: "TimedOut",
                message: format!(
                    "the backup Job {namespace}/{name} did not end within {} minutes and was \
                     deleted; a backup it was finishing may have been written",
                    JOB_WAIT.as_secs() / 60
                ),
            });
        }
        // The API server busy or restarting is no reason to give up: the Job goes on.
        let job = match jobs.get_opt(name).await {
            Ok(Some(job)) => job,
            Ok(None) => {
                return Err(BackupFailure {
                    reason: "Interrupted",
                    message: format!(
                        "the backup Job {namespace}/{name} was deleted before it ended"
                    ),
                })
            }
            Err(error) => {
                tracing::warn!(%error, job = name, "reading a backup Job; trying again");
                continue;
            }
        };
        let pod = match pods.list(&pods_of_job).await {
            Ok(list) => list
                .items
                .into_iter()
                .max_by_key(|pod| pod.creation_timestamp().map(|t| t.0)),
            Err(error) => {
                tracing::warn!(%error, job = name, "reading a backup Job's pod; trying again");
                continue;
            }
        };
        let Some(outcome) = job_outcome(&job, pod.as_ref()) else {
            continue;
        };
        let ended_on_its_own = job
            .status
            .as_ref()
            .is_some_and(|s| s.succeeded.unwrap_or(0) > 0 || s.failed.unwrap_or(0) > 0);
        if outcome.is_ok() || !ended_on_its_own {
            delete(&jobs, name).await;
        }
        return outcome;
    }
}

/// Deletes Job `name`, its pod with it (background propagation: a Job's default orphans it).
async fn delete(jobs: &Api<Job>, name: &str) {
    if let Err(error) = jobs.delete(name, &DeleteParams::background()).await {
        tracing::warn!(%error, job = name, "deleting a backup Job");
    }
}

/// The Job's report as a completed backup.
fn finished(location_start: &str, report: SaveReport) -> Finished {
    let object = report.object.unwrap_or_default();
    let name = object.rsplit('/').next().unwrap_or_default().to_string();
    Finished {
        completed: CompletedBackup {
            location: format!("{location_start}{object}"),
            finished: Time(Timestamp::now()),
            revision: report.revision.unwrap_or(0),
            index: report.index.unwrap_or(0),
            size_bytes: report.size_bytes.unwrap_or(0),
        },
        name,
        pruned: match report.retention_failed {
            Some(message) => Err(BackupFailure {
                reason: "RetentionFailed",
                message,
            }),
            None => Ok(report.deleted),
        },
    }
}
