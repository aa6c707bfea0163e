//! Scenario 6: scale back to one member, then delete the DEngineCluster. The cluster's storage
//! settings are checked one each way: `retainOnScaleDown: false` (the removed members' claims
//! go) and `retainOnDelete: true` (the last claim stays when the cluster is deleted), while
//! everything else it owned is garbage-collected through its owner references.

use anyhow::{ensure, Context as _};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::events::Expected;
use crate::runner::env::{Env, ReadPolicy};
use crate::runner::recorders::pod_selector;
use crate::runner::report::Report;
use crate::specs::CLUSTER;

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    env.ensure_cluster(report, 3, None).await?;
    let cluster = env.cluster().await?.context("the cluster exists")?;
    ensure!(
        !cluster.spec.storage.retain_on_scale_down && cluster.spec.storage.retain_on_delete,
        "the scenario's cluster should have retainOnScaleDown false and retainOnDelete true: {:?}",
        cluster.spec.storage
    );

    // Down to one: the members beyond it removed from the group, highest first, and only then
    // the StatefulSet shrunk (straight to one).
    let from = env.now_ms();
    env.patch_spec(json!({ "replicas": 1 })).await?;
    report.check(format!("set {CLUSTER} spec.replicas to 1"));
    let status = env.wait_running(1, None, env.secs(600)).await?;
    ensure!(
        status.members.first().map(|m| m.node_id) == Some(1),
        "the remaining member is not node 1: {:?}",
        status.members
    );
    report.check(format!(
        "status: Running with 1 voter, node 1 in {CLUSTER}-0, leading"
    ));
    env.wait_events(
        report,
        &[
            Expected::step("RemovedMember", "RemoveNode3"),
            Expected::step("RemovedMember", "RemoveNode2"),
            Expected::step("Shrank", "SetReplicas1"),
        ],
        from,
    )
    .await?;

    let removed = [format!("data-{CLUSTER}-1"), format!("data-{CLUSTER}-2")];
    env.wait_for(
        "the removed members' claims gone (retainOnScaleDown: false)",
        env.secs(300),
        || async {
            let mut left = Vec::new();
            for name in &removed {
                if env.claims().get_opt(name).await?.is_some() {
                    left.push(name.clone());
                }
            }
            if left.is_empty() {
                Ok(Ok(()))
            } else {
                Ok(Err(format!("still there: {left:?}")))
            }
        },
    )
    .await?;
    report.check(format!(
        "claims {} deleted with their pods (retainOnScaleDown: false)",
        removed.join(", ")
    ));

    // Everything acknowledged, by every writer that ever ran, is on the member left.
    env.verify_acks(report, &Env::member_pods(1), ReadPolicy::Linearizable)
        .await?;

    // Delete the resource: owned objects follow by garbage collection, the claim stays.
    let kept_claim = format!("data-{CLUSTER}-0");
    let claim_uid = env.claims().get(&kept_claim).await?.uid();
    env.clusters()
        .delete(CLUSTER, &DeleteParams::background())
        .await?;
    report.check(format!("deleted DEngineCluster {CLUSTER}"));
    let client = env.client.clone();
    let ns = env.namespace.clone();
    env.wait_for("the owned objects gone", env.secs(300), || {
        let (client, ns) = (client.clone(), ns.clone());
        async move {
            let mut left = Vec::new();
            if env.cluster().await?.is_some() {
                left.push(format!("DEngineCluster {CLUSTER}"));
            }
            if Api::<StatefulSet>::namespaced(client.clone(), &ns)
                .get_opt(CLUSTER)
                .await?
                .is_some()
            {
                left.push(format!("StatefulSet {CLUSTER}"));
            }
            for service in [format!("{CLUSTER}-peers"), format!("{CLUSTER}-client")] {
                if Api::<Service>::namespaced(client.clone(), &ns)
                    .get_opt(&service)
                    .await?
                    .is_some()
                {
                    left.push(format!("Service {service}"));
                }
            }
            let config = format!("{CLUSTER}-config");
            if Api::<ConfigMap>::namespaced(client.clone(), &ns)
                .get_opt(&config)
                .await?
                .is_some()
            {
                left.push(format!("ConfigMap {config}"));
            }
            if Api::<PodDisruptionBudget>::namespaced(client.clone(), &ns)
                .get_opt(CLUSTER)
                .await?
                .is_some()
            {
                left.push(format!("PodDisruptionBudget {CLUSTER}"));
            }
            let pods = env
                .pods()
                .list(&ListParams::default().labels(&pod_selector()))
                .await?;
            left.extend(pods.items.iter().map(|p| format!("Pod {}", p.name_any())));
            if left.is_empty() {
                Ok(Ok(()))
            } else {
                Ok(Err(format!("still there: {}", left.join(", "))))
            }
        }
    })
    .await?;
    report.check(format!(
        "gone: StatefulSet {CLUSTER}, Service {CLUSTER}-peers, ConfigMap {CLUSTER}-config, \
         PodDisruptionBudget {CLUSTER}, every pod"
    ));

    let claim = env
        .claims()
        .get_opt(&kept_claim)
        .await?
        .with_context(|| format!("{kept_claim} was deleted although retainOnDelete is true"))?;
    ensure!(claim.uid() == claim_uid, "{kept_claim} is a new claim");
    ensure!(
        claim.metadata.deletion_timestamp.is_none(),
        "{kept_claim} is being deleted although retainOnDelete is true"
    );
    let owners: Vec<String> = claim
        .owner_references()
        .iter()
        .map(|o| format!("{} {}", o.kind, o.name))
        .collect();
    ensure!(
        owners.is_empty(),
        "{kept_claim} is still owned by {owners:?}: garbage collection would take it"
    );
    report.check(format!(
        "{kept_claim} kept, not being deleted and owned by nothing (retainOnDelete: true)"
    ));

    // Clean up, so that a later scenario founds a new cluster on empty volumes.
    env.claims()
        .delete(&kept_claim, &DeleteParams::background())
        .await?;
    env.wait_for("the kept claim removed", env.secs(120), || async {
        match env.claims().get_opt(&kept_claim).await? {
            None => Ok(Ok(())),
            Some(_) => Ok(Err("still there".to_string())),
        }
    })
    .await?;
    env.rec.acks().reset();
    report.note(format!("removed {kept_claim} to leave the namespace clean"));
    Ok(())
}
