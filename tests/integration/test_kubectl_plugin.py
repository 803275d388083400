"""``kubectl hal9`` against the real control plane and the real operator, run the way users run it:
the real kubectl finds ``kubectl-hal9`` on PATH and executes it (under a pseudo-terminal for the live
view)."""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import Cluster, OperatorProcess, wait_until
from tests.integration.test_engine import apply, condition, get, manifest, wait_condition
from tests.support.manifests import SAMPLES, invalid_cases, load_sample, workloads

NAME = "flat-to-hierarchical"
VENV_BIN = str(Path(sys.executable).parent)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def plugin_env(cluster: Cluster, **extra: str) -> dict[str, str]:
    return {
        **cluster.env,
        "PATH": f"{VENV_BIN}{os.pathsep}{cluster.env.get('PATH', os.environ['PATH'])}",
        **extra,
    }


def hal9(
    cluster: Cluster, *args: str, env: dict[str, str] | None = None, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """``kubectl hal9 ARGS``: kubectl itself finds the plugin on PATH."""
    return subprocess.run(
        [cluster.kubectl_path, "hal9", *args],
        env=env or plugin_env(cluster),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def setup(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=workloads())


def in_a_terminal(cluster: Cluster, args: list[str], timeout: float) -> tuple[int, str]:
    """Run ``kubectl hal9 ARGS`` with a pseudo-terminal as its stdin, stdout and stderr (160 x 60);
    everything it wrote, and its exit code."""
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 160, 0, 0))
    env = plugin_env(cluster, TERM="xterm-256color")
    env.pop("COLUMNS", None)
    proc = subprocess.Popen(
        [cluster.kubectl_path, "hal9", *args], stdin=secondary, stdout=secondary, stderr=secondary, env=env
    )
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.5)
        if ready:
            try:
                data = os.read(primary, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    else:
        proc.kill()
    code = proc.wait(timeout=10)
    os.close(primary)
    return code, b"".join(chunks).decode(errors="replace")


# --- the live view ----------------------------------------------------------------------------------


def start_quick_walk(cluster: Cluster, namespace: str, seconds: int) -> None:
    """Shadow, then Canary 10 % and 25 % (the target), each held ``seconds``."""
    setup(cluster, namespace)
    phases = {
        "shadow": {"duration": f"{seconds}s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [10, 25], "stepDuration": f"{seconds}s"},
    }
    apply(cluster, namespace, manifest(targetPhase="Canary", trafficSplit=None, phases=phases))


def changes(values: list[int]) -> list[int]:
    """Each value once per run of repeats, in order."""
    return [v for i, v in enumerate(values) if i == 0 or values[i - 1] != v]


def test_status_watch_redraws_in_a_terminal_as_the_weights_change(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    start_quick_walk(cluster, namespace, 3)
    wait_until(lambda: get(cluster, namespace).get("status", {}).get("phase"), 30, "the migration to start")

    code, raw = in_a_terminal(cluster, ["status", NAME, "-n", namespace, "--watch", "--timeout", "60s"], 75)

    text = ANSI.sub("", raw)
    assert code == 0, text[-3000:]  # it stopped by itself at the target, healthy
    # Redrawn in place (cursor moves up and lines are erased), not printed anew each time.
    assert raw.count("\x1b[2K") > 20 and ("\x1b[1A" in raw or "\x1b[A" in raw), raw[:500]
    # The weights as the route object held them, in order.
    distinct = changes([int(w) for w in re.findall(r"flat \d+%\s+hierarchical (\d+)%", text)])
    assert distinct[-3:] == [0, 10, 25] or distinct[-2:] == [10, 25], distinct
    # The phase timeline with the current step marked, the step's progress bar, the conditions.
    assert re.search(r"▶\s+Canary\s+\[10%\] 25%", text), text[-3000:]
    assert re.search(r"▶\s+Canary\s+10% \[25%\]", text)
    assert re.search(r"✔\s+Shadow", text)
    assert re.search(r"-\s+StateMigration\s+beyond the target", text)
    assert re.search(r"Wait\s+\S*━\S*\s+\d+s of 3s", text), "the step's wait has a progress bar"
    assert "Conditions" in text and re.search(r"Ready\s+True\s+TargetReached", text)


def test_status_watch_to_a_pipe_prints_one_json_line_per_change(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    start_quick_walk(cluster, namespace, 2)
    # The API server ends each watch after a second: the plugin must resume each from where it was.
    result = hal9(
        cluster,
        "status",
        NAME,
        "-n",
        namespace,
        "--watch",
        "-o",
        "json",
        "--timeout",
        "60s",
        env=plugin_env(cluster, HAL9_KUBECTL_WATCH_SECONDS="1"),
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert changes([line["route"]["weight"] for line in lines])[-2:] == [10, 25]
    assert lines[-1]["exitCode"] == 0 and lines[-1]["status"] == get(cluster, namespace)["status"]


def test_status_json_is_the_objects_status_and_the_exit_code_says_where_it_is(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    setup(cluster, namespace)
    apply(cluster, namespace, manifest(targetPhase="Canary", trafficSplit=5))
    wait_condition(cluster, namespace, "Ready", "TargetReached")
    result = hal9(cluster, "status", NAME, "-n", namespace, "-o", "json")
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    live = get(cluster, namespace)
    assert shown["status"] == live["status"]
    assert (shown["phase"], shown["weight"], shown["exitCode"]) == ("Canary", 5, 0)
    assert shown["route"]["kind"] == "VirtualService" and shown["route"]["weight"] == 5

    # Moving: exit 1, and the text view says why it waits.
    apply(
        cluster,
        namespace,
        manifest(
            targetPhase="Canary",
            trafficSplit=25,
            phases={
                "shadow": {"duration": "2s", "mode": "Mirror"},
                "canary": {"steps": [1, 5, 10, 25], "stepDuration": "1h"},
            },
        ),
    )
    wait_condition(cluster, namespace, "Reconciling", "WaitingForStep")
    moving = hal9(cluster, "status", NAME, "-n", namespace)
    assert moving.returncode == 1, moving.stdout + moving.stderr
    assert "Reconciling (WaitingForStep)" in moving.stdout
    assert re.search(r"Wait\s+\S+\s+\d+s of 1h", moving.stdout), moving.stdout


# --- the controls -----------------------------------------------------------------------------------


def test_each_control_acts_once_and_leaves_spec_and_generation_alone(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    setup(cluster, namespace)
    slow = {
        "shadow": {"duration": "1s", "mirrorPercent": 100, "mode": "Mirror"},
        "canary": {"steps": [1, 5, 10], "stepDuration": "1h"},
    }
    apply(cluster, namespace, manifest(targetPhase="Canary", trafficSplit=None, phases=slow))
    wait_until(lambda: get(cluster, namespace)["status"].get("weight") == 1, 30, "Canary step 1")
    before = get(cluster, namespace)
    me = json.loads(cluster.kubectl("auth", "whoami", "-o", "json").stdout)["status"]["userInfo"]["username"]

    def control(verb: str, *extra: str) -> tuple[int, dict[str, Any]]:
        result = hal9(cluster, verb, NAME, "-n", namespace, "-o", "json", "--timeout", "30s", *extra)
        assert result.returncode != 3, result.stderr
        return result.returncode, json.loads(result.stdout)

    def reasons(done: dict[str, Any]) -> list[str]:
        assert done["actor"] == me
        assert all(e["actor"] == me for e in done["history"] if e["reason"] != "Started")
        return [e["reason"] for e in done["history"]]

    code, done = control("pause")
    assert (code, reasons(done)) == (0, ["Paused"])
    assert condition(get(cluster, namespace), "Paused")[:2] == ("True", "PausedByAnnotation")

    code, done = control("promote")  # a promote skips the wait once, even while paused
    assert (code, reasons(done)) == (0, ["Promoted"])
    assert done["history"][0]["weight"] == 5
    assert get(cluster, namespace)["status"]["weight"] == 5

    code, done = control("resume")
    assert (code, reasons(done)) == (0, ["Resumed"])

    code, done = control("abort")
    assert (code, reasons(done)) == (0, ["Aborted", "Aborted"])
    aborted = get(cluster, namespace)
    assert condition(aborted, "Stalled")[:2] == ("True", "Aborted")
    shown = json.loads(hal9(cluster, "status", NAME, "-n", namespace, "-o", "json").stdout)
    assert (shown["phase"], shown["route"]["weight"], shown["exitCode"]) == (None, 0, 2)
    assert hal9(cluster, "status", NAME, "-n", namespace).returncode == 2

    code, done = control("retry")
    assert code == 0 and reasons(done)[0] == "Retried"
    wait_until(lambda: get(cluster, namespace)["status"].get("weight") == 1, 30, "the walk to start again")

    # Promote to the target, then once more: nothing to promote, and the exit code says so.
    for _ in range(2):
        assert control("promote")[0] == 0
    assert get(cluster, namespace)["status"]["weight"] == 10
    code, done = control("promote")
    assert (code, reasons(done)) == (2, ["PromoteIgnored"])

    after = get(cluster, namespace)
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]
    assert not [k for k in after["metadata"].get("annotations", {}) if k.startswith("migration.hal9.ai/")]

    history = hal9(cluster, "history", NAME, "-n", namespace, "-o", "json")
    assert history.returncode == 0
    trail = json.loads(history.stdout)
    assert trail == after["status"]["history"]
    by_person = [(e["reason"], e["actor"]) for e in trail if e["actor"] != "operator"]
    assert [r for r, _ in by_person] == [
        "Paused",
        "Promoted",
        "Resumed",
        "Aborted",
        "Aborted",
        "Retried",
        "Promoted",
        "Promoted",
        "PromoteIgnored",
    ]
    text = hal9(cluster, "history", NAME, "-n", namespace).stdout
    assert re.search(rf"Promoted\s+{re.escape(me)}\s+Canary step 2 \(5%\)", text), text


def test_a_control_nobody_consumes_says_so_and_stays(cluster: Cluster, namespace: str) -> None:
    """No operator runs: the plugin gives up after --timeout with exit 1; the annotation waits."""
    setup(cluster, namespace)
    apply(cluster, namespace, manifest())
    result = hal9(cluster, "pause", NAME, "-n", namespace, "--timeout", "2s")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "not acted on within 2s" in result.stdout
    assert "migration.hal9.ai/pause" in get(cluster, namespace)["metadata"]["annotations"]


# --- list and exit codes ----------------------------------------------------------------------------


def test_list_shows_every_migration_and_exits_with_the_worst(
    cluster: Cluster, namespace: str, operator: OperatorProcess
) -> None:
    setup(cluster, namespace)
    apply(cluster, namespace, manifest(targetPhase="Shadow", trafficSplit=None))
    broken = manifest(name="broken", targetPhase="Shadow", trafficSplit=None)
    broken["spec"]["hierarchical"] = {"service": "nowhere", "deployment": "nowhere"}
    apply(cluster, namespace, broken)
    wait_condition(cluster, namespace, "Ready", "TargetReached")
    wait_condition(cluster, namespace, "Stalled", "ReferenceNotFound", name="broken")

    listed = hal9(cluster, "list", "-n", namespace)
    assert listed.returncode == 2, listed.stdout + listed.stderr
    rows = {line.split()[0]: line for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert re.search(r"Shadow\s+1/1\s+0%\s+-\s+-\s+Ready: TargetReached", rows[NAME]), rows
    assert "Stalled: ReferenceNotFound" in rows["broken"]

    everywhere = json.loads(hal9(cluster, "list", "-A", "-o", "json").stdout)["items"]
    mine = {i["name"]: i for i in everywhere if i["namespace"] == namespace}
    assert (mine[NAME]["exitCode"], mine["broken"]["exitCode"]) == (0, 2)
    assert mine[NAME]["condition"]["reason"] == "TargetReached"

    # A control the operator cannot act on now (it cannot read the objects the spec names) is not sent.
    refused = hal9(cluster, "promote", "broken", "-n", namespace, "--timeout", "5s")
    assert refused.returncode == 2 and "not sent" in refused.stdout and "ReferenceNotFound" in refused.stdout
    assert "migration.hal9.ai/promote" not in get(cluster, namespace, "broken")["metadata"].get(
        "annotations", {}
    )

    alone = hal9(cluster, "status", NAME, "-n", namespace)
    assert alone.returncode == 0 and "Ready (TargetReached)" in alone.stdout
    assert hal9(cluster, "status", "broken", "-n", namespace).returncode == 2


def test_unreachable_cluster_or_object_exits_3(cluster: Cluster, namespace: str, tmp_path: Path) -> None:
    missing = hal9(cluster, "status", "no-such-migration", "-n", namespace)
    assert missing.returncode == 3
    assert 'Hal9Migration "no-such-migration" not found' in missing.stderr

    config = yaml.safe_load(Path(cluster.env["KUBECONFIG"]).read_text())
    for entry in config["clusters"]:
        entry["cluster"]["server"] = "https://127.0.0.1:1"  # nothing listens on port 1
    dead = tmp_path / "dead-kubeconfig"
    dead.write_text(yaml.safe_dump(config))
    for args in (
        ["list"],
        ["status", NAME],
        ["promote", NAME],
        ["plan", str(SAMPLES / "flat-to-hierarchical.yaml")],
    ):
        result = hal9(cluster, *args, env=plugin_env(cluster, KUBECONFIG=str(dead)))
        assert result.returncode == 3, (args, result.stdout, result.stderr)
        assert "cannot reach the API server at https://127.0.0.1:1" in result.stderr

    # A token the API server refuses, and one that cannot even be sent: exit 3, the token never shown.
    cluster.kubectl("create", "serviceaccount", "nobody", "-n", namespace)
    token = cluster.kubectl("create", "token", "nobody", "-n", namespace).stdout.strip()
    for credential, expect in ((token, "Error from server (Forbidden)"), (token + "\n", "cannot be sent")):
        config = yaml.safe_load(Path(cluster.env["KUBECONFIG"]).read_text())
        for user in config["users"]:
            user["user"] = {"token": credential}
        stranger = tmp_path / "stranger-kubeconfig"
        stranger.write_text(yaml.safe_dump(config))
        result = hal9(cluster, "list", "-n", namespace, env=plugin_env(cluster, KUBECONFIG=str(stranger)))
        assert result.returncode == 3, result.stdout + result.stderr
        assert expect in result.stderr and token not in result.stderr + result.stdout

    nowhere = hal9(cluster, "list", env=plugin_env(cluster, KUBECONFIG=str(tmp_path / "absent")))
    assert nowhere.returncode == 3 and "cannot read kubeconfig" in nowhere.stderr
    wrong = hal9(cluster, "list", "--context", "no-such-context")
    assert wrong.returncode == 3 and 'context "no-such-context" does not exist' in wrong.stderr
    usage = hal9(cluster, "status")  # no name: a command-line mistake, not "needs a person"
    assert usage.returncode == 4 and "the following arguments are required: name" in usage.stderr


# --- plan -------------------------------------------------------------------------------------------


def _plan(
    cluster: Cluster, namespace: str, obj: dict[str, Any], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{obj['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(obj))
    return hal9(cluster, "plan", str(path), "-n", namespace, "-o", "json")


@pytest.mark.parametrize(
    ("sample", "expected", "holds"),
    [
        ("flat-to-hierarchical", [("Shadow", 0), ("Canary", 1), ("Canary", 5), ("Canary", 10)], [6, 3, 3]),
        (
            "all-five-phases",
            [
                ("Shadow", 0),
                ("Canary", 1),
                ("Canary", 5),
                ("Canary", 10),
                ("Canary", 25),
                ("StateMigration", 25),
                ("RampUp", 50),
                ("RampUp", 75),
                ("RampUp", 90),
                ("Full", 100),
            ],
            [3, 2, 2, 2, 2],
        ),
        ("via-gateway-api", None, None),
        (
            "rehearsal",  # no Job runs, so every step has a time
            [
                ("Shadow", 0),
                ("Canary", 5),
                ("Canary", 25),
                ("StateMigration", 25),
                ("RampUp", 50),
                ("RampUp", 90),
                ("Full", 100),
            ],
            [2, 1, 1, 0, 1, 1],
        ),
    ],
)
def test_plan_prints_each_samples_steps_and_earliest_times(
    cluster: Cluster, namespace: str, tmp_path: Path, sample: str, expected: Any, holds: Any
) -> None:
    obj = load_sample(sample)
    started = datetime.now().astimezone()
    result = _plan(cluster, namespace, obj, tmp_path)
    assert result.returncode == 0, result.stderr
    [shown] = json.loads(result.stdout)
    steps = shown["steps"]
    if expected is None:  # Gateway API: the sample's own steps, in order, ending at its target
        spec = obj["spec"]
        expected = [("Shadow", 0)] + [
            ("Canary", w) for w in spec["phases"]["canary"]["steps"] if w <= spec.get("trafficSplit", 100)
        ]
        holds = None
    assert [(s["phase"], s["weight"]) for s in steps] == expected
    assert shown["from"].startswith("not started") and "not created yet" in shown["object"]
    first = datetime.fromisoformat(steps[0]["earliest"])
    assert abs((first - started).total_seconds()) < 30
    if holds is not None:
        times = [datetime.fromisoformat(s["earliest"]) for s in steps[: len(holds) + 1]]
        assert [round((b - a).total_seconds()) for a, b in itertools.pairwise(times)] == holds
    if sample == "all-five-phases":  # nothing after the state migration has a time: the Job decides
        assert [s["earliest"] for s in steps[6:]] == [None] * 4
        assert steps[5]["gate"] == "state-migration"
    # A dry run stores nothing.
    assert (
        cluster.kubectl("get", "h9m", obj["metadata"]["name"], "-n", namespace, check=False).returncode != 0
    )


def test_plan_starts_where_the_live_migration_stands(
    cluster: Cluster, namespace: str, operator: OperatorProcess, tmp_path: Path
) -> None:
    setup(cluster, namespace)
    slow = {
        "shadow": {"duration": "1s", "mode": "Mirror"},
        "canary": {"steps": [1, 5, 10, 25], "stepDuration": "1h"},
    }
    obj = manifest(targetPhase="Canary", trafficSplit=None, phases=slow)
    apply(cluster, namespace, obj)
    wait_until(lambda: get(cluster, namespace)["status"].get("weight") == 1, 30, "Canary step 1")
    since = datetime.fromisoformat(get(cluster, namespace)["status"]["position"]["since"])
    result = _plan(cluster, namespace, obj, tmp_path)
    assert result.returncode == 0, result.stderr
    [shown] = json.loads(result.stdout)
    assert [(s["weight"], s["current"]) for s in shown["steps"]] == [
        (1, True),
        (5, False),
        (10, False),
        (25, False),
    ]
    assert datetime.fromisoformat(shown["steps"][1]["earliest"]) == since + timedelta(hours=1)
    text = hal9(cluster, "plan", str(tmp_path / f"{NAME}.yaml"), "-n", namespace)
    assert "(live)" in text.stdout and re.search(r"▶ Canary 1\s+1%", text.stdout), text.stdout


@pytest.mark.parametrize("case", invalid_cases()[:6], ids=lambda c: c.name)
def test_plan_prints_the_api_servers_own_rejection(
    cluster: Cluster, namespace: str, tmp_path: Path, case: Any
) -> None:
    result = _plan(cluster, namespace, case.manifest, tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert case.expect in result.stderr
    # Word for word what kubectl itself prints for the same manifest: the API server's own causes.
    path = tmp_path / f"{case.manifest['metadata']['name']}.yaml"
    kubectl = cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", str(path), check=False
    )
    assert kubectl.returncode != 0
    assert result.stderr == kubectl.stderr
