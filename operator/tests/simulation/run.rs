//! Driving the director against the world: observe, decide, act, with an operator that may
//! crash around every step.
//!
//! The driver keeps nothing between steps but the world itself: every step starts by observing
//! it afresh, exactly as a newly started operator would. A crash is modelled as a step whose
//! call never landed (the operator died just before making it); the next operator finds the
//! world as it was and decides again.

use dengine_operator::decide::{decide, NextAction};
use dengine_operator::observed::{MemberRole, NodeId};

use super::rng::Rng;
use super::world::World;

/// Which acting steps are lost to a crash.
pub enum Crashes {
    Never,
    /// The `n`-th acting step (counting from 0) is lost.
    AtStep(usize),
    /// Each acting step is lost with this chance, in percent.
    Randomly {
        percent: u64,
        rng: Rng,
    },
}

impl Crashes {
    fn loses(&mut self, step: usize) -> bool {
        match self {
            Crashes::Never => false,
            Crashes::AtStep(n) => *n == step,
            Crashes::Randomly { percent, rng } => rng.chance(*percent),
        }
    }
}

/// What a scenario may never see decided, in the world as it is.
pub type Forbidden = fn(&World, &NextAction) -> bool;

pub fn nothing_forbidden(_: &World, _: &NextAction) -> bool {
    false
}

/// Runs the operator until it decides `Done` and returns every step decided. Panics, with the
/// steps so far, if it does not get there within `max_steps`, if the world refuses a step, or if
/// an invariant breaks.
pub fn drive(
    world: &mut World,
    crashes: &mut Crashes,
    forbidden: Forbidden,
    max_steps: usize,
) -> Vec<NextAction> {
    let mut trace = Vec::new();
    let mut acting = 0;
    for _ in 0..max_steps {
        let action = decide(&world.observe());
        trace.push(action.clone());
        let fail = |why: String| -> ! { panic!("{why}\nsteps decided: {trace:#?}") };
        if forbidden(world, &action) {
            fail(format!("{action:?} is forbidden in this scenario"));
        }
        if let Err(why) = check_decision(world, &action) {
            fail(why);
        }
        match action {
            NextAction::Done => {
                if let Err(why) = check_converged(world) {
                    fail(format!("Done, but {why}"));
                }
                return trace;
            }
            NextAction::Paused
            | NextAction::WaitForPod { .. }
            | NextAction::WaitForLeader
            | NextAction::WaitForCatchUp { .. }
            | NextAction::ReportDegraded { .. } => world.tick(),
            _ => {
                if !crashes.loses(acting) {
                    if let Err(refused) = world.apply(&action) {
                        fail(format!("{action:?} was refused: {refused}"));
                    }
                }
                acting += 1;
                for _ in 0..world.rng.below(2) {
                    world.tick();
                }
            }
        }
        if let Err(why) = check_world(world) {
            fail(why);
        }
    }
    panic!("not done after {max_steps} steps: {trace:#?}");
}

/// What the operator must never decide, whatever it observed.
fn check_decision(world: &World, action: &NextAction) -> Result<(), String> {
    match action {
        NextAction::Bootstrap if world.bootstraps > 0 => Err("a second bootstrap".to_string()),
        NextAction::UpgradePod { ordinal }
            if world.voters().len() > 1
                && world.raft.leader == Some(NodeId::of_ordinal(*ordinal)) =>
        {
            Err(format!("pod {ordinal} restarted while its node leads"))
        }
        _ => Ok(()),
    }
}

/// What must hold of the world after every step.
fn check_world(world: &World) -> Result<(), String> {
    if world.bootstraps > 1 {
        return Err(format!("{} bootstraps", world.bootstraps));
    }
    if world.founded && !world.voters().is_empty() && !world.has_safe_quorum() {
        return Err(format!(
            "quorum lost: {} of {} voters up with their volumes",
            world.live_voters(),
            world.voters().len()
        ));
    }
    let learners = world
        .raft
        .members
        .values()
        .filter(|r| **r == MemberRole::Learner)
        .count();
    if learners > 1 {
        return Err(format!("{learners} learners at once"));
    }
    Ok(())
}

/// The world is as the spec asks.
pub fn check_converged(world: &World) -> Result<(), String> {
    let n = world.spec.member_count();
    let replicas = world.stateful_set.as_ref().map_or(0, |s| s.replicas);
    let expected: Vec<NodeId> = (0..n).map(NodeId::of_ordinal).collect();
    let revision = world.wanted_revision();
    let checks = [
        (
            replicas == n,
            format!("the StatefulSet has {replicas} replicas, not {n}"),
        ),
        (
            world.raft.members.keys().copied().collect::<Vec<_>>() == expected
                && world.voters() == expected,
            format!("the members are {:?}", world.raft.members),
        ),
        (world.founded, "the founding record is missing".to_string()),
        (
            world.bootstraps == 1,
            format!("{} bootstraps", world.bootstraps),
        ),
        (
            world.raft.leader.is_some(),
            "there is no leader".to_string(),
        ),
        (
            world.pods.len() == n as usize
                && world
                    .pods
                    .values()
                    .all(|p| p.running && p.unready_since.is_none() && p.revision == revision),
            "some pod is not ready at the current revision".to_string(),
        ),
        (
            (0..n).all(|k| world.claims.get(&k).is_some_and(|c| c.marked)),
            "some volume is not marked".to_string(),
        ),
    ];
    match checks.into_iter().find(|(ok, _)| !ok) {
        Some((_, why)) => Err(why),
        None => Ok(()),
    }
}
