//! A node's address as a user writes it.

use std::fmt;

use tonic::codegen::http::uri::Authority;

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
    /// with an optional trailing `/`. TLS is used when the [`Dial`](crate::Dial) has it; an
    /// `https://` endpoint without it is refused when dialled rather than silently downgraded.
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

    /// Whether it was written as `https://`, and so must be dialled over TLS.
    pub fn is_https(&self) -> bool {
        self.https
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
}
