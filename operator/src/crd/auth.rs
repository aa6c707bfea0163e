//! Credentials of the admin API.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Credentials of the admin API: membership calls from the operator carry this token, and
/// every node checks it (mounted from the Secret as the node's `admin_token_file`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Auth {
    /// The Secret key holding the admin token, in the cluster's namespace.
    pub admin_token_secret: SecretKeyRef,
}

/// One key of a Secret in the DEngineCluster's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// The Secret's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,

    /// The key within the Secret.
    #[serde(default = "default_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_key() -> String {
    "token".to_string()
}
