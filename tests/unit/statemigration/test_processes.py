"""How many CPUs a worker may use: its affinity, bounded by a container's CPU quota (cgroup v2 or v1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hal9_migration.statemigration.processes import usable_cpus

AFFINITY = len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({}, AFFINITY),  # no cgroup files: the affinity
        ({"cpu.max": "max 100000\n"}, AFFINITY),  # v2, no limit
        ({"cpu.max": "100000 100000\n"}, 1),  # v2, a limit of 1 CPU
        ({"cpu.max": "50000 100000\n"}, 1),  # half a CPU: still one process
        ({"cpu.max": "6400000 100000\n"}, AFFINITY),  # a limit above the affinity: the affinity
        ({"cpu.max": "garbage\n"}, AFFINITY),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, AFFINITY),  # v1, none
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 1),  # v1, 1 CPU
        ({"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "0\n"}, AFFINITY),
    ],
)
def test_usable_cpus_follow_the_cpu_quota(files: dict[str, str], expected: int, tmp_path: Path) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert usable_cpus(tmp_path) == expected
