"""HAL9's signals as PromQL: the defaults, the user's overrides and checks, the variables filled in."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydantic import ValidationError

from hal9_migration.analysis import signals
from hal9_migration.models import Hal9MigrationSpec
from tests.support.manifests import load_sample


def spec(**analysis: Any) -> Hal9MigrationSpec:
    raw = copy.deepcopy(load_sample("flat-to-hierarchical")["spec"])
    raw["analysis"] = {"prometheus": {"address": "http://p:9090"}, "interval": "30s", **analysis}
    return Hal9MigrationSpec.model_validate(raw)


def test_the_defaults_read_hal9s_metric_names_in_the_migrations_namespace() -> None:
    named = {q.name: q.query for q in signals.queries(spec(), "hal9-prod", "m")}
    assert list(named) == ["error-rate", "p99-ms", "flat-p99-ms", "cpu-percent", "memory-percent"]
    assert named["error-rate"] == (
        'sum(rate(hal9_errors_total{namespace="hal9-prod",system="hierarchical"}[30s])) / '
        'sum(rate(hal9_requests_total{namespace="hal9-prod",system="hierarchical"}[30s]))'
    )
    assert named["p99-ms"] == (
        "1000 * histogram_quantile(0.99, sum by (le) "
        '(rate(hal9_request_duration_seconds_bucket{namespace="hal9-prod",system="hierarchical"}[30s])))'
    )
    assert 'system="flat"' in named["flat-p99-ms"]
    assert 'pod=~"hal9-hierarchical-[a-z0-9]+-[a-z0-9]+"' in named["cpu-percent"]
    assert all("{{" not in q for q in named.values())


def test_window_overrides_the_interval_and_days_become_seconds() -> None:
    named = {q.name: q.query for q in signals.queries(spec(window="2m"), "ns", "m")}
    assert "[120s]" in named["error-rate"]
    assert signals.prometheus_duration("1d") == "86400s"


def test_overrides_and_user_checks_get_every_variable() -> None:
    custom = spec(
        queries={"cpuPercent": "100 * rate(cpu{app='{{hierarchicalDeployment}}'}[{{ window }}])"},
        metrics=[
            {
                "name": "queue-depth",
                "query": 'max(q{ns="{{namespace}}",svc=~"{{ flatService }}|{{hierarchicalService}}",'
                'd="{{flatDeployment}}",m="{{ migration }}"})',
                "max": 10,
            }
        ],
    )
    named = {q.name: q.query for q in signals.queries(custom, "ns", "canary-1")}
    assert named["cpu-percent"] == "100 * rate(cpu{app='hal9-hierarchical'}[30s])"
    assert named["queue-depth"] == (
        'max(q{ns="ns",svc=~"hal9-flat|hal9-hierarchical",d="hal9-flat",m="canary-1"})'
    )
    assert "hal9_errors_total" in named["error-rate"]  # the others keep their defaults


def test_in_shadow_with_the_proxy_parity_and_both_p99s_are_the_proxys_measurements() -> None:
    custom = spec(queries={"p99Ms": "my_p99", "errorRate": "my_errors"})
    named = {q.name: q.query for q in signals.queries(custom, "hal9-prod", "m1", proxy=True)}
    assert list(named) == [
        "error-rate",
        "p99-ms",
        "flat-p99-ms",
        "cpu-percent",
        "memory-percent",
        "output-parity",
    ]
    selector = 'namespace="hal9-prod",migration="m1"'
    assert named["output-parity"] == (
        f"1 - sum(increase(hal9_shadow_divergence_score_total{{{selector}}}[30s])) / "
        f"sum(increase(hal9_shadow_compared_total{{{selector}}}[30s]))"
    )
    assert named["p99-ms"] == (
        "1000 * histogram_quantile(0.99, sum by (le) (rate(hal9_shadow_upstream_duration_seconds_bucket"
        f'{{{selector},system="hierarchical"}}[30s])))'
    )
    assert 'system="flat"' in named["flat-p99-ms"] and "hal9_shadow_" in named["flat-p99-ms"]
    # The user's overrides of the systems' own metrics still apply where the proxy measures nothing.
    assert named["error-rate"] == "my_errors"
    plain = {q.name: q.query for q in signals.queries(custom, "hal9-prod", "m1")}
    assert plain["p99-ms"] == "my_p99" and "output-parity" not in plain


def test_an_unknown_variable_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="unknown query variable nmespace; known: namespace"):
        spec(metrics=[{"name": "x", "query": "q{a='{{ nmespace }}'}", "max": 1}])
