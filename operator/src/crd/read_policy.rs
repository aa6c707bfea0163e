//! The read policy a node applies to requests that name none.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How a read is served when the request names no policy (the node's `--default-read-policy`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadPolicy {
    /// Read-index: one quorum round, shared by concurrent reads.
    #[default]
    Linearizable,
    /// Served by the leader while its lease, renewed by a quorum's heartbeats, holds.
    Lease,
    /// This node's applied state, at once.
    Eventual,
}

impl ReadPolicy {
    /// The value of the node's `--default-read-policy` flag.
    pub fn as_flag(self) -> &'static str {
        match self {
            ReadPolicy::Linearizable => "linearizable",
            ReadPolicy::Lease => "lease",
            ReadPolicy::Eventual => "eventual",
        }
    }
}
