"""The chart's Grafana dashboard (charts/…/files/dashboard.json): exactly what hack/dashboard.py builds,
and every panel one a user can point at any Prometheus and read: the datasource variable, a title,
queries filtered by the namespace (and migration) variables that read only metrics the operator or
HAL9's services export. tests/integration/test_dashboard_queries.py runs the queries for real."""

from __future__ import annotations

import json
import re
from typing import Any

from hack import dashboard

from hal9_migration import exporter
from hal9_migration.analysis import signals

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
# The panels issue 11 asks for, by the words their titles must carry.
ISSUE_PANELS = (
    "Phase",
    "weights",
    "Error rate",
    "p99",
    "Health",
    "verdict",
    "neurons",
    "Progress",
    "Rollbacks",
)
PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right"}


def board() -> dict[str, Any]:
    return dict(json.loads(dashboard.OUTPUT.read_text()))


def queries(found: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(panel title, refId, expr) of every query of every panel."""
    return [(p["title"], t["refId"], t["expr"]) for p in found["panels"] for t in p["targets"]]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: what is left once strings, label matchers, ranges,
    grouping clauses, numbers and function calls are taken out."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    return set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()", text)) - PROMQL_WORDS


def exported() -> set[str]:
    """What the operator serves (its gauges, counters and histogram) and what the analysis' default
    queries read of HAL9's services (and of cAdvisor and kube-state-metrics)."""
    names = set(exporter.HELP)
    for family in exporter.REGISTRY.collect():
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names |= {f"{family.name}{suffix}" for suffix in ("_bucket", "_count", "_sum")}
    for query in (*signals.DEFAULTS.values(), *signals.PROXY_DEFAULTS.values()):
        names |= metric_names(query)
    return names


def test_the_committed_json_is_what_the_builder_makes() -> None:
    assert dashboard.OUTPUT.read_text() == dashboard.render(), "run `make dashboard` and commit the result"


def test_the_variables_are_datasource_namespace_and_migration() -> None:
    variables = {v["name"]: v for v in board()["templating"]["list"]}
    assert list(variables) == ["datasource", "namespace", "migration"]
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == ("datasource", "prometheus")
    assert variables["namespace"]["datasource"] == DATASOURCE
    assert variables["migration"]["datasource"] == DATASOURCE
    assert '{namespace="$namespace"}' in variables["migration"]["query"]
    assert variables["migration"]["multi"] and variables["migration"]["allValue"] == ".*"


def test_every_panel_has_the_datasource_variable_a_title_and_queries() -> None:
    panels = board()["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["title"].strip() and panel["description"].strip()
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(set(refs)) == len(refs), panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]


def test_the_issues_panels_are_all_there() -> None:
    titles = " | ".join(p["title"] for p in board()["panels"])
    assert [word for word in ISSUE_PANELS if word not in titles] == []
    types = {p["title"]: p["type"] for p in board()["panels"]}
    assert types["Phase"] == "state-timeline"


def test_queries_read_only_exported_metrics_of_the_chosen_namespace_and_migrations() -> None:
    allowed = exported()
    operator_metrics = {name for name in allowed if name.startswith(("hal9_migration_", "hal9_operator_"))}
    for title, ref, expr in queries(board()):
        read = metric_names(expr)
        assert read, (title, ref)
        assert read <= allowed, f"{title} {ref} reads {sorted(read - allowed)}, which nothing exports"
        # Every selector picks the chosen namespace; the operator's also the chosen migrations.
        selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr)
        assert len(selectors) == expr.count("{"), (title, expr)
        for name, matchers in selectors:
            assert 'namespace="$namespace"' in matchers, (title, name)
            if name in operator_metrics:
                assert 'migration=~"$migration"' in matchers, (title, name)


def test_metric_names_finds_the_metrics_and_nothing_else() -> None:
    expr = (
        '1000 * histogram_quantile(0.99, sum by (system, le) (rate(x_bucket{a="b{c}"}[$__rate_interval])))'
        " / on (system) group_left max without (pod) (y) or vector(0)"
    )
    assert metric_names(expr) == {"x_bucket", "y"}
