//! The director against a simulated world: from each starting point the operator reaches
//! `Done` without losing quorum and without a second bootstrap, whether or not it crashes:
//! with no crash, with a crash losing each single step in turn, and with random crashes over
//! many seeds. Between any two steps the operator remembers nothing; it observes the world
//! afresh every time.

mod simulation;

use std::time::Duration;

use dengine_operator::crd::DEngineClusterSpec;
use dengine_operator::decide::{DegradedReason, NextAction};
use dengine_operator::observed::NodeId;

use simulation::rng::Rng;
use simulation::run::{check_converged, drive, nothing_forbidden, Crashes, Forbidden};
use simulation::world::World;

const MAX_STEPS: usize = 600;
const RANDOM_SEEDS: u64 = 200;

fn spec(replicas: i32) -> DEngineClusterSpec {
    DEngineClusterSpec::example(replicas)
}

/// A new DEngineCluster: nothing exists yet.
fn created(replicas: i32, seed: u64) -> World {
    World::new(spec(replicas), seed)
}

/// A cluster of `replicas` that the operator has already brought to `Done`.
fn running(replicas: i32, seed: u64) -> World {
    let mut world = created(replicas, seed);
    drive(
        &mut world,
        &mut Crashes::Never,
        nothing_forbidden,
        MAX_STEPS,
    );
    world
}

struct Scenario {
    name: &'static str,
    setup: fn(u64) -> World,
    forbidden: Forbidden,
    /// Checks the finished world and the steps decided.
    check: fn(&World, &[NextAction]),
}

fn no_check(_: &World, _: &[NextAction]) {}

fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "bootstrap of one",
            setup: |seed| created(1, seed),
            forbidden: nothing_forbidden,
            check: no_check,
        },
        Scenario {
            name: "bootstrap straight to three",
            setup: |seed| created(3, seed),
            forbidden: nothing_forbidden,
            check: no_check,
        },
        Scenario {
            name: "grow 1 -> 3",
            setup: |seed| {
                let mut world = running(1, seed);
                world.spec.replicas = 3;
                world
            },
            forbidden: shrinking,
            check: no_check,
        },
        Scenario {
            name: "grow 3 -> 5",
            setup: |seed| {
                let mut world = running(3, seed);
                world.spec.replicas = 5;
                world
            },
            forbidden: shrinking,
            check: no_check,
        },
        Scenario {
            name: "shrink 3 -> 1, led by the highest member",
            setup: |seed| {
                let mut world = running(3, seed);
                world.raft.leader = Some(NodeId(3));
                world.spec.replicas = 1;
                world
            },
            forbidden: growing,
            check: |_, steps| {
                assert!(
                    steps.iter().any(|s| matches!(
                        s,
                        NextAction::TransferLeadership {
                            from: NodeId(3),
                            ..
                        }
                    )),
                    "leadership moved off node 3 before its removal"
                );
            },
        },
        Scenario {
            name: "shrink 5 -> 3 while two of the members that stay are down for a while",
            setup: |seed| {
                let mut world = running(5, seed);
                world.lose_node(1, Duration::from_secs(600));
                world.lose_node(2, Duration::from_secs(900));
                world.spec.replicas = 3;
                world
            },
            forbidden: growing,
            check: |_, steps| {
                assert!(
                    steps.iter().any(|s| matches!(
                        s,
                        NextAction::ReportDegraded {
                            reason: DegradedReason::QuorumAtRisk { .. }
                        }
                    )),
                    "the removals waited for the members that stay"
                );
            },
        },
        Scenario {
            name: "upgrade of three",
            setup: |seed| {
                let mut world = running(3, seed);
                world.spec.version = "0.2.0".to_string();
                world
            },
            forbidden: rolling,
            check: |world, _| {
                let mut upgraded = world.upgraded.clone();
                upgraded.sort();
                assert_eq!(upgraded, [0, 1, 2], "each pod restarted exactly once");
            },
        },
        Scenario {
            name: "replacement of a member that lost its volume",
            setup: |seed| {
                let mut world = running(3, seed);
                lose_volume(&mut world, 1);
                world
            },
            forbidden: shrinking,
            check: |_, steps| {
                assert!(steps.contains(&NextAction::ReplaceMember { ordinal: 1 }));
                assert!(steps.contains(&NextAction::PromoteLearner { id: NodeId(2) }));
            },
        },
        Scenario {
            name: "rollback of a broken version",
            setup: |seed| {
                let mut world = running(3, seed);
                world.spec.version = "0.2.0-broken".to_string();
                let broken = world.wanted_revision();
                world.broken_revisions.insert(broken);
                // Run until the rollout stops, then roll back.
                let mut crashes = Crashes::Never;
                drive_until_degraded(&mut world, &mut crashes);
                world.spec.version = "0.1.0".to_string();
                world
            },
            forbidden: rolling,
            check: |world, _| {
                assert_eq!(
                    world.upgraded.len(),
                    2,
                    "one pod to the broken version and back: {:?}",
                    world.upgraded
                );
                assert_eq!(world.upgraded[0], world.upgraded[1]);
            },
        },
    ]
}

fn shrinking(_: &World, action: &NextAction) -> bool {
    matches!(
        action,
        NextAction::RemoveMember { .. } | NextAction::ShrinkStatefulSet { .. }
    )
}

fn growing(_: &World, action: &NextAction) -> bool {
    matches!(
        action,
        NextAction::AddLearner { .. } | NextAction::GrowStatefulSet { .. }
    )
}

/// A rollout changes no membership, and moves leadership only to restart the leader, which
/// goes last: when it is the only outdated pod left.
fn rolling(world: &World, action: &NextAction) -> bool {
    shrinking(world, action)
        || growing(world, action)
        || matches!(
            action,
            NextAction::ReplaceMember { .. } | NextAction::Bootstrap
        )
        || (matches!(action, NextAction::TransferLeadership { .. }) && world.outdated_pods() > 1)
}

/// Pod `ordinal`'s claim is deleted and made anew, empty, and its pod restarts.
fn lose_volume(world: &mut World, ordinal: u32) {
    world.claims.remove(&ordinal);
    world.pods.remove(&ordinal);
    if world.raft.leader == Some(NodeId::of_ordinal(ordinal)) {
        world.raft.leader = None;
    }
    world.reconcile_stateful_set();
    world.refresh_readiness();
}

/// Runs the operator until it reports the cluster Degraded.
fn drive_until_degraded(world: &mut World, crashes: &mut Crashes) {
    for _ in 0..MAX_STEPS {
        let action = dengine_operator::decide::decide(&world.observe());
        if let NextAction::ReportDegraded { .. } = action {
            return;
        }
        match action {
            NextAction::WaitForPod { .. }
            | NextAction::WaitForLeader
            | NextAction::WaitForCatchUp { .. } => world.tick(),
            other => {
                if let Crashes::Never = crashes {
                    world.apply(&other).expect("the step is accepted");
                }
                world.tick();
            }
        }
    }
    panic!("never reported Degraded");
}

#[test]
fn every_scenario_finishes_without_crashes() {
    for scenario in scenarios() {
        for seed in 0..5 {
            let mut world = (scenario.setup)(seed);
            let steps = drive(
                &mut world,
                &mut Crashes::Never,
                scenario.forbidden,
                MAX_STEPS,
            );
            (scenario.check)(&world, &steps);
            check_converged(&world).unwrap_or_else(|e| panic!("{}: {e}", scenario.name));
        }
    }
}

#[test]
fn every_scenario_finishes_when_any_one_step_is_lost_to_a_crash() {
    for scenario in scenarios() {
        let seed = 7;
        let mut baseline = (scenario.setup)(seed);
        let steps = drive(
            &mut baseline,
            &mut Crashes::Never,
            scenario.forbidden,
            MAX_STEPS,
        );
        for lost in 0..steps.len() {
            let mut world = (scenario.setup)(seed);
            let steps = drive(
                &mut world,
                &mut Crashes::AtStep(lost),
                scenario.forbidden,
                MAX_STEPS,
            );
            (scenario.check)(&world, &steps);
        }
    }
}

#[test]
fn every_scenario_finishes_under_random_crashes() {
    for scenario in scenarios() {
        for seed in 0..RANDOM_SEEDS {
            let mut world = (scenario.setup)(seed);
            let mut crashes = Crashes::Randomly {
                percent: 30,
                rng: Rng::new(seed.wrapping_mul(31) + 1),
            };
            let steps = drive(&mut world, &mut crashes, scenario.forbidden, MAX_STEPS);
            (scenario.check)(&world, &steps);
        }
    }
}

#[test]
fn a_member_lost_for_good_is_reported_and_never_removed() {
    for seed in 0..20 {
        let mut world = running(3, seed);
        // Pod 2's node is gone: its pod cannot be scheduled again.
        world.lose_node(2, Duration::MAX);
        let mut reported = false;
        for _ in 0..200 {
            let action = dengine_operator::decide::decide(&world.observe());
            assert!(
                !shrinking(&world, &action) && !matches!(action, NextAction::ReplaceMember { .. }),
                "seed {seed}: {action:?} for a member that is only lost"
            );
            if let NextAction::ReportDegraded {
                reason: DegradedReason::MemberUnhealthy { id, .. },
            } = &action
            {
                assert_eq!(*id, NodeId(3));
                reported = true;
            }
            if matches!(
                action,
                NextAction::WaitForPod { .. }
                    | NextAction::WaitForCatchUp { .. }
                    | NextAction::ReportDegraded { .. }
            ) {
                world.tick();
            } else {
                world.apply(&action).expect("the step is accepted");
            }
        }
        assert!(reported, "seed {seed}: the lost member was never reported");
        // The node comes back: the operator finishes the job.
        world.unschedulable.clear();
        drive(&mut world, &mut Crashes::Never, shrinking, MAX_STEPS);
    }
}
