//! Where the pods may run.

use k8s_openapi::api::core::v1::{Affinity, Toleration};
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
            tolerations: Vec::new(),
            affinity: None,
        }
    }
}
