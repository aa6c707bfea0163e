//! `dengine-bench`: see `dengine-bench --help` and docs/benchmarks.md.

use std::process::ExitCode;

use clap::Parser;
use dengine_bench::cli::{Cli, Command};
use dengine_bench::report::{markdown_table, Report};

fn table(paths: &[std::path::PathBuf]) -> anyhow::Result<()> {
    let mut reports = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let report: Report =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        reports.push(report);
    }
    print!("{}", markdown_table(&reports));
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Table { reports }) = &cli.command {
        return table(reports);
    }
    let report = dengine_bench::driver::run(&cli.run).await?;
    print!("{}", report.human());
    if let Some(path) = &cli.run.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)? + "\n")
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("Error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
