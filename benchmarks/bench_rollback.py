"""`make bench-rollback`: how fast an automatic rollback puts the route object back at the safe weight.

On a fresh local control plane with Envoy Gateway + Envoy, the HAL9 stand-ins, a real Prometheus and
the operator as a real process: one migration (Gateway API HTTPRoute, Immediate rollback, analysis
every 2 s, failureLimit 2, Canary [10] held 1 s) is driven BENCH_ROLLBACKS (20) times through

  walk to Canary 10 -> errors on in hierarchical (a real rollout) -> automatic rollback to Shadow
  -> errors off (a rollout) -> retry.

Measured per rollback: from the first failing scrape (the timestamp of the first Prometheus sample in
which hierarchical's error counter rose) to the watch event of the HTTPRoute at weight 0. Printed: p50,
p99 and max against the configured bound, failureLimit x interval + interval (6 s), and as a ratio to
it. Baseline, measured in the same run: the time from a weight patch of the same HTTPRoute (this
process's own GET + replace) to its watch event, the floor of any route change.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.integration.conftest import OperatorProcess, _connect
from tests.support.scenario import FAILURE_LIMIT, INTERVAL_SECONDS, LATENCY_RATIO, Scenario, build_route
from tests.support.traffic import Standins, answering_endpoint, apply

from hal9_migration.controls import Verb, annotation
from hal9_migration.testing import controlplane
from hal9_migration.testing.dataplane import DataPlane, envoy_gateway_binary
from hal9_migration.testing.prometheus import Prometheus
from hal9_migration.testing.standin import SYSTEMS
from hal9_migration.testing.standins import build_standins

ROUNDS = int(os.environ.get("BENCH_ROLLBACKS", "20"))
BOUND = FAILURE_LIMIT * INTERVAL_SECONDS + INTERVAL_SECONDS
PHASES = {
    "shadow": {"duration": "1s", "mirrorPercent": 100, "maxLatencyRatio": LATENCY_RATIO},
    "canary": {"steps": [10], "stepDuration": "1s"},
}


def first_failing_scrape(prometheus: Prometheus, namespace: str, after: float) -> float:
    """The timestamp of the first scrape after ``after`` in which hierarchical's error counter was
    above zero (the errors-on rollout starts a new pod, whose counter starts at 0)."""
    selector = f'hal9_errors_total{{namespace="{namespace}",system="hierarchical"}}'
    for at, value in prometheus.scrapes(selector, 120):
        if at > after and value > 0:
            return at
    raise AssertionError(f"no failing scrape after {after}")


def route_write_baseline(scenario: Scenario, rounds: int = 20) -> list[float]:
    """Seconds for this process's own GET + replace of a copy of the HTTPRoute: the floor of any
    route change a controller makes."""
    import kubernetes

    api = kubernetes.client.CustomObjectsApi(scenario.cluster.api)
    where = ("gateway.networking.k8s.io", "v1", scenario.namespace, "httproutes", "baseline")
    out = []
    for i in range(rounds):
        while True:  # Envoy Gateway writes the route's status too: retry on fresh data, as a controller does
            start = time.time()
            obj = api.get_namespaced_custom_object(*where)
            obj["spec"]["rules"][0]["backendRefs"][1]["weight"] = 10 + i % 2
            try:
                api.replace_namespaced_custom_object(*where, obj)
            except kubernetes.client.exceptions.ApiException as error:
                if error.status == 409:
                    continue
                raise
            out.append(time.time() - start)
            break
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    with (
        tempfile.TemporaryDirectory(prefix="hal9-bench-rollback-") as work,
        controlplane.running(Path(work) / "controlplane") as plane,
    ):
        cluster = _connect(plane.env(), plane.kubectl, plane)
        namespace = "bench"
        cluster.kubectl("create", "namespace", namespace)
        apply(cluster, build_standins(namespace), namespace)
        standins = Standins(namespace, {s: answering_endpoint(cluster, namespace, s) for s in SYSTEMS})
        prometheus = Prometheus(Path(work) / "prometheus", plane.kubeconfig, namespaces=[namespace]).start()
        dataplane = DataPlane(
            plane.kubeconfig, plane.kubectl, Path(work) / "dataplane", envoy_gateway_binary()
        )
        operator = OperatorProcess(cluster.env, namespace, Path(work))
        with dataplane:
            operator.start()
            scenario = Scenario(cluster, namespace, dataplane, prometheus, standins, operator)
            try:
                scenario.start({"strategy": "Immediate"}, PHASES)
                baseline = build_route(namespace, dataplane.parent_ref())
                baseline["metadata"]["name"] = "baseline"
                scenario.apply(baseline)
                floor = route_write_baseline(scenario)
                times = []
                for round_ in range(ROUNDS):
                    scenario.wait_weight(10, timeout=120)
                    injected = time.time()
                    scenario.set_errors(0.5)
                    scenario.wait_weight(0, timeout=60)
                    assert scenario.watch is not None
                    safe = next(
                        v.wall for v in scenario.watch.versions if v.wall >= injected and v.hierarchical == 0
                    )
                    failing = first_failing_scrape(prometheus, namespace, injected)
                    times.append(safe - failing)
                    print(f"rollback {round_ + 1:2}/{ROUNDS}: {safe - failing:5.2f} s", flush=True)
                    scenario.set_errors(0)
                    cluster.kubectl(
                        "annotate",
                        "h9m",
                        "m",
                        "-n",
                        namespace,
                        f"{annotation(Verb.RETRY)}=bench-{round_}",
                        "--overwrite",
                    )
            finally:
                scenario.stop()
                operator.stop()
                prometheus.stop()
    p50, p99 = statistics.median(times), percentile(times, 0.99)
    print()
    bound = f"failureLimit {FAILURE_LIMIT} x interval {INTERVAL_SECONDS}s + interval"
    print(f"automatic rollback, first failing scrape -> safe weight on the HTTPRoute ({ROUNDS} rollbacks)")
    print(f"  configured bound ({bound}): {BOUND} s")
    print(
        f"  p50 {p50:.2f} s ({p50 / BOUND:.2f}x bound)   p99 {p99:.2f} s ({p99 / BOUND:.2f}x bound)"
        f"   max {max(times):.2f} s"
    )
    print(
        f"  baseline: this process's GET + replace of the route, p50 {statistics.median(floor) * 1000:.0f} ms"
    )
    return 0 if p99 <= BOUND else 1


if __name__ == "__main__":
    sys.exit(main())
