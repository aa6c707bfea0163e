//! Scenario 5: a member loses its volume. Its claim and pod are deleted (as docs/operator.md
//! tells a user to replace a broken disk); the pod comes back on a new, empty volume, and the
//! operator replaces the member: removed under its old identity, added again as a learner,
//! promoted once caught up.

use anyhow::Context as _;
use dengine_operator::objects::CLAIM_MARK;
use kube::api::DeleteParams;
use kube::ResourceExt;

use crate::events::Expected;
use crate::runner::env::{describe_pod, pod_ready, Env, ReadPolicy};
use crate::runner::report::Report;
use crate::specs::CLUSTER;

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    let status = env.ensure_cluster(report, 3, None).await?;
    let leader = status
        .leader
        .clone()
        .context("a running cluster has a leader")?;
    // The highest ordinal that does not lead: replacing a follower.
    let ordinal = (0..3u32)
        .rev()
        .find(|k| Env::pod_name(*k) != leader.pod)
        .context("a follower")?;
    let pod_name = Env::pod_name(ordinal);
    let node_id = ordinal + 1;
    let claim_name = format!("data-{pod_name}");
    let old_claim = env.claims().get(&claim_name).await?;
    let old_claim_uid = old_claim.uid().unwrap_or_default();
    let old_pod_uid = env.pods().get(&pod_name).await?.uid().unwrap_or_default();

    let from = env.now_ms();
    // The claim stays (Terminating) until its pod is gone; then the StatefulSet makes a new one.
    env.claims()
        .delete(&claim_name, &DeleteParams::background())
        .await?;
    env.pods()
        .delete(&pod_name, &DeleteParams::default())
        .await?;
    report.check(format!(
        "deleted claim {claim_name} and pod {pod_name} (node {node_id}; the leader is {})",
        leader.pod
    ));

    // A pod recreated while its old claim is still going away waits, Pending, for a claim that
    // then disappears; the StatefulSet controller makes a new claim for a Pending pod whose
    // claim is missing. Should a pod stay like that for a minute, the runner deletes it once
    // more, as a user would, and says so.
    let stuck_since = std::cell::Cell::new(None::<std::time::Instant>);
    let deleted_again = std::cell::Cell::new(false);
    let stuck_limit = env.secs(60);
    let new_claim = env
        .wait_for(
            &format!("{pod_name} back, ready, on a new claim"),
            env.secs(420),
            || {
                let (stuck_since, deleted_again) = (&stuck_since, &deleted_again);
                let (pod_name, claim_name) = (&pod_name, &claim_name);
                let (old_claim_uid, old_pod_uid) = (&old_claim_uid, &old_pod_uid);
                async move {
                    let claim = env.claims().get_opt(claim_name).await?;
                    let pod = env.pods().get_opt(pod_name).await?;
                    let claim_missing = claim.is_none();
                    let new_claim = claim.filter(|c| c.uid().as_ref() != Some(old_claim_uid));
                    match (pod, new_claim) {
                        (Some(p), Some(c)) if pod_ready(&p) => Ok(Ok(c)),
                        (Some(p), _) => {
                            let pending = p.status.as_ref().and_then(|s| s.phase.as_deref())
                                == Some("Pending");
                            let stuck =
                                p.uid().as_ref() != Some(old_pod_uid) && pending && claim_missing;
                            if !stuck {
                                stuck_since.set(None);
                            } else {
                                let since =
                                    stuck_since.get().unwrap_or_else(std::time::Instant::now);
                                stuck_since.set(Some(since));
                                if since.elapsed() > stuck_limit && !deleted_again.get() {
                                    env.pods()
                                        .delete(pod_name, &DeleteParams::default())
                                        .await?;
                                    deleted_again.set(true);
                                }
                            }
                            Ok(Err(describe_pod(&p)))
                        }
                        (None, _) => Ok(Err("no pod".to_string())),
                    }
                }
            },
        )
        .await?;
    if deleted_again.get() {
        report.note(format!(
            "{pod_name} stayed Pending for a minute without a claim: deleted it once more"
        ));
    }
    report.check(format!(
        "{pod_name} is back and ready on a new claim {claim_name} ({})",
        new_claim
            .uid()
            .unwrap_or_default()
            .chars()
            .take(8)
            .collect::<String>()
    ));

    env.wait_events(
        report,
        &[
            Expected::step("ReplacingMember", format!("RemoveNode{node_id}")),
            Expected::step("AddedLearner", format!("AddLearnerNode{node_id}")),
            Expected::step("PromotedLearner", format!("PromoteNode{node_id}")),
        ],
        from,
    )
    .await?;

    let status = env.wait_running(3, None, env.secs(420)).await?;
    report.check(format!(
        "{CLUSTER} Running with 3 voters ready, lag 0; leader {}",
        status
            .leader
            .as_ref()
            .map(|l| l.pod.as_str())
            .unwrap_or("-")
    ));
    let claim = env.claims().get(&claim_name).await?;
    let mark = claim.annotations().get(CLAIM_MARK).cloned();
    anyhow::ensure!(
        mark.as_deref() == Some(node_id.to_string().as_str()),
        "the new claim is marked {mark:?}, not as node {node_id}'s"
    );
    report.check(format!(
        "the new claim is marked as node {node_id}'s ({CLAIM_MARK})"
    ));

    // The replaced member holds everything again, in its own applied state.
    env.verify_acks(
        report,
        std::slice::from_ref(&pod_name),
        ReadPolicy::Eventual,
    )
    .await?;
    env.verify_acks(
        report,
        std::slice::from_ref(&pod_name),
        ReadPolicy::Linearizable,
    )
    .await
}
