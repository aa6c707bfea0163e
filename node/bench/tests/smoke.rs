//! The benchmark binary end to end, for about a second each, without etcd: through the
//! embedded API, and through the gRPC API of a node this test starts (an embedded node that
//! also serves the client API on a free loopback port, so no `node` process is needed).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dengine::embedded::Embedded;
use serde_json::Value;

fn bench(args: &[&str], json: &Path) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_dengine-bench"))
        .args(args)
        .args(["--duration", "1", "--warmup", "0.2", "--keyspace", "200"])
        .arg("--json")
        .arg(json)
        .output()
        .expect("run dengine-bench");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "dengine-bench {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("ops/s"), "{stdout}");
    let text = std::fs::read_to_string(json).expect("the JSON report was written");
    serde_json::from_str(&text).expect("the report is JSON")
}

fn assert_measured(report: &Value, target: &str, ops: &[&str]) {
    assert_eq!(report["target"], target, "{report}");
    assert_eq!(report["supported"], true, "{report}");
    let result = &report["result"];
    let throughput = result["throughput_ops_s"].as_f64().expect("throughput");
    assert!(throughput > 0.0, "no throughput: {report}");
    assert_eq!(result["errors"], 0, "{report}");
    assert!(
        result["latency"]["p99_us"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    for op in ops {
        assert!(
            result["per_op"][op]["count"].as_u64().unwrap() > 0,
            "no {op}: {report}"
        );
    }
    let processes = report["processes"].as_array().expect("processes");
    let bench = processes
        .iter()
        .find(|p| p["label"] == "bench")
        .expect("the bench process is sampled");
    assert!(bench["after"]["rss_kib"].as_u64().unwrap() > 0, "{report}");
    assert!(
        report["preload_s"].as_f64().is_some(),
        "reads need the keys: {report}"
    );
}

#[test]
fn embedded_target_reports_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("embedded.json");
    let data = dir.path().join("data");
    let report = bench(
        &[
            "--target",
            "embedded",
            "--mix",
            "mixed",
            "--clients",
            "4",
            "--sample-memory-every",
            "0.25",
            "--embedded-data-dir",
            data.to_str().unwrap(),
        ],
        &json,
    );
    assert_measured(&report, "embedded", &["write", "linearizable_read"]);
    assert!(
        !report["memory_samples"].as_array().unwrap().is_empty(),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_target_against_a_node_reports_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let node = Embedded::single_node(dir.path().join("node"))
        .configure(|config| config.client_listen = "127.0.0.1:0".parse().unwrap())
        .client_listener(true)
        .start()
        .await
        .expect("start a node");
    node.wait_ready(Duration::from_secs(30)).await.unwrap();
    let endpoint = node.client_address().expect("client listener").to_string();
    let json = dir.path().join("grpc.json");
    let pid = std::process::id().to_string();
    let report = tokio::task::spawn_blocking(move || {
        bench(
            &[
                "--target",
                "dengine",
                "--endpoints",
                &endpoint,
                "--mix",
                "cas",
                "--clients",
                "4",
                "--connections",
                "2",
                "--pids",
                &pid,
            ],
            &json,
        )
    })
    .await
    .unwrap();
    assert_measured(&report, "dengine", &["cas"]);
    let result = &report["result"];
    assert!(result["cas_succeeded"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["params"]["connections"], 2);
    let node_process = &report["processes"][0];
    assert_eq!(
        node_process["pid"].as_u64(),
        Some(u64::from(std::process::id()))
    );
    assert!(node_process["cpu_s"].as_f64().is_some(), "{report}");
    node.shutdown().await.unwrap();
}
