//! Scenario 4: a rolling upgrade to another image tag while every pod's writer writes. Pods are
//! restarted one at a time (never two members not ready at once), the leader's last, Available
//! is never False for longer than an election, no acknowledged write is lost, and the status
//! reports the new version.

use anyhow::{bail, ensure, Context as _};
use dengine_operator::crd::NODE_CONTAINER_NAME;
use kube::api::ListParams;
use serde_json::json;

use crate::events::Expected;
use crate::runner::env::{Env, ReadPolicy};
use crate::runner::recorders::pod_selector;
use crate::runner::report::Report;
use crate::specs::CLUSTER;
use crate::timeline;

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let from_tag = env.options.node_tag.clone();
    let to_tag = env.upgrade_tag.clone();
    let status = env.ensure_cluster(report, 3, Some(&from_tag)).await?;
    let pods = Env::member_pods(3);
    let mark = env.rec.acks().mark();
    env.wait_acks(&pods, mark, 5, env.secs(120)).await?;
    let leader = status
        .leader
        .clone()
        .context("a running cluster has a leader")?;
    report.check(format!(
        "starting on {from_tag}: 3 voters, leader {}, every writer writing",
        leader.pod
    ));

    let from = env.now_ms();
    env.patch_spec(json!({ "version": to_tag })).await?;
    report.check(format!(
        "set {CLUSTER} spec.version from {from_tag} to {to_tag}"
    ));

    let status = env.wait_running(3, Some(&to_tag), env.secs(900)).await?;
    let to = env.now_ms();
    ensure!(
        status.target_version.as_deref() == Some(to_tag.as_str()),
        "status.targetVersion is {:?}",
        status.target_version
    );
    report.check(format!(
        "status: Running, currentVersion and targetVersion {to_tag}, 3 voters ready with lag 0"
    ));

    // Every pod runs the new image.
    let image = format!("{}:{to_tag}", env.options.node_image);
    let listed = env
        .pods()
        .list(&ListParams::default().labels(&pod_selector()))
        .await?;
    for pod in &listed.items {
        let node_image = pod
            .spec
            .as_ref()
            .and_then(|s| s.init_containers.as_ref())
            .and_then(|c| c.iter().find(|c| c.name == NODE_CONTAINER_NAME))
            .and_then(|c| c.image.clone());
        ensure!(
            node_image.as_deref() == Some(image.as_str()),
            "pod {} runs {node_image:?}, not {image}",
            kube::ResourceExt::name_any(pod)
        );
    }
    report.check(format!("every pod's node container runs {image}"));

    // One at a time, the leader last, from the pods' own timeline.
    let samples = env.rec.pods();
    let (most, at, down) = timeline::most_not_ready_at_once(&samples, &pods, from);
    if most > 1 {
        bail!(
            "{most} members not ready at once ({}) at {:.1}s:\n{}",
            down.join(", "),
            at as f64 / 1000.0,
            timeline::describe(&samples, from)
        );
    }
    let order = timeline::replacement_order(&samples, from);
    let names: Vec<&str> = order.iter().map(|(p, _)| p.as_str()).collect();
    ensure!(
        names.len() == 3,
        "expected all 3 pods restarted, saw {names:?}:\n{}",
        timeline::describe(&samples, from)
    );
    ensure!(
        names.last() == Some(&leader.pod.as_str()),
        "the leader's pod {} was not restarted last: order {names:?}",
        leader.pod
    );
    report.check(format!(
        "pods restarted one at a time, never two members not ready together: {} (the leader's last)",
        names.join(" -> ")
    ));

    let available = env.rec.available();
    let (longest, since) = timeline::longest_false(&available, from, to);
    ensure!(
        longest <= env.election_budget.as_millis() as u64,
        "Available was False for {:.1}s from {:.1}s, longer than {:?}",
        longest as f64 / 1000.0,
        since as f64 / 1000.0,
        env.election_budget
    );
    report.check(format!(
        "Available never False for longer than {:?} (longest: {:.1}s)",
        env.election_budget,
        longest as f64 / 1000.0
    ));

    let mut expected = Vec::new();
    for (pod, _) in &order {
        if *pod == leader.pod {
            expected.push(Expected::reason("TransferredLeadership"));
        }
        let ordinal = pod.rsplit('-').next().unwrap_or_default();
        expected.push(Expected::step("UpgradedPod", format!("DeletePod{ordinal}")));
    }
    env.wait_events(report, &expected, from).await?;

    let after = env.rec.acks().mark();
    env.wait_acks(&pods, after, 5, env.secs(120)).await?;
    report.check("every writer writes after the upgrade");
    env.verify_acks(report, &pods[..1], ReadPolicy::Linearizable)
        .await
}
