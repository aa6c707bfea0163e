//! The CustomResourceDefinition manifest, as committed in `crds/`.

use kube::CustomResourceExt;

use crate::crd::DEngineCluster;
use crate::Error;

/// Where the manifest is committed, relative to the workspace root.
pub const CRD_PATH: &str = "crds/dengineclusters.dengine.io.yaml";

/// The command that rewrites the committed manifest from the types.
pub const REGENERATE: &str =
    "cargo run -p dengine-operator -- crd > crds/dengineclusters.dengine.io.yaml";

/// The DEngineCluster CRD as a YAML document, headed by a note on where it comes from.
pub fn crd_yaml() -> Result<String, Error> {
    let body = serde_yaml_ng::to_string(&DEngineCluster::crd())?;
    Ok(format!(
        "# Generated from operator/src/crd by `dengine-operator crd`; do not edit.\n\
         # Regenerate with: {REGENERATE}\n\
         {body}"
    ))
}
