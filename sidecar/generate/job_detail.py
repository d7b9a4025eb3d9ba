"""The job detail dashboard: one job (``$job_name``), its last run, durations and history."""

from __future__ import annotations

from functools import partial

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.builders import statetimeline
from grafana_foundation_sdk.models import dashboard as model

from jobpulse.sidecar.generate.fleet import variables
from jobpulse.sidecar.generate.panels import (
    CLUSTER,
    DATASOURCE,
    PanelBuilder,
    bars,
    dashboard,
    single_stat,
    state_mappings,
    targets,
    timeseries_panel,
    traces_variable,
    window_variable,
)
from jobpulse.sidecar.generate.promql import Selector

__all__ = ["STATES", "UID", "job_detail"]

UID = "jobpulse-job-detail"
STATES = ("new", "up", "late", "down", "paused")
COLORS = {"new": "blue", "up": "green", "late": "yellow", "down": "red", "paused": "purple"}


def state_expr(sel: Selector) -> str:
    """The job's state as one number, its 1-based position in :data:`STATES`."""
    return " + ".join(
        f"max({sel('jobpulse_job_state', job_name='$job_name', state=state)}) * {number}"
        for number, state in enumerate(STATES, start=1)
    )


def _last_run(sel: Selector) -> list[PanelBuilder]:
    job = partial(sel, job_name="$job_name")

    def when(metric: str) -> str:
        return f"max({job(metric)} > 0) * 1000"

    def count(metric: str, **labels: str) -> str:
        return f"max(increase({job(metric, **labels)}[$window]))"

    runs = "jobpulse_job_runs_total"
    state = single_stat("State", "The job's state now.", "none", state_expr(sel)).mappings(
        state_mappings(STATES, COLORS)
    )
    return [
        state,
        single_stat(
            "Last success",
            "When the last successful run finished.",
            "dateTimeFromNow",
            when("jobpulse_job_last_success_timestamp_seconds"),
        ),
        single_stat(
            "Last failure",
            "When the last failed run finished.",
            "dateTimeFromNow",
            when("jobpulse_job_last_failure_timestamp_seconds"),
        ),
        single_stat(
            "Last run started",
            "Start of the latest run.",
            "dateTimeFromNow",
            when("jobpulse_job_last_run_start_timestamp_seconds"),
        ),
        single_stat(
            "Last run duration",
            "How long the latest finished run took.",
            "s",
            f"max({job('jobpulse_job_last_run_duration_seconds')})",
        ),
        single_stat(
            "Next expected run",
            "The next slot of the job's schedule.",
            "dateTimeFromNow",
            when("jobpulse_job_next_expected_run_timestamp_seconds"),
        ),
        single_stat(
            "Running now", "Runs in flight.", "short", f"max({job('jobpulse_job_running')})"
        ),
        single_stat(
            "Consecutive failures",
            "Bad outcomes in a row (failed, timed-out runs and missed slots).",
            "short",
            f"max({job('jobpulse_job_consecutive_failures')})",
        ),
        single_stat("Failures ($window)", "Failed runs.", "short", count(runs, outcome="failure")),
        single_stat(
            "Timeouts ($window)", "Timed-out runs.", "short", count(runs, outcome="timeout")
        ),
        single_stat(
            "Missed ($window)",
            "Slots no run filled.",
            "short",
            count("jobpulse_job_missed_runs_total"),
        ),
        single_stat(
            "Overlaps ($window)",
            "Runs started while another was in flight.",
            "short",
            count("jobpulse_job_overlapping_runs_total"),
        ),
    ]


def _history(sel: Selector) -> list[PanelBuilder]:
    job = partial(sel, job_name="$job_name")
    buckets = f"max by (le) (rate({job('jobpulse_job_run_duration_seconds_bucket')}[$window]))"
    quantiles = [
        (f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)} over $window")
        for q in (0.5, 0.95, 0.99)
    ]
    timeline = (
        statetimeline.Panel()
        .title("State timeline")
        .description("The job's state over time.")
        .datasource(DATASOURCE)
        .span(24)
        .height(5)
        .mappings(state_mappings(STATES, COLORS))
        .targets(targets([(state_expr(sel), "state")]))
    )
    return [
        timeline,
        timeseries_panel(
            "Run duration",
            "The latest run's duration, and percentiles from the duration histogram. Its "
            "exemplars are the latest runs, each with its trace id: they link to the run's "
            "trace in $traces when the Prometheus data source has a trace_id exemplar link.",
            "s",
            [(f"max({job('jobpulse_job_last_run_duration_seconds')})", "last run"), *quantiles],
            exemplar=1,  # the median's: the exemplars of the histogram's buckets
        ),
        bars(
            "Runs by outcome",
            "Finished runs per interval by outcome (retried attempts show as retry).",
            [
                (
                    "max by (outcome) "
                    f"(increase({job('jobpulse_job_runs_total')}[$__rate_interval]))",
                    "{{outcome}}",
                )
            ],
        ),
        bars(
            "Missed and skipped slots, overlaps",
            "Slots no run filled; slots skipped, by reason (a maintenance window held them, or "
            "a job this one runs after did not succeed); runs started while another was in "
            "flight.",
            [
                (
                    f"max(increase({job('jobpulse_job_missed_runs_total')}[$__rate_interval]))",
                    "missed",
                ),
                (
                    "max by (reason) "
                    f"(increase({job('jobpulse_job_skipped_runs_total')}[$__rate_interval]))",
                    "skipped ({{reason}})",
                ),
                (
                    f"max(increase({job('jobpulse_job_overlapping_runs_total')}[$__rate_interval]))",
                    "overlapping",
                ),
            ],
        ),
        timeseries_panel(
            "Success and miss ratios ($window)",
            "Share of successful runs among finished runs and missed slots; share of due "
            "slots that were missed.",
            "percentunit",
            [
                (f"max({job('jobpulse_job_success_ratio', window='$window')})", "success"),
                (f"max({job('jobpulse_job_miss_ratio', window='$window')})", "missed"),
            ],
        ),
    ]


def job_detail(sel: Selector) -> builder.Dashboard:
    cluster, team, _ = variables(sel)
    sel = sel.including(CLUSTER)
    teams = sel.including('team=~"$team"')
    variable = (
        builder.QueryVariable("job_name")
        .label("Job")
        .datasource(DATASOURCE)
        .query(f"label_values({teams('jobpulse_job_info')}, job_name)")
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
    )
    board = (
        dashboard(UID, "jobpulse / Job detail", "One job: its last run, durations and history.")
        .with_variable(cluster)
        .with_variable(team)
        .with_variable(variable)
        .with_variable(window_variable())
        .with_variable(traces_variable())
        .with_row(builder.Row("Last run"))
    )
    for panel in _last_run(sel):
        board = board.with_panel(panel)
    board = board.with_row(builder.Row("History"))
    for panel in _history(sel):
        board = board.with_panel(panel)
    return board
