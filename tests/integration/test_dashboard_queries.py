"""Every query of the chart's Grafana dashboard, run against a real Prometheus after a real migration.

The real operator (``--metrics``, scraped as job ``hal9-migration-operator``, the name the alerts'
OperatorDown expects) walks a migration on an Istio VirtualService through Shadow, Canary and
StateMigration (a real Indexed Job moving SQLite rows), its analysis reading the HAL9 stand-ins'
metrics from the same Prometheus; the hierarchical stand-in then turns failing (a real rollout) and
the operator rolls back. Load goes straight to the stand-in pods (no Envoy: nothing here reads where
a request went). Then each panel's queries, with the template variables substituted and
``$__rate_interval`` computed as Grafana computes it, go to ``/api/v1/query_range`` over the run, as
Grafana sends them, and each must return data; so must the namespace and migration variables.
"""

from __future__ import annotations

import json
import math
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from hal9_migration.testing.controlplane import free_port
from hal9_migration.testing.loadgen import LoadGenerator
from hal9_migration.testing.prometheus import Prometheus
from tests.integration.conftest import Cluster, OperatorProcess, stop_operator, wait_until
from tests.integration.test_engine import condition
from tests.integration.test_state_migration import Databases, put_secret
from tests.support.manifests import ROOT
from tests.support.routes import router_config, sample_route
from tests.support.traffic import Standins, answering_endpoint, apply, wait_scraped
from tests.unit.test_dashboard import board, queries

ALERTS = ROOT / "charts" / "hal9-migration-operator" / "files" / "alerts.yaml"
OPERATOR_JOB = "hal9-migration-operator"  # the alerts' OperatorDown reads up{job="hal9-migration-operator"}
NAME = "m"
ROWS = 3000
# Grafana's Prometheus data source, set to the harness' scrape interval (1 s): the minimum step, and
# $__rate_interval = max($__interval + scrape interval, 4 x scrape interval) (Grafana's docs).
SCRAPE_SECONDS = 1
MAX_DATA_POINTS = 1000  # about a panel's width in pixels, which is what Grafana sends


@dataclass
class Monitored:
    """The real operator and the real Prometheus that scrapes it, its alert rules loaded, and the
    stand-ins with load on each."""

    cluster: Cluster
    namespace: str
    operator: OperatorProcess
    prometheus: Prometheus
    standins: Standins
    loads: dict[str, LoadGenerator] = field(default_factory=dict)

    def load(self, system: str, url: str) -> None:
        """Steady load straight to ``system``'s pod at ``url`` (replacing the load it had)."""
        if system in self.loads:
            self.loads[system].stop()
        self.loads[system] = LoadGenerator(url + "/process", rate=20, duration=3600, concurrency=2).start()

    def set_error_rate(self, rate: float) -> None:
        """One real rollout of the hierarchical stand-in with its error-rate knob, the load moved to
        the new pod."""
        deployment = "deployment/hal9-hierarchical"
        self.cluster.kubectl("set", "env", "-n", self.namespace, deployment, f"HAL9_ERROR_RATE={rate}")
        self.cluster.kubectl(
            "rollout", "status", "-n", self.namespace, deployment, "--timeout=60s", timeout=70
        )
        self.load("hierarchical", answering_endpoint(self.cluster, self.namespace, "hierarchical"))

    def migration(self) -> dict[str, Any]:
        out = self.cluster.kubectl("get", "h9m", NAME, "-n", self.namespace, "-o", "json").stdout
        return dict(json.loads(out))

    def api(self, path: str, **params: str) -> Any:
        """A Prometheus HTTP API answer's ``data`` (the harness' own client has no range queries)."""
        url = f"{self.prometheus.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (the harness' loopback URL)
            answer = json.loads(response.read())
        assert answer["status"] == "success", answer
        return answer["data"]


def watched(cluster: Cluster, namespace: str, standins: Standins, tmp_path: Path) -> Iterator[Monitored]:
    """The body of the ``monitored`` fixtures: started in that order, stopped in the reverse one."""
    port = free_port()
    operator = OperatorProcess(
        cluster.env, namespace, tmp_path, extra_args=("--metrics", f"127.0.0.1:{port}")
    )
    operator.start()
    server = Prometheus(
        tmp_path / "prometheus",
        Path(cluster.env["KUBECONFIG"]),
        namespaces=[namespace],
        rule_files=[ALERTS],
        extra_scrape_configs=[
            {"job_name": OPERATOR_JOB, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
        ],
    )
    found = Monitored(cluster, namespace, operator, server, standins)
    try:
        server.start()
        apply(cluster, [sample_route("istio")], namespace)
        wait_scraped(server, namespace, pods=2)
        wait_until(lambda: server.value(f'up{{job="{OPERATOR_JOB}"}}') == 1, 30, "the operator to be scraped")
        for system, url in standins.urls.items():
            found.load(system, url)
        yield found
    finally:
        for load in found.loads.values():
            load.stop()
        server.stop()
        stop_operator(cluster, operator)


@pytest.fixture
def monitored(cluster: Cluster, namespace: str, standins: Standins, tmp_path: Path) -> Iterator[Monitored]:
    yield from watched(cluster, namespace, standins, tmp_path)


def migration(namespace: str, prometheus: str, target: str, **spec: Any) -> dict[str, Any]:
    """A migration on the sample VirtualService whose analysis reads the stand-ins every 2 s; the
    latency limits are wide (two stand-ins on a loaded 2-core machine), errors decide."""
    return {
        "apiVersion": "migration.hal9.ai/v1alpha1",
        "kind": "Hal9Migration",
        "metadata": {"name": NAME, "namespace": namespace},
        "spec": {
            "flat": {"service": "hal9-flat", "deployment": "hal9-flat"},
            "hierarchical": {"service": "hal9-hierarchical", "deployment": "hal9-hierarchical"},
            "targetPhase": target,
            "phases": {
                "shadow": {"duration": "3s", "mirrorPercent": 100, "mode": "Mirror", "maxLatencyRatio": 10},
                "canary": {"steps": [10, 25], "stepDuration": "3s", "maxP99Ms": 1000},
            },
            "trafficRouter": router_config("istio"),
            "analysis": {
                "prometheus": {"address": prometheus},
                "interval": "2s",
                "window": "5s",
                "failureLimit": 2,
            },
            "rollback": {"strategy": "Immediate"},
            "progressDeadline": "10m",
            **spec,
        },
    }


def wait_rolled_back(world: Monitored, timeout: float = 90) -> dict[str, Any]:
    def rolled_back() -> dict[str, Any] | None:
        obj = world.migration()
        return obj if condition(obj, "Stalled")[:2] == ("True", "RolledBack") else None

    return dict(wait_until(rolled_back, timeout, "the automatic rollback (Stalled, RolledBack)"))


def interpolate(expr: str, namespace: str, migration_name: str, start: float, end: float) -> tuple[str, int]:
    """``expr`` as Grafana sends it for the time range, and the step it sends it with: the variables
    substituted (a single migration chosen: Grafana regex-escapes it for ``=~``), ``$__interval`` the
    range over the data points but at least the scrape interval, ``$__rate_interval`` from it."""
    interval = max(SCRAPE_SECONDS, math.ceil((end - start) / MAX_DATA_POINTS))
    values = {
        "namespace": namespace,
        "migration": re.escape(migration_name),
        "__interval": f"{interval}s",
        "__rate_interval": f"{max(interval + SCRAPE_SECONDS, 4 * SCRAPE_SECONDS)}s",
        "__range": f"{round(end - start)}s",
    }
    unknown = set(re.findall(r"\$(\w+)", expr)) - set(values)
    assert not unknown, f"{expr} uses variables Grafana would not fill in here: {unknown}"
    return re.sub(r"\$(\w+)", lambda m: values[m.group(1)], expr), interval


def series_values(result: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Each series of a matrix by its labels, its values as numbers (NaN dropped, as Grafana shows)."""
    out = {}
    for item in result:
        values = [float(v) for _, v in item["values"] if v != "NaN"]
        out[json.dumps(item["metric"], sort_keys=True)] = values
    return out


def test_every_panel_query_returns_data_after_a_migration_with_state_and_a_rollback(
    cluster: Cluster, namespace: str, monitored: Monitored, tmp_path: Path
) -> None:
    world = monitored
    dbs = Databases("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
    dbs.seed(ROWS)
    put_secret(cluster, namespace, "hal9-flat-db", {"url": dbs.source})
    put_secret(cluster, namespace, "hal9-hier-db", {"url": dbs.target})
    state = {
        "image": "hal9-migration-operator:dev",
        "source": {"urlSecretRef": {"name": "hal9-flat-db", "key": "url"}},
        "target": {"urlSecretRef": {"name": "hal9-hier-db", "key": "url"}},
        "workers": 2,
        "batchSize": 50,
    }
    start = time.time()
    apply(
        cluster,
        [migration(namespace, world.prometheus.url, "StateMigration", stateMigration=state)],
        namespace,
    )

    def verified_and_ready() -> bool:
        status = world.migration().get("status", {})
        ready = condition({"status": status}, "Ready")[:2] == ("True", "TargetReached")
        return ready and (status.get("stateMigration") or {}).get("state") == "Verified"

    wait_until(
        verified_and_ready, 240, f"StateMigration verified and Ready: {world.migration().get('status')}"
    )
    world.set_error_rate(0.5)
    wait_rolled_back(world)
    mine = f'namespace="{namespace}",migration="{NAME}"'
    # Scraped, and a step ago: the last step of a range query may fall just before the newest scrape.
    wait_until(
        lambda: world.prometheus.value(f"sum(hal9_migration_rollbacks_total{{{mine}}})", at=time.time() - 2),
        30,
        "the rollback scraped",
    )
    end = time.time()

    # The variables' own queries (label_values(selector, label): Grafana asks the label-values API).
    variables = {v["name"]: v["query"] for v in board()["templating"]["list"] if v["type"] == "query"}
    for name, chosen in (("namespace", namespace), ("migration", NAME)):
        parsed = re.fullmatch(r"label_values\((.+), (\w+)\)", variables[name])
        assert parsed is not None, variables[name]
        match, label = parsed[1].replace("$namespace", namespace), parsed[2]
        found = world.api(
            f"/api/v1/label/{label}/values", **{"match[]": match, "start": str(start), "end": str(end)}
        )
        assert chosen in found, (name, found)

    results: dict[tuple[str, str], dict[str, list[float]]] = {}
    for title, ref, expr in queries(board()):
        promql, step = interpolate(expr, namespace, NAME, start, end)
        data = world.api("/api/v1/query_range", query=promql, start=str(start), end=str(end), step=str(step))
        values = series_values(data["result"])
        assert any(values.values()), f"panel {title!r} query {ref} returned no data: {promql}"
        results[(title, ref)] = values

    def seen(title: str, ref: str = "A") -> set[float]:
        return {v for values in results[(title, ref)].values() for v in values}

    # And the data is the run's: every phase it went through, the rows moved, the rollback.
    assert {1, 2, 3} <= seen("Phase"), seen("Phase")
    assert max(seen("State migration: neurons", "B")) == ROWS
    assert max(seen("State migration: neurons")) == ROWS
    assert 100 in seen("Progress", "B")
    assert {1, 3} <= seen("Analysis verdict"), seen("Analysis verdict")  # Pass, then Fail
    assert max(seen("Rollbacks")) >= 1
    assert max(seen("Error rate per system")) > 0.3  # hierarchical at 0.5
    assert min(seen("Health score")) < 0.8 <= max(seen("Health score"))
