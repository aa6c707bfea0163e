"""charts/dengine-operator/metrics-used.txt is exactly the set of metric families the dashboard
and the alerts query (a Rust test checks that the node and the operator export each one), and
the extraction behind it reads PromQL correctly."""

from __future__ import annotations

import pytest

from metric_names import (
    METRICS_USED,
    dashboard_expressions,
    family,
    load_dashboard,
    metric_names,
    metrics_used_text,
    rule_expressions,
    variable_query,
)


@pytest.fixture(scope="module")
def rules(render):
    return render({"alerts": {"enabled": True}}).one("PrometheusRule")


def test_metrics_used_is_what_the_dashboard_and_rules_use(rules):
    used = sorted(metric_names(dashboard_expressions(load_dashboard()) + rule_expressions(rules)))
    assert METRICS_USED.read_text() == metrics_used_text(used), (
        f"{METRICS_USED.name} is out of date; rewrite it with "
        "`.venv-chart/bin/python charts/tests/metric_names.py --write`"
    )


def test_metrics_used_format():
    lines = METRICS_USED.read_text().splitlines()
    assert lines == sorted(set(lines))
    for name in lines:
        assert name.startswith("dengine_"), name
        assert name == family(name), f"{name}: a histogram series, not its family"


def test_every_metric_an_alert_uses_is_on_the_dashboard(rules):
    # Not a rule of PromQL, a check on this chart: every metric an alert fires on is on the
    # dashboard too, so whoever gets the alert can see it.
    on_dashboard = metric_names(dashboard_expressions(load_dashboard()))
    assert metric_names(rule_expressions(rules)) <= on_dashboard


@pytest.mark.parametrize(
    "expr,names",
    [
        ("up", {"up"}),
        (
            'dengine_raft_term{namespace=~"$namespace", cluster="dengine_raft_term_x"}',
            {"dengine_raft_term"},
        ),
        (
            "histogram_quantile(0.99, sum by (namespace, le) (rate(a_seconds_bucket[$__rate_interval])))",
            {"a_seconds"},
        ),
        ("rate(a_sum[5m]) / rate(a_count[5m])", {"a"}),
        ("sum without (instance) (increase(b_total[1h])) > 3", {"b_total"}),
        ("max by (n) (c) - on (n) group_right (pod) d", {"c", "d"}),
        ("x > 0 unless on (n) y offset 1h", {"x", "y"}),
        ("time() - max(e > 0) > 25 * 3600", {"e"}),
        ("label_replace(f, \"dst\", \"$1\", \"src\", \"(.*)\")", {"f"}),
        ("count_values(\"version\", g)", {"g"}),
        ("60 * rate(h_total[${__range}])", {"h_total"}),
    ],
)
def test_extraction(expr, names):
    assert metric_names([expr]) == names


def test_a_selector_without_a_name_is_refused():
    with pytest.raises(ValueError, match="without a metric name"):
        metric_names(['{__name__=~"dengine_.*"}'])


def test_invalid_promql_is_refused():
    with pytest.raises(ValueError):
        metric_names(["sum(rate(x[5m])"])


@pytest.mark.parametrize(
    "query,expr",
    [
        ("label_values(namespace)", None),
        ("label_values(a{b=~\"$b\"}, c)", 'a{b=~"$b"}'),
        ({"qryType": 1, "query": "label_values(a, c)"}, "a"),
        ("query_result(topk(3, a))", "topk(3, a)"),
        ("sum(a)", "sum(a)"),
    ],
)
def test_variable_query(query, expr):
    assert variable_query({"type": "query", "query": query}) == expr
