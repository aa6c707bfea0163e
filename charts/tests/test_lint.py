"""`helm lint --strict`, through the Helm engine embedded in helm-python-sdk."""

from __future__ import annotations

import helm_python as helm
import pytest

from conftest import CHART_DIR, NAMESPACE

INFO = 1  # helm's lint severities: 1 info, 2 warning, 3 error

VALUE_SETS = {
    "defaults": None,
    "watch two namespaces": {"watchNamespaces": ["a", "b"]},
    "service monitor": {"metrics": {"serviceMonitor": {"enabled": True, "interval": "15s"}}},
    "single replica without leader election": {
        "replicas": 1,
        "leaderElection": {"enabled": False},
    },
    "monitoring": {
        "watchNamespaces": ["shop"],
        "metrics": {"serviceMonitor": {"enabled": True}, "podMonitor": {"enabled": True}},
        "dashboards": {"enabled": True, "annotations": {"grafana_folder": "d-engine"}},
        "alerts": {"enabled": True, "additionalRuleLabels": {"team": "storage"}},
    },
    "no rbac, existing service account": {
        "rbac": {"create": False},
        "serviceAccount": {"create": False, "name": "ops"},
    },
}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_lint_strict_is_clean(values):
    report = helm.lint(CHART_DIR, values, strict=True, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert report["errors"] == []
    # Only informational notes (helm recommends an icon) are tolerated; any warning fails.
    assert [m for m in report["messages"] if m["severity"] > INFO] == []


def test_lint_reports_values_the_schema_rejects():
    report = helm.lint(CHART_DIR, {"logFormat": "xml"}, strict=True)
    assert report["errors"], report
    assert any("/logFormat" in e and "'json', 'text'" in e for e in report["errors"]), report


def test_chart_metadata(chart):
    meta = chart.metadata
    assert meta["apiVersion"] == "v2"
    assert meta["name"] == "dengine-operator"
    assert meta["version"] == "0.1.0"
    assert meta["appVersion"] == "0.1.0"
    assert chart.schema is not None, "values.schema.json is missing"
