//! The operator's errors.

/// Everything that can go wrong in the operator, with a message saying what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CRD could not be rendered as YAML: a bug in the types, not in the input.
    #[error("rendering the CRD as YAML: {0}")]
    CrdYaml(#[from] serde_yaml_ng::Error),
}
