"""Progress while a shard runs: a bar on a terminal, structured log lines otherwise.

The same figures go to the target's ``migration_progress`` table with every batch (the engine does
that), so another process — the operator — can read them.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TextIO

from .stores.base import Progress

BAR_WIDTH = 30
LOG_INTERVAL_SECONDS = 5.0


class Reporter:
    """Renders ``Progress``; quiet between log intervals so big runs do not flood the logs."""

    def __init__(self, stream: TextIO = sys.stderr, interactive: bool | None = None) -> None:
        self.stream = stream
        self.interactive = stream.isatty() if interactive is None else interactive
        self._last_log = 0.0

    def update(self, progress: Progress, final: bool = False) -> None:
        if self.interactive:
            end = "\n" if final else ""
            self.stream.write("\r" + render_bar(progress) + end)
            self.stream.flush()
            return
        now = time.monotonic()
        if final or now - self._last_log >= LOG_INTERVAL_SECONDS:
            self._last_log = now
            self.log("progress", progress)

    def log(self, event: str, progress: Progress, **extra: object) -> None:
        line = {
            "event": event,
            "shard": str(progress.shard),
            "total": progress.total,
            "migrated": progress.migrated,
            "failed": progress.failed,
            "rate": round(progress.rate, 1),
            "eta_seconds": None if progress.eta_seconds is None else round(progress.eta_seconds, 1),
            "state": progress.state,
            **extra,
        }
        self.stream.write(json.dumps(line) + "\n")
        self.stream.flush()


def render_bar(p: Progress) -> str:
    done = p.migrated + p.failed
    fraction = min(done / p.total, 1.0) if p.total else 1.0
    filled = int(fraction * BAR_WIDTH)
    eta = "--:--" if p.eta_seconds is None else _clock(p.eta_seconds)
    return (
        f"shard {p.shard} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction:6.1%} "
        f"{done:,}/{p.total:,} ({p.failed:,} failed) {p.rate:,.0f}/s ETA {eta}"
    )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
