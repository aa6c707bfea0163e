"""The optional monitoring objects as rendered: the PodMonitor of the node pods, the Grafana
dashboard's ConfigMap and the PrometheusRule of alerts. Each is off by default."""

from __future__ import annotations

import json
import re

import promql_parser
import pytest

from conftest import NAMESPACE, RELEASE
from metric_names import DASHBOARD

ALERTS = {
    "DEngineNoLeader": "critical",
    "DEngineFrequentLeaderChanges": "warning",
    "DEngineMemberLagging": "warning",
    "DEngineFsyncSlow": "warning",
    "DEngineBackupFailed": "warning",
    "DEngineBackupTooOld": "warning",
    "DEngineClusterDegraded": "warning",
}

# Prometheus' duration syntax, as the PrometheusRule CRD checks `for`.
DURATION = re.compile(r"^(0|([0-9]+(ms|s|m|h|d|w|y))+)$")

# Each flag and the one object it adds.
KINDS = {"podMonitor": "PodMonitor", "dashboards": "ConfigMap", "alerts": "PrometheusRule"}


def flag(name: str, enabled: bool) -> dict:
    if name == "podMonitor":
        return {"metrics": {"podMonitor": {"enabled": enabled}}}
    return {name: {"enabled": enabled}}


ALL_ON = {
    "metrics": {"podMonitor": {"enabled": True}},
    "dashboards": {"enabled": True},
    "alerts": {"enabled": True},
}


def alerts_of(rendered):
    rule = rendered.one("PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


@pytest.mark.parametrize("kind", sorted(KINDS.values()))
def test_off_by_default(render, kind):
    assert render().of_kind(kind) == []


@pytest.mark.parametrize("name", sorted(KINDS))
def test_each_flag_renders_its_object_alone(render, name):
    on = render(flag(name, True))
    assert len(on.of_kind(KINDS[name])) == 1
    assert sorted(o["kind"] for o in on.objects if o["kind"] != KINDS[name]) == render().kinds
    assert render(flag(name, False)).kinds == render().kinds


def test_all_on_together(render):
    out = render(ALL_ON)
    for kind in ("PodMonitor", "ConfigMap", "PrometheusRule"):
        obj = out.one(kind)
        assert obj["metadata"]["namespace"] == NAMESPACE
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE


# ---------------------------------------------------------------------------------- PodMonitor


def test_pod_monitor_selects_the_node_pods_everywhere(render):
    monitor = render({"metrics": {"podMonitor": {"enabled": True}}}).one("PodMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["name"] == f"{RELEASE}-nodes"
    # The labels the operator puts on every node pod (operator/src/objects/mod.rs).
    assert monitor["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "dengine"}}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    [endpoint] = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["path"] == "/metrics"
    assert endpoint["interval"] == "30s"
    assert "scrapeTimeout" not in endpoint


def test_pod_monitor_keeps_the_node_container_and_names_the_cluster(render):
    monitor = render({"metrics": {"podMonitor": {"enabled": True}}}).one("PodMonitor")
    relabelings = monitor["spec"]["podMetricsEndpoints"][0]["relabelings"]
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_container_name"],
        "regex": "dengine",
        "action": "keep",
    } in relabelings
    assert {
        "sourceLabels": ["__meta_kubernetes_pod_label_app_kubernetes_io_instance"],
        "targetLabel": "cluster",
        "action": "replace",
    } in relabelings


def test_pod_monitor_follows_watch_namespaces(render):
    monitor = render(
        {"watchNamespaces": ["shop", "billing"], "metrics": {"podMonitor": {"enabled": True}}}
    ).one("PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["shop", "billing"]}


def test_pod_monitor_values(render):
    monitor = render(
        {
            "metrics": {
                "podMonitor": {
                    "enabled": True,
                    "interval": "15s",
                    "scrapeTimeout": "10s",
                    "labels": {"release": "prom"},
                }
            }
        }
    ).one("PodMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    assert endpoint["interval"] == "15s"
    assert endpoint["scrapeTimeout"] == "10s"


def test_pod_monitor_needs_no_service(render):
    # It scrapes pods directly: the operator's metrics Service is unrelated.
    out = render({"metrics": {"service": {"enabled": False}, "podMonitor": {"enabled": True}}})
    assert len(out.of_kind("PodMonitor")) == 1


# ------------------------------------------------------------------------ dashboard ConfigMap


def test_dashboard_config_map(render):
    config_map = render({"dashboards": {"enabled": True}}).one("ConfigMap")
    assert config_map["metadata"]["name"] == f"{RELEASE}-dashboard"
    assert config_map["metadata"]["namespace"] == NAMESPACE
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert "annotations" not in config_map["metadata"]
    # The file, byte for byte (but the final newline a `|-` block drops).
    assert config_map["data"] == {"dengine.json": DASHBOARD.read_text().rstrip("\n")}
    assert json.loads(config_map["data"]["dengine.json"])["uid"] == "dengine"


def test_dashboard_config_map_values(render):
    config_map = render(
        {
            "dashboards": {
                "enabled": True,
                "label": "example.com/dashboard",
                "labelValue": "true",
                "namespace": "monitoring",
                "labels": {"team": "storage"},
                "annotations": {"grafana_folder": "d-engine"},
            }
        }
    ).one("ConfigMap")
    metadata = config_map["metadata"]
    assert metadata["namespace"] == "monitoring"
    assert metadata["labels"]["example.com/dashboard"] == "true"
    assert "grafana_dashboard" not in metadata["labels"]
    assert metadata["labels"]["team"] == "storage"
    assert metadata["annotations"] == {"grafana_folder": "d-engine"}


# ----------------------------------------------------------------------------- PrometheusRule


def test_prometheus_rule_has_every_alert(render):
    rule = render({"alerts": {"enabled": True}}).one("PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == RELEASE
    names = [r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert sorted(names) == sorted(ALERTS)
    groups = [group["name"] for group in rule["spec"]["groups"]]
    assert len(groups) == len(set(groups))


@pytest.mark.parametrize("name", sorted(ALERTS))
def test_each_alert_is_complete(render, name):
    alert = alerts_of(render({"alerts": {"enabled": True}}))[name]
    assert set(alert) == {"alert", "expr", "for", "labels", "annotations"}
    promql_parser.parse(alert["expr"])  # raises on a syntax error
    assert DURATION.match(alert["for"]), alert["for"]
    assert alert["labels"] == {"severity": ALERTS[name]}
    assert set(alert["annotations"]) == {"summary", "description"}
    for text in alert["annotations"].values():
        assert isinstance(text, str) and text.strip()
        # Helm must have left Prometheus' own templates alone, balanced.
        assert text.count("{{") == text.count("}}")
    # Every alert names the cluster it is about.
    assert "$labels.cluster" in alert["annotations"]["summary"] + alert["annotations"]["description"]


def test_rule_expressions_group_by_cluster(render):
    for name, alert in alerts_of(render({"alerts": {"enabled": True}})).items():
        if name != "DEngineNoLeader":
            assert "by (namespace, cluster" in alert["expr"], name


def test_alert_thresholds_come_from_values(render):
    alerts = alerts_of(
        render(
            {
                "alerts": {
                    "enabled": True,
                    "maxLeaderChangesPerHour": 10,
                    "maxLagEntries": 50000,
                    "fsyncP99Seconds": 0.25,
                    "backupMaxAgeHours": 8,
                }
            }
        )
    )
    assert alerts["DEngineFrequentLeaderChanges"]["expr"].endswith(") > 10")
    assert alerts["DEngineMemberLagging"]["expr"].endswith(") > 50000")
    assert alerts["DEngineFsyncSlow"]["expr"].endswith(") > 0.25")
    assert alerts["DEngineBackupTooOld"]["expr"].endswith(") > 8 * 3600")
    for alert in alerts.values():
        promql_parser.parse(alert["expr"])
    assert "(the threshold is 50000)" in alerts["DEngineMemberLagging"]["annotations"]["description"]


def test_default_thresholds(render, chart):
    assert chart.values["alerts"] == {
        "enabled": False,
        "labels": {},
        "additionalRuleLabels": {},
        "maxLeaderChangesPerHour": 3,
        "maxLagEntries": 1000,
        "fsyncP99Seconds": 0.5,
        "backupMaxAgeHours": 25,
    }
    alerts = alerts_of(render({"alerts": {"enabled": True}}))
    assert alerts["DEngineFrequentLeaderChanges"]["expr"].endswith(") > 3")
    assert alerts["DEngineMemberLagging"]["expr"].endswith(") > 1000")
    assert alerts["DEngineFsyncSlow"]["expr"].endswith(") > 0.5")
    assert alerts["DEngineBackupTooOld"]["expr"].endswith(") > 25 * 3600")


def test_rule_labels(render):
    out = render(
        {
            "alerts": {
                "enabled": True,
                "labels": {"release": "prom"},
                "additionalRuleLabels": {"team": "storage", "page": "no"},
            }
        }
    )
    assert out.one("PrometheusRule")["metadata"]["labels"]["release"] == "prom"
    for name, alert in alerts_of(out).items():
        assert alert["labels"] == {"severity": ALERTS[name], "team": "storage", "page": "no"}


def test_node_alerts_use_the_pod_monitor_labels(render):
    # The node series get `cluster` from the PodMonitor and `namespace`/`pod` from the target;
    # the annotations of the per-member alerts name the pod.
    alerts = alerts_of(render({"alerts": {"enabled": True}}))
    for name in ("DEngineNoLeader", "DEngineFsyncSlow"):
        assert "$labels.pod" in alerts[name]["annotations"]["summary"], name
    # Lag is what the leader measures of each member: the member is the `peer` label.
    assert "$labels.peer" in alerts["DEngineMemberLagging"]["annotations"]["summary"]
