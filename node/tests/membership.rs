//! Growing a cluster one member at a time through the admin API, as the operator does: a node
//! started in join mode is added as a learner, catches up (by snapshot, the log having been
//! compacted), is promoted, and the cluster then survives the loss of its first member.

mod common;

use common::{get, put, wait_for, Cluster};
use dengine::proto::{
    AddLearnerRequest, MemberListRequest, MemberRole, PromoteLearnerRequest, ReadPolicy,
    RemoveMemberRequest,
};
use tonic::Code;

async fn add_and_promote(cluster: &mut Cluster, leader: usize, id: u64, extra: &[&str]) {
    let mut node = cluster.joining_node(id, extra);
    node.start().await;
    let peer_address = node.spec.peer_endpoint();
    cluster.nodes.push(node);
    let mut admin = cluster.nodes[leader].admin();
    admin
        .add_learner(AddLearnerRequest {
            node_id: id,
            peer_address,
        })
        .await
        .expect("add the learner");
    let leader_commit = cluster.nodes[leader].status().await.unwrap().commit_index;
    let learner = cluster.nodes.last().unwrap();
    wait_for(
        format!("learner {id} to apply up to {leader_commit}"),
        || async {
            let status = learner.status().await.map_err(|e| e.to_string())?;
            match status.applied_index >= leader_commit {
                true => Ok(()),
                false => Err(format!("applied {}", status.applied_index)),
            }
        },
    )
    .await;
    wait_for(format!("promotion of learner {id}"), || {
        let mut admin = admin.clone();
        async move {
            admin
                .promote_learner(PromoteLearnerRequest {
                    node_id: id,
                    max_lag: 0,
                })
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learners_join_catch_up_by_snapshot_are_promoted_and_carry_the_data() {
    // Snapshots every 20 entries with 5 kept: the learners cannot catch up from the log.
    let settings = ["--snapshot-every", "20"];
    let mut cluster = Cluster::start(1, &settings).await;
    let mut kv = cluster.nodes[0].kv();
    for i in 0..100 {
        put(&mut kv, &format!("key-{i:03}"), &format!("value-{i}")).await;
    }

    add_and_promote(&mut cluster, 0, 2, &settings).await;
    add_and_promote(&mut cluster, 0, 3, &settings).await;

    let members = cluster.nodes[0]
        .admin()
        .member_list(MemberListRequest {})
        .await
        .unwrap()
        .into_inner()
        .members;
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|m| m.role == MemberRole::Voter as i32));

    // The founding member goes away for good; the two that joined carry on.
    cluster.nodes[0].kill();
    for node in &cluster.nodes[1..] {
        let mut kv = node.kv();
        wait_for(format!("a write through node {}", node.id()), || {
            let mut kv = kv.clone();
            async move {
                kv.put(dengine::proto::PutRequest {
                    key: "after-loss".into(),
                    value: "ok".into(),
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string())
            }
        })
        .await;
        let found = get(&mut kv, "key-042", ReadPolicy::Linearizable).await;
        assert_eq!(found.kv.unwrap().value.as_ref(), b"value-42");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_changes_that_would_hurt_are_refused_with_a_reason() {
    let mut cluster = Cluster::start(3, &[]).await;
    let leader_id = cluster.wait_for_leader().await;
    let leader = cluster
        .nodes
        .iter()
        .position(|n| n.id() == leader_id)
        .unwrap();
    let mut admin = cluster.nodes[leader].admin();

    let error = admin
        .promote_learner(PromoteLearnerRequest {
            node_id: 2,
            max_lag: 0,
        })
        .await
        .expect_err("a voter cannot be promoted");
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
    assert!(error.message().contains("not a learner"), "{error:?}");

    let error = admin
        .add_learner(AddLearnerRequest {
            node_id: 9,
            peer_address: "no-port".into(),
        })
        .await
        .expect_err("an address without a port is refused");
    assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");

    // With one follower down, removing the other healthy follower would leave one healthy
    // voter of two: no quorum.
    let followers: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    cluster.nodes[followers[0]].kill();
    let dead = cluster.nodes[followers[0]].id();
    let healthy_follower = cluster.nodes[followers[1]].id();
    // Health is judged by contact within an election timeout (here 10 ticks of 20 ms).
    wait_for("the leader to notice the dead follower", || {
        let mut admin = admin.clone();
        async move {
            let status = admin
                .status(dengine::proto::StatusRequest {})
                .await
                .map_err(|e| e.to_string())?
                .into_inner();
            let silent = status
                .members
                .iter()
                .find(|m| m.id == dead)
                .map_or(0, |m| m.last_contact_ms);
            match silent > 1_000 {
                true => Ok(()),
                false => Err(format!("last contact {silent} ms ago")),
            }
        }
    })
    .await;
    let error = admin
        .remove_member(RemoveMemberRequest {
            node_id: healthy_follower,
            force: false,
        })
        .await
        .expect_err("removing a healthy voter while another is down loses the quorum");
    assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");
    assert!(error.message().contains("quorum"), "{error:?}");

    // The dead follower itself can go: the two left are healthy.
    admin
        .remove_member(RemoveMemberRequest {
            node_id: dead,
            force: false,
        })
        .await
        .expect("removing the dead member keeps a healthy quorum");
    let mut kv = cluster.nodes[leader].kv();
    put(&mut kv, "still", "writable").await;
}
