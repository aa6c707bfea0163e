//! `dengine-operator`: the d-engine operator's command line.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The d-engine operator.
#[derive(Parser, Debug)]
#[command(name = "dengine-operator", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the DEngineCluster CustomResourceDefinition as YAML (what crds/ holds).
    Crd,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crd => print_crd(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("dengine-operator: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_crd() -> Result<(), String> {
    let yaml = dengine_operator::crdgen::crd_yaml().map_err(|e| e.to_string())?;
    std::io::stdout()
        .write_all(yaml.as_bytes())
        .map_err(|e| format!("writing to standard output: {e}"))
}
