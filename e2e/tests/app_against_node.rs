//! The writer application against a real node process on loopback, read back the way the
//! runner reads a member in Kubernetes: `dengine --output json scan` through the node, checked
//! with the same parsing and bookkeeping ([`dengine_e2e::acks`]).
//!
//! The `node` and `dengine` binaries come from the workspace's target directory (`cargo test
//! --workspace`, as scripts/test runs, builds them first), or from DENGINE_E2E_NODE_BIN and
//! DENGINE_E2E_CLI_BIN. Without them the test says so and passes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dengine_e2e::acks::{parse_scan_json, verify, AckBook};

fn binary(env: &str, name: &str) -> Option<PathBuf> {
    if let Ok(path) = std::env::var(env) {
        return Some(PathBuf::from(path));
    }
    // CARGO_TARGET_TMPDIR is <target>/tmp; the workspace's binaries are in <target>/debug.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).parent()?;
    let path = target.join("debug").join(name);
    path.is_file().then_some(path)
}

/// Runs the CLI against `endpoint` with JSON output and `args`, as the runner does in a pod.
fn scan_json(cli: &Path, endpoint: &str, args: &[&str]) -> std::process::Output {
    Command::new(cli)
        .args(["--endpoints", endpoint, "--output", "json"])
        .args(args)
        .output()
        .expect("the CLI runs")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_writer_acknowledges_reads_back_and_every_ack_is_in_the_store() {
    let (Some(node_bin), Some(cli_bin)) = (
        binary("DENGINE_E2E_NODE_BIN", "node"),
        binary("DENGINE_E2E_CLI_BIN", "dengine"),
    ) else {
        println!("SKIPPED: no node/dengine binaries in the target directory (cargo build -p dengine -p dengine-cli --bins, or cargo test --workspace)");
        return;
    };
    let data = tempfile::tempdir().expect("a temporary directory");
    let (client, peer, metrics) = (free_port(), free_port(), free_port());
    let client_addr = format!("127.0.0.1:{client}");
    let _node = Node(
        Command::new(&node_bin)
            .args(["--id", "1", "--data-dir"])
            .arg(data.path().join("node-1"))
            .args(["--client-listen", &client_addr])
            .args(["--peer-listen", &format!("127.0.0.1:{peer}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .env_remove("POD_NAME")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the node starts"),
    );

    // The writer, until 40 writes were acknowledged; it retries while the node starts.
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_dengine-e2e-app"))
        .args([
            "write",
            "--endpoint",
            &client_addr,
            "--pod",
            "e2e-7",
            "--prefix",
            "e2e/",
        ])
        .args([
            "--interval",
            "5ms",
            "--read-every",
            "4",
            "--count",
            "40",
            "--request-timeout",
            "2s",
        ])
        .output()
        .expect("the writer runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "writer failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the writer took {:?}",
        started.elapsed()
    );

    let mut book = AckBook::new("e2e/");
    for line in stdout.lines() {
        book.record("e2e-7", line);
    }
    assert_eq!(book.len(), 40, "{stdout}");
    assert_eq!(book.problems(), Vec::<String>::new(), "{stdout}");
    assert_eq!(
        book.reads_ok(),
        10,
        "every fourth write read back: {stdout}"
    );
    assert_eq!(book.starts().len(), 1);
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("STOP acked=40 ")),
        "{stdout}"
    );

    // Read back as the runner does in a pod: the CLI's JSON scan, linearizable and eventual.
    for consistency in ["linearizable", "eventual"] {
        let scan = scan_json(
            &cli_bin,
            &client_addr,
            &[
                "--consistency",
                consistency,
                "--timeout",
                "10s",
                "scan",
                "e2e/e2e-7/",
            ],
        );
        assert!(
            scan.status.success(),
            "{}",
            String::from_utf8_lossy(&scan.stderr)
        );
        let found = parse_scan_json(&String::from_utf8_lossy(&scan.stdout)).expect("scan JSON");
        let verdict = verify(&book.expected(), &found);
        assert!(verdict.is_ok(), "{consistency}: {verdict}");
        assert_eq!(verdict.checked, 40);
    }

    // And a write that was never made is noticed.
    let mut expected = book.expected();
    expected.insert("e2e/e2e-7/00000000/00000001".into(), "never-written".into());
    let scan = scan_json(&cli_bin, &client_addr, &["scan", "e2e/"]);
    let found = parse_scan_json(&String::from_utf8_lossy(&scan.stdout)).expect("scan JSON");
    let verdict = verify(&expected, &found);
    assert_eq!(
        verdict.missing,
        vec!["e2e/e2e-7/00000000/00000001".to_string()]
    );

    // The application's own read mode.
    let first = book.expected().into_iter().next().expect("a key");
    let read = Command::new(env!("CARGO_BIN_EXE_dengine-e2e-app"))
        .args(["read", "--endpoint", &client_addr, &first.0, "e2e/absent"])
        .output()
        .expect("the reader runs");
    assert_eq!(
        String::from_utf8_lossy(&read.stdout),
        format!("GOT {} {}\nABSENT e2e/absent\n", first.0, first.1)
    );
}
