//! The `dengine` binary without a node: exit statuses and one-line errors that scripts rely
//! on. The commands against running nodes are tested with the node (node/tests/cli.rs).

use std::net::TcpListener;
use std::process::{Command, Output};

fn dengine(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dengine"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("DENGINE_") {
            command.env_remove(name);
        }
    }
    command.args(args).output().expect("run the dengine binary")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A loopback port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("its address").port()
}

#[test]
fn help_succeeds_and_a_usage_error_is_status_1_never_2() {
    let help = dengine(&["--help"]);
    assert_eq!(help.status.code(), Some(0), "{}", stderr(&help));
    assert!(String::from_utf8_lossy(&help.stdout).contains("Usage"));
    // 2 means "cas comparison failed"; a usage error must not look like it.
    let usage = dengine(&["put", "only-a-key"]);
    assert_eq!(usage.status.code(), Some(1), "{}", stderr(&usage));
    assert!(stderr(&usage).contains("Usage"), "{}", stderr(&usage));
}

#[test]
fn an_unreachable_endpoint_is_one_line_naming_it() {
    let down = format!("127.0.0.1:{}", closed_port());
    let run = dengine(&["--endpoints", &down, "--timeout", "2s", "get", "k"]);
    assert_eq!(run.status.code(), Some(1));
    let text = stderr(&run);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("Error: could not connect to any endpoint: ") && text.contains(&down),
        "{text}"
    );
}

#[test]
fn an_https_endpoint_without_a_ca_is_refused_not_downgraded() {
    let endpoint = format!("https://127.0.0.1:{}", closed_port());
    let run = dengine(&["--endpoints", &endpoint, "get", "k"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("--cacert"), "{}", stderr(&run));
}

#[test]
fn an_unreadable_admin_token_file_is_named() {
    let run = dengine(&[
        "--admin-token-file",
        "/nonexistent/token",
        "member",
        "remove",
        "2",
    ]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        stderr(&run).contains("cannot read the admin token file /nonexistent/token"),
        "{}",
        stderr(&run)
    );
}
