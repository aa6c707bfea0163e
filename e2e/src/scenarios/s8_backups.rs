//! Scenario 8: backups into a PersistentVolumeClaim, asked for with the annotation and taken on
//! a schedule. Each is a Job of the node image that streams the backup from the leader into the
//! claim; the status says where it is and what it holds, and a Job that succeeded is gone.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, ensure, Context as _};
use dengine_operator::crd::BACKUP_REQUEST_ANNOTATION;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;

use crate::events::Expected;
use crate::runner::env::Env;
use crate::runner::report::Report;
use crate::specs::{self, BACKUP_CLAIM, CLUSTER};

/// A backup taken on request, and the writes acknowledged before it was asked for (which it
/// must hold).
pub struct TakenBackup {
    pub location: String,
    pub revision: i64,
    pub expected: BTreeMap<String, String>,
    pub writers: BTreeSet<String>,
}

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    env.ensure_cluster(report, 3, None).await?;
    ensure_backup_claim(env, report).await?;
    env.patch_spec(json!({ "backup": specs::backups_into_claim() }))
        .await?;
    report.check(format!(
        "set {CLUSTER} spec.backup: every minute into claim {BACKUP_CLAIM}, keep 2"
    ));

    let from = env.now_ms();
    let requested = take_requested_backup(env, report).await?;
    env.wait_events(report, &[Expected::reason("BackupSucceeded")], from)
        .await?;

    // The schedule: a backup at the next minute, on its own.
    let after = Timestamp::now();
    let scheduled = env
        .wait_for("a scheduled backup", env.secs(240), || async move {
            let status = env.cluster().await?.and_then(|c| c.status);
            let backup = status.and_then(|s| s.backup).unwrap_or_default();
            match (&backup.last_schedule_time, &backup.last_successful) {
                (Some(time), Some(done)) if time.0 > after && done.finished.0 >= time.0 => {
                    Ok(Ok(done.clone()))
                }
                _ => Ok(Err(format!(
                    "lastScheduleTime {:?}, lastSuccessful {:?}, lastFailed {:?}",
                    backup.last_schedule_time, backup.last_successful, backup.last_failed
                ))),
            }
        })
        .await?;
    ensure!(
        scheduled.location != requested.location
            && scheduled
                .location
                .starts_with(&format!("pvc://{BACKUP_CLAIM}/")),
        "the scheduled backup is not a new file in the claim: {}",
        scheduled.location
    );
    report.check(format!(
        "a scheduled backup: {} (revision {})",
        scheduled.location, scheduled.revision
    ));

    // Backups off; no Job failed, and none that succeeded is left.
    env.patch_spec(json!({ "backup": null })).await?;
    let jobs: Api<Job> = Api::namespaced(env.client.clone(), &env.namespace);
    env.wait_for("the backup Jobs gone", env.secs(180), || {
        let jobs = jobs.clone();
        async move {
            let left = jobs
                .list(&ListParams::default().labels("app.kubernetes.io/component=backup"))
                .await?;
            let failed: Vec<String> = left
                .items
                .iter()
                .filter(|j| j.status.as_ref().and_then(|s| s.failed).unwrap_or(0) > 0)
                .filter_map(|j| j.metadata.name.clone())
                .collect();
            if !failed.is_empty() {
                bail!("backup Jobs failed: {}", failed.join(", "));
            }
            match left.items.len() {
                0 => Ok(Ok(())),
                n => Ok(Err(format!("{n} Jobs left"))),
            }
        }
    })
    .await?;
    report.check("backups off: no backup Job failed, none left behind");
    Ok(())
}

/// Makes the claim backups go to, if missing.
pub async fn ensure_backup_claim(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    if env.claims().get_opt(BACKUP_CLAIM).await?.is_none() {
        env.claims()
            .create(&PostParams::default(), &specs::backup_claim(&env.options))
            .await
            .context("cannot create the backup claim")?;
        report.note(format!("created claim {BACKUP_CLAIM} for backups"));
    }
    Ok(())
}

/// Asks for a backup with the annotation, once writes are flowing, and waits until the status
/// reports it: a new file in the claim, of a revision at least that of every write
/// acknowledged before the request.
pub async fn take_requested_backup(env: &Env, report: &mut Report) -> anyhow::Result<TakenBackup> {
    let mark = env.rec.acks().mark();
    env.wait_acks(
        &crate::runner::env::Env::member_pods(3),
        mark,
        5,
        env.secs(180),
    )
    .await?;
    let (expected, writers, highest) = {
        let book = env.rec.acks();
        (book.expected(), book.writer_pods(), book.highest_revision())
    };
    let value = env.now_ms().to_string();
    let asked = Timestamp::now();
    env.clusters()
        .patch(
            CLUSTER,
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "annotations": {
                BACKUP_REQUEST_ANNOTATION: value,
            } } })),
        )
        .await?;
    report.check(format!(
        "asked for a backup: {BACKUP_REQUEST_ANNOTATION}={value} ({} acknowledged writes before it)",
        expected.len()
    ));
    let done = env
        .wait_for("the requested backup", env.secs(300), || {
            let value = value.clone();
            async move {
                let status = env.cluster().await?.and_then(|c| c.status);
                let backup = status.and_then(|s| s.backup).unwrap_or_default();
                if let Some(failed) = backup
                    .last_failed
                    .as_ref()
                    .filter(|f| f.time.0.as_second() >= asked.as_second())
                {
                    bail!("the backup failed: {}: {}", failed.reason, failed.message);
                }
                match &backup.last_successful {
                    Some(done)
                        if backup.last_request.as_deref() == Some(value.as_str())
                            && backup.running.is_none()
                            && done.finished.0.as_second() >= asked.as_second() =>
                    {
                        Ok(Ok(done.clone()))
                    }
                    _ => Ok(Err(format!(
                        "lastRequest {:?}, running {:?}",
                        backup.last_request, backup.running
                    ))),
                }
            }
        })
        .await?;
    let start = format!(
        "pvc://{BACKUP_CLAIM}/{ns}/{CLUSTER}/{ns}.{CLUSTER}-",
        ns = env.namespace
    );
    ensure!(
        done.location.starts_with(&start) && done.location.ends_with(".dengine-backup"),
        "the backup is not where the spec says: {} (expected {start}...)",
        done.location
    );
    ensure!(
        done.revision >= highest && done.size_bytes > 0,
        "the backup holds revision {} ({} bytes), below the {highest} acknowledged before it",
        done.revision,
        done.size_bytes
    );
    report.check(format!(
        "backed up revision {} (index {}, {} bytes) to {}",
        done.revision, done.index, done.size_bytes, done.location
    ));
    Ok(TakenBackup {
        location: done.location,
        revision: done.revision,
        expected,
        writers,
    })
}
