//! Running the `dengine` CLI binary.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use super::wait::DEADLINE;

/// What one CLI invocation printed and how it exited.
#[derive(Debug)]
pub struct CliRun {
    /// None when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliRun {
    /// Panics with everything the command printed unless it exited with `code`.
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: expected exit status {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    pub fn expect_success(&self, what: &str) -> &Self {
        self.expect_code(0, what)
    }
}

/// The `dengine` CLI binary. It belongs to the `dengine-cli` package, so cargo does not build
/// it for this package's tests by itself; `cargo test --workspace` (scripts/test) builds every
/// package's binaries into the directory that holds `node`.
pub fn cli_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_node"))
        .with_file_name(format!("dengine{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build -p dengine-cli` (scripts/test builds the \
         whole workspace)",
        path.display()
    );
    path
}

/// Runs `dengine ARGS`, isolated from `DENGINE_*` settings in the caller's environment.
pub async fn dengine(args: &[&str]) -> CliRun {
    dengine_with_env(args, &[]).await
}

/// Runs `dengine ARGS` with the environment variables `env` set, and no other `DENGINE_*` or
/// `AWS_*` settings of the caller's.
#[allow(dead_code)] // not every test binary passes an environment
pub async fn dengine_with_env(args: &[&str], env: &[(&str, &str)]) -> CliRun {
    let mut command = tokio::process::Command::new(cli_binary());
    command.args(args);
    for (name, _) in std::env::vars_os() {
        let name_text = name.to_string_lossy();
        if name_text.starts_with("DENGINE_") || name_text.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command.envs(env.iter().copied());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(DEADLINE, command.output())
        .await
        .unwrap_or_else(|_| panic!("dengine {args:?} did not finish within {DEADLINE:?}"))
        .expect("run the dengine binary");
    CliRun {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
