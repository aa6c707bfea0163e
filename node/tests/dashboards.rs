//! The chart's Grafana dashboard and Prometheus alerts name only series that exist: every
//! metric in `charts/dengine-operator/metrics-used.txt` (which the chart's own tests keep equal
//! to the set the dashboard's queries and the rules' expressions use) is exported by a running
//! node or by the operator's `/metrics`.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::{http, metrics_address, Cluster};
use dengine::proto::PutRequest;
use dengine_operator::http::{serve, Health};
use dengine_operator::metrics::{ClusterLabels, Metrics};

/// The metric families a Prometheus text exposition declares, by the names their samples
/// carry: a counter `x` is sampled as `x_total`; a histogram's `_bucket`, `_sum` and `_count`
/// are named after the family, as the dashboard names it.
fn families(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| {
            let mut parts = rest.split_whitespace();
            let name = parts.next()?;
            Some(match parts.next()? {
                "counter" => format!("{name}_total"),
                _ => name.to_string(),
            })
        })
        .collect()
}

async fn scrape(address: std::net::SocketAddr) -> String {
    let (status, body) = http(address, "GET", "/metrics", "")
        .await
        .unwrap_or_else(|e| panic!("scraping {address}: {e}"));
    assert_eq!(status, 200, "{body}");
    body
}

/// The operator's metrics after it has worked on a cluster: a family is exported once it has a
/// series, as on a running operator.
fn working_operator() -> Metrics {
    let metrics = Metrics::new();
    let cluster = ClusterLabels {
        namespace: "shop".into(),
        cluster: "orders".into(),
    };
    metrics.observe_reconcile("done", std::time::Duration::from_millis(4));
    metrics.observe_failure(&dengine_operator::Error::Invalid("test".into()));
    metrics.status_writes.inc();
    metrics.leader.set(1);
    metrics.observe_cluster(&cluster, false, 3, 3);
    metrics.backups_configured(&cluster, false);
    metrics.backup_succeeded(&cluster, 4096, 1_796_558_400);
    metrics.backup_failed(&cluster);
    metrics
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_series_the_dashboard_and_alerts_use_is_exported() {
    // Three members and a write: the leader then has series for its peers and its writes.
    let cluster = Cluster::start(3, &[]).await;
    let leader = cluster.leader().await;
    leader
        .kv()
        .put(PutRequest {
            key: "dashboards/probe".into(),
            value: "1".into(),
            ..PutRequest::default()
        })
        .await
        .expect("a write");
    let node_metrics =
        metrics_address(&leader.log().since(0)).expect("the node logs its metrics address");
    let mut exported = families(&scrape(node_metrics).await);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let operator_metrics = listener.local_addr().unwrap();
    tokio::spawn(serve(
        listener,
        Health {
            ready: Arc::new(AtomicBool::new(true)),
            metrics: Arc::new(working_operator()),
        },
    ));
    let operator = families(&scrape(operator_metrics).await);
    assert!(
        operator.contains("dengine_operator_reconciles_total"),
        "{operator:?}"
    );
    exported.extend(operator);

    let used_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../charts/dengine-operator/metrics-used.txt"
    );
    let used: Vec<String> = std::fs::read_to_string(used_file)
        .expect("the chart lists the metrics it uses")
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_string)
        .collect();
    assert!(used.len() > 10, "{used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "the dashboard or the alerts use series nothing exports: {missing:?}\nexported: {exported:?}"
    );
}
