//! The `dengine` command-line client, in the style of etcdctl.
//!
//! `args` declares the command line, `commands` holds one file per command (request, call,
//! rendering) and `output` the shared rendering of keys, values, tables and JSON. Dialing,
//! endpoints and errors from a status come from the `dengine-client` crate, so this crate
//! builds without the node (no RocksDB). The binary in `src/main.rs` only parses, runs and
//! reports.

pub mod args;
mod commands;
mod error;
mod output;

use std::process::ExitCode;

pub use args::Cli;
pub use dengine_client::EndpointAddr;
pub use error::CliError;

/// The node's API, client side.
use dengine_client::proto;

/// Exit status of a command that failed with an error.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a `cas` whose comparison did not hold: not an error, but not a write either.
pub const EXIT_COMPARISON_FAILED: u8 = 2;

/// How a command that ran without error ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done; exit status 0.
    Success,
    /// A `cas` comparison failed; exit status 2.
    ComparisonFailed,
}

impl Outcome {
    /// The process exit status for this outcome.
    pub fn exit_code(self) -> ExitCode {
        match self {
            Self::Success => ExitCode::SUCCESS,
            Self::ComparisonFailed => ExitCode::from(EXIT_COMPARISON_FAILED),
        }
    }
}

/// Runs one parsed command line, printing its results to standard output.
pub async fn run(cli: Cli) -> Result<Outcome, CliError> {
    match commands::execute(cli).await {
        // `dengine watch k | head -1`: the reader has gone, which ends the command, not fails it.
        Err(CliError::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(Outcome::Success)
        }
        other => other,
    }
}
