"""The chart's alerts (charts/…/files/alerts.yaml) through Prometheus' own promtool (Debian's
prometheus package): the file is valid, and each alert fires exactly when it should, at its level,
with its summary rendered from the series' labels."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.manifests import ROOT

RULES = ROOT / "charts" / "hal9-migration-operator" / "files" / "alerts.yaml"
M = 'namespace="hal9",migration="m"'


def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: apt-get install prometheus (.ci/run does)"
    return found


def rules() -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}


@dataclass
class Case:
    alert: str
    series: dict[str, str]  # series -> promtool values ("0 0 1x10": one per minute)
    quiet_at: list[str]  # eval times with no alert
    fires_at: str
    severity: str
    summary: str
    labels: dict[str, str] = field(default_factory=lambda: {"namespace": "hal9", "migration": "m"})


CASES = [
    Case(
        "Hal9MigrationRolledBack",
        {f'hal9_migration_halted{{{M},reason="RolledBack"}}': "0 0 1x10"},
        ["1m"],
        "2m",
        "critical",
        "hal9/m was rolled back automatically",
    ),
    Case(
        "Hal9MigrationStateMigrationFailed",
        {f'hal9_migration_halted{{{M},reason="StateMigrationFailed"}}': "0 1x10"},
        ["0m"],
        "1m",
        "critical",
        "The state migration of hal9/m failed",
    ),
    Case(
        "Hal9MigrationStuck",
        {f'hal9_migration_condition{{{M},type="Stalled"}}': "1x30"},
        ["10m"],
        "16m",
        "warning",
        "hal9/m has not moved for 15 minutes: Stalled",
    ),
    Case(
        "Hal9MigrationHealthLow",
        {f"hal9_migration_health_status{{{M}}}": "0.9 0.9 0.7x10"},
        ["1m", "5m"],
        "8m",
        "warning",
        "Health of hal9/m is 0.7 (below HAL9's 0.8)",
    ),
    Case(
        "Hal9MigrationAnalysisInconclusive",
        {f'hal9_migration_analysis_verdict{{{M},verdict="Inconclusive"}}': "1x40"},
        ["20m"],
        "31m",
        "warning",
        "The analysis of hal9/m has been inconclusive for 30 minutes",
    ),
    Case(
        "Hal9MigrationAborted",
        {f'hal9_migration_halted{{{M},reason="Aborted"}}': "0 0 0 1x5"},
        ["2m"],
        "3m",
        "info",
        "hal9/m was aborted: all traffic on flat",
    ),
    Case(
        "Hal9MigrationPhaseChanged",
        {f"hal9_migration_phase{{{M}}}": "1 1 1 2x10"},
        ["2m", "9m"],
        "4m",
        "info",
        "hal9/m changed phase",
    ),
    Case(
        "Hal9MigrationOperatorDown",
        {'up{job="hal9-migration-operator",instance="op:8081"}': "1 1 0x10"},
        ["3m"],
        "8m",
        "critical",
        "No hal9-migration-operator has been scraped for 5 minutes",
        labels={},
    ),
]


def test_the_rules_file_is_valid() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(CASES)} rules found" in result.stdout  # every alert has a case below


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.alert)
def test_each_alert_fires_when_it_should(case: Case, tmp_path: Path) -> None:
    rule = rules()[case.alert]
    assert rule["labels"]["severity"] == case.severity
    expected = {
        "exp_labels": {**case.labels, "severity": case.severity},
        "exp_annotations": {
            "summary": case.summary,
            "description": rule["annotations"]["description"],
            "runbook_url": rule["annotations"]["runbook_url"],
        },
    }
    checks = [{"eval_time": t, "alertname": case.alert, "exp_alerts": []} for t in case.quiet_at]
    checks.append({"eval_time": case.fires_at, "alertname": case.alert, "exp_alerts": [expected]})
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": checks,
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


RUNBOOKS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
RUNBOOK_BASE = "https://github.com/hal9/hal9-migration-operator/blob/main/docs/runbooks/"


def test_each_alert_links_a_runbook_that_exists() -> None:
    """The person paged opens the link: the page and its section must be there."""
    for alert, rule in rules().items():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith(RUNBOOK_BASE), (alert, url)
        page, _, anchor = url.removeprefix(RUNBOOK_BASE).partition("#")
        text = (RUNBOOKS / page).read_text()
        if anchor:
            headings = {
                re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
                for line in text.splitlines()
                if line.startswith("#")
            }
            assert anchor in headings, (alert, anchor, sorted(headings))


@pytest.mark.parametrize("reason", ["RolledBack", "StateMigrationFailed", "Aborted"])
def test_a_halt_that_pages_on_its_own_is_not_also_stuck(reason: str, tmp_path: Path) -> None:
    """Stalled for half an hour after a rollback (or an abort): its own alert, not a second one."""
    series = {
        f'hal9_migration_condition{{{M},type="Stalled"}}': "1x30",
        f'hal9_migration_halted{{{M},reason="{reason}"}}': "1x30",
    }
    test = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in series.items()],
                "alert_rule_test": [
                    {"eval_time": "20m", "alertname": "Hal9MigrationStuck", "exp_alerts": []}
                ],
            }
        ],
    }
    path = tmp_path / "test.yaml"
    path.write_text(yaml.safe_dump(test))
    result = subprocess.run(
        [promtool(), "test", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
