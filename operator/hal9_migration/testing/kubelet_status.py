"""Pod status as the kubelet writes it (pure): container states, phase, conditions, restarts.

Kubernetes' Job controller, ``kubectl wait`` and kstatus read these fields, and the operator reads a
failed worker's ``terminated.message``; so the node agent must write them the way a kubelet does
(pkg/kubelet/kubelet_pods.go ``getPhase``, ``status/generate.go``, kuberuntime's termination message),
or tests that pass here would fail on a real cluster.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

# The kubelet's FallbackToLogsOnError tail: the last 80 lines, at most 2048 bytes of them.
TAIL_LINES = 80
TAIL_BYTES = 2048
# The kubelet backs off 10 s doubling to 5 min; a test harness wants the same shape, shorter.
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 5.0
TERMINAL = ("Succeeded", "Failed")


def rfc3339(at: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def exit_code(returncode: int) -> int:
    """A process killed by signal N reports 128 + N, as container runtimes do (SIGKILL: 137)."""
    return 128 - returncode if returncode < 0 else returncode


def log_tail(data: bytes) -> str:
    """The last lines of a container's log as the kubelet puts them in ``terminated.message``."""
    lines = data.splitlines(keepends=True)[-TAIL_LINES:]
    return b"".join(lines)[-TAIL_BYTES:].decode("utf-8", errors="replace")


def waiting(reason: str, message: str = "") -> dict[str, Any]:
    state: dict[str, Any] = {"reason": reason}
    if message:
        state["message"] = message
    return {"waiting": state}


def running(started_at: str) -> dict[str, Any]:
    return {"running": {"startedAt": started_at}}


def terminated(
    code: int,
    *,
    started_at: str,
    finished_at: str,
    message: str = "",
    reason: str = "",
    container_id: str = "",
) -> dict[str, Any]:
    """A terminated state; reason Completed for exit 0, else Error, unless a reason is given."""
    state: dict[str, Any] = {
        "exitCode": code,
        "reason": reason or ("Completed" if code == 0 else "Error"),
        "startedAt": started_at or finished_at,
        "finishedAt": finished_at,
    }
    if message:
        state["message"] = message
    if container_id:
        state["containerID"] = container_id
    return {"terminated": state}


def restarts(restart_policy: str, code: int) -> bool:
    """Whether a container that exited with ``code`` is started again (restartPolicy)."""
    return restart_policy == "Always" or (restart_policy == "OnFailure" and code != 0)


def backoff_seconds(restart_count: int) -> float:
    return min(BACKOFF_FIRST * float(2 ** min(restart_count, 16)), BACKOFF_MAX)


def pod_phase(restart_policy: str, statuses: Sequence[Mapping[str, Any]]) -> str:
    """The kubelet's getPhase for pods without init containers.

    A container waiting to be restarted (it has a ``lastState``) counts as stopped, not waiting, so a
    crash-looping OnFailure/Always pod stays Running.
    """
    waiting_count = running_count = stopped = succeeded = 0
    for status in statuses:
        state, last = status.get("state", {}), status.get("lastState", {})
        if "running" in state:
            running_count += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"]["exitCode"] == 0
        elif "terminated" in last:
            stopped += 1
        else:
            waiting_count += 1
    if waiting_count:
        return "Pending"
    if running_count:
        return "Running"
    if restart_policy == "Always":
        return "Running"
    if stopped == succeeded:
        return "Succeeded"
    return "Failed" if restart_policy == "Never" else "Running"


def pod_conditions(
    phase: str, statuses: Sequence[Mapping[str, Any]], existing: Sequence[Mapping[str, Any]], now: str
) -> list[dict[str, Any]]:
    """Initialized, PodReadyToStartContainers, ContainersReady and Ready; conditions other writers own
    (PodScheduled from the binding, DisruptionTarget from the garbage collector) are kept, and a
    condition whose status does not change keeps its lastTransitionTime."""
    unready = [s["name"] for s in statuses if not s.get("ready")]
    if phase in TERMINAL:
        ready: dict[str, Any] = {"status": "False", "reason": "PodCompleted"}
    elif unready:
        ready = {
            "status": "False",
            "reason": "ContainersNotReady",
            "message": f"containers with unready status: [{' '.join(unready)}]",
        }
    else:
        ready = {"status": "True"}
    mine = {
        "PodReadyToStartContainers": {"status": "False" if phase in TERMINAL else "True"},
        "Initialized": {"status": "True"},
        "ContainersReady": ready,
        "Ready": ready,
    }
    by_type = {c["type"]: c for c in existing}
    result = [dict(c) for c in existing if c["type"] not in mine]
    for kind, fields in mine.items():
        before = by_type.get(kind, {})
        transition = before.get("lastTransitionTime") if before.get("status") == fields["status"] else None
        result.append(
            {"type": kind, **fields, "lastProbeTime": None, "lastTransitionTime": transition or now}
        )
    return result


def container_status(
    spec: Mapping[str, Any],
    *,
    state: Mapping[str, Any],
    last_state: Mapping[str, Any],
    restart_count: int,
    container_id: str,
) -> dict[str, Any]:
    """One entry of ``status.containerStatuses``; ready means running (probes are not run here)."""
    status: dict[str, Any] = {
        "name": spec["name"],
        "image": spec.get("image", ""),
        "imageID": "",
        "state": dict(state),
        "lastState": dict(last_state),
        "ready": "running" in state,
        "started": "running" in state,
        "restartCount": restart_count,
    }
    if container_id:
        status["containerID"] = container_id
    return status
