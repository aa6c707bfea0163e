//! The cluster's admin token, read from the Secret the spec names, which the operator makes
//! itself when nobody else did.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::PostParams;
use kube::{Api, Client};

use crate::crd::DEngineCluster;
use crate::objects::{owned_meta, MANAGER};
use crate::Error;

/// Random bytes in a token the operator makes: 256 bits, as many as an HMAC-SHA-256 key.
const GENERATED_TOKEN_BYTES: usize = 32;

/// Makes the admin token Secret `spec.auth.adminTokenSecret` names if it does not exist, with a
/// random token under the named key, owned by the cluster (deleting the cluster deletes it), so
/// that applying a DEngineCluster alone is enough. A Secret that exists is never touched, even
/// one that lacks the key: it is the user's, and [`admin_token`] reports what is wrong with
/// it. Returns whether it made one.
pub async fn ensure_admin_token(client: &Client, cluster: &DEngineCluster) -> Result<bool, Error> {
    let namespace = cluster.metadata.namespace.as_deref().unwrap_or("default");
    let reference = &cluster.spec.auth.admin_token_secret;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    if secrets.get_opt(&reference.name).await?.is_some() {
        return Ok(false);
    }
    let secret = Secret {
        metadata: owned_meta(cluster, reference.name.clone()),
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(
            reference.key.clone(),
            ByteString(random_token()?.into_bytes()),
        )])),
        ..Secret::default()
    };
    let params = PostParams {
        field_manager: Some(MANAGER.to_string()),
        ..PostParams::default()
    };
    match secrets.create(&params, &secret).await {
        Ok(_) => Ok(true),
        // Made by someone else between the read and the create: theirs stands.
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
        Err(error) => Err(error.into()),
    }
}

/// A fresh random token, hex-encoded (the node trims its token file, so it must be text).
fn random_token() -> Result<String, Error> {
    super::random_hex(GENERATED_TOKEN_BYTES)
        .map_err(|error| Error::AdminToken(format!("no randomness to make a token from: {error}")))
}

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

/// The TLS material of `spec.tls` for calling the nodes' admin API: `None` without TLS.
pub async fn admin_tls(
    client: &Client,
    cluster: &DEngineCluster,
) -> Result<Option<crate::admin::AdminTls>, Error> {
    let Some(tls) = &cluster.spec.tls else {
        return Ok(None);
    };
    let namespace = cluster.metadata.namespace.as_deref().unwrap_or("default");
    let names =
        crate::objects::Names::new(cluster.metadata.name.clone().unwrap_or_default(), namespace);
    let port = cluster.spec.ports.peer;
    let server_name = move |id: crate::observed::NodeId| {
        // The host part of the address the node advertises: what its certificate names.
        let address = names.peer_address(id.ordinal().unwrap_or(0), port);
        address
            .rsplit_once(':')
            .map_or(address.clone(), |(host, _)| host.to_string())
    };
    if tls.generate {
        let (ca, cert, key) = super::certificates::operator_identity(client, cluster).await?;
        return Ok(Some(crate::admin::AdminTls::new(
            ca,
            cert,
            key,
            server_name,
        )));
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets.get_opt(&tls.secret_name).await?.ok_or_else(|| {
        Error::TlsSecret(format!(
            "Secret {namespace}/{} does not exist; it must hold tls.crt, tls.key and ca.crt",
            tls.secret_name
        ))
    })?;
    let key = |name: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(name))
            .map(|b| b.0.clone())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| {
                Error::TlsSecret(format!(
                    "Secret {namespace}/{} has no `{name}`; it must hold tls.crt, tls.key and ca.crt",
                    tls.secret_name
                ))
            })
    };
    Ok(Some(crate::admin::AdminTls::new(
        key("ca.crt")?,
        key("tls.crt")?,
        key("tls.key")?,
        server_name,
    )))
}
