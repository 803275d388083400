"""The worker's helper processes: a pool that converts or fingerprints batches, and memory figures.

A shard is one Indexed Job pod; with more than one CPU it converts (and, at the end, verifies) its
batches in several processes while the worker's own process reads and commits, in order. Pure
functions of a batch run there; the stores never leave the worker's process.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import resource
import signal
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

__all__ = ["POOL_MIN_BATCHES", "helper_pool", "peak_rss_kib", "usable_cpus"]

# Below this many batches a pool is not worth starting its processes (about half a second each).
POOL_MIN_BATCHES = 4
HELPER_NICENESS = 10
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def helper_pool(processes: int) -> Executor:
    """``processes`` helper processes, or one thread of this process when there is one.

    The processes are spawned (the worker runs threads, which fork does not copy safely) and run at
    a lower priority: the worker reads and commits every batch, in order, so when the cores are all
    busy it is the one that must not wait.
    """
    if processes > 1:
        return ProcessPoolExecutor(
            processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_helper,
            initargs=(os.getpid(),),
        )
    return ThreadPoolExecutor(1, "hal9-convert")


def _start_helper(worker_pid: int) -> None:
    """In a helper process: lower its priority, and die with the worker.

    A helper holds both ends of its task queue, so it never sees the queue close when the worker is
    SIGKILLed; Linux's parent-death signal ends it instead (checked once after asking, in case the
    worker was already gone).
    """
    os.nice(HELPER_NICENESS)
    with contextlib.suppress(OSError, AttributeError):  # not Linux: they may outlive a killed worker
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != worker_pid:
        os._exit(1)


def usable_cpus(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may use: its CPU affinity, bounded by a container's CPU limit (the
    cgroup's CPU quota, v2 or v1), as Go's automaxprocs counts them. At least 1."""
    count = len(os.sched_getaffinity(0))
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        try:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return count
    if quota in ("max", "-1"):
        return count
    try:
        return max(1, min(count, int(quota) // int(period)))
    except (ValueError, ZeroDivisionError):
        return count


def peak_rss_kib() -> int:
    """This process's peak resident memory in KiB since it started its program.

    VmHWM, where Linux has it: getrusage's maxrss also counts the memory of the parent a process
    was forked from (it survives the exec), which is not the worker's.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
