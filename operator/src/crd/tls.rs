//! Mutual TLS between the members and the operator.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Mutual TLS on the peer listeners (Raft and admin API), from a `kubernetes.io/tls` Secret
/// holding `tls.crt`, `tls.key` and `ca.crt`, as cert-manager writes it, or from certificates
/// the operator issues (`generate`). The certificate is
/// used by every member, both to serve and to dial peers, and by the operator to call the
/// admin API, so it must allow server and client authentication and name
/// `*.<cluster>-peers.<namespace>.svc` (and `<cluster>-client.<namespace>.svc` when the pods
/// run the node alone, whose client listener is then served over TLS too).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.generate == oldSelf.generate")
        .message("generate is fixed at creation: the members' certificates would change hands mid-flight")
        .field_path(".generate"),
    validation = Rule::new("!self.generate || self.secretName == oldSelf.secretName")
        .message("secretName is fixed when the operator generates the certificates: it holds them")
        .field_path(".secretName")
)]
pub struct Tls {
    /// The Secret's name, in the cluster's namespace. Renewing the certificate under the same
    /// CA needs nothing from the operator beyond a rolling restart; a new CA must first be
    /// trusted by every member (put both CAs in `ca.crt`).
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,

    /// The operator issues the certificates itself instead: a CA of the cluster's own (Secret
    /// `<cluster>-ca`, which only the operator reads), a certificate per member naming its pod's
    /// stable address, kept in the Secret `secretName` under `<pod>.crt` and `<pod>.key` with
    /// `ca.crt`, and one it presents itself. They are valid for 90 days and renewed 30 days
    /// before they expire, with a rolling restart that keeps the quorum. A Secret of that name
    /// the operator did not make is refused, never changed. Fixed at creation.
    #[serde(default)]
    pub generate: bool,
}
