//! The `dengine` CLI binary against a real single-node cluster: what a user types and sees.

mod common;

use serde_json::Value;

use common::{dengine, free_ports, CliRun, Cluster};

/// `dengine --endpoints ENDPOINT ARGS`.
async fn run(endpoint: &str, args: &[&str]) -> CliRun {
    let mut all = vec!["--endpoints", endpoint, "--timeout", "10s"];
    all.extend_from_slice(args);
    dengine(&all).await
}

/// Runs a command that must succeed and returns its standard output.
async fn ok(endpoint: &str, args: &[&str]) -> String {
    let result = run(endpoint, args).await;
    result.expect_success(&format!("dengine {args:?}"));
    result.stdout
}

/// Runs a command that must print one line of JSON, and parses it.
async fn json(endpoint: &str, args: &[&str]) -> Value {
    let mut with_json = args.to_vec();
    with_json.extend(["-o", "json"]);
    let stdout = ok(endpoint, &with_json).await;
    assert_eq!(
        stdout.lines().count(),
        1,
        "one JSON line expected:\n{stdout}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{stdout}"))
}

/// Panics unless the command failed with status 1 and exactly one `Error:` line on stderr,
/// containing each of `mentions`; returns that line.
fn assert_one_line_error(result: &CliRun, mentions: &[&str], what: &str) -> String {
    result.expect_code(1, what);
    let stderr = result.stderr.trim_end();
    assert_eq!(
        stderr.lines().count(),
        1,
        "{what}: one line on stderr expected:\n{stderr}"
    );
    assert!(stderr.starts_with("Error: "), "{what}: {stderr}");
    for mention in mentions {
        assert!(
            stderr.contains(mention),
            "{what}: should mention {mention:?}: {stderr}"
        );
    }
    assert!(
        result.stdout.is_empty(),
        "{what}: nothing on stdout expected:\n{}",
        result.stdout
    );
    stderr.to_string()
}

#[tokio::test]
async fn put_get_del_scan_and_cas_round_trip() {
    let cluster = Cluster::start(1, &[]).await;
    let endpoint = cluster.nodes[0].spec.client_endpoint();
    let e = endpoint.as_str();

    assert_eq!(ok(e, &["put", "app/a", "1"]).await, "OK (rev 1)\n");
    assert_eq!(ok(e, &["put", "app/b", "two words"]).await, "OK (rev 2)\n");
    assert_eq!(ok(e, &["get", "app/a"]).await, "app/a\n1\n");
    assert_eq!(
        ok(e, &["get", "app/b", "--consistency", "eventual"]).await,
        "app/b\ntwo words\n"
    );

    let found = json(e, &["get", "app/a"]).await;
    assert_eq!(found["found"], true);
    assert_eq!(found["kv"]["key"], "app/a");
    assert_eq!(found["kv"]["value"], "1");
    assert_eq!(found["kv"]["create_revision"], 1);
    assert_eq!(found["kv"]["mod_revision"], 1);
    assert_eq!(found["kv"]["version"], 1);
    assert_eq!(found["header"]["revision"], 2);

    assert_eq!(
        ok(e, &["get", "app/missing"]).await,
        "",
        "a missing key prints nothing"
    );
    let missing = json(e, &["get", "app/missing"]).await;
    assert_eq!(missing["found"], false);

    assert_eq!(
        ok(e, &["scan", "app/"]).await,
        "app/a\n1\napp/b\ntwo words\n"
    );
    let first_page = run(e, &["scan", "app/", "--limit", "1", "--keys-only"]).await;
    first_page.expect_success("scan --limit 1");
    assert_eq!(first_page.stdout, "app/a\n");
    assert!(
        first_page.stderr.contains("--all"),
        "a cut-off scan says how to get the rest: {}",
        first_page.stderr
    );
    assert_eq!(
        ok(e, &["scan", "app/", "--limit", "1", "--all", "--keys-only"]).await,
        "app/a\napp/b\n"
    );
    let scanned = json(e, &["scan", "app/"]).await;
    assert_eq!(scanned["count"], 2);
    assert_eq!(scanned["more"], false);
    assert_eq!(scanned["kvs"][1]["value"], "two words");

    // cas: exit status 0 when it swaps, 2 when the comparison fails.
    assert_eq!(
        ok(e, &["cas", "app/a", "10", "--expect-value", "1"]).await,
        "OK (rev 3)\n"
    );
    let failed = run(e, &["cas", "app/a", "11", "--expect-value", "1"]).await;
    failed.expect_code(2, "cas against a stale value");
    assert_eq!(failed.stdout, "FAILED (mod_revision 3)\napp/a\n10\n");
    assert_eq!(
        ok(e, &["cas", "app/a", "12", "--expect-mod-revision", "3"]).await,
        "OK (rev 4)\n"
    );
    run(e, &["cas", "app/a", "13", "--expect-mod-revision", "3"])
        .await
        .expect_code(2, "cas against a stale mod revision");
    assert_eq!(
        ok(e, &["cas", "app/c", "new", "--expect-absent"]).await,
        "OK (rev 5)\n"
    );
    let exists = run(e, &["cas", "app/c", "newer", "--expect-absent"]).await;
    exists.expect_code(2, "cas --expect-absent on an existing key");
    assert!(exists.stdout.starts_with("FAILED"), "{}", exists.stdout);
    assert_eq!(ok(e, &["get", "app/a"]).await, "app/a\n12\n");

    assert_eq!(ok(e, &["del", "app/b"]).await, "1\n");
    assert_eq!(
        ok(e, &["del", "app/b"]).await,
        "0\n",
        "deleting a missing key deletes 0"
    );
    assert_eq!(ok(e, &["get", "app/b"]).await, "");
    assert_eq!(ok(e, &["scan", "", "--keys-only"]).await, "app/a\napp/c\n");
}

#[tokio::test]
async fn member_list_and_endpoint_status_describe_the_node() {
    let cluster = Cluster::start(1, &[]).await;
    let spec = &cluster.nodes[0].spec;
    let e = spec.client_endpoint();
    let e = e.as_str();

    let table = ok(e, &["member", "list"]).await;
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "a header and one member:\n{table}");
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(
        rows[1],
        vec!["1", "voter", spec.peer_endpoint().as_str(), "true"],
        "{table}"
    );
    let members = json(e, &["member", "list"]).await;
    assert_eq!(members["leader_id"], 1);
    assert_eq!(members["members"][0]["id"], 1);
    assert_eq!(members["members"][0]["role"], "voter");
    assert_eq!(members["members"][0]["peer_address"], spec.peer_endpoint());
    assert_eq!(members["members"][0]["is_leader"], true);

    ok(e, &["put", "k", "v"]).await;
    let table = ok(e, &["endpoint", "status"]).await;
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "a header and one endpoint:\n{table}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    let column = |name: &str| {
        let index = header
            .iter()
            .position(|h| *h == name)
            .unwrap_or_else(|| panic!("no {name} column:\n{table}"));
        row[index]
    };
    assert_eq!(column("ENDPOINT"), e);
    assert_eq!(
        (column("ID"), column("LEADER"), column("ROLE")),
        ("1", "1", "leader")
    );
    assert_eq!(column("REVISION"), "1");

    let status = json(e, &["endpoint", "status"]).await;
    let status = &status[0];
    assert_eq!(status["endpoint"], e);
    assert_eq!(status["status"]["member_id"], 1);
    assert_eq!(status["status"]["leader_id"], 1);
    assert_eq!(status["status"]["role"], "leader");
    assert_eq!(status["status"]["revision"], 1);
    let applied = status["status"]["applied_index"]
        .as_u64()
        .expect("applied_index");
    let commit = status["status"]["commit_index"]
        .as_u64()
        .expect("commit_index");
    assert!(
        applied >= 1 && applied <= commit,
        "applied {applied}, commit {commit}"
    );

    // An endpoint that is down is a row with its error, and the exit status says so.
    let down = format!("127.0.0.1:{}", free_ports(1)[0]);
    let both = format!("{e},{down}");
    let mixed = run(&both, &["endpoint", "status"]).await;
    mixed.expect_code(1, "endpoint status with one endpoint down");
    assert!(
        mixed.stdout.contains(e) && mixed.stdout.contains(&down),
        "{}",
        mixed.stdout
    );
    assert_eq!(mixed.stderr.trim_end(), "Error: 1 of 2 endpoints failed");
}

#[tokio::test]
async fn errors_are_one_line_with_a_non_zero_exit_status() {
    let cluster = Cluster::start(1, &[]).await;
    let e = cluster.nodes[0].spec.client_endpoint();
    let down = format!("127.0.0.1:{}", free_ports(1)[0]);

    let unreachable = dengine(&["--endpoints", &down, "--timeout", "2s", "get", "k"]).await;
    assert_one_line_error(
        &unreachable,
        &["could not connect", &down],
        "an unreachable endpoint",
    );
    let unreachable = dengine(&["--endpoints", &down, "--timeout", "2s", "put", "k", "v"]).await;
    assert_one_line_error(
        &unreachable,
        &["could not connect"],
        "a put to an unreachable endpoint",
    );

    let empty = run(&e, &["put", "", "v"]).await;
    let line = assert_one_line_error(
        &empty,
        &["INVALID_ARGUMENT", "key must not be empty"],
        "put of an empty key",
    );
    assert_eq!(line, "Error: INVALID_ARGUMENT: key must not be empty");
    assert_one_line_error(
        &run(&e, &["get", ""]).await,
        &["key must not be empty"],
        "get of an empty key",
    );
    assert_one_line_error(
        &run(&e, &["del", ""]).await,
        &["key must not be empty"],
        "del of an empty key",
    );

    // Endpoints are tried in order: a dead one first does not stop the command.
    let both = format!("{down},{e}");
    assert_eq!(ok(&both, &["put", "k", "v"]).await, "OK (rev 1)\n");
    assert_eq!(ok(&both, &["get", "k"]).await, "k\nv\n");

    // A usage error is status 1, never 2 (which means "cas comparison failed").
    let usage = dengine(&["--endpoints", &e, "put", "only-a-key"]).await;
    usage.expect_code(1, "put without a value");
    assert!(usage.stderr.contains("Usage"), "{}", usage.stderr);
}
