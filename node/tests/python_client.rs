//! A second etcd client family: aetcd (Python, from PyPI, installed into `.venv-etcd` by
//! scripts/setup) runs `tests/python/aetcd_client.py` against a node's etcd API: puts, gets,
//! a prefix, transactions that win and lose, a delete, the status, a watch from revision 1, a
//! lease with a key attached (TTLs, keys, a keepalive, a revoke) and aetcd's lock handed over.

mod common;

use std::path::Path;
use std::process::Command;

use common::Cluster;

#[tokio::test]
async fn aetcd_puts_reads_transacts_watches_leases_and_locks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let python = root.join(".venv-etcd/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it installs aetcd)",
        python.display()
    );
    let cluster = Cluster::start(1, &[]).await;
    let port = cluster.nodes[0].spec.client_port.to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/aetcd_client.py");
    let run = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args(["127.0.0.1", &port])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
    );
    assert!(run.status.success(), "{stdout}{stderr}");
    for check in [
        "get 1",
        "prefix 2",
        "txn True False",
        "delete 1",
        "status 3.5.0",
        "watch",
        "lease",
        "lock handed over",
    ] {
        assert!(stdout.contains(check), "no {check:?} in:\n{stdout}");
    }
}
