"""dashboards/dengine.json: a Grafana dashboard whose every panel queries the templated
Prometheus data source and filters by the namespace and cluster variables."""

from __future__ import annotations

from typing import Any

import promql_parser
import pytest

from metric_names import dashboard_expressions, load_dashboard, panels

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# The operator's own series, about no one cluster: they carry no `cluster` label.
OPERATOR_WIDE = {
    "dengine_operator_reconciles_total",
    "dengine_operator_reconcile_failures_total",
    "dengine_operator_reconcile_duration_seconds_bucket",
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def query_panels(dashboard):
    return [p for p in panels(dashboard) if p["type"] != "row"]


def test_dashboard_identity(dashboard):
    assert dashboard["uid"] == "dengine"
    assert dashboard["title"] == "d-engine"
    assert dashboard["schemaVersion"] == 39
    # An id is Grafana's own database key: a provisioned dashboard must not carry one.
    assert dashboard["id"] is None


def test_variables(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "cluster"]
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "cluster"):
        variable = variables[name]
        assert variable["type"] == "query"
        assert variable["datasource"] == DATASOURCE
        assert variable["multi"] and variable["includeAll"]
        # Selected as a regex (`=~"$cluster"`): All must match everything.
        assert variable["allValue"] == ".*"
    assert variables["namespace"]["query"]["query"] == "label_values(dengine_raft_term, namespace)"
    assert (
        variables["cluster"]["query"]["query"]
        == 'label_values(dengine_raft_term{namespace=~"$namespace"}, cluster)'
    )


def test_every_panel_has_the_datasource_and_a_target(dashboard):
    found = query_panels(dashboard)
    assert len(found) >= 20
    for panel in found:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
            assert target["legendFormat"], panel["title"]
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_rows_are_open(dashboard):
    # A collapsed row hides its panels inside it; the tests above walk those too, but an open
    # dashboard shows everything at once.
    rows = [p for p in dashboard["panels"] if p["type"] == "row"]
    assert [r["title"] for r in rows] == [
        "Raft",
        "Replication",
        "Writes and reads",
        "Storage",
        "Backups",
        "Operator",
    ]
    assert all(not r["collapsed"] and r["panels"] == [] for r in rows)


def test_panel_ids_and_titles_are_unique(dashboard):
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in query_panels(dashboard)]
    assert len(titles) == len(set(titles))


def test_panels_do_not_overlap(dashboard):
    taken: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.parametrize(
    "title",
    [
        "Leader changes seen, per member",
        "Has a leader, per member",
        "Commit lag, per member",
        "Apply lag, per member",
        "Peer lag seen by the leader",
        "Client write latency",
        "Read-index latency p99, per member",
        "Fsync latency p99, per member",
        "Entries per fsync, per member",
        "Log compactions, per member",
        "Forwarded writes, per member",
        "Proposals",
        "Time since the last successful backup",
        "Last backup size",
        "Backups in the last hour, by result",
        "Reconciles, by action",
        "Reconcile failures, by error",
        "Reconcile duration",
    ],
)
def test_panel_exists(dashboard, title):
    assert title in [p["title"] for p in query_panels(dashboard)]


def test_every_expression_parses(dashboard):
    for expr in dashboard_expressions(dashboard):
        promql_parser.parse(expr.replace("$__rate_interval", "5m"))


def test_selectors_filter_by_namespace_and_cluster(dashboard):
    for panel in query_panels(dashboard):
        for target in panel["targets"]:
            tree = promql_parser.parse(target["expr"].replace("$__rate_interval", "5m"))
            selectors: list[promql_parser.VectorSelector] = []
            promql_parser.walk(
                tree,
                lambda node: selectors.append(node)
                if isinstance(node, promql_parser.VectorSelector)
                else None,
            )
            for selector in selectors:
                if selector.name in OPERATOR_WIDE:
                    continue
                matchers = {(m.name, m.value) for m in selector.matchers.matchers}
                assert ("namespace", "$namespace") in matchers, (panel["title"], str(selector))
                assert ("cluster", "$cluster") in matchers, (panel["title"], str(selector))
