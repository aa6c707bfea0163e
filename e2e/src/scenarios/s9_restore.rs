//! Scenario 9: a cluster that lost every volume, brought back from its last backup. A backup is
//! taken into the claim (as in scenario 8), the DEngineCluster and every volume of it are
//! deleted, and a new DEngineCluster of the same name is founded from the backup's location
//! (`spec.restoreFrom: pvc://...`). Pod 0 fetches the backup, the cluster grows to three, every
//! member serves every write acknowledged before the backup, and no pod holds the claim after.

use anyhow::{bail, ensure, Context as _};
use kube::api::{ListParams, PostParams};

use crate::acks::verify;
use crate::events::Expected;
use crate::runner::env::{Env, ReadPolicy};
use crate::runner::recorders::pod_selector;
use crate::runner::report::Report;
use crate::specs::{self, BACKUP_CLAIM, CLUSTER, KEY_PREFIX};

use super::s8_backups::{ensure_backup_claim, take_requested_backup};

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    env.ensure_cluster(report, 3, None).await?;
    ensure_backup_claim(env, report).await?;
    // A schedule that does not come round during the scenario (the request is the backup, and
    // no scheduled one's retention can delete it), whatever an earlier scenario left.
    env.patch_spec(serde_json::json!({ "backup": {
        "schedule": "0 0 1 1 *",
        "keep": 2,
        "persistentVolumeClaim": { "claimName": BACKUP_CLAIM },
    } }))
    .await?;
    report.note(format!("backups into {BACKUP_CLAIM}, on request only"));
    let taken = take_requested_backup(env, report).await?;

    // Every volume lost: the cluster and its claims deleted.
    env.delete_cluster_and_volumes().await?;
    report.check(format!("deleted {CLUSTER} and every volume of it"));

    let from = env.now_ms();
    env.clusters()
        .create(
            &PostParams::default(),
            &specs::restored_cluster(&env.options, &taken.location),
        )
        .await
        .context("cannot create the restored DEngineCluster")?;
    report.check(format!(
        "created {CLUSTER} again with restoreFrom {}",
        taken.location
    ));
    let status = env.wait_running(3, None, env.secs(900)).await?;
    let restore = status.restore.clone().context("no status.restore")?;
    ensure!(
        restore.location == taken.location
            && restore.fetched.is_some()
            && restore.revision == Some(taken.revision),
        "status.restore does not say the backup was restored: {restore:?} (backup revision {})",
        taken.revision
    );
    report.check(format!(
        "status.restore: fetched revision {} from {}",
        taken.revision, restore.location
    ));
    env.wait_events(report, &[Expected::reason("RestoreFetched")], from)
        .await?;

    // Every write acknowledged before the backup, on every member.
    for reader in Env::member_pods(3) {
        let verdict = env
            .wait_for(
                &format!("{reader} to serve every write the backup holds"),
                env.secs(120),
                || {
                    let (reader, taken) = (&reader, &taken);
                    async move {
                        let mut found = std::collections::BTreeMap::new();
                        for writer in &taken.writers {
                            let prefix = format!("{KEY_PREFIX}{writer}/");
                            found
                                .extend(env.scan(reader, &prefix, ReadPolicy::Linearizable).await?);
                        }
                        Ok(Ok(verify(&taken.expected, &found)))
                    }
                },
            )
            .await?;
        if !verdict.is_ok() {
            bail!("{reader} after the restore: {verdict}");
        }
        report.check(format!("{reader}, linearizable read: {verdict}"));
    }

    // The claim left the pods once the cluster was founded.
    let pods = env
        .pods()
        .list(&ListParams::default().labels(&pod_selector()))
        .await?;
    let holding: Vec<String> = pods
        .items
        .iter()
        .filter(|pod| {
            pod.spec
                .iter()
                .flat_map(|s| s.volumes.iter().flatten())
                .any(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .is_some_and(|c| c.claim_name == BACKUP_CLAIM)
                })
        })
        .filter_map(|pod| pod.metadata.name.clone())
        .collect();
    ensure!(
        holding.is_empty(),
        "pods still mount the backup claim: {holding:?}"
    );
    report.check(format!("no member's pod mounts {BACKUP_CLAIM} any more"));
    Ok(())
}
