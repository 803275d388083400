"""helm, built from its Go module by ``hack/build-helm.sh``, run on the project's chart (test code).

The chart tests lint, render and install ``charts/hal9-migration-operator`` with the real helm, so
what they check is what ``helm install`` gives a user. helm keeps its own state (repositories, caches,
the API server's discovery) in a scratch directory, never in the user's home.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from . import builds

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "hal9-migration-operator"


class HelmError(RuntimeError):
    pass


@functools.cache
def binary() -> Path:
    """The helm binary, built into the cache on first use."""
    return builds.built("build-helm.sh", "helm", HelmError)


@functools.cache
def _home() -> Path:
    return Path(tempfile.mkdtemp(prefix="hal9-helm-home-"))


def run(
    *args: str,
    values: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``helm ARGS`` (with ``values`` passed as a values file on standard input); never raises on a
    non-zero exit: the tests read the message. ``env`` adds to this process's (e.g. KUBECONFIG)."""
    home = _home()
    helm_env = {
        **os.environ,
        **(env or {}),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECACHEDIR": str(home / "kube-cache"),  # the API server's discovery, cached by helm
    }
    command = [str(binary()), *args]
    stdin = None
    if values is not None:
        command += ["--values", "-"]
        stdin = yaml.safe_dump(dict(values))
    return subprocess.run(
        command, input=stdin, env=helm_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def template(
    values: Mapping[str, Any] | None = None, *, release: str = "hal9", namespace: str = "hal9-system"
) -> list[dict[str, Any]]:
    """The chart rendered with ``values``: its objects (CRDs included, as ``--include-crds``)."""
    result = run("template", release, str(CHART), "--namespace", namespace, "--include-crds", values=values)
    if result.returncode != 0:
        raise HelmError(f"helm template failed ({result.returncode}):\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]
