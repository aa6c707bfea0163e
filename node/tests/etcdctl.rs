//! etcd's own command-line client (Debian's `etcdctl`, etcd 3.4, installed by scripts/setup)
//! against a node's client port: the KV commands with their flags, an interactive txn,
//! compaction, endpoint status, health and hashkv, member list, defrag, and a snapshot that
//! `node restore` founds a data directory from.

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

use common::{node_command, send_signal, wait_for, Cluster};

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
    let watch = Running::start(endpoint, &[&["watch"], args].concat());
    let deadline = std::time::Instant::now() + common::DEADLINE;
    let mut seen = Vec::new();
    while seen.len() < count {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match watch.lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => break,
        }
    }
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

#[tokio::test]
async fn etcdctl_grants_keeps_alive_and_revokes_leases() {
    let cluster = Cluster::start(1, &[]).await;
    let endpoint = cluster.nodes[0].spec.client_endpoint();
    let e = endpoint.as_str();

    let granted = ok(e, &["lease", "grant", "60"]);
    // "lease 694d77aa9e1c0c0a granted with TTL(60s)"
    let id = granted
        .strip_prefix("lease ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("lease grant printed {granted:?}"))
        .to_string();
    assert_eq!(granted, format!("lease {id} granted with TTL(60s)\n"));
    assert_eq!(
        ok(e, &["put", "session", "alive", &format!("--lease={id}")]),
        "OK\n"
    );

    let ttl = ok(e, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(60s), remaining("))
            && ttl.ends_with("attached keys([session])\n"),
        "{ttl}"
    );
    assert_eq!(ok(e, &["lease", "list"]), format!("found 1 leases\n{id}\n"));
    assert_eq!(
        ok(e, &["lease", "keep-alive", "--once", &id]),
        format!("lease {id} keepalived with TTL(60)\n")
    );

    assert_eq!(
        ok(e, &["lease", "revoke", &id]),
        format!("lease {id} revoked\n")
    );
    assert_eq!(ok(e, &["get", "session"]), "");
    assert_eq!(
        ok(e, &["lease", "timetolive", &id]),
        format!("lease {id} already expired\n")
    );
    let missing = etcdctl(e, &["put", "other", "v", &format!("--lease={id}")], "");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("requested lease not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

/// An etcdctl command left running (a lock held, a campaign, an observer), its output read
/// line by line.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Running {
    fn start(endpoint: &str, args: &[&str]) -> Self {
        use std::io::BufRead;
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcdctl runs");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Self { child, lines }
    }

    /// The next line printed, within the harness's deadline.
    fn next_line(&self, what: &str) -> String {
        self.lines
            .recv_timeout(common::DEADLINE)
            .unwrap_or_else(|_| panic!("etcdctl printed no {what} within {:?}", common::DEADLINE))
    }

    /// Nothing printed so far.
    fn silent(&self) -> bool {
        matches!(
            self.lines.try_recv(),
            Err(std::sync::mpsc::TryRecvError::Empty)
        )
    }

    /// SIGTERM: etcdctl unlocks or resigns, and exits.
    fn stop(mut self) {
        send_signal(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The keys under `prefix`, as etcdctl lists them.
fn keys_under(endpoint: &str, prefix: &str) -> usize {
    ok(endpoint, &["get", prefix, "--prefix", "--keys-only"])
        .lines()
        .filter(|line| !line.is_empty())
        .count()
}

/// etcdctl's `lock` and `elect` are etcd's client-side recipes (sessions kept alive by lease
/// keepalives, a queue of keys ordered by create revision, watches for the keys ahead): what
/// Go programs built on `clientv3/concurrency` do.
#[tokio::test]
async fn etcdctl_locks_and_elections_hand_over_in_order() {
    let cluster = Cluster::start(1, &[]).await;
    let endpoint = cluster.nodes[0].spec.client_endpoint();
    let e = endpoint.as_str();

    let first = Running::start(e, &["lock", "app-lock"]);
    let key = first.next_line("lock key");
    assert!(key.starts_with("app-lock/"), "{key}");
    let second = Running::start(e, &["lock", "app-lock", "echo", "second holder"]);
    wait_for("the second contender to queue behind the first", || async {
        match keys_under(e, "app-lock/") {
            2 => Ok(()),
            n => Err(format!("{n} keys queued")),
        }
    })
    .await;
    assert!(
        second.silent(),
        "the second contender ran while the first held the lock"
    );
    first.stop();
    assert_eq!(second.next_line("second holder's output"), "second holder");

    let alice = Running::start(e, &["elect", "job", "alice"]);
    assert!(alice.next_line("leader key").starts_with("job/"));
    assert_eq!(alice.next_line("proclamation"), "alice");
    let observer = Running::start(e, &["elect", "--listen", "job"]);
    assert!(observer.next_line("leader key").starts_with("job/"));
    assert_eq!(observer.next_line("leader value"), "alice");
    let bob = Running::start(e, &["elect", "job", "bob"]);
    wait_for("bob to campaign behind alice", || async {
        match keys_under(e, "job/") {
            2 => Ok(()),
            n => Err(format!("{n} campaigners")),
        }
    })
    .await;
    assert!(bob.silent(), "bob was elected while alice led");
    alice.stop();
    assert!(bob.next_line("leader key").starts_with("job/"));
    assert_eq!(bob.next_line("proclamation"), "bob");
    assert!(observer.next_line("leader key").starts_with("job/"));
    assert_eq!(observer.next_line("new leader value"), "bob");
}

/// `member add` without `--learner` adds a voter etcd's way as far as the client sees; d-engine
/// admits it as a learner and promotes it once it has caught up.
#[tokio::test]
async fn etcdctl_member_add_admits_a_voter_once_it_caught_up() {
    let mut cluster = Cluster::start(1, &[]).await;
    let endpoint = cluster.nodes[0].spec.client_endpoint();
    let e = endpoint.as_str();
    for i in 0..20 {
        ok(e, &["put", &format!("k{i}"), "v"]);
    }
    // The next free id, which `member add` gives the new member.
    let mut joining = cluster.joining_node(2, &[]);
    joining.start().await;
    let peer = format!("--peer-urls=http://{}", joining.spec.peer_endpoint());
    cluster.nodes.push(joining);
    let added = ok(e, &["member", "add", "node-2", &peer]);
    // "Member                2 added to cluster ...": etcd pads the hex id.
    let said: Vec<&str> = added.split_whitespace().take(3).collect();
    assert_eq!(said, ["Member", "2", "added"], "{added}");
    wait_for("member 2 to be promoted to a voter", || async {
        let members = ok(e, &["member", "list"]);
        match members
            .lines()
            .any(|line| line.starts_with("2, started") && line.ends_with(", false"))
        {
            true => Ok(()),
            false => Err(members),
        }
    })
    .await;
    // Both members now count: the new one serves what the first wrote.
    let theirs = cluster.nodes[1].spec.client_endpoint();
    assert_eq!(ok(&theirs, &["get", "k19", "--print-value-only"]), "v\n");
}
