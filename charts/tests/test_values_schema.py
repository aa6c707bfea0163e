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
}


@pytest.mark.parametrize("values,where", REJECTED.values(), ids=REJECTED.keys())
def test_schema_rejects(chart, values, where):
    with pytest.raises(helm.HelmValuesError) as failure:
        chart.render(values=values, name="dengine-operator", namespace="dengine-system")
    assert where in str(failure.value)


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
