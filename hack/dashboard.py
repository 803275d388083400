"""The Grafana dashboard of the chart (charts/hal9-migration-operator/files/dashboard.json), built here.

Why this builder: grafana-foundation-sdk is Grafana's own SDK, generated from the same schemas
Grafana itself is built from, so its typed builders track Grafana's dashboard and panel schema
release by release; a misspelt option or a wrong type fails here (and in mypy), not when Grafana
loads the file. grafanalib, the usual alternative, is kept by hand and lags Grafana's schema;
hand-written JSON checks nothing.

``make dashboard`` runs this; tests/unit/test_dashboard.py fails when the committed JSON drifts from
``render()``, and tests/integration/test_dashboard_queries.py runs every panel's queries against a real
Prometheus scraping a real operator and the HAL9 stand-ins.

Variables: ``datasource`` (any Prometheus), ``namespace`` and ``migration`` (from the operator's
``hal9_migration_phase``). The operator's series carry ``namespace`` and ``migration``; HAL9's own
request metrics (``hal9_requests_total``, ``hal9_errors_total``, ``hal9_request_duration_seconds``,
by ``system``: the names the analysis' default queries read) carry the namespace only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builder
from grafana_foundation_sdk.builders import dashboard, prometheus, statetimeline, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model

OUTPUT = (
    Path(__file__).resolve().parents[1] / "charts" / "hal9-migration-operator" / "files" / "dashboard.json"
)
UID = "hal9-migration"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
# Selectors: the operator's series of the chosen migrations; HAL9's own series of the namespace.
MIGRATION = 'namespace="$namespace",migration=~"$migration"'
SYSTEMS = 'namespace="$namespace"'
PHASES = ("Not started", "Shadow", "Canary", "StateMigration", "RampUp", "Full")
VERDICTS = {
    0: ("No run", "transparent"),
    1: ("Pass", "green"),
    2: ("Inconclusive", "yellow"),
    3: ("Fail", "red"),
}


def query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).range()


def mapping(values: dict[int, tuple[str, str]]) -> list[model.ValueMapping]:
    """Numbers shown as words (a phase, a verdict), each in its colour."""
    options = {
        str(value): model.ValueMappingResult(text=text, color=color, index=value)
        for value, (text, color) in values.items()
    }
    return [model.ValueMap(options=options)]


def legend() -> common_builder.VizLegendOptions:
    return (
        common_builder.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def phase_timeline() -> statetimeline.Panel:
    colours = ("transparent", "purple", "blue", "orange", "yellow", "green")
    return (
        statetimeline.Panel()
        .title("Phase")
        .description("The phase the route object holds (hal9_migration_phase), per migration.")
        .datasource(DATASOURCE)
        .with_target(query(f"max by (migration) (hal9_migration_phase{{{MIGRATION}}})", "{{migration}}"))
        .mappings(mapping({i: (name, colours[i]) for i, name in enumerate(PHASES)}))
        .show_value(common.VisibilityMode.AUTO)
        .legend(legend())
        .height(5)
        .span(24)
    )


def verdict_timeline() -> statetimeline.Panel:
    # One number per run: 1 Pass, 2 Inconclusive, 3 Fail (each verdict is a 0/1 series from the start).
    expr = " + ".join(
        f'{weight} * max by (migration) (hal9_migration_analysis_verdict{{{MIGRATION},verdict="{name}"}})'
        for weight, (name, _) in VERDICTS.items()
        if weight
    )
    return (
        statetimeline.Panel()
        .title("Analysis verdict")
        .description(
            "The last analysis run's verdict (hal9_migration_analysis_verdict): Pass, Inconclusive "
            "(no data: the step holds), Fail (a gate holds or a rollback trigger counts)."
        )
        .datasource(DATASOURCE)
        .with_target(query(expr, "{{migration}}"))
        .mappings(mapping(VERDICTS))
        .legend(legend())
        .height(5)
        .span(24)
    )


def series(title: str, description: str, unit: str, *targets: prometheus.Dataquery) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .legend(legend())
        .height(8)
        .span(12)
    )
    for target in targets:
        panel = panel.with_target(target)
    return panel


def weights() -> timeseries.Panel:
    return (
        series(
            "Traffic weights",
            "The share of the weighted traffic each system gets (hal9_migration_traffic_percent), and the "
            "share mirrored to hierarchical or copied by the shadow proxy.",
            "percent",
            query(
                f"max by (migration, system) (hal9_migration_traffic_percent{{{MIGRATION}}})",
                "{{migration}} {{system}}",
            ),
            query(
                f"max by (migration) (hal9_migration_mirror_percent{{{MIGRATION}}})",
                "{{migration}} mirrored",
                "B",
            ),
        )
        .min(0)
        .max(100)
    )


def health() -> timeseries.Panel:
    thresholds = (
        dashboard.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=None, color="red"), model.Threshold(value=0.8, color="green")])
    )
    return (
        series(
            "Health score",
            "DESIGN's health score of the last analysis run (hal9_migration_health_status); below "
            "HAL9's 0.8 a rollback trigger fires.",
            "none",
            query(f"max by (migration) (hal9_migration_health_status{{{MIGRATION}}})", "{{migration}}"),
        )
        .min(0)
        .max(1)
        .thresholds(thresholds)
        .thresholds_style(
            common_builder.GraphThresholdsStyleConfig().mode(common.GraphTresholdsStyleMode.LINE)
        )
    )


def error_rate() -> timeseries.Panel:
    requests = f"sum by (system) (rate(hal9_requests_total{{{SYSTEMS}}}[$__rate_interval]))"
    errors = f"sum by (system) (rate(hal9_errors_total{{{SYSTEMS}}}[$__rate_interval]))"
    return series(
        "Error rate per system",
        "5xx answers over all answers, from HAL9's own request counters (what the analysis reads).",
        "percentunit",
        query(f"{errors} / {requests}", "{{system}}"),
    )


def latency() -> timeseries.Panel:
    buckets = f"rate(hal9_request_duration_seconds_bucket{{{SYSTEMS}}}[$__rate_interval])"
    return series(
        "p99 latency per system",
        "HAL9's own request-duration histograms; Canary's gate holds above 100 ms by default.",
        "ms",
        query(f"1000 * histogram_quantile(0.99, sum by (system, le) ({buckets}))", "{{system}}"),
    )


def neurons() -> timeseries.Panel:
    return series(
        "State migration: neurons",
        "Neuron states the state migration (phase 3) has migrated, and how many it moves.",
        "short",
        query(
            f"max by (migration) (hal9_migration_neurons_migrated{{{MIGRATION}}})", "{{migration}} migrated"
        ),
        query(
            f"max by (migration) (hal9_migration_neurons_total{{{MIGRATION}}})", "{{migration}} total", "B"
        ),
    )


def progress() -> timeseries.Panel:
    migrated = f"max by (migration) (hal9_migration_neurons_migrated{{{MIGRATION}}})"
    total = f"max by (migration) (hal9_migration_neurons_total{{{MIGRATION}}})"
    return (
        series(
            "Progress",
            "The share of the declared path walked (hal9_migration_progress_percent), and of the neuron "
            "states migrated.",
            "percent",
            query(
                f"max by (migration) (hal9_migration_progress_percent{{{MIGRATION}}})",
                "{{migration}} path walked",
            ),
            query(f"100 * {migrated} / {total}", "{{migration}} neurons migrated", "B"),
        )
        .min(0)
        .max(100)
    )


def rollbacks() -> timeseries.Panel:
    return series(
        "Rollbacks",
        "Rollbacks since the operator started, by reason: an automatic one by its triggers "
        "(error-rate, health-score...), abort, state-migration-failed (hal9_migration_rollbacks_total).",
        "short",
        query(
            f"sum by (migration, reason) (hal9_migration_rollbacks_total{{{MIGRATION}}})",
            "{{migration}} {{reason}}",
        ),
    ).draw_style(common.GraphDrawStyle.BARS)


def halted() -> statetimeline.Panel:
    return (
        statetimeline.Panel()
        .title("Halted")
        .description(
            "Stopped until a person acts (hal9_migration_halted), by why: RolledBack, "
            "StateMigrationFailed, Aborted, ProgressDeadlineExceeded. `kubectl hal9 status` says more."
        )
        .datasource(DATASOURCE)
        .with_target(
            query(
                f"max by (migration, reason) (hal9_migration_halted{{{MIGRATION}}})",
                "{{migration}} {{reason}}",
            )
        )
        .mappings(mapping({0: ("", "transparent"), 1: ("halted", "red")}))
        .legend(legend())
        .height(8)
        .span(12)
    )


def variables() -> list[dashboard.DatasourceVariable | dashboard.QueryVariable]:
    namespace = (
        dashboard.QueryVariable("namespace")
        .label("Namespace")
        .datasource(DATASOURCE)
        .query("label_values(hal9_migration_phase, namespace)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    migration = (
        dashboard.QueryVariable("migration")
        .label("Migration")
        .datasource(DATASOURCE)
        .query('label_values(hal9_migration_phase{namespace="$namespace"}, migration)')
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    return [
        dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"),
        namespace,
        migration,
    ]


def build() -> model.Dashboard:
    board = (
        dashboard.Dashboard("HAL9 migration")
        .uid(UID)
        .description(
            "Flat to hierarchical: phases, weights, HAL9's errors and latency, analysis, state, rollbacks."
        )
        .tags(["hal9", "migration"])
        .refresh("30s")
        .time("now-6h", "now")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
    )
    for variable in variables():
        board = board.with_variable(variable)
    panels: tuple[timeseries.Panel | statetimeline.Panel, ...] = (
        phase_timeline(),
        weights(),
        health(),
        error_rate(),
        latency(),
        verdict_timeline(),
        neurons(),
        progress(),
        rollbacks(),
        halted(),
    )
    for number, panel in enumerate(panels, start=1):
        board = board.with_panel(panel.id(number))
    return board.build()


def render() -> str:
    """The dashboard as the chart ships it: stable key order, so a diff shows only real changes."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    args.output.write_text(render())
    return 0


if __name__ == "__main__":
    sys.exit(main())
