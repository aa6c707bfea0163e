//! etcd's own command-line client (Debian's `etcdctl`, etcd 3.4, installed by scripts/setup)
//! against a node's client port: the KV commands with their flags, an interactive txn,
//! compaction, endpoint status, health and hashkv, member list, defrag, and a snapshot that
//! `node restore` founds a data directory from.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{node_command, Cluster};

/// Runs etcdctl against `endpoint` with `args`, feeding it `stdin`.
fn etcdctl(endpoint: &str, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs (scripts/setup installs Debian's etcd-client)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("etcdctl reads its input");
    child.wait_with_output().expect("etcdctl finishes")
}

/// etcdctl's standard output, the command having succeeded.
fn ok(endpoint: &str, args: &[&str]) -> String {
    let output = etcdctl(endpoint, args, "");
    assert!(
        output.status.success(),
        "etcdctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The first `count` lines `etcdctl watch args` prints, within the harness's deadline.
fn watched_lines(endpoint: &str, args: &[&str], count: usize) -> Vec<String> {
    use std::io::BufRead;
    let mut child = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg("watch")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("etcdctl runs");
    let stdout = child.stdout.take().expect("stdout");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let mut seen = Vec::new();
    while seen.len() < count {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        seen.len(),
        count,
        "etcdctl watch {args:?} printed only {seen:?}"
    );
    seen
}

#[tokio::test]
async fn etcdctl_reads_writes_and_administers_a_node() {
    let cluster = Cluster::start(1, &[]).await;
    let endpoint = cluster.nodes[0].spec.client_endpoint();
    let e = endpoint.as_str();

    assert_eq!(ok(e, &["put", "app/a", "1"]), "OK\n");
    ok(e, &["put", "app/b", "2"]);
    ok(e, &["put", "app/a", "3"]);
    assert_eq!(ok(e, &["get", "app/a"]), "app/a\n3\n");
    assert_eq!(ok(e, &["get", "app/a", "--rev=1"]), "app/a\n1\n");
    assert_eq!(
        ok(e, &["get", "app/", "--prefix", "--keys-only"]),
        "app/a\n\napp/b\n\n"
    );
    assert_eq!(
        ok(
            e,
            &[
                "get",
                "app/",
                "--prefix",
                "--sort-by=VALUE",
                "--order=DESCEND",
                "--limit=1"
            ]
        ),
        "app/a\n3\n"
    );
    assert_eq!(ok(e, &["del", "app/b", "--prev-kv"]), "1\napp/b\n2\n");

    // A watch from the first revision, with previous values: what happened to app/a.
    assert_eq!(
        watched_lines(e, &["app/a", "--rev=1", "--prev-kv"], 6),
        ["PUT", "app/a", "1", "PUT", "app/a", "1"]
    );
    assert_eq!(
        watched_lines(e, &["app/", "--prefix", "--rev=4"], 3),
        ["DELETE", "app/b", ""]
    );

    // An interactive txn: compares, then the success requests, then the failure requests.
    let txn = etcdctl(
        e,
        &["txn"],
        "value(\"app/a\") = \"3\"\n\nput app/a 4\n\nget app/a\n\n",
    );
    assert!(
        txn.status.success(),
        "{}",
        String::from_utf8_lossy(&txn.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&txn.stdout), "SUCCESS\n\nOK\n");
    assert_eq!(ok(e, &["get", "app/a", "--print-value-only"]), "4\n");

    // Compaction, and etcd's error below it.
    assert_eq!(ok(e, &["compaction", "3"]), "compacted revision 3\n");
    let compacted = etcdctl(e, &["get", "app/a", "--rev=2"], "");
    assert!(!compacted.status.success());
    assert!(String::from_utf8_lossy(&compacted.stderr)
        .contains("etcdserver: mvcc: required revision has been compacted"));

    // Endpoint commands and the member list.
    let status = ok(e, &["endpoint", "status", "-w", "json"]);
    assert!(status.contains("\"version\":\"3.5.0\""), "{status}");
    // etcdctl 3.4 reports health on standard error.
    let health = etcdctl(e, &["endpoint", "health"], "");
    assert!(health.status.success());
    assert!(String::from_utf8_lossy(&health.stderr).contains("is healthy"));
    assert!(ok(e, &["endpoint", "hashkv"]).starts_with(&format!("{e}, ")));
    let members = ok(e, &["member", "list"]);
    assert!(
        members.starts_with("1, started, node-1, http://"),
        "{members}"
    );
    assert!(ok(e, &["defrag"]).contains("Finished defragmenting"));
    // Auth is off, with no user or role, and etcdctl hears what etcd would say.
    assert_eq!(ok(e, &["user", "list"]), "");
    assert_eq!(ok(e, &["role", "list"]), "");
    let enable = etcdctl(e, &["auth", "enable"], "");
    assert!(String::from_utf8_lossy(&enable.stderr).contains("root user does not exist"));
    let voter = etcdctl(
        e,
        &["member", "add", "n2", "--peer-urls=http://127.0.0.1:1"],
        "",
    );
    assert!(String::from_utf8_lossy(&voter.stderr).contains("member add --learner"));

    // A snapshot saved by etcdctl founds a new member's data directory.
    let snapshot = cluster.dir().join("snapshot.db");
    ok(e, &["snapshot", "save", snapshot.to_str().unwrap()]);
    let restored = cluster.dir().join("restored");
    let restore = node_command()
        .args(["restore", "--id", "1", "--data-dir"])
        .arg(&restored)
        .arg(&snapshot)
        .output()
        .expect("node restore runs");
    let stderr = String::from_utf8_lossy(&restore.stderr);
    assert!(restore.status.success(), "node restore: {stderr}");
}
