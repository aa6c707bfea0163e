//! Scenario 1: a one-member cluster whose pod runs the writer application beside the node; the
//! application writes and reads through its node on 127.0.0.1.

use anyhow::{bail, ensure};
use dengine_operator::crd::NODE_CONTAINER_NAME;
use kube::api::PostParams;

use crate::acks::Mark;
use crate::events::Expected;
use crate::runner::env::{Env, ReadPolicy};
use crate::runner::report::Report;
use crate::specs::{self, APP_CONTAINER, CLUSTER};

pub async fn run(env: &Env, report: &mut Report) -> anyhow::Result<()> {
    if env.cluster().await?.is_some() {
        report.note(format!(
            "deleting the existing {CLUSTER} and its volumes, to see a founding"
        ));
        env.delete_cluster_and_volumes().await?;
    }
    let from = env.now_ms();
    let cluster = specs::cluster(&env.options, 1);
    env.clusters()
        .create(&PostParams::default(), &cluster)
        .await?;
    report.check(format!(
        "created DEngineCluster {CLUSTER}: 1 member, node {}:{}, writer {} beside it",
        env.options.node_image, env.options.node_tag, env.options.app_image
    ));

    let status = env
        .wait_running(1, Some(&env.options.node_tag), env.secs(300))
        .await?;
    let leader = status.leader.clone().expect("running means a leader");
    ensure!(
        leader.pod == Env::pod_name(0) && leader.node_id == 1,
        "the leader is {leader:?}, not node 1 in {CLUSTER}-0"
    );
    report.check(format!(
        "status: phase Running, 1 voter ready with lag 0, leader {} (node 1), version {}, Available",
        leader.pod, env.options.node_tag
    ));

    // The pod: the node as a native sidecar listening on loopback, the application beside it.
    let pod = env.pods().get(&Env::pod_name(0)).await?;
    let spec = pod.spec.clone().unwrap_or_default();
    let node = spec
        .init_containers
        .iter()
        .flatten()
        .find(|c| c.name == NODE_CONTAINER_NAME);
    let Some(node) = node else {
        bail!("pod {CLUSTER}-0 has no init container {NODE_CONTAINER_NAME} (the node as a native sidecar)");
    };
    ensure!(
        node.restart_policy.as_deref() == Some("Always"),
        "the node container is not a native sidecar (restartPolicy {:?})",
        node.restart_policy
    );
    let client_listen = node
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "DENGINE_CLIENT_LISTEN")
        .and_then(|e| e.value.clone());
    ensure!(
        client_listen.as_deref() == Some("127.0.0.1:2379"),
        "the node's client API listens on {client_listen:?}, not on the pod's loopback"
    );
    ensure!(
        spec.containers.iter().any(|c| c.name == APP_CONTAINER),
        "pod {CLUSTER}-0 has no {APP_CONTAINER} container"
    );
    report.check(format!(
        "pod {CLUSTER}-0: node `{NODE_CONTAINER_NAME}` as a native sidecar serving 127.0.0.1:2379, `{APP_CONTAINER}` beside it"
    ));

    let pods = Env::member_pods(1);
    let since = env
        .wait_acks(&pods, Mark::default(), 20, env.secs(180))
        .await?;
    let reads = env
        .wait_for(
            "the writer to read its writes back",
            env.secs(120),
            || async {
                let book = env.rec.acks();
                if book.reads_ok() >= 2 {
                    Ok(Ok(book.reads_ok()))
                } else {
                    Ok(Err(format!("{} read back so far", book.reads_ok())))
                }
            },
        )
        .await?;
    report.check(format!(
        "the writer's log: {} acknowledged writes, {reads} read back intact through 127.0.0.1",
        since.values().sum::<usize>()
    ));

    env.verify_acks(report, &pods, ReadPolicy::Linearizable)
        .await?;
    env.wait_events(
        report,
        &[
            Expected::reason("AppliedObjects"),
            Expected::step("Bootstrapping", "SetReplicas1"),
            Expected::step("ClaimedVolume", "ClaimVolumePod0"),
            Expected::reason("Founded"),
        ],
        from,
    )
    .await
}
