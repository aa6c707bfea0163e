//! Scenario 2: scale from one member to three. Each new member is added as a learner, promoted
//! once caught up, and only then does the next one start; afterwards every acknowledged write
//! is on every member.

use anyhow::ensure;
use dengine_operator::status::{MemberRole, Phase};
use serde_json::json;

use crate::events::Expected;
use crate::runner::env::{Env, ReadPolicy};
use crate::runner::report::Report;
use crate::specs::CLUSTER;

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    env.ensure_cluster(report, 1, None).await?;
    let from = env.now_ms();
    let mark = env.rec.acks().mark();
    env.patch_spec(json!({ "replicas": 3 })).await?;
    report.check(format!("set {CLUSTER} spec.replicas to 3"));

    let status = env.wait_running(3, None, env.secs(600)).await?;
    report.check(format!(
        "status: phase Running, 3 voters ready with lag 0 ({}), leader {}",
        status
            .members
            .iter()
            .map(|m| format!("{} node {}", m.pod, m.node_id))
            .collect::<Vec<_>>()
            .join(", "),
        status
            .leader
            .as_ref()
            .map(|l| l.pod.as_str())
            .unwrap_or("-")
    ));

    // What the operator did, step by step: one member at a time, each a learner first.
    env.wait_events(
        report,
        &[
            Expected::step("Grew", "SetReplicas2"),
            Expected::step("ClaimedVolume", "ClaimVolumePod1"),
            Expected::step("AddedLearner", "AddLearnerNode2"),
            Expected::step("PromotedLearner", "PromoteNode2"),
            Expected::step("Grew", "SetReplicas3"),
            Expected::step("ClaimedVolume", "ClaimVolumePod2"),
            Expected::step("AddedLearner", "AddLearnerNode3"),
            Expected::step("PromotedLearner", "PromoteNode3"),
        ],
        from,
    )
    .await?;

    // The status as it went: Scaling while it grew, and the learners if a status write caught
    // one (promotion can follow the addition before the operator writes a status).
    let statuses: Vec<_> = env
        .rec
        .statuses()
        .into_iter()
        .filter(|(at, _)| *at >= from)
        .map(|(_, s)| s)
        .collect();
    ensure!(
        statuses.iter().any(|s| s.phase == Phase::Scaling),
        "the status never said Scaling while the cluster grew: phases seen {:?}",
        statuses.iter().map(|s| s.phase).collect::<Vec<_>>()
    );
    let mut learners: Vec<String> = statuses
        .iter()
        .flat_map(|s| s.members.iter())
        .filter(|m| m.role == MemberRole::Learner)
        .map(|m| format!("node {}", m.node_id))
        .collect();
    learners.dedup();
    report.check(format!(
        "status history: phase Scaling while growing; learners seen in status.members: {}",
        if learners.is_empty() {
            "none caught between writes (the Events show them)".to_string()
        } else {
            learners.join(", ")
        }
    ));

    // The new members' writers write through their own nodes once those joined.
    let pods = Env::member_pods(3);
    let since = env.wait_acks(&pods, mark, 10, env.secs(180)).await?;
    report.check(format!(
        "writers on every member write through their own node: {since:?} since the change"
    ));

    // Every acknowledged write on every member: linearizable through each member, and in each
    // member's own applied state (eventual).
    env.verify_acks(report, &pods, ReadPolicy::Linearizable)
        .await?;
    env.verify_acks(report, &pods, ReadPolicy::Eventual).await
}
