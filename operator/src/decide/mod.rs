//! The director: from what is observed of a cluster to the one next step.
//!
//! As in cockroach-operator's director, each reconcile runs an ordered list of checks and takes
//! the first step one of them asks for. [`decide`] is pure: no clock, no I/O, no memory of
//! earlier calls. Everything it needs is in [`Observed`], which the reconciler rebuilds from the
//! API server and the cluster every time; so an operator killed between any two steps, or
//! replaced by another replica, carries on from what it sees.
//!
//! The rules, in the order they are checked:
//!
//! 1. `spec.paused`: nothing.
//! 2. The owned objects exist and match the spec (a new version updates the StatefulSet's
//!    template here; with `OnDelete` no pod restarts yet).
//! 3. Founding (`founding`): while no cluster exists, pod 0 bootstraps one; once one exists,
//!    the founding record makes every later pod join. Never a second bootstrap.
//! 4. Without a leader (`leaderless`): no membership change; the pods `spec.replicas` asks for
//!    are brought back.
//! 5. A member whose pod came back with an empty volume is removed, to be added again as a
//!    learner (`replace`).
//! 6. Growing (`grow`), one member at a time: pods of existing members are brought back, a
//!    learner is promoted once caught up, a new pod's volume is marked and its node added as a
//!    learner, and only then does the StatefulSet grow by one.
//! 7. Shrinking (`shrink`), highest member first: leadership moves off it, it is removed from
//!    the Raft group, then the StatefulSet shrinks.
//! 8. Rolling upgrade (`upgrade`), one outdated pod at a time, followers first, the leader last.
//! 9. Health (`health`): done when every voter is healthy; otherwise wait, and report Degraded
//!    once it lasts longer than `limits.degraded_after`.
//!
//! Membership changes are only made through a leader that answered, and none leaves fewer
//! healthy voters than a quorum; such a change waits, reported as Degraded.
//!
//! Node ids are StatefulSet ordinals + 1, so an id comes back when its ordinal does (after a
//! shrink and a growth, or a replaced volume). That is safe because an id is always removed
//! from the configuration before it is added again, and added as a learner, which has no vote
//! until it is caught up and promoted.

mod action;
mod founding;
mod grow;
mod health;
mod leaderless;
mod led;
mod replace;
mod shrink;
#[cfg(test)]
mod tests;
mod upgrade;

pub use action::{DegradedReason, NextAction};

use crate::observed::{ObjectsState, Observed};
use led::Led;

/// The one next step for the cluster `observed` describes.
pub fn decide(observed: &Observed) -> NextAction {
    if observed.spec.paused {
        return NextAction::Paused;
    }
    if observed.objects != ObjectsState::Current || observed.stateful_set.is_none() {
        return NextAction::ApplyObjects;
    }
    if !observed.founded {
        return founding::decide(observed);
    }
    let Some(led) = Led::new(observed) else {
        return leaderless::decide(observed);
    };
    let steps: [fn(&Led) -> Option<NextAction>; 8] = [
        replace::decide,
        grow::restore_pods,
        shrink::remove_member,
        grow::promote_learners,
        grow::add_learner,
        grow::grow_stateful_set,
        shrink::shrink_stateful_set,
        upgrade::decide,
    ];
    steps
        .iter()
        .find_map(|step| step(&led))
        .unwrap_or_else(|| health::settled(&led))
}
