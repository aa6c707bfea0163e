//! The node's listening ports.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The node's listening ports, the same in every pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new(
    "self.client != self.peer && self.client != self.metrics && self.peer != self.metrics"
)
.message("client, peer and metrics ports must all differ"))]
pub struct Ports {
    /// The client API, on the pod's loopback interface: what the application talks to.
    #[serde(default = "default_client")]
    #[schemars(range(min = 1, max = 65535))]
    pub client: i32,

    /// The Raft and admin API, reached by the other members and the operator.
    #[serde(default = "default_peer")]
    #[schemars(range(min = 1, max = 65535))]
    pub peer: i32,

    /// Health probes and Prometheus metrics.
    #[serde(default = "default_metrics")]
    #[schemars(range(min = 1, max = 65535))]
    pub metrics: i32,
}

fn default_client() -> i32 {
    2379
}

fn default_peer() -> i32 {
    2380
}

fn default_metrics() -> i32 {
    2381
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            client: default_client(),
            peer: default_peer(),
            metrics: default_metrics(),
        }
    }
}
