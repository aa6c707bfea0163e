//! Where the pods may run.

use k8s_openapi::api::core::v1::{Affinity, Toleration, TopologySpreadConstraint};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where the pods may run.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    /// Put no two members on the same Kubernetes node, so that losing a node costs at most one
    /// member (a required pod anti-affinity on the hostname). Turn it off only where there are
    /// fewer nodes than members, such as a laptop.
    #[serde(default = "default_spread")]
    pub spread_across_nodes: bool,

    /// Spread the members evenly across zones (the nodes' `topology.kubernetes.io/zone`
    /// label), so that losing a zone costs a minority where there are enough zones.
    /// `Preferred` (the default) asks the scheduler to spread and still places pods where the
    /// zones cannot be balanced or nodes carry no zone label; `Required` leaves a pod Pending
    /// rather than unbalance the zones by more than one; `Off` does not ask.
    #[serde(default)]
    pub spread_across_zones: ZoneSpread,

    /// Further topology spread constraints of the pods, in addition to the spreads above
    /// (their label selectors are the user's to set). One on `topology.kubernetes.io/zone`
    /// replaces `spreadAcrossZones`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread_constraints: Vec<TopologySpreadConstraint>,

    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,

    /// Affinity of the pods, in addition to the spread above.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
}

fn default_spread() -> bool {
    true
}

impl Default for Scheduling {
    fn default() -> Self {
        Scheduling {
            spread_across_nodes: default_spread(),
            spread_across_zones: ZoneSpread::default(),
            topology_spread_constraints: Vec::new(),
            tolerations: Vec::new(),
            affinity: None,
        }
    }
}

/// How hard the scheduler is asked to spread the members across zones.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZoneSpread {
    /// Spread where the scheduler can (`whenUnsatisfiable: ScheduleAnyway`).
    #[default]
    Preferred,
    /// Never unbalance the zones by more than one member (`whenUnsatisfiable:
    /// DoNotSchedule`); nodes without a zone label take no members.
    Required,
    /// No zone spread.
    Off,
}

impl ZoneSpread {
    /// The constraint's `whenUnsatisfiable`, or `None` for no constraint.
    pub fn when_unsatisfiable(self) -> Option<&'static str> {
        match self {
            ZoneSpread::Preferred => Some("ScheduleAnyway"),
            ZoneSpread::Required => Some("DoNotSchedule"),
            ZoneSpread::Off => None,
        }
    }
}
