"""The chart's alerts (files/alerts.yaml) loaded by a real Prometheus that scrapes the real operator as
job ``hal9-migration-operator``: Hal9MigrationRolledBack fires during a real automatic rollback, and
Hal9MigrationOperatorDown turns pending once the operator stops (its ``for: 5m`` is kept as shipped,
so the test stops at pending rather than wait five minutes for firing).

The world is test_dashboard_queries.py's: the HAL9 stand-ins with load straight to their pods, an
Istio VirtualService, analysis every 2 s; the hierarchical stand-in turns failing by a real rollout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Cluster, wait_until
from tests.integration.test_dashboard_queries import (
    NAME,
    OPERATOR_JOB,
    Monitored,
    migration,
    wait_rolled_back,
    watched,
)
from tests.support.traffic import Standins, apply


@pytest.fixture
def monitored(cluster: Cluster, namespace: str, standins: Standins, tmp_path: Path) -> Iterator[Monitored]:
    yield from watched(cluster, namespace, standins, tmp_path)


def alerts(world: Monitored, name: str) -> list[dict[str, Any]]:
    """The active (pending or firing) alerts of that name, as ``GET /api/v1/alerts`` lists them."""
    return [a for a in world.api("/api/v1/alerts")["alerts"] if a["labels"]["alertname"] == name]


def test_the_rollback_alert_fires_during_a_rollback_and_operator_down_turns_pending(
    cluster: Cluster, namespace: str, monitored: Monitored
) -> None:
    world = monitored
    groups = world.api("/api/v1/rules")["groups"]
    assert [(g["name"], len(g["rules"])) for g in groups] == [("hal9-migration", 8)]
    apply(cluster, [migration(namespace, world.prometheus.url, "Canary")], namespace)
    wait_until(
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True" and c["reason"] == "TargetReached"
            for c in world.migration().get("status", {}).get("conditions", [])
        ),
        120,
        "Canary 25 % reached on passing analysis",
    )
    assert alerts(world, "Hal9MigrationRolledBack") == []

    world.set_error_rate(0.5)
    rolled_back = wait_rolled_back(world)
    firing = wait_until(
        lambda: [a for a in alerts(world, "Hal9MigrationRolledBack") if a["state"] == "firing"],
        30,
        "Hal9MigrationRolledBack firing",
    )
    # No `for:` on this rule: active (and firing) at the first evaluation after the scrape that saw it.
    late = datetime.fromisoformat(firing[0]["activeAt"]) - datetime.fromisoformat(
        rolled_back["status"]["rollback"]["time"]
    )
    print(f"Hal9MigrationRolledBack active {late.total_seconds():.1f} s after status.rollback.time")
    assert -1 < late.total_seconds() < 10
    assert len(firing) == 1
    assert firing[0]["labels"] == {
        "alertname": "Hal9MigrationRolledBack",
        "namespace": namespace,
        "migration": NAME,
        "severity": "critical",
    }
    assert firing[0]["annotations"]["summary"] == f"{namespace}/{NAME} was rolled back automatically"
    assert rolled_back["status"]["rollback"]["reason"]  # the triggers that fired, in status too

    # The operator stops: its scrape target goes down, and OperatorDown waits out its `for`.
    assert alerts(world, "Hal9MigrationOperatorDown") == []
    world.operator.stop()
    stopped = time.monotonic()
    pending = wait_until(lambda: alerts(world, "Hal9MigrationOperatorDown"), 30, "OperatorDown pending")
    print(f"Hal9MigrationOperatorDown pending {time.monotonic() - stopped:.1f} s after the operator stopped")
    # absent() of a comparison has no labels to keep: the alert carries its name and level only.
    assert [(a["state"], a["labels"]) for a in pending] == [
        ("pending", {"alertname": "Hal9MigrationOperatorDown", "severity": "critical"})
    ]
    rules = {r["name"]: r for g in world.api("/api/v1/rules")["groups"] for r in g["rules"]}
    assert f'job="{OPERATOR_JOB}"' in rules["Hal9MigrationOperatorDown"]["query"]  # the job scraped here
    # Back: the alert goes, and the operator is there to clean up after the test.
    world.operator.start()
    wait_until(lambda: not alerts(world, "Hal9MigrationOperatorDown"), 60, "OperatorDown to clear")
