//! A member that lost its data directory and comes back under its id: it holds none of the
//! log or the votes it once acknowledged, so it must not vote until the cluster has removed it
//! and added it back as a learner; then it catches up, is promoted and serves the data.

mod common;

use common::{get, wait_for, Cluster};
use dengine::proto::{AddLearnerRequest, PromoteLearnerRequest, ReadPolicy, RemoveMemberRequest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_founding_member_back_on_an_empty_data_directory_waits_to_be_admitted() {
    // Found in review: restarted with its founding flags on an empty directory, it founded the
    // cluster anew (term 1, the founding entries) and voted; the admission guard applied only
    // to nodes started with --join.
    let mut cluster = Cluster::start(3, &[]).await;
    let clients = cluster.clients();
    for i in 0..20 {
        clients
            .put_acknowledged(&format!("key-{i}"), &format!("value-{i}"))
            .await
            .expect("a write before the loss");
    }
    let leader = cluster.wait_for_leader().await;
    let lost = (1..=3).find(|&id| id != leader).expect("a follower");
    cluster.node_mut(lost).kill();
    std::fs::remove_dir_all(&cluster.node(lost).spec.data_dir).expect("lose the data");
    cluster.node_mut(lost).start().await;

    // It receives the log but waits to be admitted.
    let node = cluster.node(lost);
    let leader_commit = cluster.node(leader).status().await.unwrap().commit_index;
    wait_for(
        format!("node {lost} to hold the log and wait for admission"),
        || async {
            let status = node.status().await.map_err(|e| e.to_string())?;
            match status.awaiting_admission && status.commit_index >= leader_commit {
                true => Ok(()),
                false => Err(format!(
                    "awaiting admission: {}, commit {} of {leader_commit}, term {}",
                    status.awaiting_admission, status.commit_index, status.term
                )),
            }
        },
    )
    .await;

    // The cluster replaces it: removed, added back as a learner, promoted once caught up.
    let mut admin = cluster.node(leader).admin();
    admin
        .remove_member(RemoveMemberRequest {
            node_id: lost,
            force: false,
        })
        .await
        .expect("remove the member that lost its data");
    admin
        .add_learner(AddLearnerRequest {
            node_id: lost,
            peer_address: node.spec.peer_endpoint(),
        })
        .await
        .expect("add it back as a learner");
    wait_for(format!("node {lost} to be admitted"), || async {
        let status = node.status().await.map_err(|e| e.to_string())?;
        match status.awaiting_admission {
            false => Ok(()),
            true => Err(format!("commit {}", status.commit_index)),
        }
    })
    .await;
    wait_for(format!("the promotion of node {lost}"), || {
        let mut admin = admin.clone();
        async move {
            admin
                .promote_learner(PromoteLearnerRequest {
                    node_id: lost,
                    max_lag: 0,
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let mut kv = node.kv();
    for i in 0..20 {
        let found = get(&mut kv, &format!("key-{i}"), ReadPolicy::Linearizable).await;
        assert_eq!(
            found.kv.map(|kv| kv.value.to_vec()),
            Some(format!("value-{i}").into_bytes())
        );
    }
}
