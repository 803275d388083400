"""Analysis on real traffic: requests really go through Envoy (programmed by Envoy Gateway from the
HTTPRoute the operator writes) to the HAL9 stand-ins, a real Prometheus scrapes them, and the real
operator advances, holds or rolls back on what it reads.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from hal9_migration.controls import Verb, annotation
from hal9_migration.testing.loadgen import LoadGenerator
from tests.integration.conftest import wait_until
from tests.support.scenario import FAILURE_LIMIT, INTERVAL_SECONDS, Scenario, build_migration

IMMEDIATE = {"strategy": "Immediate"}
# The operator must have reverted within failureLimit runs after the first failing scrape, plus one
# interval for the run that first sees it (the bound).
ROLLBACK_BOUND = FAILURE_LIMIT * INTERVAL_SECONDS + INTERVAL_SECONDS


def history(scenario: Scenario) -> list[dict[str, Any]]:
    return list(scenario.migration()["status"].get("history", []))


def test_a_healthy_migration_walks_on_real_metrics_and_envoy_splits_as_the_route_says(
    scenario: Scenario,
) -> None:
    scenario.start(IMMEDIATE)
    runs: dict[str, dict[str, Any]] = {}  # every analysis run seen in status, by its time

    def ready() -> bool:
        status = scenario.migration().get("status", {})
        if status.get("analysis", {}).get("lastRunTime"):
            runs[status["analysis"]["lastRunTime"]] = status["analysis"]
        return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))

    wait_until(ready, 120, "Ready")
    measured = [a for a in runs.values() if all(c.get("value") is not None for c in a["checks"])]
    # A run every 2 s over the ~8 s walk (Shadow 4 s, Canary 10 % 4 s), each with real values for
    # every check but the very first, which may find no mirrored request in its window yet.
    assert len(measured) >= 3, runs
    assert {a["at"].split(" step")[0] for a in measured} == {"Shadow", "Canary"}
    assert scenario.watch is not None
    assert [(v.hierarchical, v.mirrored) for v in scenario.watch.versions] == [
        (0, False),  # as applied
        (0, True),  # Shadow: hierarchical gets a mirrored copy
        (10, False),
        (25, False),
    ]
    advanced = [h for h in history(scenario) if h["reason"] == "Advanced"]
    assert len(advanced) == 2 and all("gate analysis passed" in h["message"] for h in advanced)
    status = scenario.migration()["status"]
    checks = {c["name"]: c for c in status["analysis"]["checks"]}
    assert checks["error-rate"]["verdict"] == "Pass" and checks["error-rate"]["value"] == 0
    assert f'namespace="{scenario.namespace}"' in checks["error-rate"]["query"]
    assert checks["p99-ms"]["verdict"] == "Pass" and 0 < checks["p99-ms"]["value"] < 100
    assert status["health"]["score"] == 1
    assert scenario.condition("Degraded")[:2] == ("False", "AnalysisPassing")

    # At 25 %, Envoy sends a quarter of the requests to hierarchical: seen by the client and by
    # Prometheus in the stand-ins' own counters.
    assert scenario.load is not None
    scenario.load.stop()
    totals = settled_counters(scenario)
    result = LoadGenerator(scenario.dataplane.url + "/process", rate=150, count=2000, concurrency=8).run()
    assert result.statuses[200] == 2000
    share = result.systems["hierarchical"] / 2000
    # Binomial at p = 0.25, n = 2000: sd 0.97 %; 4 sd either side.
    assert 0.211 <= share <= 0.289, result.summary()
    after = settled_counters(scenario)
    assert {k: after[k] - totals[k] for k in after} == dict(result.systems)


def counters(scenario: Scenario) -> dict[str, int]:
    out = {}
    for system in ("flat", "hierarchical"):
        value = scenario.prometheus.value(
            f'sum(hal9_requests_total{{namespace="{scenario.namespace}",system="{system}"}})'
        )
        out[system] = int(value or 0)
    return out


def settled_counters(scenario: Scenario) -> dict[str, int]:
    """The counters once the last requests are scraped: the same over three scrapes (1 s apart)."""
    readings: list[dict[str, int]] = []

    def settled() -> bool:
        readings.append(counters(scenario))
        time.sleep(1)
        return len(readings) >= 3 and readings[-1] == readings[-2] == readings[-3]

    wait_until(settled, 60, "the request counters in Prometheus to settle")
    return readings[-1]


@pytest.mark.parametrize(
    ("rollback", "walk"),
    [
        (IMMEDIATE, [0]),
        ({"strategy": "Gradual", "gradual": {"stepPercent": 10, "stepInterval": "2s"}}, [15, 5, 0]),
        ({"strategy": "Partial", "partial": {"components": ["routing"]}}, [0]),
    ],
    ids=["Immediate", "Gradual", "Partial"],
)
def test_errors_injected_at_a_canary_step_roll_back_by_themselves(
    scenario: Scenario, rollback: dict[str, Any], walk: list[int]
) -> None:
    scenario.start(rollback)
    scenario.wait_ready()
    assert scenario.watch is not None
    injected = time.monotonic()
    scenario.set_errors(0.5)
    failing = wait_until(
        lambda: (rate := scenario.error_rate()) is not None and rate > 0.05 and time.monotonic(),
        60,
        "Prometheus to see hierarchical fail",
    )
    scenario.wait_weight(0, timeout=60)
    after = [v for v in scenario.watch.versions if v.at >= injected]
    assert [v.hierarchical for v in after] == walk
    assert after[-1].mirrored  # back in Shadow: the last good snapshot
    assert after[0].at - failing <= ROLLBACK_BOUND, (after[0].at - failing, ROLLBACK_BOUND)
    if rollback["strategy"] == "Partial":
        assert after[-1].targeting  # targeting is not a named component: beta users stay on hierarchical

    status = scenario.migration()["status"]
    assert scenario.condition("Stalled")[:2] == ("True", "RolledBack")
    assert scenario.condition("Degraded")[:2] == ("True", "RolledBack")
    assert "error-rate" in status["rollback"]["reason"]
    assert (
        status["rollback"]["toPhase"] == "Shadow" and status["rollback"]["strategy"] == rollback["strategy"]
    )
    assert "(rollback.maxErrorRate)" in status["rollback"]["message"]
    events = scenario.cluster.kubectl(
        "get",
        "events",
        "-n",
        scenario.namespace,
        "--field-selector",
        "reason=AutomaticRollback",
        "-o",
        "name",
    ).stdout.split()
    assert len(events) == 1


def test_prometheus_stopped_mid_migration_holds_as_inconclusive_and_goes_on_when_back(
    scenario: Scenario,
) -> None:
    scenario.start(IMMEDIATE)
    scenario.wait_weight(10)
    scenario.prometheus.stop()
    # Once the step's hold time is over, the gate waits on a run that cannot measure, and says why.
    reconciling = wait_until(
        lambda: (found := scenario.condition("Reconciling"))[1] == "WaitingForGate" and found,
        30,
        "the step to wait on its gate",
    )
    assert reconciling[0] == "True" and "is unreachable" in reconciling[2], reconciling
    assert scenario.migration()["status"]["analysis"]["verdict"] == "Inconclusive"
    assert scenario.condition("Degraded")[:2] == ("Unknown", "AnalysisInconclusive")
    assert scenario.watch is not None
    seen = len(scenario.watch.versions)
    time.sleep(4 * INTERVAL_SECONDS)  # several runs and the step's hold time: nothing may move
    assert len(scenario.watch.versions) == seen and scenario.watch.at_weight(10)
    assert scenario.migration()["status"]["analysis"]["consecutiveFailures"] == 0
    scenario.prometheus.start()
    scenario.wait_weight(25)
    scenario.wait_ready()


def test_the_failed_spec_reapplied_by_gitops_never_moves_a_weight_until_retry(scenario: Scenario) -> None:
    scenario.start(IMMEDIATE)
    scenario.wait_ready()
    scenario.set_errors(0.5)
    scenario.wait_weight(0, timeout=60)
    scenario.set_errors(0)  # fixed in the Deployment; the spec still says what failed
    assert scenario.watch is not None
    seen = len(scenario.watch.versions)
    failed = build_migration(scenario.namespace, scenario.prometheus.url, IMMEDIATE)
    paused = build_migration(scenario.namespace, scenario.prometheus.url, IMMEDIATE)
    paused["spec"]["paused"] = True
    for i in range(30):  # Argo CD self-heal, every 2 s for a minute; once, someone's edit put back
        scenario.apply(paused if i == 10 else failed)
        time.sleep(2)
    assert len(scenario.watch.versions) == seen, scenario.watch.versions[seen:]
    stalled = scenario.condition("Stalled")
    assert (
        stalled[:2] == ("True", "RolledBack") and "held off until the spec changes or a retry" in stalled[2]
    )
    assert "FailedSpecReapplied" in [h["reason"] for h in history(scenario)]

    scenario.cluster.kubectl(
        "annotate", "h9m", "m", "-n", scenario.namespace, f"{annotation(Verb.RETRY)}=tester", "--overwrite"
    )
    scenario.wait_weight(25, timeout=90)
    scenario.wait_ready()
    assert scenario.migration()["status"]["rollback"]["retriedBy"] == "tester"
