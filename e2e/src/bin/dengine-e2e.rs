//! The end-to-end runner; see `dengine_e2e::runner`.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = dengine_e2e::runner::Cli::parse();
    dengine_e2e::runner::main(cli).await
}
