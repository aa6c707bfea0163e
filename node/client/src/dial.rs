//! How to dial a node: timeouts, TLS and the admin token.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::endpoint::EndpointAddr;
use crate::error::{error_chain, ClientError, ConnectFailure};

/// How to dial nodes; one `Dial` serves every node of a cluster.
#[derive(Debug, Clone)]
pub struct Dial {
    /// Bounds the connection (TCP and HTTP/2 handshakes) and each request.
    pub timeout: Duration,
    tls: Option<ClientTlsConfig>,
    /// Sent as `authorization: Bearer <token>`; the Admin API's changes need it.
    token: Option<MetadataValue<Ascii>>,
}

impl Dial {
    /// Plain HTTP/2, no token.
    pub fn new(timeout: Duration) -> Self {
        Dial {
            timeout,
            tls: None,
            token: None,
        }
    }

    /// TLS checked against `ca` (PEM), presenting `identity` (certificate and key, PEM) when
    /// the server asks for a client certificate.
    pub fn with_tls(mut self, ca: Vec<u8>, identity: Option<(Vec<u8>, Vec<u8>)>) -> Self {
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(cert, key));
        }
        self.tls = Some(tls);
        self
    }

    /// The admin token every request carries, if any. Refused when it has characters a
    /// header cannot carry (no node could have been configured with it either).
    pub fn with_token(mut self, token: Option<&str>) -> Result<Self, ClientError> {
        self.token = match token {
            None => None,
            Some(token) => Some(
                MetadataValue::try_from(format!("Bearer {token}"))
                    .map_err(|_| ClientError::InvalidToken)?,
            ),
        };
        Ok(self)
    }

    /// Whether connections use TLS.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The tonic endpoint for `address`. `server_name`, with TLS, is the name the server's
    /// certificate is checked against instead of the host dialled (the operator dials pod IPs,
    /// which certificates do not name).
    pub fn endpoint(
        &self,
        address: &EndpointAddr,
        server_name: Option<&str>,
    ) -> Result<Endpoint, ConnectFailure> {
        let failure = |reason: String| ConnectFailure {
            endpoint: address.clone(),
            reason,
        };
        if address.is_https() && self.tls.is_none() {
            return Err(failure(
                "an https:// endpoint needs a CA (--cacert), the one that signed its certificate"
                    .into(),
            ));
        }
        let mut endpoint = Endpoint::from_shared(address.uri(self.tls.is_some()))
            .map_err(|error| failure(error_chain(&error)))?
            .connect_timeout(self.timeout)
            // Until the response's headers: a stream (a watch, a backup) may last longer.
            .timeout(self.timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &self.tls {
            let tls = match server_name {
                Some(name) => tls.clone().domain_name(name),
                None => tls.clone(),
            };
            endpoint = endpoint
                .tls_config(tls)
                .map_err(|error| failure(error_chain(&error)))?;
        }
        Ok(endpoint)
    }

    /// Connects to `address`, waiting at most the timeout for the TCP, TLS and HTTP/2
    /// handshakes together (tonic's connect timeout bounds only the first).
    pub async fn connect(
        &self,
        address: &EndpointAddr,
        server_name: Option<&str>,
    ) -> Result<Channel, ConnectFailure> {
        let endpoint = self.endpoint(address, server_name)?;
        match tokio::time::timeout(self.timeout, endpoint.connect()).await {
            Ok(Ok(channel)) => Ok(channel),
            Ok(Err(error)) => Err(ConnectFailure {
                endpoint: address.clone(),
                reason: error_chain(&error),
            }),
            Err(_) => Err(ConnectFailure {
                endpoint: address.clone(),
                reason: format!("timed out after {:?}", self.timeout),
            }),
        }
    }

    /// A channel that connects on first use and reconnects after a failure, each request
    /// bounded by the timeout: for long-running clients that must outlive a node's restarts.
    pub fn connect_lazy(&self, address: &EndpointAddr) -> Result<Channel, ConnectFailure> {
        Ok(self.endpoint(address, None)?.connect_lazy())
    }

    /// Wraps a message in a request that carries the token and tells the server how long the
    /// client will wait, so the server can give up on work nobody will read.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        if let Some(token) = &self.token {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        request
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_https_endpoint_without_a_ca_is_refused_not_downgraded() {
        let endpoint = EndpointAddr::parse("https://127.0.0.1:1").expect("valid endpoint");
        let dial = Dial::new(Duration::from_secs(1));
        let failure = dial.connect(&endpoint, None).await.unwrap_err();
        assert!(failure.reason.contains("needs a CA"), "{}", failure.reason);
    }

    #[test]
    fn requests_carry_the_token_and_the_timeout() {
        let dial = Dial::new(Duration::from_millis(1500))
            .with_token(Some("s3cret"))
            .expect("a valid token");
        let request = dial.request(());
        let metadata = request.metadata();
        assert_eq!(
            metadata.get("authorization").and_then(|v| v.to_str().ok()),
            Some("Bearer s3cret")
        );
        assert!(metadata.get("grpc-timeout").is_some());
        let anonymous = Dial::new(Duration::from_secs(1)).request(());
        assert!(anonymous.metadata().get("authorization").is_none());
        let refused = Dial::new(Duration::from_secs(1)).with_token(Some("line\nbreak"));
        assert!(matches!(refused, Err(ClientError::InvalidToken)));
    }
}
