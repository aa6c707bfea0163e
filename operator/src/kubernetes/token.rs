//! The cluster's admin token, read from the Secret the spec names.

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::crd::DEngineCluster;
use crate::Error;

/// The admin token: the key `spec.auth.adminTokenSecret` names, trimmed of surrounding
/// whitespace (as the node trims its token file).
pub async fn admin_token(client: &Client, cluster: &DEngineCluster) -> Result<String, Error> {
    let namespace = cluster.metadata.namespace.as_deref().unwrap_or("default");
    let reference = &cluster.spec.auth.admin_token_secret;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get_opt(&reference.name).await?.ok_or_else(|| {
        Error::AdminToken(format!(
            "Secret {namespace}/{} does not exist; create it with a `{}` key holding the token",
            reference.name, reference.key
        ))
    })?;
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&reference.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| {
            Error::AdminToken(format!(
                "Secret {namespace}/{} has no key `{}`",
                reference.name, reference.key
            ))
        })?;
    let token = String::from_utf8(bytes)
        .map_err(|_| {
            Error::AdminToken(format!(
                "key `{}` of Secret {namespace}/{} is not UTF-8 text",
                reference.key, reference.name
            ))
        })?
        .trim()
        .to_string();
    if token.is_empty() {
        return Err(Error::AdminToken(format!(
            "key `{}` of Secret {namespace}/{} is empty",
            reference.key, reference.name
        )));
    }
    Ok(token)
}
