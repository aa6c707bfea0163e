//! Scenario 3: the leader's pod is deleted while every pod's writer writes. Another member
//! becomes leader, the pod comes back on its volume and catches up, and no acknowledged write
//! is lost.

use anyhow::Context as _;
use kube::api::{DeleteParams, Preconditions};
use kube::ResourceExt;

use crate::runner::env::{describe_pod, pod_ready, Env, ReadPolicy};
use crate::runner::report::Report;
use crate::specs::CLUSTER;

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let status = env.ensure_cluster(report, 3, None).await?;
    let pods = Env::member_pods(3);
    let mark = env.rec.acks().mark();
    env.wait_acks(&pods, mark, 5, env.secs(120)).await?;
    report.check("every pod's writer is writing");

    let leader = status
        .leader
        .clone()
        .context("a running cluster has a leader")?;
    let old_pod = env.pods().get(&leader.pod).await?;
    let old_uid = old_pod.uid().unwrap_or_default();
    let delete = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(old_uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    env.pods().delete(&leader.pod, &delete).await?;
    let deleted_at = env.now_ms();
    report.check(format!(
        "deleted the leader's pod {} (node {})",
        leader.pod, leader.node_id
    ));

    let new_leader = env
        .wait_for("another member to lead", env.secs(120), || async {
            let status = env.cluster().await?.and_then(|c| c.status);
            match status.and_then(|s| s.leader) {
                Some(l) if l.node_id != leader.node_id => Ok(Ok(l)),
                other => Ok(Err(format!("leader {other:?}"))),
            }
        })
        .await?;
    report.check(format!(
        "status.leader moved to {} (node {}) {:.1}s after the delete",
        new_leader.pod,
        new_leader.node_id,
        (env.now_ms() - deleted_at) as f64 / 1000.0
    ));

    // The others' writers go on through the new leader.
    let others: Vec<String> = pods.iter().filter(|p| **p != leader.pod).cloned().collect();
    let after = env.rec.acks().mark();
    env.wait_acks(&others, after, 5, env.secs(120)).await?;
    report.check(format!(
        "writes go on through {} meanwhile",
        others.join(" and ")
    ));

    let returned = env
        .wait_for(
            &format!("{} back and ready", leader.pod),
            env.secs(300),
            || async {
                let pod = env.pods().get_opt(&leader.pod).await?;
                match pod {
                    Some(p) if p.uid().as_deref() != Some(old_uid.as_str()) && pod_ready(&p) => {
                        Ok(Ok(p))
                    }
                    Some(p) => Ok(Err(describe_pod(&p))),
                    None => Ok(Err("no pod".to_string())),
                }
            },
        )
        .await?;
    report.check(format!(
        "{} came back as a new pod ({}) and is ready",
        leader.pod,
        returned
            .uid()
            .unwrap_or_default()
            .chars()
            .take(8)
            .collect::<String>()
    ));

    env.wait_running(3, None, env.secs(300)).await?;
    report.check(format!(
        "{CLUSTER} Running again: 3 voters ready, lag 0 for every member"
    ));
    let back = env.rec.acks().mark();
    env.wait_acks(std::slice::from_ref(&leader.pod), back, 5, env.secs(120))
        .await?;
    report.check(format!("the writer in {} writes again", leader.pod));

    env.verify_acks(
        report,
        std::slice::from_ref(&new_leader.pod),
        ReadPolicy::Linearizable,
    )
    .await?;
    env.verify_acks(
        report,
        std::slice::from_ref(&leader.pod),
        ReadPolicy::Eventual,
    )
    .await
}
