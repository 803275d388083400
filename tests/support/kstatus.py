"""kstatus, the real readiness judge of Flux, ``helm --wait`` and ``kubectl wait``, as a test tool.

``compute(obj)`` hands one Kubernetes object to ``sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute``
(``hack/kstatus/main.go``, built by ``hack/build-kstatus.sh`` into a cache outside the repository on
first use) and returns its verdict: ``InProgress``, ``Failed``, ``Current``, ``Terminating``,
``NotFound`` or ``Unknown``, with kstatus's message.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path
from typing import Any

from hal9_migration.testing import builds


class KstatusError(RuntimeError):
    pass


@functools.cache
def binary() -> Path:
    """The kstatus binary, built into the cache on first use (the script reuses a built one)."""
    return builds.built("build-kstatus.sh", "kstatus", KstatusError)


def compute(obj: dict[str, Any]) -> tuple[str, str]:
    """kstatus's (status, message) for ``obj``, a Kubernetes object as ``kubectl get -o json`` gives it."""
    result = subprocess.run(
        [str(binary())], input=json.dumps(obj), capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise KstatusError(f"kstatus failed (exit {result.returncode}): {result.stderr.strip()}")
    verdict = json.loads(result.stdout)
    return str(verdict["status"]), str(verdict["message"])
