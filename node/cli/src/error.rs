//! What can go wrong in a CLI command, each rendered as the one line after `Error: `.

use dengine_client::ClientError;

/// A command failure. The binary prints `Error: {self}` and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Connecting or calling failed: no endpoint reachable, a non-OK status, a timeout.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// `endpoint status` reached some endpoints but not all; the rows say which.
    #[error("{failed} of {total} endpoints failed")]
    EndpointsFailed {
        /// Endpoints whose row reports an error.
        failed: usize,
        /// Endpoints asked.
        total: usize,
    },
    /// A backup could not be fetched from object storage, or what arrived is not one.
    #[error("fetching {location}: {message}")]
    Fetch {
        /// The location asked for.
        location: String,
        /// What went wrong.
        message: String,
    },
    /// A backup could not be taken into a directory.
    #[error("saving a backup into {dir}: {message}")]
    Backup {
        /// The directory asked for.
        dir: String,
        /// What went wrong.
        message: String,
    },
    /// Standard output could not be written.
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        Self::Client(status.into())
    }
}

impl From<dengine_client::ConnectFailure> for CliError {
    fn from(failure: dengine_client::ConnectFailure) -> Self {
        Self::Client(ClientError::NoEndpointReachable {
            failures: vec![failure],
        })
    }
}

/// A command line or file that cannot be used, as the server would refuse it.
pub fn invalid(message: impl Into<String>) -> CliError {
    tonic::Status::invalid_argument(message.into()).into()
}
