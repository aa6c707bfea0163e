//! `dengine`: the command-line client. Everything but process plumbing lives in the `dengine_cli` library.

use std::process::ExitCode;

use clap::Parser;
use dengine_cli::{self as cli, Cli};

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let command_line = match Cli::try_parse() {
        Ok(command_line) => command_line,
        Err(usage) => {
            // --help and --version arrive here too, and are not failures. A usage error exits 1,
            // not clap's 2, which `cas` reserves for "comparison failed".
            let _ = usage.print();
            return if usage.use_stderr() {
                ExitCode::from(cli::EXIT_FAILURE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli::run(command_line).await {
        Ok(outcome) => outcome.exit_code(),
        Err(error) => {
            eprintln!("Error: {error}");
            ExitCode::from(cli::EXIT_FAILURE)
        }
    }
}
