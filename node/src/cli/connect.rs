//! Endpoint selection: which node the CLI talks to.
//!
//! Endpoints are tried in the order given and the first that accepts a connection is used for
//! the whole command, so a user who lists the local node first always talks to it while it is up.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use tonic::codegen::http::uri::Authority;
use tonic::transport::{Channel, Endpoint};

use super::error::{CliError, ConnectFailure};
use crate::proto::admin_client::AdminClient;
use crate::proto::kv_client::KvClient;

/// The port of the client API when an endpoint names only a host, as etcd's.
pub const DEFAULT_CLIENT_PORT: u16 = 2379;

/// A node's client address as `host:port`, normalised from what the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAddr {
    authority: String,
}

impl EndpointAddr {
    /// Accepts `host:port`, `http://host:port` and `host` (port 2379), with an optional trailing
    /// `/`. `https://` is refused: this build has no TLS, and a silent downgrade to plain text
    /// would be worse than an error.
    pub fn parse(input: &str) -> Result<Self, String> {
        let text = input.trim();
        if text.is_empty() {
            return Err("empty endpoint".to_string());
        }
        let without_scheme = match text.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(format!(
                "{text:?}: https is not supported by this build; use host:port or http://host:port"
            ))
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
        Ok(Self { authority })
    }

    /// The URI tonic dials.
    pub fn uri(&self) -> String {
        format!("http://{}", self.authority)
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

impl Connection {
    /// Connects to the first endpoint that answers, or names every endpoint tried and why it
    /// failed.
    pub async fn open_first(
        endpoints: &[EndpointAddr],
        timeout: Duration,
    ) -> Result<Self, CliError> {
        let mut failures = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            match Self::open(endpoint, timeout).await {
                Ok(connection) => return Ok(connection),
                Err(failure) => failures.push(failure),
            }
        }
        Err(CliError::NoEndpointReachable { failures })
    }

    /// Connects to one endpoint, waiting at most `timeout`.
    pub async fn open(endpoint: &EndpointAddr, timeout: Duration) -> Result<Self, ConnectFailure> {
        let failure = |reason: String| ConnectFailure {
            endpoint: endpoint.clone(),
            reason,
        };
        let dialer = Endpoint::from_shared(endpoint.uri())
            .map_err(|error| failure(error_chain(&error)))?
            .connect_timeout(timeout)
            .tcp_nodelay(true);
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
    fn the_dialled_uri_is_plain_http() {
        let endpoint = EndpointAddr::parse("10.0.0.7:2379").expect("valid endpoint");
        assert_eq!(endpoint.uri(), "http://10.0.0.7:2379");
    }

    #[test]
    fn rejects_what_cannot_be_dialled() {
        for bad in [
            "",
            "   ",
            "https://127.0.0.1:2379",
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

    #[test]
    fn https_is_refused_with_a_reason() {
        let message = EndpointAddr::parse("https://a:1").unwrap_err();
        assert!(message.contains("https is not supported"), "{message}");
    }
}
