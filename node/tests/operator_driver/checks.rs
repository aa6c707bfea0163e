//! What the recorded steps of each phase must show, and what the nodes must hold.

use dengine::proto::ReadPolicy;
use dengine_operator::decide::NextAction;
use dengine_operator::driver::Step;
use dengine_operator::observed::{MemberRole, NodeId, Ordinal};

use super::common::{assert_same_state, key_value_map, scan_all, wait_for, Keys};
use super::driving::Entry;
use super::local_workload::LocalWorkload;

/// Done is only the end of a phase once the cluster has the shape asked for: `members` voters
/// and nothing else, as many pods, all from template revision `revision`.
pub fn shape(members: usize, revision: &'static str) -> impl Fn(&Step) -> Result<(), String> {
    move |step| {
        let o = &step.observed;
        let view = o.cluster.as_ref().ok_or("no leader answered")?;
        let voters = view
            .members
            .iter()
            .filter(|m| m.role == MemberRole::Voter)
            .count();
        if voters != members || view.members.len() != members {
            return Err(format!("members {:?}", view.members));
        }
        let sts = o.stateful_set.as_ref().ok_or("no StatefulSet")?;
        if sts.replicas as usize != members || sts.update_revision != revision {
            return Err(format!("StatefulSet {sts:?}"));
        }
        if o.pods.len() != members || o.pods.iter().any(|p| p.revision != revision) {
            return Err(format!("pods {:?}", o.pods));
        }
        Ok(())
    }
}

/// The steps that succeeded, with their index in the phase.
pub fn taken(entries: &[Entry]) -> Vec<(usize, &Step)> {
    entries
        .iter()
        .enumerate()
        .filter_map(|(i, e)| e.outcome.as_ref().ok().map(|s| (i, s)))
        .collect()
}

/// The actions that change something, in order.
pub fn changes(entries: &[Entry]) -> Vec<NextAction> {
    taken(entries)
        .into_iter()
        .map(|(_, s)| s.action.clone())
        .filter(|a| {
            !matches!(
                a,
                NextAction::WaitForPod { .. }
                    | NextAction::WaitForLeader
                    | NextAction::WaitForCatchUp { .. }
                    | NextAction::ReportDegraded { .. }
                    | NextAction::Done
                    | NextAction::Paused
            )
        })
        .collect()
}

fn position(actions: &[NextAction], wanted: &NextAction) -> usize {
    actions
        .iter()
        .position(|a| a == wanted)
        .unwrap_or_else(|| panic!("{wanted:?} was never taken; the actions: {actions:?}"))
}

fn leader_of(step: &Step) -> NodeId {
    step.observed
        .cluster
        .as_ref()
        .and_then(|c| c.leader)
        .expect("a step that changes membership or restarts a pod saw a leader")
}

/// Growth from one member to three: one pod and one learner at a time, each learner a voter
/// before the next pod is added.
pub fn assert_growth(entries: &[Entry]) {
    let actions = changes(entries);
    eprintln!("growth actions: {actions:?}");
    let at = |a: NextAction| position(&actions, &a);
    assert!(at(NextAction::GrowStatefulSet { to: 2 }) < at(NextAction::ClaimVolume { ordinal: 1 }));
    assert!(at(NextAction::ClaimVolume { ordinal: 1 }) < at(NextAction::AddLearner { ordinal: 1 }));
    assert!(
        at(NextAction::AddLearner { ordinal: 1 }) < at(NextAction::GrowStatefulSet { to: 3 }),
        "the StatefulSet grew to 3 before node 2 was added: {actions:?}"
    );
    assert!(
        at(NextAction::AddLearner { ordinal: 1 })
            < at(NextAction::PromoteLearner { id: NodeId(2) })
    );
    assert!(
        at(NextAction::PromoteLearner { id: NodeId(2) })
            < at(NextAction::GrowStatefulSet { to: 3 }),
        "the StatefulSet grew to 3 before node 2 was a voter: {actions:?}"
    );
    assert!(
        at(NextAction::PromoteLearner { id: NodeId(2) })
            < at(NextAction::AddLearner { ordinal: 2 }),
        "node 3 was added before node 2 was promoted: {actions:?}"
    );
    assert!(at(NextAction::ClaimVolume { ordinal: 2 }) < at(NextAction::AddLearner { ordinal: 2 }));
    assert!(
        at(NextAction::AddLearner { ordinal: 2 })
            < at(NextAction::PromoteLearner { id: NodeId(3) })
    );
    for (_, step) in taken(entries) {
        let learners = step.observed.cluster.as_ref().map_or(0, |c| {
            c.members
                .iter()
                .filter(|m| m.role == MemberRole::Learner)
                .count()
        });
        assert!(
            learners <= 1,
            "two learners at once: {:?}",
            step.observed.cluster
        );
    }
    for action in &actions {
        assert!(
            matches!(
                action,
                NextAction::GrowStatefulSet { .. }
                    | NextAction::ClaimVolume { .. }
                    | NextAction::AddLearner { .. }
                    | NextAction::PromoteLearner { .. }
            ),
            "unexpected {action:?} while growing: {actions:?}"
        );
    }
}

/// The rolling restart for revision `v2`: every pod exactly once, one at a time with every
/// other pod ready, never the leader's pod while it leads, and the leader's pod last, after
/// leadership was handed to a restarted node.
pub fn assert_rollout(entries: &[Entry]) {
    let actions = changes(entries);
    eprintln!("rollout actions: {actions:?}");
    let steps = taken(entries);
    let upgrades: Vec<(usize, Ordinal, &Step)> = steps
        .iter()
        .filter_map(|&(i, s)| match s.action {
            NextAction::UpgradePod { ordinal } => Some((i, ordinal, s)),
            _ => None,
        })
        .collect();
    // Who restarts last is only meaningful if leadership moved only when the operator moved it:
    // a restarted follower must not unseat the leader. (After a step that failed, the operator
    // may have asked for a transfer that was made although its answer was lost.)
    let mut leader: Option<NodeId> = None;
    let mut transfer: Option<Option<(NodeId, NodeId)>> = None;
    for (i, entry) in entries.iter().enumerate() {
        let Ok(step) = &entry.outcome else {
            transfer = Some(None);
            continue;
        };
        let Some(now) = step.observed.cluster.as_ref().and_then(|c| c.leader) else {
            continue;
        };
        if let Some(before) = leader.filter(|&before| before != now) {
            match transfer.take() {
                Some(Some(asked)) => assert_eq!(
                    asked,
                    (before, now),
                    "leadership moved from node {before} to node {now} (step {i} of the rollout), \
                     but the operator asked for {asked:?}"
                ),
                Some(None) => {}
                None => panic!(
                    "leadership moved from node {before} to node {now} (step {i} of the rollout) \
                     without the operator asking for it"
                ),
            }
        }
        leader = Some(now);
        if let NextAction::TransferLeadership { from, to } = step.action {
            transfer = Some(Some((from, to)));
        }
    }

    let mut restarted: Vec<Ordinal> = upgrades.iter().map(|&(_, k, _)| k).collect();
    restarted.sort();
    assert_eq!(restarted, [0, 1, 2], "each pod restarted once: {actions:?}");

    for (n, &(_, ordinal, step)) in upgrades.iter().enumerate() {
        let leader = leader_of(step);
        let o = &step.observed;
        assert_ne!(
            leader,
            NodeId::of_ordinal(ordinal),
            "pod {ordinal} was restarted while its node led"
        );
        // One pod down at a time: the one about to be restarted is the only one that may go.
        assert!(
            o.pods.len() == 3 && o.pods.iter().all(|p| p.is_running() && p.ready),
            "pod {ordinal} was restarted while not every pod was up and ready: {:?}",
            o.pods
        );
        let voters = o.cluster.as_ref().map_or(0, |c| {
            c.members
                .iter()
                .filter(|m| m.role == MemberRole::Voter)
                .count()
        });
        assert_eq!(
            voters, 3,
            "pod {ordinal} was restarted with {voters} voters"
        );
        if n + 1 < upgrades.len() {
            let leader_pod = o
                .pod(leader.ordinal().expect("a leader has an ordinal"))
                .expect("the leader's pod exists");
            assert_eq!(
                leader_pod.revision, "v1",
                "the leader's pod (node {leader}) was restarted before pod {ordinal}, not last"
            );
        }
    }

    // The last: the leader when its turn came, which handed leadership over first.
    let (last_index, last, _) = upgrades[upgrades.len() - 1];
    let (previous_index, _, _) = upgrades[upgrades.len() - 2];
    let last_node = NodeId::of_ordinal(last);
    let transfer = steps
        .iter()
        .filter(|&&(i, _)| i > previous_index && i < last_index)
        .find_map(|&(_, s)| match s.action {
            NextAction::TransferLeadership { from, to } => Some((from, to, s)),
            _ => None,
        })
        .unwrap_or_else(|| {
            panic!("no TransferLeadership before the last restart (pod {last}): {actions:?}")
        });
    let (from, to, step) = transfer;
    assert_eq!(
        from, last_node,
        "leadership moved off node {from}, but pod {last} was restarted last"
    );
    assert_eq!(leader_of(step), last_node);
    let target_pod = step
        .observed
        .pod(to.ordinal().expect("a voter has an ordinal"))
        .expect("the transfer target's pod exists");
    assert_eq!(
        target_pod.revision, "v2",
        "leadership went to node {to}, which was not restarted yet"
    );
    for action in &actions {
        assert!(
            matches!(
                action,
                NextAction::ApplyObjects
                    | NextAction::UpgradePod { .. }
                    | NextAction::TransferLeadership { .. }
            ),
            "unexpected {action:?} in the rollout: {actions:?}"
        );
    }
}

/// Shrinking from three members to one: the highest member first, never while it leads
/// (leadership goes to node 1, the one that stays), and the StatefulSet only after.
pub fn assert_shrink(entries: &[Entry]) {
    let actions = changes(entries);
    eprintln!("shrink actions: {actions:?}");
    let at = |a: NextAction| position(&actions, &a);
    assert!(
        at(NextAction::RemoveMember { id: NodeId(3) })
            < at(NextAction::RemoveMember { id: NodeId(2) })
    );
    assert!(
        at(NextAction::RemoveMember { id: NodeId(2) })
            < at(NextAction::ShrinkStatefulSet { to: 1 }),
        "the StatefulSet shrank before the members were removed: {actions:?}"
    );
    for (_, step) in taken(entries) {
        match step.action {
            NextAction::RemoveMember { id } => {
                assert_ne!(leader_of(step), id, "member {id} was removed while it led");
            }
            NextAction::TransferLeadership { from, to } => {
                assert_eq!(leader_of(step), from);
                assert_eq!(to, NodeId(1), "leadership must go to the member that stays");
            }
            _ => {}
        }
    }
    for action in &actions {
        assert!(
            matches!(
                action,
                NextAction::RemoveMember { .. }
                    | NextAction::TransferLeadership { .. }
                    | NextAction::ShrinkStatefulSet { .. }
            ),
            "unexpected {action:?} while shrinking: {actions:?}"
        );
    }
}

/// Reads every key from each of `ordinals`' nodes with linearizable scans and compares them
/// with the acknowledged writes.
pub async fn assert_nodes_hold(
    workload: &LocalWorkload,
    ordinals: &[Ordinal],
    acknowledged: &Keys,
) {
    for &ordinal in ordinals {
        let kv = workload.kv(ordinal);
        let kvs = wait_for(format!("a linearizable scan of pod {ordinal}"), || {
            let mut kv = kv.clone();
            async move {
                scan_all(&mut kv, "", ReadPolicy::Linearizable, 1000)
                    .await
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        assert_same_state(
            &format!("node {} (linearizable scan)", NodeId::of_ordinal(ordinal)),
            &key_value_map(&kvs),
            acknowledged,
        );
    }
}
