"""A container as a local process: started in its own session, tied to the node agent's life, its
output in a log file, stopped as a group, and (optionally) seeing its pod's own /etc/hosts.

What a container runtime guarantees and tests rely on: nothing a container started outlives it (the
whole session is signalled, as a cgroup would be), and nothing outlives the node (PR_SET_PDEATHSIG;
a SIGKILLed agent leaves no worker behind to write into a database the next test reuses).

The hosts file is how a pod's processes resolve Service names here (``servicenet.py``). A container
runtime bind-mounts the kubelet's per-pod hosts file over the container's /etc/hosts; so does this,
between fork and exec: a private mount namespace (``unshare(CLONE_NEWNS)``), ``/`` made recursively
private (nothing mounted there propagates back to the machine), the pod's file bound over /etc/hosts.
Only the pod's processes see it; the machine, the tests and Envoy keep the real one. That needs
CAP_SYS_ADMIN (root): ``private_hosts_error`` tells, once, whether this machine allows it. In the same
namespace, the pod's ServiceAccount directory (token, ca.crt, namespace) is bound read-only over
/var/run/secrets/kubernetes.io/serviceaccount, where the kubelet mounts it and in-cluster clients read it.
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
ETC_HOSTS = b"/etc/hosts"
SERVICE_ACCOUNT_MOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_ACCOUNT_TARGET = os.fsencode(SERVICE_ACCOUNT_MOUNT)
_libc = ctypes.CDLL(None, use_errno=True)  # resolved here, not in the forked child
_PR_SET_PDEATHSIG = 1
_CLONE_NEWNS = 0x00020000  # <sched.h>
_MS_RDONLY = 1  # <sys/mount.h>
_MS_REMOUNT = 32
_MS_BIND = 0x1000
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | str,
    log_path: Path,
    hosts_file: Path | None = None,
    service_account: Path | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``argv`` with stdout and stderr appended to ``log_path``; returns the process and the
    log's offset where this run's output begins. Raises OSError when it cannot be executed.
    ``hosts_file``: what the process (and its children) see as /etc/hosts, in a mount namespace of
    their own; ``service_account`` (with ``hosts_file``): the directory they see, read-only, as
    ``SERVICE_ACCOUNT_MOUNT`` (which must exist: the caller makes the mount point).

    Call from a thread that lives as long as the agent (its main thread): the kernel's parent-death
    signal follows the *thread* that forked the child.
    """
    parent = os.getpid()
    hosts = None if hosts_file is None else os.fsencode(hosts_file)  # encoded here, not in the child
    account = None if service_account is None else os.fsencode(service_account)

    def before_exec() -> None:  # in the child, between fork and exec
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the agent died before prctl took effect
            os._exit(137)
        if hosts is not None:
            _private_hosts(hosts)
            if account is not None:
                _bind_read_only(account, _ACCOUNT_TARGET)

    with log_path.open("ab") as log_file:
        offset = log_file.tell()
        try:
            proc = subprocess.Popen(
                list(argv),
                env=dict(env),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=before_exec,
            )
        except subprocess.SubprocessError as error:  # what a failing preexec_fn becomes
            raise OSError(
                f"cannot bind the pod's hosts file or ServiceAccount directory ({error})"
            ) from error
    return proc, offset


def _private_hosts(hosts: bytes) -> None:
    """In a child: its own mount namespace, nothing propagating back, ``hosts`` bound over /etc/hosts.
    Raises OSError (the child's errno) when the kernel refuses."""
    _check(_libc.unshare(_CLONE_NEWNS))
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None))
    _check(_libc.mount(hosts, ETC_HOSTS, None, _MS_BIND, None))


def _bind_read_only(source: bytes, target: bytes) -> None:
    """In a child, after ``_private_hosts``: ``source`` bound over ``target``, then made read-only (a
    bind mount takes its flags only on a remount)."""
    _check(_libc.mount(source, target, None, _MS_BIND, None))
    _check(_libc.mount(None, target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None))


def _check(result: int) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def private_hosts_error() -> str | None:
    """None when processes can get a private /etc/hosts on this machine, else why not (e.g.
    "Operation not permitted" without root). Tried once, in a forked child that binds /etc/hosts
    over itself and exits; nothing changes for anyone else."""
    pid = os.fork()
    if pid == 0:  # the child: only system calls, then _exit (no Python cleanup, no shared state)
        code = 0
        try:
            _private_hosts(ETC_HOSTS)
        except OSError as error:
            code = error.errno or 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return None if code == 0 else os.strerror(code) if code > 0 else f"the probe died of signal {-code}"


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
