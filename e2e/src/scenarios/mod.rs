//! The scenarios. Each brings the cluster to the state it starts from (creating or changing
//! the DEngineCluster and waiting until it runs so), acts as a user or a failure would, and
//! checks what a user would look at: the status, the Events, the pods and volumes, the writers'
//! acknowledged writes read back through the nodes. Waits are on conditions with generous
//! deadlines (scaled by `--timeout-scale`), never fixed sleeps.

mod s1_one_member;
mod s2_scale_to_three;
mod s3_leader_deleted;
mod s4_rolling_upgrade;
mod s5_volume_lost;
mod s6_shrink_and_delete;
mod s7_bad_input;
mod s8_backups;
mod s9_restore;

use crate::runner::env::Env;
use crate::runner::report::Report;

/// One scenario's number and title.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub number: u8,
    pub title: &'static str,
}

/// The scenarios, in the order a full run takes them.
pub const SCENARIOS: [Scenario; 9] = [
    Scenario {
        number: 1,
        title: "one member with the writer application beside its node",
    },
    Scenario {
        number: 2,
        title: "scale to three: learners added and promoted, data on every member",
    },
    Scenario {
        number: 3,
        title: "the leader's pod deleted under continuous writes",
    },
    Scenario {
        number: 4,
        title: "rolling upgrade to a new image tag under continuous writes",
    },
    Scenario {
        number: 5,
        title: "a member loses its volume and is replaced",
    },
    Scenario {
        number: 6,
        title: "scale back to one, then delete the DEngineCluster",
    },
    Scenario {
        number: 7,
        title: "bad input refused by the API server",
    },
    Scenario {
        number: 8,
        title: "backups into a claim, on request and on schedule",
    },
    Scenario {
        number: 9,
        title: "every volume lost: the cluster founded again from its backup",
    },
];

/// Runs scenario `number`.
pub async fn run(number: u8, env: &Env, report: &mut Report) -> anyhow::Result<()> {
    match number {
        1 => s1_one_member::run(env, report).await,
        2 => s2_scale_to_three::run(env, report).await,
        3 => s3_leader_deleted::run(env, report).await,
        4 => s4_rolling_upgrade::run(env, report).await,
        5 => s5_volume_lost::run(env, report).await,
        6 => s6_shrink_and_delete::run(env, report).await,
        7 => s7_bad_input::run(env, report).await,
        8 => s8_backups::run(env, report).await,
        9 => s9_restore::run(env, report).await,
        _ => anyhow::bail!("there is no scenario {number} (1 to 9)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_are_numbered_in_order() {
        for (i, scenario) in SCENARIOS.iter().enumerate() {
            assert_eq!(usize::from(scenario.number), i + 1);
        }
    }
}
