"""The metric families the chart's Grafana dashboard and Prometheus alerts query.

Every PromQL expression is parsed with a real PromQL parser (promql-parser) and the names are
read from its vector selectors, so PromQL functions, aggregation operators, label names and
label values can never be mistaken for metrics, and a syntax error fails instead of being
skipped. Histogram series (`_bucket`, `_sum`, `_count`) are reported by their family name, the
way the nodes and the operator register them (`dengine_fsync_seconds`); counters keep their
`_total` (`dengine_proposals_total`).

charts/dengine-operator/metrics-used.txt holds the result, and test_metrics_used.py checks that
it is exactly what the dashboard and the rules use now. A Rust test scrapes a node and the
operator and checks that each of its names is exported, so a renamed metric cannot silently
empty a panel or an alert. Rewrite the file after changing a query:

    .venv-chart/bin/python charts/tests/metric_names.py --write
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import promql_parser

CHART_DIR = Path(__file__).resolve().parents[1] / "dengine-operator"
DASHBOARD = CHART_DIR / "dashboards" / "dengine.json"
METRICS_USED = CHART_DIR / "metrics-used.txt"

# The series a histogram family exposes besides its own name (the text format).
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# Grafana replaces these before the query reaches Prometheus; any duration parses the same.
GRAFANA_DURATIONS = re.compile(r"\$\{?(?:__rate_interval|__interval|__range)\}?")

# A Prometheus template variable query: label_values(<selector>, <label>) or label_values(<label>).
LABEL_VALUES = re.compile(
    r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", re.S
)
QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.+)\)\s*$", re.S)


def family(series: str) -> str:
    """The family a series name belongs to: a histogram's `_bucket`/`_sum`/`_count` removed."""
    for suffix in HISTOGRAM_SUFFIXES:
        if series.endswith(suffix):
            return series[: -len(suffix)]
    return series


def series_names(expr: str) -> set[str]:
    """The metric names an expression selects, as written (histogram suffixes kept).

    Raises ValueError for an expression PromQL cannot parse or a selector without a name
    (`{__name__=~"..."}`), whose metrics cannot be checked."""
    tree = promql_parser.parse(GRAFANA_DURATIONS.sub("5m", expr))
    names: set[str] = set()
    unnamed: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.add(node.name)
            else:
                unnamed.append(str(node))

    promql_parser.walk(tree, visit)
    if unnamed:
        raise ValueError(f"selectors without a metric name in {expr!r}: {unnamed}")
    return names


def metric_names(expressions: Iterable[str]) -> set[str]:
    """The metric families the expressions use."""
    return {family(name) for expr in expressions for name in series_names(expr)}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows' nested panels included (a collapsed row keeps its panels inside)."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def variable_query(variable: dict[str, Any]) -> str | None:
    """The PromQL of a query variable, or None for one that names no metric."""
    query = variable.get("query")
    if isinstance(query, dict):
        query = query.get("query")
    if not query:
        return None
    if match := LABEL_VALUES.match(query):
        return match["selector"]
    if match := QUERY_RESULT.match(query):
        return match["expr"]
    return query


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and query variables."""
    found = [
        target["expr"]
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query" and (query := variable_query(variable)):
            found.append(query)
    return found


def rule_expressions(prometheus_rule: dict[str, Any]) -> list[str]:
    """Every expression of a PrometheusRule object, alerting and recording rules alike."""
    return [rule["expr"] for group in prometheus_rule["spec"]["groups"] for rule in group["rules"]]


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def render_rules() -> dict[str, Any]:
    """The chart's PrometheusRule, rendered with alerts enabled and the default thresholds."""
    import helm_python as helm
    import yaml

    chart = helm.Chart.load(CHART_DIR)
    try:
        manifests = chart.render(
            values={"alerts": {"enabled": True}},
            name="dengine-operator",
            namespace="dengine-system",
        )
    finally:
        chart.close()
    rules = [
        document
        for path, text in manifests.items()
        if not path.endswith("NOTES.txt")
        for document in yaml.safe_load_all(text)
        if document and document.get("kind") == "PrometheusRule"
    ]
    assert len(rules) == 1, f"expected one PrometheusRule, got {len(rules)}"
    return rules[0]


def used_by_chart() -> list[str]:
    """The sorted metric families used by the dashboard and the rendered alerts."""
    expressions = dashboard_expressions(load_dashboard()) + rule_expressions(render_rules())
    return sorted(metric_names(expressions))


def metrics_used_text(names: Iterable[str]) -> str:
    return "".join(f"{name}\n" for name in names)


if __name__ == "__main__":
    text = metrics_used_text(used_by_chart())
    if sys.argv[1:] == ["--write"]:
        METRICS_USED.write_text(text)
    elif sys.argv[1:]:
        sys.exit(f"usage: {sys.argv[0]} [--write]")
    else:
        sys.stdout.write(text)
