//! What can go wrong talking to a node, each said on one line, and which failures are worth
//! sending the same request again for.

use std::fmt;
use std::time::Duration;

use tonic::{Code, Status};

use crate::endpoint::EndpointAddr;

/// A failed call or connection.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No endpoint accepted a connection.
    #[error("could not connect to any endpoint: {}", join_failures(.failures))]
    NoEndpointReachable {
        /// Every endpoint tried, in order, with its reason.
        failures: Vec<ConnectFailure>,
    },
    /// The server answered with a non-OK status.
    #[error("{}", status_line(.0))]
    Status(Box<Status>),
    /// The server did not answer within the timeout.
    #[error("DEADLINE_EXCEEDED: no answer from {endpoint} within {after:?}")]
    Timeout {
        /// The endpoint that was silent.
        endpoint: EndpointAddr,
        /// The timeout in force.
        after: Duration,
    },
    /// The admin token cannot be sent in a header.
    #[error("the admin token has characters not allowed in a header")]
    InvalidToken,
}

impl From<Status> for ClientError {
    fn from(status: Status) -> Self {
        // Boxed: a Status is large, and every Result of a caller carries this error type.
        Self::Status(Box::new(status))
    }
}

/// Why one endpoint could not be reached.
#[derive(Debug, Clone)]
pub struct ConnectFailure {
    /// The endpoint tried.
    pub endpoint: EndpointAddr,
    /// What went wrong, e.g. `tcp connect error: Connection refused (os error 111)`.
    pub reason: String,
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.endpoint, single_line(&self.reason))
    }
}

impl std::error::Error for ConnectFailure {}

fn join_failures(failures: &[ConnectFailure]) -> String {
    if failures.is_empty() {
        return "no endpoints given".to_string();
    }
    failures
        .iter()
        .map(ConnectFailure::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `<CODE>: <message>`, on one line, with the code spelled as in the gRPC specification so
/// that it can be looked up and matched by scripts.
pub fn status_line(status: &Status) -> String {
    let message = single_line(status.message());
    if message.is_empty() {
        code_name(status.code()).to_string()
    } else {
        format!("{}: {message}", code_name(status.code()))
    }
}

/// The canonical name of a gRPC status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Whether the same request may succeed if sent again after a moment: the node is not the
/// leader, or is gone, or leadership changed under the request, or the answer was lost. A
/// write retried after UNKNOWN or DEADLINE_EXCEEDED may apply twice, which a put does not
/// mind and a compare-and-swap does. FAILED_PRECONDITION is deliberately not among them: gRPC
/// reserves it for "do not retry until the state is fixed".
///
/// A status the client made up from a broken connection is retryable whatever its code: tonic
/// reports a request caught by a node's graceful shutdown (an HTTP/2 GOAWAY) as INTERNAL, but
/// no node answered it.
pub fn is_retryable(status: &Status) -> bool {
    is_connection_failure(status)
        || matches!(
            status.code(),
            Code::Unavailable
                | Code::Unknown
                | Code::Cancelled
                | Code::DeadlineExceeded
                | Code::Aborted
        )
}

/// Whether `status` was made up by the client from a failed connection, not sent by a node.
pub fn is_connection_failure(status: &Status) -> bool {
    std::error::Error::source(status)
        .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some())
}

/// A transport error's own message is just "transport error"; the cause chain says what
/// actually went wrong ("tcp connect error: Connection refused (os error 111)").
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
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

/// An error must stay one line so that `2>&1 | tail -1` and log scrapers see all of it.
fn single_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(text: &str) -> EndpointAddr {
        EndpointAddr::parse(text).expect("valid endpoint")
    }

    #[test]
    fn a_status_is_code_then_message_on_one_line() {
        let error = ClientError::from(Status::out_of_range(
            "revision 3 is compacted;\noldest retained is 40",
        ));
        assert_eq!(
            error.to_string(),
            "OUT_OF_RANGE: revision 3 is compacted; oldest retained is 40"
        );
        let bare = ClientError::from(Status::unavailable(""));
        assert_eq!(bare.to_string(), "UNAVAILABLE");
    }

    #[test]
    fn an_unreachable_cluster_names_every_endpoint_tried() {
        let error = ClientError::NoEndpointReachable {
            failures: vec![
                ConnectFailure {
                    endpoint: endpoint("10.0.0.1:2379"),
                    reason: "tcp connect error: Connection refused (os error 111)".into(),
                },
                ConnectFailure {
                    endpoint: endpoint("10.0.0.2:2379"),
                    reason: "timed out after 5s".into(),
                },
            ],
        };
        assert_eq!(
            error.to_string(),
            "could not connect to any endpoint: 10.0.0.1:2379 (tcp connect error: Connection \
             refused (os error 111)), 10.0.0.2:2379 (timed out after 5s)"
        );
    }

    #[test]
    fn a_timeout_names_the_endpoint_and_the_limit() {
        let error = ClientError::Timeout {
            endpoint: endpoint("10.0.0.1:2379"),
            after: Duration::from_millis(500),
        };
        assert_eq!(
            error.to_string(),
            "DEADLINE_EXCEEDED: no answer from 10.0.0.1:2379 within 500ms"
        );
    }

    #[test]
    fn between_leaders_is_retryable_and_a_refusal_is_not() {
        for code in [Code::Unavailable, Code::Unknown, Code::Aborted] {
            assert!(is_retryable(&Status::new(code, "")), "{code:?}");
        }
        for code in [
            Code::InvalidArgument,
            Code::FailedPrecondition,
            Code::PermissionDenied,
            Code::OutOfRange,
        ] {
            assert!(!is_retryable(&Status::new(code, "")), "{code:?}");
        }
    }
}
