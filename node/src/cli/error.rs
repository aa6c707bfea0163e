//! What can go wrong in a CLI command, each rendered as the one line after `Error: `.

use std::fmt;
use std::time::Duration;

use tonic::Code;

use super::connect::EndpointAddr;

/// A command failure. The binary prints `Error: {self}` and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// No endpoint accepted a connection.
    #[error("could not connect to any endpoint: {}", join_failures(.failures))]
    NoEndpointReachable {
        /// Every endpoint tried, in order, with its reason.
        failures: Vec<ConnectFailure>,
    },
    /// The server answered with a non-OK status.
    #[error("{}", status_line(.0))]
    Status(Box<tonic::Status>),
    /// The server did not answer within `--timeout`.
    #[error("DEADLINE_EXCEEDED: no answer from {endpoint} within {after:?}")]
    Timeout {
        /// The endpoint that was silent.
        endpoint: EndpointAddr,
        /// The `--timeout` in force.
        after: Duration,
    },
    /// `endpoint status` reached some endpoints but not all; the rows say which.
    #[error("{failed} of {total} endpoints failed")]
    EndpointsFailed {
        /// Endpoints whose row reports an error.
        failed: usize,
        /// Endpoints asked.
        total: usize,
    },
    /// Standard output could not be written.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        // Boxed: a Status is large, and every Result in the CLI carries this error type.
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
pub fn status_line(status: &tonic::Status) -> String {
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

/// The error must stay one line so that `2>&1 | tail -1` and log scrapers see all of it.
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
        let error = CliError::from(tonic::Status::out_of_range(
            "revision 3 is compacted;\noldest retained is 40",
        ));
        assert_eq!(
            error.to_string(),
            "OUT_OF_RANGE: revision 3 is compacted; oldest retained is 40"
        );
        let bare = CliError::from(tonic::Status::unavailable(""));
        assert_eq!(bare.to_string(), "UNAVAILABLE");
    }

    #[test]
    fn an_unreachable_cluster_names_every_endpoint_tried() {
        let error = CliError::NoEndpointReachable {
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
        let error = CliError::Timeout {
            endpoint: endpoint("10.0.0.1:2379"),
            after: Duration::from_millis(500),
        };
        assert_eq!(
            error.to_string(),
            "DEADLINE_EXCEEDED: no answer from 10.0.0.1:2379 within 500ms"
        );
    }
}
