//! The operator's errors.

/// Everything that can go wrong in the operator, with a message saying what to do. The
/// variant name is also the `error` label of the reconcile-failure metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CRD could not be rendered as YAML: a bug in the types, not in the input.
    #[error("rendering the CRD as YAML: {0}")]
    CrdYaml(#[from] serde_yaml_ng::Error),

    /// A call to the Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),

    /// A membership call to the cluster's leader failed; the next reconcile observes again and
    /// decides afresh.
    #[error("admin API of node at {endpoint}: {message}")]
    Admin { endpoint: String, message: String },

    /// The resource cannot be acted on as it is (for example, no namespace).
    #[error("DEngineCluster {0}")]
    Invalid(String),

    /// The admin token Secret is missing or lacks the key; reported in the status.
    #[error("admin token: {0}")]
    AdminToken(String),

    /// The TLS Secret is missing or incomplete; reported in the status.
    #[error("TLS: {0}")]
    TlsSecret(String),

    /// A failpoint stopped the operator (tests only).
    #[error("stopped by failpoint {0}")]
    Failpoint(String),
}

impl Error {
    /// The metric label for this error.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::CrdYaml(_) => "crd_yaml",
            Error::Kube(_) => "kube",
            Error::Admin { .. } => "admin",
            Error::Invalid(_) => "invalid",
            Error::AdminToken(_) => "admin_token",
            Error::TlsSecret(_) => "tls_secret",
            Error::Failpoint(_) => "failpoint",
        }
    }
}
