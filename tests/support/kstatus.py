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

from tests.support.manifests import ROOT

BUILD_SCRIPT = ROOT / "hack" / "build-kstatus.sh"


class KstatusError(RuntimeError):
    pass


@functools.cache
def binary() -> Path:
    """The kstatus binary, built into the cache on first use (the script reuses a built one)."""
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise KstatusError(f"building kstatus failed (exit {result.returncode}); see the log above")
    return Path(result.stdout.strip().splitlines()[-1])


def compute(obj: dict[str, Any]) -> tuple[str, str]:
    """kstatus's (status, message) for ``obj``, a Kubernetes object as ``kubectl get -o json`` gives it."""
    result = subprocess.run(
        [str(binary())], input=json.dumps(obj), capture_output=True, text=True, timeout=30, check=False
    )
    if result.returncode != 0:
        raise KstatusError(f"kstatus failed (exit {result.returncode}): {result.stderr.strip()}")
    verdict = json.loads(result.stdout)
    return str(verdict["status"]), str(verdict["message"])
