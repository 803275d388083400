"""Two replicas under kopf's peering (`run --peering`): one acts, the other waits and takes over.

What an SRE relies on when running the chart's two replicas: the standby never acts while the active
one lives; when the active one is killed (no goodbye), the standby resumes within the peering lifetime
and the walk goes on from where it was, with no step skipped or repeated; a replica started later with
a higher priority takes over, and one that exits cleanly (a rolling upgrade) hands over at once.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hal9_migration.models import Hal9MigrationSpec
from tests.integration.conftest import Cluster, OperatorProcess, stop_operator, wait_until
from tests.integration.test_engine import FAST, apply, get, manifest, moves, wait_condition
from tests.support.manifests import workloads
from tests.support.routes import RouteRecorder

PEERING = "hal9-migration-operator"
# Short, so the test is quick; the chart's default is 15 s. A replica renews its record every
# max(1, lifetime - 5..10) seconds, so a killed one is presumed dead at most `LIFETIME` after its death.
LIFETIME = 6
# What the first step after a takeover may take beyond the lifetime: the standby wakes at the record's
# deadline, touches its own record, sees no live peer above it, resumes, and its daemon's first pass
# makes the step when it falls due (up to one step duration later).
STEP_SECONDS = 2
TAKEOVER_SLACK = 3
# A replica that exits cleanly marks its record dead on the way out.
HANDOVER_SECONDS = 3
STEPS = list(range(1, 21))  # the most a phase may have


def replica(cluster: Cluster, namespace: str, tmp_path: Path, name: str, priority: int) -> OperatorProcess:
    args = ("--peering", PEERING, "--priority", str(priority), "--peering-lifetime", str(LIFETIME))
    log_dir = tmp_path / name
    log_dir.mkdir()
    return OperatorProcess(cluster.env, namespace, log_dir, extra_args=args)


@pytest.fixture
def replicas(
    cluster: Cluster, namespace: str, tmp_path: Path
) -> Iterator[tuple[OperatorProcess, OperatorProcess]]:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    peering = f"apiVersion: kopf.dev/v1\nkind: KopfPeering\nmetadata: {{name: {PEERING}}}\n"
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=peering)
    active = replica(cluster, namespace, tmp_path, "active", priority=200)
    standby = replica(cluster, namespace, tmp_path, "standby", priority=100)
    # The active replica first: one that starts alone acts at once, and the standby that joins it
    # starts paused (kopf's mandatory peering) and stays so, silently, while a higher one lives.
    active.start()
    active.wait_for_log("Resuming operations", timeout=60)
    standby.start()
    try:
        yield active, standby
    finally:
        active.stop()
        stop_operator(cluster, standby)
        assert "Traceback" not in active.logs(), active.logs()


def peers(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """The replicas' records in the peering object (kopf keeps one per replica in its status)."""
    obj = json.loads(cluster.kubectl("get", "kopfpeering", PEERING, "-n", namespace, "-o", "json").stdout)
    return dict(obj.get("status") or {})


def test_the_standby_takes_over_a_killed_active_replica_without_skipping_or_repeating_a_step(
    cluster: Cluster, namespace: str, replicas: tuple[OperatorProcess, OperatorProcess]
) -> None:
    active, standby = replicas
    wait_until(lambda: len(peers(cluster, namespace)) == 2, 30, "both replicas in the peering object")
    spec = manifest(
        phases={
            **FAST,
            "shadow": {"duration": "1s", "mirrorPercent": 100, "mode": "Mirror"},
            "canary": {"steps": STEPS, "stepDuration": f"{STEP_SECONDS}s"},
        },
        trafficSplit=STEPS[-1],
    )
    recorder = RouteRecorder(cluster.api, namespace, Hal9MigrationSpec.model_validate(spec["spec"])).start()
    try:
        apply(cluster, namespace, spec)
        wait_until(lambda: get(cluster, namespace).get("status", {}).get("weight", 0) >= 5, 60, "step 5")
        assert "Resuming operations" not in standby.logs()

        # The active replica dies without a goodbye: its peering record stays until it expires.
        active.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        weight_at_kill = recorder.weights()[-1][0]
        bound = LIFETIME + STEP_SECONDS + TAKEOVER_SLACK
        standby.wait_for_log("Resuming operations", timeout=bound + 10)
        wait_until(
            lambda: any(
                v.at > killed_at and v.routing and v.routing.weight != weight_at_kill
                for v in recorder.versions
            ),
            bound + 10,
            "the standby's first step",
        )
        took_over = min(
            v.at - killed_at
            for v in recorder.versions
            if v.at > killed_at and v.routing and v.routing.weight != weight_at_kill
        )
        print(f"first step after SIGKILL: {took_over:.1f} s (lifetime {LIFETIME} s, steps {STEP_SECONDS} s)")
        assert took_over <= bound

        # A replica that starts with a higher priority (an upgrade's new pod) takes over; exiting
        # cleanly, it removes its record, so the standby resumes without waiting for a lifetime.
        active.start()
        standby.wait_for_log("Pausing operations in favour of", timeout=60)
        resumes = standby.logs().count("Resuming operations")
        assert active.proc is not None
        active.proc.send_signal(signal.SIGTERM)  # not stop(): it would wait for the exit
        signalled_at = time.monotonic()
        # Well inside the LIFETIME - 1 s a dead record takes to expire at the soonest: a handover,
        # not a takeover by expiry.
        wait_until(
            lambda: standby.logs().count("Resuming operations") > resumes,
            HANDOVER_SECONDS,
            "a handover on a clean exit",
        )
        print(f"handover after SIGTERM: {time.monotonic() - signalled_at:.1f} s")
        active.stop()

        obj = wait_condition(cluster, namespace, "Ready", "TargetReached", timeout=120)
        assert recorder.weights() == [(0, 0), (0, 100), *[(w, 0) for w in STEPS]]
        assert moves(obj) == [("Started", 0), *[("Advanced", w) for w in STEPS]]
    finally:
        recorder.stop()
