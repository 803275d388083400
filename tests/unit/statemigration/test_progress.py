"""Progress output: a bar for people at a terminal, JSON lines for log collectors."""

from __future__ import annotations

import io
import json

from hal9_migration.statemigration.progress import Reporter, render_bar
from hal9_migration.statemigration.shards import Shard
from hal9_migration.statemigration.stores.base import Progress


def progress(migrated: int, failed: int = 0, rate: float = 500.0, eta: float | None = 10.0) -> Progress:
    return Progress(Shard(1, 4), 1000, migrated, failed, rate, eta, "Running")


def test_bar_shows_share_counts_rate_and_eta() -> None:
    bar = render_bar(progress(495, failed=5, eta=3725))
    assert bar.startswith("shard 1/4 [###############...............]  50.0% 500/1,000 (5 failed)")
    assert bar.endswith("500/s ETA 1:02:05")
    assert "ETA --:--" in render_bar(progress(0, rate=0, eta=None))


def test_terminal_gets_one_rewritten_line() -> None:
    out = io.StringIO()
    reporter = Reporter(out, interactive=True)
    reporter.update(progress(100))
    reporter.update(progress(200), final=True)
    assert out.getvalue().count("\r") == 2 and out.getvalue().endswith("\n")


def test_logs_get_json_lines_at_most_every_interval_and_always_the_last() -> None:
    out = io.StringIO()
    reporter = Reporter(out, interactive=False)
    for done in range(0, 1000, 100):
        reporter.update(progress(done))
    reporter.update(progress(1000, eta=0), final=True)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert len(lines) == 2  # the first update, then the final one: the rest fell inside the interval
    assert lines[-1] == {
        "event": "progress",
        "shard": "1/4",
        "total": 1000,
        "migrated": 1000,
        "failed": 0,
        "rate": 500.0,
        "eta_seconds": 0,
        "state": "Running",
    }
