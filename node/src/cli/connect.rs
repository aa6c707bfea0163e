//! Endpoint selection: which node the CLI talks to.
//!
//! Endpoints are tried in the order given and the first that accepts a connection is used for
//! the whole command, so a user who lists the local node first always talks to it while it is up.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use std::path::Path;
use tonic::codegen::http::uri::Authority;

use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use super::error::{CliError, ConnectFailure};
use crate::proto::admin_client::AdminClient;
use crate::proto::kv_client::KvClient;

/// The port of the client API when an endpoint names only a host, as etcd's.
pub const DEFAULT_CLIENT_PORT: u16 = 2379;

/// A node's client address as `host:port`, normalised from what the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAddr {
    authority: String,
    /// Written as `https://`: must be dialled over TLS.
    https: bool,
}

impl EndpointAddr {
    /// Accepts `host:port`, `http://host:port`, `https://host:port` and `host` (port 2379),
    /// with an optional trailing `/`. TLS is used when `--cacert` is given; an `https://`
    /// endpoint without it is refused when dialled rather than silently downgraded.
    pub fn parse(input: &str) -> Result<Self, String> {
        let text = input.trim();
        if text.is_empty() {
            return Err("empty endpoint".to_string());
        }
        let https = text
            .split_once("://")
            .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("https"));
        let without_scheme = match text.split_once("://") {
            Some((scheme, rest))
                if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
            {
                rest
            }
            Some((scheme, _)) => {
                return Err(format!(
                    "{text:?}: unsupported scheme {scheme:?}; use host:port"
                ))
            }
            None => text,
        };
        let host_port = without_scheme.strip_suffix('/').unwrap_or(without_scheme);
        if host_port.is_empty() {
            return Err(format!("{text:?}: missing host"));
        }
        if host_port.contains('/') {
            return Err(format!(
                "{text:?}: an endpoint cannot have a path; use host:port"
            ));
        }
        if host_port.contains('@') {
            return Err(format!(
                "{text:?}: an endpoint cannot carry credentials; use host:port"
            ));
        }
        // The port follows the last ':' outside an IPv6 literal's brackets.
        let port = match host_port.rfind(']') {
            Some(bracket) => host_port[bracket + 1..].strip_prefix(':'),
            None => host_port.rsplit_once(':').map(|(_, port)| port),
        };
        let authority = match port {
            Some(port) if port.parse::<u16>().is_ok() => host_port.to_string(),
            Some(port) => return Err(format!("{text:?}: invalid port {port:?}")),
            None => format!("{host_port}:{DEFAULT_CLIENT_PORT}"),
        };
        authority
            .parse::<Authority>()
            .map_err(|_| format!("{text:?}: not a valid host:port"))?;
        Ok(Self { authority, https })
    }

    /// The URI tonic dials, over TLS or not.
    pub fn uri(&self, tls: bool) -> String {
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }
}

impl fmt::Display for EndpointAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.authority)
    }
}

/// An open channel to one node, with the per-request timeout every call shares.
#[derive(Debug, Clone)]
pub struct Connection {
    endpoint: EndpointAddr,
    channel: Channel,
    timeout: Duration,
}

/// How the CLI dials a node.
#[derive(Debug, Clone)]
pub struct Dial {
    /// For the connection and for each request.
    pub timeout: Duration,
    /// TLS, when `--cacert` was given.
    pub tls: Option<ClientTlsConfig>,
}

impl Dial {
    /// Reads the TLS files named by `--cacert` and `--cert`/`--key`.
    pub fn new(
        timeout: Duration,
        cacert: Option<&Path>,
        identity: Option<(&Path, &Path)>,
    ) -> Result<Self, CliError> {
        let read = |flag: &str, path: &Path| {
            std::fs::read(path).map_err(|e| {
                CliError::from(tonic::Status::invalid_argument(format!(
                    "cannot read {flag} {}: {e}",
                    path.display()
                )))
            })
        };
        let tls =
            match cacert {
                None if identity.is_some() => return Err(tonic::Status::invalid_argument(
                    "--cert and --key need --cacert: the CA that signed the server's certificate",
                )
                .into()),
                None => None,
                Some(ca) => {
                    let mut tls = ClientTlsConfig::new()
                        .ca_certificate(Certificate::from_pem(read("--cacert", ca)?));
                    if let Some((cert, key)) = identity {
                        tls = tls.identity(Identity::from_pem(
                            read("--cert", cert)?,
                            read("--key", key)?,
                        ));
                    }
                    Some(tls)
                }
            };
        Ok(Dial { timeout, tls })
    }
}

impl Connection {
    /// Connects to the first endpoint that answers, or names every endpoint tried and why it
    /// failed.
    pub async fn open_first(endpoints: &[EndpointAddr], dial: &Dial) -> Result<Self, CliError> {
        let mut failures = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            match Self::open(endpoint, dial).await {
                Ok(connection) => return Ok(connection),
                Err(failure) => failures.push(failure),
            }
        }
        Err(CliError::NoEndpointReachable { failures })
    }

    /// Connects to one endpoint, waiting at most `timeout`.
    pub async fn open(endpoint: &EndpointAddr, dial: &Dial) -> Result<Self, ConnectFailure> {
        let failure = |reason: String| ConnectFailure {
            endpoint: endpoint.clone(),
            reason,
        };
        let timeout = dial.timeout;
        if endpoint.https && dial.tls.is_none() {
            return Err(failure(
                "an https:// endpoint needs --cacert, the CA that signed its certificate".into(),
            ));
        }
        let mut dialer = Endpoint::from_shared(endpoint.uri(dial.tls.is_some()))
            .map_err(|error| failure(error_chain(&error)))?
            .connect_timeout(timeout)
            .tcp_nodelay(true);
        if let Some(tls) = &dial.tls {
            dialer = dialer
                .tls_config(tls.clone())
                .map_err(|error| failure(error_chain(&error)))?;
        }
        // connect_timeout bounds the TCP handshake only; this bounds the HTTP/2 handshake too.
        match tokio::time::timeout(timeout, dialer.connect()).await {
            Ok(Ok(channel)) => Ok(Self {
                endpoint: endpoint.clone(),
                channel,
                timeout,
            }),
            Ok(Err(error)) => Err(failure(error_chain(&error))),
            Err(_) => Err(failure(format!("timed out after {timeout:?}"))),
        }
    }

    /// A client of the KV service on this connection.
    pub fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel.clone())
    }

    /// A client of the Admin service on this connection.
    pub fn admin(&self) -> AdminClient<Channel> {
        AdminClient::new(self.channel.clone())
    }

    /// Wraps a message in a request that tells the server how long the CLI will wait, so the
    /// server can give up on work nobody will read.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.set_timeout(self.timeout);
        request
    }

    /// Awaits a call, failing with a timeout naming this endpoint when the server is silent.
    pub async fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, CliError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(status.into()),
            Err(_) => Err(CliError::Timeout {
                endpoint: self.endpoint.clone(),
                after: self.timeout,
            }),
        }
    }
}

/// A transport error's own message is just "transport error"; the cause chain says what
/// actually went wrong ("tcp connect error: Connection refused (os error 111)").
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.len() > 1 && parts[0] == "transport error" {
        parts.remove(0);
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(input: &str) -> String {
        match EndpointAddr::parse(input) {
            Ok(endpoint) => endpoint.to_string(),
            Err(message) => panic!("{input:?} rejected: {message}"),
        }
    }

    #[test]
    fn accepts_host_port_with_or_without_http() {
        assert_eq!(parsed("127.0.0.1:2379"), "127.0.0.1:2379");
        assert_eq!(parsed("http://127.0.0.1:2379"), "127.0.0.1:2379");
        assert_eq!(
            parsed("HTTP://node-1.example:32379/"),
            "node-1.example:32379"
        );
        assert_eq!(parsed("  localhost:2379  "), "localhost:2379");
        assert_eq!(parsed("[::1]:2379"), "[::1]:2379");
    }

    #[test]
    fn a_missing_port_defaults_to_the_client_port() {
        assert_eq!(parsed("node-1"), "node-1:2379");
        assert_eq!(parsed("http://10.0.0.7"), "10.0.0.7:2379");
        assert_eq!(parsed("[::1]"), "[::1]:2379");
    }

    #[test]
    fn the_dialled_uri_follows_tls() {
        let endpoint = EndpointAddr::parse("10.0.0.7:2379").expect("valid endpoint");
        assert_eq!(endpoint.uri(false), "http://10.0.0.7:2379");
        assert_eq!(endpoint.uri(true), "https://10.0.0.7:2379");
    }

    #[test]
    fn rejects_what_cannot_be_dialled() {
        for bad in [
            "",
            "   ",
            "unix:///tmp/sock",
            "http://",
            "127.0.0.1:2379/v3",
            "user@127.0.0.1:2379",
            "127.0.0.1:",
            "127.0.0.1:notaport",
            "127.0.0.1:99999",
            "two words:1",
        ] {
            assert!(
                EndpointAddr::parse(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[tokio::test]
    async fn an_https_endpoint_without_a_ca_is_refused_not_downgraded() {
        let endpoint = EndpointAddr::parse("https://127.0.0.1:1").expect("valid endpoint");
        let dial = Dial::new(Duration::from_secs(1), None, None).expect("no TLS");
        let failure = Connection::open(&endpoint, &dial).await.unwrap_err();
        assert!(
            failure.reason.contains("needs --cacert"),
            "{}",
            failure.reason
        );
    }

    #[test]
    fn a_client_certificate_needs_a_ca() {
        let path = Path::new("/nonexistent");
        let error = Dial::new(Duration::from_secs(1), None, Some((path, path))).unwrap_err();
        assert!(error.to_string().contains("need --cacert"), "{error}");
    }
}
