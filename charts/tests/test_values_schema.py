"""values.schema.json: wrong values fail at install/template/lint time with a message naming
the value, instead of producing a broken Deployment."""

from __future__ import annotations

import helm_python as helm
import pytest

REJECTED = {
    "logFormat xml": ({"logFormat": "xml"}, "/logFormat"),
    "misspelt key": ({"replica": 3}, "'replica' not allowed"),
    "replicas as string": ({"replicas": "two"}, "/replicas"),
    "negative replicas": ({"replicas": -1}, "/replicas"),
    "namespaces not a list": ({"watchNamespaces": "a,b"}, "/watchNamespaces"),
    "invalid namespace name": ({"watchNamespaces": ["Team_A"]}, "/watchNamespaces/0"),
    "duplicate namespace": ({"watchNamespaces": ["a", "a"]}, "/watchNamespaces"),
    "numeric image tag": ({"image": {"tag": 1.2}}, "/image/tag"),
    "bad pull policy": ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    "leader election not a map": ({"leaderElection": True}, "/leaderElection"),
    "leader election flag as string": ({"leaderElection": {"enabled": "no"}}, "/leaderElection/enabled"),
    "empty log level": ({"logLevel": ""}, "/logLevel"),
    "port out of range": ({"listenPort": 70000}, "/listenPort"),
    "bad scrape interval": (
        {"metrics": {"serviceMonitor": {"enabled": True, "interval": "often"}}},
        "/metrics/serviceMonitor/interval",
    ),
    "rbac.create as string": ({"rbac": {"create": "yes"}}, "/rbac/create"),
    "misspelt pod monitor key": (
        {"metrics": {"podMonitor": {"enable": True}}},
        "'enable' not allowed",
    ),
    "bad pod monitor interval": (
        {"metrics": {"podMonitor": {"interval": "30"}}},
        "/metrics/podMonitor/interval",
    ),
    "misspelt dashboards key": ({"dashboards": {"folder": "d-engine"}}, "'folder' not allowed"),
    "numeric dashboard label value": (
        {"dashboards": {"labelValue": 1}},
        "/dashboards/labelValue",
    ),
    "empty dashboard label": ({"dashboards": {"label": ""}}, "/dashboards/label"),
    "invalid dashboard namespace": (
        {"dashboards": {"namespace": "Monitoring"}},
        "/dashboards/namespace",
    ),
    "misspelt alerts key": ({"alerts": {"maxLagEntry": 10}}, "'maxLagEntry' not allowed"),
    "lag threshold as string": ({"alerts": {"maxLagEntries": "1000"}}, "/alerts/maxLagEntries"),
    "zero fsync threshold": ({"alerts": {"fsyncP99Seconds": 0}}, "/alerts/fsyncP99Seconds"),
    "negative backup age": ({"alerts": {"backupMaxAgeHours": -1}}, "/alerts/backupMaxAgeHours"),
    "fractional leader changes": (
        {"alerts": {"maxLeaderChangesPerHour": 2.5}},
        "/alerts/maxLeaderChangesPerHour",
    ),
    "severity in additional rule labels": (
        {"alerts": {"additionalRuleLabels": {"severity": "page"}}},
        "/alerts/additionalRuleLabels/severity",
    ),
}

ACCEPTED = {
    "pod monitor": {
        "metrics": {
            "podMonitor": {
                "enabled": True,
                "interval": "15s",
                "scrapeTimeout": "10s",
                "labels": {"release": "prom"},
            }
        }
    },
    "dashboards": {
        "dashboards": {
            "enabled": True,
            "label": "grafana_dashboard",
            "labelValue": "1",
            "namespace": "monitoring",
            "labels": {"team": "storage"},
            "annotations": {"grafana_folder": "d-engine"},
        }
    },
    "alerts": {
        "alerts": {
            "enabled": True,
            "labels": {"release": "prom"},
            "additionalRuleLabels": {"team": "storage"},
            "maxLeaderChangesPerHour": 0,
            "maxLagEntries": 5000,
            "fsyncP99Seconds": 0.25,
            "backupMaxAgeHours": 1.5,
        }
    },
}


@pytest.mark.parametrize("values,where", REJECTED.values(), ids=REJECTED.keys())
def test_schema_rejects(chart, values, where):
    with pytest.raises(helm.HelmValuesError) as failure:
        chart.render(values=values, name="dengine-operator", namespace="dengine-system")
    assert where in str(failure.value)


@pytest.mark.parametrize("values", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_schema_accepts(chart, values):
    chart.validate_schema(values)


def test_log_format_message_lists_the_choices(chart):
    with pytest.raises(helm.HelmValuesError, match="value must be one of 'json', 'text'"):
        chart.validate_schema({"logFormat": "xml"})


def test_defaults_and_global_pass(chart):
    chart.validate_schema(None)
    chart.validate_schema({"global": {"imageRegistry": "example.com"}})
    chart.validate_schema(chart.values)


def test_defaults(chart):
    values = chart.values
    assert values["image"]["repository"] == "ghcr.io/d-engine/dengine-operator"
    assert values["replicas"] == 2
    assert values["logFormat"] == "json"
    assert values["watchNamespaces"] == []
    assert values["leaderElection"]["enabled"] is True
    assert values["rbac"]["create"] is True
    assert values["metrics"]["serviceMonitor"]["enabled"] is False
    assert values["metrics"]["podMonitor"]["enabled"] is False
    assert values["dashboards"]["enabled"] is False
    assert values["alerts"]["enabled"] is False


def test_several_replicas_need_leader_election(chart):
    with pytest.raises(helm.HelmRenderError, match="set replicas to 1 or enable leader election"):
        chart.render(
            values={"replicas": 2, "leaderElection": {"enabled": False}},
            name="dengine-operator",
            namespace="dengine-system",
        )


def test_service_monitor_needs_the_service(chart):
    with pytest.raises(helm.HelmRenderError, match="needs metrics.service.enabled"):
        chart.render(
            values={"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
            name="dengine-operator",
            namespace="dengine-system",
        )
