"""The Go-built tools the tests and the demo run (``hack/build-*.sh``), built on first use (test code).

Each script builds its tool into ``~/.cache/hal9-migration`` (or reuses the build there), logs its
progress to stderr and prints the tool's path on its last line.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

HACK = Path(__file__).resolve().parents[3] / "hack"


def built(script: str, what: str, error: type[Exception]) -> Path:
    """The path ``hack/<script>`` prints last; raises ``error`` when the build fails."""
    result = subprocess.run(["bash", str(HACK / script)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise error(f"building {what} failed (exit {result.returncode}); see the log above")
    return Path(result.stdout.strip().splitlines()[-1])
