"""Pod status as the node agent writes it: what the Job controller, kstatus and the operator read."""

from __future__ import annotations

from typing import Any

import pytest

from hal9_migration.testing import kubelet_status as kst
from hal9_migration.testing.nodeapi import IpPool

STARTED = "2026-01-01T00:00:00Z"
ENDED = "2026-01-01T00:00:05Z"


def status(state: dict[str, Any], last: dict[str, Any] | None = None, name: str = "main") -> dict[str, Any]:
    return {"name": name, "state": state, "lastState": last or {}, "ready": "running" in state}


def ended(code: int) -> dict[str, Any]:
    return kst.terminated(code, started_at=STARTED, finished_at=ENDED)


@pytest.mark.parametrize(("returncode", "code"), [(0, 0), (3, 3), (-9, 137), (-15, 143)])
def test_a_signal_reports_128_plus_its_number(returncode: int, code: int) -> None:
    assert kst.exit_code(returncode) == code


def test_terminated_reasons() -> None:
    assert ended(0)["terminated"]["reason"] == "Completed"
    assert ended(137)["terminated"]["reason"] == "Error"
    start_error = kst.terminated(
        128, started_at="", finished_at=ENDED, reason="StartError", message="no command"
    )
    assert start_error["terminated"] == {
        "exitCode": 128,
        "reason": "StartError",
        "message": "no command",
        "startedAt": ENDED,
        "finishedAt": ENDED,
    }


def test_the_log_tail_is_the_last_80_lines_at_most_2048_bytes() -> None:
    lines = b"".join(f"line {i}\n".encode() for i in range(1, 101))
    tail = kst.log_tail(lines)
    assert tail.startswith("line 21\n")
    assert tail.endswith("line 100\n")
    long = b"x" * 5000 + b"\nthe error\n"
    assert kst.log_tail(long) == ("x" * (2048 - len("\nthe error\n"))) + "\nthe error\n"
    assert kst.log_tail(b"") == ""
    assert kst.log_tail(b"\xff broken utf-8\n") == "\ufffd broken utf-8\n"


@pytest.mark.parametrize(
    ("policy", "statuses", "phase"),
    [
        ("Never", [status(kst.waiting("ContainerCreating"))], "Pending"),
        ("Never", [status(kst.waiting("CreateContainerConfigError"))], "Pending"),
        ("Never", [status(kst.running(STARTED))], "Running"),
        ("Never", [status(ended(0))], "Succeeded"),
        ("Never", [status(ended(3))], "Failed"),
        ("Never", [status(ended(0)), status(kst.running(STARTED), name="b")], "Running"),
        ("Never", [status(ended(0)), status(ended(1), name="b")], "Failed"),
        ("OnFailure", [status(kst.waiting("CrashLoopBackOff"), ended(1))], "Running"),
        ("OnFailure", [status(ended(0), ended(1))], "Succeeded"),
        ("Always", [status(ended(0))], "Running"),
        ("Always", [status(kst.waiting("CrashLoopBackOff"), ended(0))], "Running"),
    ],
)
def test_pod_phase_follows_the_kubelet(policy: str, statuses: list[dict[str, Any]], phase: str) -> None:
    assert kst.pod_phase(policy, statuses) == phase


@pytest.mark.parametrize(
    ("policy", "code", "again"),
    [
        ("Never", 1, False),
        ("Never", 0, False),
        ("OnFailure", 1, True),
        ("OnFailure", 0, False),
        ("Always", 0, True),
    ],
)
def test_restart_policy(policy: str, code: int, again: bool) -> None:
    assert kst.restarts(policy, code) is again


def test_backoff_doubles_and_is_capped() -> None:
    assert [kst.backoff_seconds(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    assert kst.backoff_seconds(10_000) == kst.BACKOFF_MAX


def test_conditions_keep_other_writers_and_unchanged_transition_times() -> None:
    existing = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": STARTED},
        {"type": "Ready", "status": "True", "lastTransitionTime": STARTED},
        {"type": "Initialized", "status": "True", "lastTransitionTime": STARTED},
    ]
    running = kst.pod_conditions("Running", [status(kst.running(STARTED))], existing, ENDED)
    by_type = {c["type"]: c for c in running}
    assert set(by_type) == {
        "PodScheduled",
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    }
    assert by_type["Ready"]["lastTransitionTime"] == STARTED  # unchanged status keeps its time
    assert by_type["ContainersReady"]["lastTransitionTime"] == ENDED

    done = {c["type"]: c for c in kst.pod_conditions("Failed", [status(ended(3))], running, ENDED)}
    assert (done["Ready"]["status"], done["Ready"]["reason"]) == ("False", "PodCompleted")
    assert done["PodScheduled"] == by_type["PodScheduled"]

    waiting = [status(kst.waiting("CreateContainerConfigError")), status(kst.running(STARTED), name="b")]
    pending = {c["type"]: c for c in kst.pod_conditions("Pending", waiting, [], ENDED)}
    assert pending["Ready"]["message"] == "containers with unready status: [main]"


def test_container_status_is_ready_and_started_only_while_running() -> None:
    spec = {"name": "worker", "image": "hal9:1"}
    live = kst.container_status(
        spec, state=kst.running(STARTED), last_state={}, restart_count=2, container_id="c"
    )
    assert (live["ready"], live["started"], live["restartCount"], live["image"]) == (True, True, 2, "hal9:1")
    done = kst.container_status(spec, state=ended(0), last_state={}, restart_count=0, container_id="")
    assert (done["ready"], done["started"]) == (False, False)


def test_pod_ips_are_distinct_loopback_addresses_released_only_by_their_owner() -> None:
    pool = IpPool()
    first, second = pool.allocate("a"), pool.allocate("b")
    assert (first, second) == ("127.0.1.1", "127.0.1.2")
    pool.release(first, "a")
    assert pool.allocate("c") == "127.0.1.3"  # next-fit: a released address is reused late
    pool.release(second, "not-b")
    assert pool.allocate("d", preferred=second) != second  # still b's
    assert pool.allocate("e", preferred="127.0.1.1") == "127.0.1.1"  # an agent restart keeps an address


def test_pod_ips_wrap_to_the_next_octet() -> None:
    pool = IpPool()
    addresses = [pool.allocate(str(n)) for n in range(256)]
    assert addresses[253:256] == ["127.0.1.254", "127.0.2.1", "127.0.2.2"]
    assert len(set(addresses)) == 256
