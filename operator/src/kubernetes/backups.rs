//! Backups from the controller's side: once per reconcile, after the membership step, it
//! carries a backup's outcome into the status (condition, Event, metrics) and starts the one
//! that is due. A backup runs as a task of its own, so a large one never holds a reconcile up.
//!
//! A backup's outcome stays with the operator until a status that holds it has been written:
//! a status write that fails, or a reconcile that reads a status older than the last write,
//! leads to the outcome being written again, never to losing it or to reporting the backup as
//! interrupted. A backup the status shows running that this operator does not hold was lost
//! with another process (a restart, a standby taking over): that one is interrupted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use object_store::path::Path;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::backup::source::BACKUP_TIME_LIMIT;
use crate::backup::{
    due, write_backup, BackupFailure, BackupSource, Destination, S3Keys, Schedule, Trigger, Written,
};
use crate::crd::{DEngineCluster, S3Destination, BACKUP_REQUEST_ANNOTATION};
use crate::driver::Step;
use crate::metrics::ClusterLabels;
use crate::observed::NodeId;
use crate::status::{
    set_condition, BackupStatus, CompletedBackup, ConditionType, DEngineClusterStatus,
    FailedBackup, RunningBackup,
};
use futures::future::{Future, FutureExt};

use super::controller::{publish_note, Context};

/// Makes the destination a spec names (tests give an in-memory store).
pub type DestinationFactory = Arc<
    dyn Fn(&S3Destination, String, Option<S3Keys>) -> Result<Destination, BackupFailure>
        + Send
        + Sync,
>;

/// The destination factory that talks to S3.
pub fn s3_destinations() -> DestinationFactory {
    Arc::new(crate::backup::s3::s3_destination)
}

/// How often a reconcile looks at a backup in progress.
const RUNNING_RECHECK: Duration = Duration::from_secs(15);

/// Backups streaming through the operator at once, over every cluster: each holds a few
/// upload parts in memory.
const CONCURRENT_BACKUPS: usize = 2;

/// The backups this operator process has started, by cluster uid.
pub struct Backups {
    jobs: Mutex<HashMap<String, Job>>,
    /// Taken by each backup while it streams.
    slots: Arc<Semaphore>,
    /// How often a backup Job (into a claim) is looked at while it runs.
    pub(super) job_poll: Duration,
}

impl Default for Backups {
    fn default() -> Self {
        Backups {
            jobs: Mutex::default(),
            slots: Arc::new(Semaphore::new(CONCURRENT_BACKUPS)),
            job_poll: Duration::from_secs(5),
        }
    }
}

/// One cluster's backup, from start until a status holding its outcome was written.
struct Job {
    cluster: ClusterLabels,
    /// When it started: the status's `running.started`, which tells this backup from others.
    started: Timestamp,
    trigger: Trigger,
    state: JobState,
}

enum JobState {
    Running(JoinHandle<Result<Finished, BackupFailure>>),
    /// Ended at `at`; announced (Event, metrics) once, written into every status until one
    /// lands.
    Ended {
        outcome: Box<Result<Finished, BackupFailure>>,
        at: Timestamp,
    },
}

/// Backups stop with the operator that runs them (as when its process ends).
impl Drop for Backups {
    fn drop(&mut self) {
        for job in self.lock().values() {
            if let JobState::Running(task) = &job.state {
                task.abort();
            }
        }
    }
}

impl Backups {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stops and forgets the backups of clusters that no longer exist in `namespace` (every
    /// namespace when `None`): `present` holds the uids of those that do.
    pub fn forget_missing(
        &self,
        namespace: Option<&str>,
        present: &[String],
    ) -> Vec<ClusterLabels> {
        let mut gone = Vec::new();
        self.lock().retain(|uid, job| {
            let in_scope = namespace.is_none_or(|ns| ns == job.cluster.namespace);
            let keep = !in_scope || present.contains(uid);
            if !keep {
                if let JobState::Running(task) = &job.state {
                    task.abort();
                }
                gone.push(job.cluster.clone());
            }
            keep
        });
        gone
    }

    /// `uid`'s cluster is being deleted: its backup in progress is stopped.
    pub fn forget(&self, uid: &str) {
        if let Some(Job {
            state: JobState::Running(task),
            ..
        }) = self.lock().remove(uid)
        {
            task.abort();
        }
    }
}

/// A backup written, checked and retention applied.
pub(super) struct Finished {
    pub(super) completed: CompletedBackup,
    /// The backup's file name, which tells its Event from another backup's.
    pub(super) name: String,
    /// What retention deleted, or why it could not.
    pub(super) pruned: Result<Vec<String>, BackupFailure>,
}

impl Finished {
    /// A backup written by the operator itself.
    fn of_written(
        written: &Written,
        location: String,
        pruned: Result<Vec<Path>, BackupFailure>,
    ) -> Self {
        let header = &written.header;
        Finished {
            completed: CompletedBackup {
                location,
                finished: Time(Timestamp::now()),
                revision: header.revision,
                index: header.metadata.as_ref().map_or(0, |m| m.index),
                size_bytes: written.size_bytes,
            },
            name: written.path.filename().unwrap_or_default().to_string(),
            pruned: pruned.map(|deleted| deleted.iter().map(ToString::to_string).collect()),
        }
    }
}

/// One look at `cluster`'s backups: records a backup's outcome into `status`, starts the one
/// due. Returns how soon to look again for backups' sake.
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
    let uid = cluster.uid().unwrap_or_default();
    let labels = ClusterLabels {
        namespace: cluster.namespace().unwrap_or_default(),
        cluster: cluster.name_any(),
    };
    let requested = cluster
        .annotations()
        .get(BACKUP_REQUEST_ANNOTATION)
        .cloned();
    let spec = cluster.spec.backup.as_ref();
    let mut backup = status.backup.clone().unwrap_or_default();
    let has_job = ctx.backups.lock().contains_key(&uid);
    if spec.is_none() && requested.is_none() && status.backup.is_none() && !has_job {
        return None;
    }

    if let Some(running) = carry_job(ctx, cluster, &uid, &labels, &mut backup, status, now).await {
        status.backup = Some(backup);
        return Some(running);
    }

    let schedule = spec.map(|spec| {
        Schedule::parse(&spec.schedule).map_err(|message| BackupFailure {
            reason: "InvalidSchedule",
            message,
        })
    });
    report_schedule(ctx, cluster, status, schedule.as_ref(), now).await;
    let valid = spec.zip(schedule.as_ref().and_then(|parsed| parsed.as_ref().ok()));
    let (trigger, counted) = due(
        valid.map(|(spec, schedule)| (spec.schedule.as_str(), schedule)),
        &backup,
        requested.as_deref(),
        now,
    );
    backup = counted;
    if let Some(trigger) = trigger {
        apply_trigger(&mut backup, &trigger);
        match start(ctx, cluster, step, source, &labels, now).await {
            Ok(task) => {
                // Whole seconds, as the status holds times: the status's `running.started`
                // is how this backup is told from another.
                let started = Timestamp::from_second(now.as_second()).unwrap_or(now);
                backup.running = Some(RunningBackup {
                    started: Time(started),
                    reason: trigger.reason().to_string(),
                });
                ctx.backups.lock().insert(
                    uid,
                    Job {
                        cluster: labels,
                        started,
                        trigger,
                        state: JobState::Running(task),
                    },
                );
            }
            Err(failure) => {
                announce(ctx, cluster, &labels, &Err(failure.clone())).await;
                apply_outcome(cluster, &mut backup, status, &Err(failure), now);
            }
        }
    }
    let wake = match (&backup.running, valid) {
        (Some(_), _) => Some(RUNNING_RECHECK),
        (None, Some((_, schedule))) => schedule.after(now).map(|next| {
            let seconds = next.as_second().saturating_sub(now.as_second());
            Duration::from_secs(u64::try_from(seconds).unwrap_or(0).max(1))
        }),
        (None, None) => None,
    };
    status.backup = Some(backup);
    wake
}

/// Brings the status in line with this operator's backup of the cluster, if it has one, and
/// records a backup the status shows running that no one holds any more as interrupted.
/// Returns `Some` while a backup is still running (how soon to look again).
async fn carry_job(
    ctx: &Context,
    cluster: &DEngineCluster,
    uid: &str,
    labels: &ClusterLabels,
    backup: &mut BackupStatus,
    status: &mut DEngineClusterStatus,
    now: Timestamp,
) -> Option<Duration> {
    // Reconciles of one cluster never run at once, so the job can be taken out while it is
    // looked at and put back.
    let taken = ctx.backups.lock().remove(uid);
    let Some(mut job) = taken else {
        if let Some(resumed) = resume_job(ctx, cluster, backup, labels) {
            ctx.backups.lock().insert(uid.to_string(), resumed);
            return Some(RUNNING_RECHECK);
        }
        if let Some(running) = &backup.running {
            let retry = match running.reason.as_str() {
                "Requested" => {
                    "ask again with a new value of the dengine.io/backup-requested annotation"
                }
                _ => "the next one is taken at the next schedule time",
            };
            let outcome = Err(BackupFailure {
                reason: "Interrupted",
                message: format!(
                    "the operator that was taking it stopped (a restart, or another replica \
                     took over); {retry}"
                ),
            });
            announce(ctx, cluster, labels, &outcome).await;
            apply_outcome(cluster, backup, status, &outcome, now);
        }
        return None;
    };
    let shown = backup.running.as_ref().map(|r| r.started.0);
    let wake = match job.state {
        JobState::Running(task) if !task.is_finished() => {
            // A status written before the start was recorded (or whose write failed) is given
            // the start again.
            apply_trigger(backup, &job.trigger);
            backup.running = Some(RunningBackup {
                started: Time(job.started),
                reason: job.trigger.reason().to_string(),
            });
            job.state = JobState::Running(task);
            Some(RUNNING_RECHECK)
        }
        JobState::Running(task) => {
            let outcome = match task.await {
                Ok(outcome) => outcome,
                Err(error) => Err(BackupFailure {
                    reason: "Interrupted",
                    message: format!("the backup task ended: {error}"),
                }),
            };
            announce(ctx, cluster, labels, &outcome).await;
            apply_trigger(backup, &job.trigger);
            apply_outcome(cluster, backup, status, &outcome, now);
            job.state = JobState::Ended {
                outcome: Box::new(outcome),
                at: now,
            };
            None
        }
        JobState::Ended { .. } if shown != Some(job.started) => {
            // A status that no longer shows it running was written: the outcome is in it.
            return None;
        }
        JobState::Ended { ref outcome, at } => {
            apply_trigger(backup, &job.trigger);
            apply_outcome(cluster, backup, status, outcome, at);
            None
        }
    };
    ctx.backups.lock().insert(uid.to_string(), job);
    wake
}

/// A backup Job the status shows running that this operator does not hold (it was started by
/// an operator that stopped): the Job goes on by itself, so it is waited for again rather than
/// reported interrupted. Its name follows from the start the status recorded.
fn resume_job(
    ctx: &Context,
    cluster: &DEngineCluster,
    backup: &BackupStatus,
    labels: &ClusterLabels,
) -> Option<Job> {
    let running = backup.running.as_ref()?;
    let claim = cluster
        .spec
        .backup
        .as_ref()?
        .persistent_volume_claim
        .as_ref()?;
    let trigger = match running.reason.as_str() {
        "Requested" => Trigger::Requested(backup.last_request.clone().unwrap_or_default()),
        _ => Trigger::Scheduled(
            backup
                .last_schedule_time
                .as_ref()
                .map_or(running.started.0, |t| t.0),
        ),
    };
    let task = super::backup_jobs::resume(ctx, cluster, claim, running.started.0);
    Some(Job {
        cluster: labels.clone(),
        started: running.started.0,
        trigger,
        state: JobState::Running(tokio::spawn(task)),
    })
}

fn apply_trigger(backup: &mut BackupStatus, trigger: &Trigger) {
    match trigger {
        Trigger::Scheduled(time) => backup.last_schedule_time = Some(Time(*time)),
        Trigger::Requested(value) => backup.last_request = Some(value.clone()),
    }
}

/// An invalid schedule is a failure to report once; one that parses again clears it.
async fn report_schedule(
    ctx: &Context,
    cluster: &DEngineCluster,
    status: &mut DEngineClusterStatus,
    schedule: Option<&Result<Schedule, BackupFailure>>,
    now: Timestamp,
) {
    let reported_invalid = status.conditions.iter().any(|c| {
        c.type_ == ConditionType::BackupFailed.as_str()
            && c.status == "True"
            && c.reason == "InvalidSchedule"
    });
    match schedule {
        Some(Err(invalid)) => {
            set_backup_failed(cluster, status, invalid, now);
            if !reported_invalid {
                publish_note(
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
        Some(Ok(schedule)) if reported_invalid => {
            let next = schedule
                .after(now)
                .map_or_else(String::new, |t| format!("; the next backup is at {t}"));
            set_condition(
                &mut status.conditions,
                ConditionType::BackupFailed,
                false,
                "ScheduleValid",
                &format!("the schedule parses{next}"),
                cluster.metadata.generation,
                Time(now),
            );
        }
        _ => {}
    }
}

/// Starts a backup of `cluster` from its leader, or says why it cannot.
async fn start<S: BackupSource>(
    ctx: &Context,
    cluster: &DEngineCluster,
    step: &Step,
    source: &S,
    labels: &ClusterLabels,
    now: Timestamp,
) -> Result<JoinHandle<Result<Finished, BackupFailure>>, BackupFailure> {
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
    let task = match (&spec.s3, &spec.persistent_volume_claim) {
        (Some(s3), _) => {
            let streaming =
                s3_task(ctx, s3, spec.keep, source, leader, &endpoint, labels, now).await?;
            within_time_limit(streaming).boxed()
        }
        (None, Some(claim)) => {
            let ordinal = leader.ordinal().ok_or_else(|| BackupFailure {
                reason: "NoLeader",
                message: format!("the leader, node {leader}, is not one of the cluster's pods"),
            })?;
            super::backup_jobs::job_task(ctx, cluster, claim, spec.keep, ordinal, now)
                .await?
                .boxed()
        }
        (None, None) => {
            return Err(BackupFailure {
                reason: "NotConfigured",
                message: "spec.backup names no destination: set s3 or persistentVolumeClaim"
                    .to_string(),
            })
        }
    };
    // A Job is waited for until its own deadline (and a margin), then deleted.
    Ok(tokio::spawn(task))
}

/// A backup streamed through the operator, given up after [`BACKUP_TIME_LIMIT`]: the upload is
/// dropped unfinished, so nothing is kept.
async fn within_time_limit(
    streaming: impl Future<Output = Result<Finished, BackupFailure>>,
) -> Result<Finished, BackupFailure> {
    tokio::time::timeout(BACKUP_TIME_LIMIT, streaming)
        .await
        .unwrap_or_else(|_| {
            Err(BackupFailure {
                reason: "TimedOut",
                message: format!(
                    "the backup did not complete within {} minutes; nothing was kept",
                    BACKUP_TIME_LIMIT.as_secs() / 60
                ),
            })
        })
}

/// The backup into `s3`, streamed from `leader` through the operator; holds one of the
/// operator's streaming slots while it runs.
#[allow(clippy::too_many_arguments)]
async fn s3_task<S: BackupSource>(
    ctx: &Context,
    s3: &S3Destination,
    keep: u32,
    source: &S,
    leader: NodeId,
    endpoint: &str,
    labels: &ClusterLabels,
    now: Timestamp,
) -> Result<impl Future<Output = Result<Finished, BackupFailure>> + Send + 'static, BackupFailure> {
    let credentials = match &s3.access.credentials_secret {
        Some(name) => Some(s3_credentials(ctx, &labels.namespace, name).await?),
        None => None,
    };
    let prefix = s3.prefix_for(&labels.namespace, &labels.cluster);
    let destination = (ctx.backup_destinations)(s3, prefix, credentials)?;
    let keep = usize::try_from(keep).unwrap_or(usize::MAX);
    let path = destination.object_for(&labels.namespace, &labels.cluster, now);
    let opening = source.open(leader, endpoint);
    let slots = ctx.backups.slots.clone();
    let labels = labels.clone();
    Ok(async move {
        let _slot = slots.acquire_owned().await.map_err(|_| BackupFailure {
            reason: "Interrupted",
            message: "the operator is stopping".to_string(),
        })?;
        let chunks = opening.await?;
        let written = write_backup(chunks, &destination, path).await?;
        let location = destination.location(&written.path);
        let pruned = destination
            .prune(&labels.namespace, &labels.cluster, keep, &written.path)
            .await;
        Ok(Finished::of_written(&written, location, pruned))
    })
}

/// The credentials in the Secret `name`: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, and
/// `AWS_SESSION_TOKEN` if present.
async fn s3_credentials(
    ctx: &Context,
    namespace: &str,
    name: &str,
) -> Result<S3Keys, BackupFailure> {
    let invalid = |message: String| BackupFailure {
        reason: "CredentialsInvalid",
        message,
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets
        .get_opt(name)
        .await
        .map_err(|error| BackupFailure {
            reason: "CredentialsUnreadable",
            message: format!(
                "the operator could not read Secret {namespace}/{name} (its RBAC, or the API \
                 server): {error}"
            ),
        })?
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
    Ok(S3Keys {
        access_key_id: required("AWS_ACCESS_KEY_ID")?,
        secret_access_key: required("AWS_SECRET_ACCESS_KEY")?,
        session_token: key("AWS_SESSION_TOKEN"),
    })
}

/// Says once how a backup ended: an Event, the metrics, and a warning when retention failed.
async fn announce(
    ctx: &Context,
    cluster: &DEngineCluster,
    labels: &ClusterLabels,
    outcome: &Result<Finished, BackupFailure>,
) {
    match outcome {
        Ok(finished) => {
            let completed = &finished.completed;
            ctx.metrics.backup_succeeded(
                labels,
                completed.size_bytes,
                completed.finished.0.as_second(),
            );
            publish_note(
                ctx,
                cluster,
                EventType::Normal,
                "BackupSucceeded",
                // One Event per backup: the object's name tells them apart.
                &format!("Backup{}", finished.name),
                format!(
                    "backed up revision {} (log index {}, {} bytes) to {}",
                    completed.revision, completed.index, completed.size_bytes, completed.location
                ),
            )
            .await;
            match &finished.pruned {
                Ok(deleted) if !deleted.is_empty() => tracing::info!(
                    cluster = %labels.cluster,
                    ?deleted,
                    "deleted backups beyond the count kept"
                ),
                Ok(_) => {}
                Err(failure) => {
                    publish_note(
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
        }
        Err(failure) => {
            ctx.metrics.backup_failed(labels);
            publish_note(
                ctx,
                cluster,
                EventType::Warning,
                "BackupFailed",
                failure.reason,
                failure.message.clone(),
            )
            .await;
        }
    }
}

/// Writes how a backup ended into the status (the same every time it is written again).
fn apply_outcome(
    cluster: &DEngineCluster,
    backup: &mut BackupStatus,
    status: &mut DEngineClusterStatus,
    outcome: &Result<Finished, BackupFailure>,
    at: Timestamp,
) {
    backup.running = None;
    match outcome {
        Ok(finished) => {
            let completed = finished.completed.clone();
            set_condition(
                &mut status.conditions,
                ConditionType::BackupFailed,
                false,
                "BackupSucceeded",
                &format!("the last backup is {}", completed.location),
                cluster.metadata.generation,
                completed.finished.clone(),
            );
            backup.last_successful = Some(completed);
        }
        Err(failure) => {
            set_backup_failed(cluster, status, failure, at);
            backup.last_failed = Some(FailedBackup {
                time: Time(at),
                reason: failure.reason.to_string(),
                message: failure.message.clone(),
            });
        }
    }
}

fn set_backup_failed(
    cluster: &DEngineCluster,
    status: &mut DEngineClusterStatus,
    failure: &BackupFailure,
    at: Timestamp,
) {
    set_condition(
        &mut status.conditions,
        ConditionType::BackupFailed,
        true,
        failure.reason,
        &failure.message,
        cluster.metadata.generation,
        Time(at),
    );
}
