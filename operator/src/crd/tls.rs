//! Mutual TLS between the members and the operator.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Mutual TLS on the peer listeners (Raft and admin API), from a `kubernetes.io/tls` Secret
/// holding `tls.crt`, `tls.key` and `ca.crt`, as cert-manager writes it. The certificate is
/// used by every member, both to serve and to dial peers, and by the operator to call the
/// admin API, so it must allow server and client authentication and name
/// `*.<cluster>-peers.<namespace>.svc` (and `<cluster>-client.<namespace>.svc` when the pods
/// run the node alone, whose client listener is then served over TLS too).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Tls {
    /// The Secret's name, in the cluster's namespace. Renewing the certificate under the same
    /// CA needs nothing from the operator beyond a rolling restart; a new CA must first be
    /// trusted by every member (put both CAs in `ca.crt`).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}
