"""A container as a local process: started in its own session, tied to the node agent's life, its
output in a log file, stopped as a group.

What a container runtime guarantees and tests rely on: nothing a container started outlives it (the
whole session is signalled, as a cgroup would be), and nothing outlives the node (PR_SET_PDEATHSIG;
a SIGKILLed agent leaves no worker behind to write into a database the next test reuses).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

TAIL_READ = 256 * 1024  # enough for the kubelet's 80 lines / 2048 bytes, whatever the line lengths
_libc = ctypes.CDLL(None, use_errno=True)  # resolved here, not in the forked child
_PR_SET_PDEATHSIG = 1


def spawn(
    argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | str, log_path: Path
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` with stdout and stderr appended to ``log_path``; returns the process and the
    log's offset where this run's output begins. Raises OSError when it cannot be executed.

    Call from a thread that lives as long as the agent (its main thread): the kernel's parent-death
    signal follows the *thread* that forked the child.
    """
    parent = os.getpid()

    def die_with_agent() -> None:  # in the child, between fork and exec
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the agent died before prctl took effect
            os._exit(137)

    with log_path.open("ab") as log_file:
        offset = log_file.tell()
        proc = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_agent,
        )
    return proc, offset


def signal_group(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    """Signal the process's whole session (its own process group, from start_new_session)."""
    if proc is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def stop_all(procs: Sequence[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM every group, wait up to ``grace`` seconds in all, then SIGKILL what is left."""
    for proc in procs:
        signal_group(proc, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        signal_group(proc, signal.SIGKILL)


def read_since(log_path: Path, offset: int) -> bytes:
    """The end of a log from ``offset`` on (one run's output; earlier runs are before it)."""
    try:
        with log_path.open("rb") as log_file:
            size = log_file.seek(0, os.SEEK_END)
            log_file.seek(max(offset, size - TAIL_READ))
            return log_file.read()
    except OSError:
        return b""
