//! The certificates of `spec.tls.generate`, in Secrets: made when missing, renewed before they
//! expire. The members' Secret (`spec.tls.secretName`) holds `ca.crt` and `<pod>.crt`,
//! `<pod>.key` for every pod a cluster can have; the CA Secret (`<cluster>-ca`) holds the CA's
//! key and the operator's own certificate (its key never mounted into a pod); the ConfigMap
//! `<cluster>-ca.crt` publishes the CA's certificate for clients. All are owned by the cluster. A Secret of either name that the operator did not make is refused, never changed.
//!
//! When the operator has issued them is in the status (`status.certificates.issued`) and from
//! there in the pod template: a renewal changes the template, and the pods are restarted as for
//! an upgrade, one at a time, the leader last, each only while the others keep the quorum.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::json;

use crate::certificates::{issue_ca, issue_leaf, renew_at, Pair, CA_VALIDITY, LEAF_VALIDITY};
use crate::crd::{DEngineCluster, MAX_REPLICAS};
use crate::objects::{owned_meta, Names, MANAGER};
use crate::status::CertificatesStatus;
use crate::Error;

/// On the members' Secret: when its certificates were issued (RFC 3339).
const ISSUED_ANNOTATION: &str = "dengine.io/certificates-issued";

/// On the members' Secret: a random name of this issue of the certificates, which the pod
/// template carries (two issues never share one, whatever the clock says).
const SERIAL_ANNOTATION: &str = "dengine.io/certificates-serial";

/// On the CA Secret: when the CA expires (RFC 3339), recorded when it is issued.
const CA_EXPIRES_ANNOTATION: &str = "dengine.io/ca-expires";

/// The key of the CA's certificate in the Secrets and in the public ConfigMap.
const CA_KEY: &str = "ca.crt";

/// The common name of the operator's own certificate.
const OPERATOR_NAME: &str = "dengine-operator";

/// What [`ensure`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Issued {
    /// The certificates in place are good until their renewal time.
    Kept(CertificatesStatus),
    /// New ones were issued: the first, or renewed.
    New {
        status: CertificatesStatus,
        renewed: bool,
    },
}

impl Issued {
    pub fn status(&self) -> &CertificatesStatus {
        match self {
            Issued::Kept(status) | Issued::New { status, .. } => status,
        }
    }
}

/// Makes or renews the certificates of `cluster`, when it has `spec.tls.generate`.
pub async fn ensure(
    client: &Client,
    cluster: &DEngineCluster,
    now: Timestamp,
) -> Result<Option<Issued>, Error> {
    let Some(tls) = cluster.spec.tls.as_ref().filter(|tls| tls.generate) else {
        return Ok(None);
    };
    // Whole seconds, as the status holds times: the status, the Secret's annotation and the pod
    // template must say the same.
    let now = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let names = Names::of(cluster);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let ca_secret = secrets.get_opt(&names.ca_secret()).await?;
    let members_secret = secrets.get_opt(&tls.secret_name).await?;
    if tls.secret_name == names.ca_secret()
        || tls.secret_name == cluster.spec.auth.admin_token_secret.name
    {
        return Err(Error::TlsSecret(format!(
            "tls.secretName {} is taken: {} holds the cluster's CA and {} its admin token; name \
             another Secret for the members' certificates",
            tls.secret_name,
            names.ca_secret(),
            cluster.spec.auth.admin_token_secret.name
        )));
    }
    let uid = cluster.uid().unwrap_or_default();
    for secret in ca_secret.iter().chain(&members_secret) {
        refuse_unless_ours(secret, &names, &uid)?;
    }
    let ca = match (&ca_secret, &members_secret) {
        (Some(secret), _) => Pair {
            cert_pem: text(secret, CA_KEY, &names)?,
            key_pem: text(secret, "ca.key", &names)?,
        },
        // Issued before (the status says so) means members run with that CA: a new one cannot
        // be rolled in while they do, whichever Secret was lost.
        (None, _)
            if cluster
                .status
                .as_ref()
                .is_some_and(|s| s.certificates.is_some()) =>
        {
            return Err(Error::TlsSecret(format!(
                "Secret {}/{} with the cluster's CA is gone, but its members run with \
                 certificates it signed: put the Secret back (from your backup of it); a new CA \
                 would not be trusted by members not yet restarted",
                names.namespace,
                names.ca_secret(),
            )))
        }
        (None, None) => {
            issue_ca(&names.namespace, &names.cluster, now).map_err(Error::TlsSecret)?
        }
        // The running members trust only the CA they have: certificates of a new one would
        // not be accepted by those not yet restarted, and a rolling restart would split them.
        (None, Some(_)) => {
            return Err(Error::TlsSecret(format!(
                "Secret {}/{} with the cluster's CA is gone while the members' certificates \
                 remain: put it back; a new CA would not be trusted by the running members",
                names.namespace,
                names.ca_secret(),
            )))
        }
    };
    let annotation = |key: &str| {
        members_secret
            .as_ref()
            .and_then(|s| s.annotations().get(key).cloned())
    };
    let issued = annotation(ISSUED_ANNOTATION).and_then(|text| text.parse::<Timestamp>().ok());
    if let (Some(issued), Some(serial), Some(ca_secret), Some(members_secret)) = (
        issued,
        annotation(SERIAL_ANNOTATION),
        &ca_secret,
        &members_secret,
    ) {
        if now < renew_at(issued) && complete(ca_secret, members_secret, &ca, &names) {
            let ca_expires = ca_secret
                .annotations()
                .get(CA_EXPIRES_ANNOTATION)
                .and_then(|text| text.parse().ok());
            publish_ca(client, cluster, &names, &ca.cert_pem).await?;
            return Ok(Some(Issued::Kept(status_of(issued, serial, ca_expires))));
        }
    }
    // A CA issued now expires at a known time; one read back says so in its annotation (CAs
    // issued before the annotation existed do not).
    let ca_expires = match &ca_secret {
        None => Some(now + CA_VALIDITY),
        Some(secret) => secret
            .annotations()
            .get(CA_EXPIRES_ANNOTATION)
            .and_then(|text| text.parse().ok()),
    };
    let serial = new_serial()?;
    let renewed = members_secret.is_some();
    let operator = issue_leaf(
        &ca,
        &names.namespace,
        &names.cluster,
        OPERATOR_NAME,
        vec![OPERATOR_NAME.to_string()],
        now,
    )
    .map_err(Error::TlsSecret)?;
    let mut members = BTreeMap::from([(CA_KEY.to_string(), ca.cert_pem.clone())]);
    for ordinal in 0..u32::try_from(MAX_REPLICAS).unwrap_or(7) {
        let pod = names.pod(ordinal);
        // The client Service too, whether or not the pods run the node alone now: `spec.app`
        // may change, and the certificates stay until renewed.
        let dns_names = vec![
            names.peer_host(ordinal),
            format!("{}.cluster.local", names.peer_host(ordinal)),
            names.client_host(),
            format!("{}.cluster.local", names.client_host()),
        ];
        let pair = issue_leaf(&ca, &names.namespace, &names.cluster, &pod, dns_names, now)
            .map_err(Error::TlsSecret)?;
        members.insert(format!("{pod}.crt"), pair.cert_pem);
        members.insert(format!("{pod}.key"), pair.key_pem);
    }
    let ca_data = BTreeMap::from([
        (CA_KEY.to_string(), ca.cert_pem.clone()),
        ("ca.key".to_string(), ca.key_pem.clone()),
        ("operator.crt".to_string(), operator.cert_pem),
        ("operator.key".to_string(), operator.key_pem),
    ]);
    // The operator's certificate first: members trust it as soon as it exists (same CA).
    let ca_marks = match (&ca_secret, ca_expires) {
        (None, Some(expires)) => {
            BTreeMap::from([(CA_EXPIRES_ANNOTATION.to_string(), expires.to_string())])
        }
        _ => BTreeMap::new(),
    };
    write(
        &secrets,
        cluster,
        &names.ca_secret(),
        ca_data,
        ca_marks,
        ca_secret.is_some(),
    )
    .await?;
    let marks = BTreeMap::from([
        (ISSUED_ANNOTATION.to_string(), now.to_string()),
        (SERIAL_ANNOTATION.to_string(), serial.clone()),
    ]);
    write(&secrets, cluster, &tls.secret_name, members, marks, renewed).await?;
    publish_ca(client, cluster, &names, &ca.cert_pem).await?;
    Ok(Some(Issued::New {
        status: status_of(now, serial, ca_expires),
        renewed,
    }))
}

/// Publishes the CA's certificate, which is no secret, in the ConfigMap `<cluster>-ca.crt` (as
/// Kubernetes publishes its own in `kube-root-ca.crt`): what a client of the client Service
/// mounts to check the members, instead of the Secret that holds their keys. A ConfigMap of that
/// name the operator did not make is left alone, with a warning in the log.
async fn publish_ca(
    client: &Client,
    cluster: &DEngineCluster,
    names: &Names,
    ca_pem: &str,
) -> Result<(), Error> {
    let config_maps: Api<ConfigMap> = Api::namespaced(client.clone(), &names.namespace);
    let name = names.ca_bundle();
    let data = BTreeMap::from([(CA_KEY.to_string(), ca_pem.to_string())]);
    match config_maps.get_opt(&name).await? {
        Some(existing) if !owned_by(&existing.metadata, &cluster.uid().unwrap_or_default()) => {
            tracing::warn!(
                namespace = %names.namespace,
                config_map = %name,
                "a ConfigMap the operator did not make has the name the CA is published under; left alone"
            );
        }
        // Only `ca.crt` is the operator's: keys a user added are left as they are.
        Some(existing)
            if existing
                .data
                .as_ref()
                .and_then(|d| d.get(CA_KEY))
                .is_some_and(|pem| pem == ca_pem) => {}
        Some(_) => {
            config_maps
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "data": data })),
                )
                .await?;
        }
        None => {
            let config_map = ConfigMap {
                metadata: owned_meta(cluster, name),
                data: Some(data),
                ..ConfigMap::default()
            };
            let params = PostParams {
                field_manager: Some(MANAGER.to_string()),
                ..PostParams::default()
            };
            config_maps.create(&params, &config_map).await?;
        }
    }
    Ok(())
}

/// Whether an object was made by the operator for the cluster of `uid`.
fn owned_by(metadata: &ObjectMeta, uid: &str) -> bool {
    metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get("app.kubernetes.io/managed-by"))
        .is_some_and(|by| by == MANAGER)
        && metadata
            .owner_references
            .iter()
            .flatten()
            .any(|owner| owner.controller == Some(true) && owner.uid == uid)
}

/// The operator's own certificate and the CA, to call the members' admin API.
pub async fn operator_identity(
    client: &Client,
    cluster: &DEngineCluster,
) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>), Error> {
    let names = Names::of(cluster);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &names.namespace);
    let secret = secrets.get_opt(&names.ca_secret()).await?.ok_or_else(|| {
        Error::TlsSecret(format!(
            "Secret {}/{} with the cluster's CA is missing",
            names.namespace,
            names.ca_secret()
        ))
    })?;
    let bytes = |key: &str| text(&secret, key, &names).map(String::into_bytes);
    Ok((
        bytes("ca.crt")?,
        bytes("operator.crt")?,
        bytes("operator.key")?,
    ))
}

fn status_of(
    issued: Timestamp,
    serial: String,
    ca_expires: Option<Timestamp>,
) -> CertificatesStatus {
    CertificatesStatus {
        issued: Time(issued),
        renews: Time(renew_at(issued)),
        expires: Time(issued + LEAF_VALIDITY),
        serial,
        ca_expires: ca_expires.map(Time),
    }
}

/// A fresh random name for an issue of the certificates.
fn new_serial() -> Result<String, Error> {
    super::random_hex(8)
        .map_err(|error| Error::TlsSecret(format!("no randomness for a serial: {error}")))
}

/// A Secret this cluster's certificates were not put in by the operator is someone else's (the
/// user's, or another cluster's): refused, so that it is never changed.
fn refuse_unless_ours(secret: &Secret, names: &Names, uid: &str) -> Result<(), Error> {
    if owned_by(&secret.metadata, uid) {
        return Ok(());
    }
    Err(Error::TlsSecret(format!(
        "Secret {}/{} exists and was not made by the operator; with tls.generate the operator \
         makes it, and never changes a Secret of yours: delete or rename it, or use a cluster \
         without tls.generate",
        names.namespace,
        secret.name_any()
    )))
}

/// Whether both Secrets hold everything: every pod's pair and the CA's certificate beside them,
/// and the operator's own pair. Anything missing is issued anew (from the same CA).
fn complete(ca_secret: &Secret, members: &Secret, ca: &Pair, names: &Names) -> bool {
    let has = |secret: &Secret, key: &str| text(secret, key, names).is_ok();
    let pods = (0..u32::try_from(MAX_REPLICAS).unwrap_or(7)).all(|ordinal| {
        let pod = names.pod(ordinal);
        has(members, &format!("{pod}.crt")) && has(members, &format!("{pod}.key"))
    });
    pods && text(members, CA_KEY, names).is_ok_and(|pem| pem == ca.cert_pem)
        && has(ca_secret, "operator.crt")
        && has(ca_secret, "operator.key")
}

fn text(secret: &Secret, key: &str, names: &Names) -> Result<String, Error> {
    secret
        .data
        .as_ref()
        .and_then(|data| data.get(key))
        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
        .ok_or_else(|| {
            Error::TlsSecret(format!(
                "Secret {}/{} has no `{key}`",
                names.namespace,
                secret.name_any()
            ))
        })
}

/// Creates the Secret `name` with `data`, or replaces the data of the one there.
async fn write(
    secrets: &Api<Secret>,
    cluster: &DEngineCluster,
    name: &str,
    data: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
    exists: bool,
) -> Result<(), Error> {
    let data: BTreeMap<String, ByteString> = data
        .into_iter()
        .map(|(key, value)| (key, ByteString(value.into_bytes())))
        .collect();
    if exists {
        let patch = json!({
            "metadata": { "annotations": annotations },
            "data": data,
        });
        secrets
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        return Ok(());
    }
    let mut metadata = owned_meta(cluster, name.to_string());
    metadata.annotations = Some(annotations);
    let secret = Secret {
        metadata,
        type_: Some("Opaque".to_string()),
        data: Some(data),
        ..Secret::default()
    };
    let params = PostParams {
        field_manager: Some(MANAGER.to_string()),
        ..PostParams::default()
    };
    secrets.create(&params, &secret).await?;
    Ok(())
}
