"""Phase 3 on the real control plane: the operator's Indexed Job, run by the node agent's real pods
against real SQLite and PostgreSQL, watched by Kubernetes' own Job controller and garbage collector.

Each test drives a migration to RampUp through Shadow and Canary (seconds), then checks what a DBA
relies on: progress in status while it runs, the phase passing only on NoDataLoss, failures that
stop with their reason and lose nothing, and a retry that finishes.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hal9_migration import statejob
from hal9_migration.statemigration import seed
from hal9_migration.statemigration.stores.factory import open_store
from tests.integration.conftest import Cluster, OperatorProcess, wait_until
from tests.integration.test_engine import apply, condition, events, get, manifest, wait_condition
from tests.support import postgres as pg
from tests.support.manifests import workloads
from tests.support.statemigration import Pair

NAME = "flat-to-hierarchical"


@pytest.fixture(scope="module")
def postgres() -> Iterator[pg.PostgresServer]:
    with pg.running() as server:
        yield server


class Databases(Pair):
    """A flat source and an empty hierarchical target of one kind, and what checks them."""

    def seed(self, count: int, seed_value: int = 7) -> None:
        store = open_store(self.source)
        store.create_flat_table()
        generated = seed.generate(count, seed=seed_value)
        while batch := [row for _, row in zip(range(5000), generated, strict=False)]:
            store.insert_flat(batch)
        store.close()

    def independent_check(self) -> dict[str, Any]:
        """`verify-state` as a separate process: counts and checksums recomputed from both stores."""
        result = subprocess.run(
            [sys.executable, "-m", "hal9_migration.cli", "verify-state"],
            env={**os.environ, "HAL9_SOURCE_URL": self.source, "HAL9_TARGET_URL": self.target},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        overall = json.loads(result.stdout.splitlines()[-1])
        assert overall["scope"] == "overall" and overall["passed"] is True
        return dict(overall)


@pytest.fixture(params=["sqlite", "postgres"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Databases]:
    if request.param == "sqlite":
        yield Databases("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
        return
    server: pg.PostgresServer = request.getfixturevalue("postgres")
    suffix = os.urandom(4).hex()
    source, target = server.create_database(f"flat_{suffix}"), server.create_database(f"hier_{suffix}")
    yield Databases("postgres", source, target)
    server.drop_database(f"flat_{suffix}")
    server.drop_database(f"hier_{suffix}")


def put_secret(cluster: Cluster, namespace: str, name: str, data: dict[str, str]) -> None:
    """Create or replace a Secret (its values never go through a command line)."""
    body = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(body))


def state_manifest(workers: int = 2, batch: int = 100, name: str = NAME, **state: Any) -> dict[str, Any]:
    return manifest(
        name=name,
        targetPhase="RampUp",
        trafficSplit=None,
        rollback={"strategy": "Immediate"},
        stateMigration={
            "image": "hal9-migration-operator:dev",
            "source": {"urlSecretRef": {"name": "hal9-flat-db", "key": "url"}},
            "target": {"urlSecretRef": {"name": "hal9-hier-db", "key": "url"}},
            "workers": workers,
            "batchSize": batch,
            "backoffLimitPerIndex": 2,
            **state,
        },
    )


@pytest.fixture
def world(cluster: Cluster, namespace: str) -> str:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())
    return namespace


def secrets_for(cluster: Cluster, namespace: str, dbs: Databases) -> None:
    put_secret(cluster, namespace, "hal9-flat-db", {"url": dbs.source})
    put_secret(cluster, namespace, "hal9-hier-db", {"url": dbs.target})


def state_of(obj: dict[str, Any]) -> dict[str, Any]:
    return dict(obj.get("status", {}).get("stateMigration") or {})


def job_of(cluster: Cluster, namespace: str, attempt: int = 1, name: str = NAME) -> dict[str, Any]:
    uid = get(cluster, namespace, name)["metadata"]["uid"]
    return get(cluster, namespace, statejob.job_name(name, uid, attempt), kind="job")


class StatusRecorder:
    """Every stateMigration status the API server shows, through a real watch (kubectl get -w)."""

    def __init__(self, cluster: Cluster, namespace: str) -> None:
        self.seen: list[dict[str, Any]] = []
        self.proc = subprocess.Popen(
            [cluster.kubectl_path, "get", "h9m", NAME, "-n", namespace, "-w", "-o", "json"],
            env=cluster.env,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        decoder, buffer = json.JSONDecoder(), ""
        for line in self.proc.stdout:
            buffer += line
            try:
                obj, _ = decoder.raw_decode(buffer.strip())
            except ValueError:
                continue
            buffer = ""
            self.seen.append(state_of(obj))

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def test_the_job_migrates_while_status_follows_and_ramp_up_waits_for_verification(
    cluster: Cluster, world: str, operator: OperatorProcess, databases: Databases
) -> None:
    databases.seed(30_000)
    secrets_for(cluster, world, databases)
    apply(cluster, world, state_manifest(workers=3, batch=100))
    recorder = StatusRecorder(cluster, world)
    try:
        obj = wait_until(
            lambda: (o := get(cluster, world))["status"].get("phase") == "RampUp" and o,
            240,
            "RampUp after the state migration",
        )
    finally:
        recorder.stop()
    state = state_of(obj)
    assert state["state"] == "Verified" and state["percent"] == 100
    assert (state["total"], state["migrated"], state["failed"], state["shards"]) == (30_000, 30_000, 0, 3)
    assert state["validation"].startswith("NoDataLoss passed: 30000 source rows = 30000 migrated + 0 failed")
    percents = [s["percent"] for s in recorder.seen if s.get("percent") is not None]
    assert any(0 < p < 100 for p in percents), percents  # progress was shown while it ran
    assert percents == sorted(percents)
    # RampUp came only after the verified state: no status ever showed RampUp with the run unverified.
    history = [(h["reason"], h.get("to")) for h in obj["status"]["history"]]
    assert ("StateMigrationStarted", None) in history
    ramp = next(h for h in obj["status"]["history"] if h.get("to") == "RampUp")
    assert "NoDataLoss passed" in ramp["message"]
    job = job_of(cluster, world)
    assert job["spec"]["completionMode"] == "Indexed" and job["status"]["succeeded"] == 3
    assert job["metadata"]["ownerReferences"][0]["uid"] == obj["metadata"]["uid"]
    overall = databases.independent_check()
    assert overall["source_count"] == overall["target_count"] == 30_000
    ids = databases.query(
        databases.target, "SELECT count(*), count(DISTINCT unit_id) FROM hierarchical_units"
    )
    assert ids[0] == (30_000, 30_000)
    if databases.kind == "postgres":  # the only URLs with a password
        password = databases.target.split(":")[2].split("@")[0]  # the URL's own password
        leaks = {
            "operator log": operator.logs(),
            "status": json.dumps(obj["status"]),
            "events": json.dumps(events(cluster, world)),
            "job": json.dumps(job),
        }
        assert [where for where, text in leaks.items() if password in text] == []


def test_a_sigkilled_worker_is_retried_by_the_job_and_resumes_from_its_checkpoint(
    cluster: Cluster, world: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    dbs = Databases("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
    dbs.seed(40_000)
    secrets_for(cluster, world, dbs)
    apply(cluster, world, state_manifest(workers=2, batch=50))
    assert cluster.plane is not None
    pods_dir = cluster.plane.node_agent_dir / "pods" / world

    def migrated() -> int:
        try:
            return int(
                dbs.query(dbs.target, "SELECT coalesce(sum(migrated), 0) FROM migration_checkpoints")[0][0]
            )
        except sqlite3.Error:
            return 0

    wait_until(lambda: migrated() > 2000, 180, "the workers to commit batches")
    pid_file = sorted(pods_dir.glob("*/worker.pid"))[0]
    os.kill(int(pid_file.read_text()), signal.SIGKILL)
    obj = wait_until(
        lambda: (o := get(cluster, world))["status"].get("phase") == "RampUp" and o, 240, "RampUp"
    )
    job = job_of(cluster, world)
    assert job["status"]["failed"] >= 1 and job["status"]["succeeded"] == 2  # that index was retried
    assert state_of(obj)["state"] == "Verified"
    overall = dbs.independent_check()
    assert overall["source_count"] == overall["target_count"] == 40_000
    assert dbs.query(dbs.target, "SELECT count(*), count(DISTINCT unit_id) FROM hierarchical_units")[0] == (
        40_000,
        40_000,
    )


def test_missing_secret_then_missing_key_stall_without_a_job_until_fixed(
    cluster: Cluster, world: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    dbs = Databases("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
    dbs.seed(500)
    put_secret(cluster, world, "hal9-flat-db", {"url": dbs.source})
    apply(cluster, world, state_manifest())
    obj = wait_condition(cluster, world, "Stalled", "SecretNotFound", timeout=90)
    assert f"Secret {world}/hal9-hier-db not found" in condition(obj, "Stalled")[2]
    put_secret(cluster, world, "hal9-hier-db", {"uri": dbs.target})  # the wrong key
    obj = wait_until(
        lambda: "has no key 'url'" in condition(o := get(cluster, world), "Stalled")[2] and o, 30, "the key"
    )
    assert obj["status"]["phase"] == "StateMigration"
    assert cluster.kubectl("get", "jobs", "-n", world, "-o", "name").stdout.strip() == ""
    put_secret(cluster, world, "hal9-hier-db", {"url": dbs.target})
    wait_until(lambda: get(cluster, world)["status"].get("phase") == "RampUp", 120, "RampUp")


def test_an_unreachable_database_fails_the_job_and_a_retry_after_the_fix_finishes(
    cluster: Cluster, world: str, operator: OperatorProcess, postgres: pg.PostgresServer
) -> None:
    suffix = os.urandom(4).hex()
    source, target = postgres.create_database(f"flat_{suffix}"), postgres.create_database(f"hier_{suffix}")
    dbs = Databases("postgres", source, target)
    dbs.seed(2000)
    unreachable = target.replace(f":{postgres.port}/", ":1/")
    put_secret(cluster, world, "hal9-flat-db", {"url": source})
    put_secret(cluster, world, "hal9-hier-db", {"url": unreachable})
    apply(cluster, world, state_manifest(backoffLimitPerIndex=1))
    obj = wait_condition(cluster, world, "Stalled", "StateMigrationFailed", timeout=180)
    # The worker's error reaches the pod's status a moment after the Job may be seen failed.
    obj = wait_until(
        lambda: "cannot connect to PostgreSQL" in condition(o := get(cluster, world), "Stalled")[2] and o,
        30,
        f"the worker's error in the Stalled message: {condition(obj, 'Stalled')[2]}",
    )
    message = condition(obj, "Stalled")[2]
    assert "failed index" in message, message
    password = postgres.password
    assert password in target  # so the greps below can fail
    assert password not in json.dumps(obj) and password not in operator.logs()
    assert obj["status"]["weight"] == 0  # Immediate: traffic went back to flat
    put_secret(cluster, world, "hal9-hier-db", {"url": target})
    cluster.kubectl("annotate", "h9m", NAME, "-n", world, "migration.hal9.ai/retry=dba")
    obj = wait_until(
        lambda: (o := get(cluster, world))["status"].get("phase") == "RampUp" and o, 240, "RampUp"
    )
    assert state_of(obj)["attempt"] == 2
    assert dbs.independent_check()["target_count"] == 2000
    postgres.drop_database(f"flat_{suffix}")
    postgres.drop_database(f"hier_{suffix}")


def test_failed_rows_beyond_the_limit_stop_the_phase_and_fixing_them_then_retry_finishes(
    cluster: Cluster, world: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    dbs = Databases("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
    dbs.seed(1000)
    victims = [
        row[0] for row in dbs.query(dbs.source, "SELECT neuron_id FROM neurons ORDER BY neuron_id LIMIT 3")
    ]
    originals = {
        v: dbs.query(dbs.source, f"SELECT memory FROM neurons WHERE neuron_id = '{v}'")[0][0] for v in victims
    }
    for victim in victims:
        dbs.execute(dbs.source, f"UPDATE neurons SET memory = '{{\"broken' WHERE neuron_id = '{victim}'")
    secrets_for(cluster, world, dbs)
    apply(cluster, world, state_manifest(maxFailedRows=1))
    obj = wait_condition(cluster, world, "Stalled", "StateMigrationFailed", timeout=180)
    message = condition(obj, "Stalled")[2]
    assert "3 rows failed validation, more than maxFailedRows 1" in message
    state = state_of(obj)
    assert [f["id"] for f in state["firstFailures"]] == victims
    assert state["failed"] == 3 and state["migrated"] == 997
    for victim, memory in originals.items():  # the DBA repairs the rows in the source
        dbs.execute(dbs.source, f"UPDATE neurons SET memory = '{memory}' WHERE neuron_id = '{victim}'")
    cluster.kubectl("annotate", "h9m", NAME, "-n", world, "migration.hal9.ai/retry=dba")
    obj = wait_until(
        lambda: (o := get(cluster, world))["status"].get("phase") == "RampUp" and o, 240, "RampUp"
    )
    assert (state_of(obj)["migrated"], state_of(obj)["failed"]) == (1000, 0)
    assert dbs.independent_check()["target_count"] == 1000


def test_deleting_the_migration_removes_its_job_and_pods(
    cluster: Cluster, world: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    dbs = Databases("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
    dbs.seed(200_000)  # long enough to still run when deleted
    secrets_for(cluster, world, dbs)
    apply(cluster, world, state_manifest(workers=2, batch=20))
    wait_until(
        lambda: cluster.kubectl("get", "pods", "-n", world, "-o", "name").stdout.count("pod/") == 2,
        120,
        "2 pods",
    )
    cluster.kubectl("delete", "h9m", NAME, "-n", world, "--timeout=60s")
    wait_until(
        lambda: cluster.kubectl("get", "jobs,pods", "-n", world, "-o", "name").stdout.strip() == "",
        90,
        "garbage collection of the Job and its pods",
    )
    assert cluster.plane is not None
    for pid_file in (cluster.plane.node_agent_dir / "pods" / world).glob("*/worker.pid"):
        pid = int(pid_file.read_text())
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_migration_with_a_253_character_name_gets_a_valid_job(
    cluster: Cluster, world: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    dbs = Databases("sqlite", f"sqlite:///{tmp_path / 'flat.db'}", f"sqlite:///{tmp_path / 'hier.db'}")
    dbs.seed(100)
    secrets_for(cluster, world, dbs)
    apply(cluster, world, state_manifest(name=name))
    wait_until(lambda: get(cluster, world, name)["status"].get("phase") == "RampUp", 120, "RampUp")
    job = job_of(cluster, world, name=name)
    assert job["status"]["succeeded"] == 2
    assert len(job["metadata"]["name"]) <= statejob.MAX_NAME
