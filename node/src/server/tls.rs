//! TLS: mutual TLS between peers, and optionally TLS on the client listener.
//!
//! One certificate per node, signed by a CA every member trusts (in Kubernetes, a
//! `kubernetes.io/tls` Secret with `ca.crt`, as cert-manager writes it). The peer listener
//! serves the Raft and admin APIs, so it asks every client for a certificate the CA signed:
//! a peer, or the operator with the cluster's certificate. Connections to peers present this
//! node's certificate and check the peer's against the CA and the address's host name.

use std::path::Path;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use super::config::NodeConfig;

/// The node's TLS material, read once at start.
#[derive(Clone)]
pub struct Tls {
    identity: Identity,
    ca: Certificate,
    /// Whether the client listener is served over TLS too.
    pub client: bool,
}

/// A TLS file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{setting} {path}: {error}")]
pub struct TlsError {
    setting: &'static str,
    path: String,
    error: std::io::Error,
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError {
        setting,
        path: path.display().to_string(),
        error,
    })
}

impl Tls {
    /// The TLS settings of `config`; `None` when TLS is off (validation makes the three files
    /// all-or-nothing).
    pub fn load(config: &NodeConfig) -> Result<Option<Tls>, TlsError> {
        let (Some(cert), Some(key), Some(ca)) = (
            &config.tls_cert_file,
            &config.tls_key_file,
            &config.tls_ca_file,
        ) else {
            return Ok(None);
        };
        Ok(Some(Tls {
            identity: Identity::from_pem(read("tls_cert_file", cert)?, read("tls_key_file", key)?),
            ca: Certificate::from_pem(read("tls_ca_file", ca)?),
            client: config.client_tls,
        }))
    }

    /// The peer listener's configuration: clients must present a certificate the CA signed.
    pub fn peer_server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
    }

    /// The client listener's configuration: server authentication only.
    pub fn client_server(&self) -> ServerTlsConfig {
        ServerTlsConfig::new().identity(self.identity.clone())
    }

    /// The configuration for connecting to a peer, presenting this node's certificate.
    pub fn peer_client(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
    }
}

/// An endpoint for the peer at `address` (`host:port`): over mutual TLS when `tls` is given,
/// the host being the name checked against the peer's certificate.
pub fn peer_endpoint(
    address: &str,
    tls: Option<&Tls>,
) -> Result<Endpoint, tonic::transport::Error> {
    match tls {
        Some(tls) => {
            Endpoint::from_shared(format!("https://{address}"))?.tls_config(tls.peer_client())
        }
        None => Endpoint::from_shared(format!("http://{address}")),
    }
}
