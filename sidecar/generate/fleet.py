"""The fleet overview dashboard: every job's state, success and miss ratios, slowest jobs."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builder
from grafana_foundation_sdk.models import dashboard as model

from jobpulse.sidecar.generate.panels import (
    CLUSTER,
    PanelBuilder,
    bars,
    dashboard,
    label_variable,
    ranking,
    single_stat,
    table_panel,
    timeseries_panel,
    window_variable,
)
from jobpulse.sidecar.generate.promql import Selector

__all__ = ["UID", "fleet_overview"]

UID = "jobpulse-fleet-overview"
JOB_DETAIL_LINK = "/d/jobpulse-job-detail?var-job_name=${__value.raw}&${datasource:queryparam}"


def _state_table(sel: Selector) -> PanelBuilder:
    def per_job(expr: str) -> str:
        return f"max by (job_name) ({expr})"

    columns = {
        "Value #B": ("Success ($window)", "percentunit"),
        "Value #C": ("Missed ($window)", "percentunit"),
        "Value #D": ("Since last success", "s"),
        "Value #E": ("Running", "short"),
        "Value #F": ("Consecutive failures", "short"),
    }
    panel = table_panel(
        "Jobs",
        "One row per job: its state, statistics over $window and what is running now.",
        [
            (f"max by (job_name, state) ({sel('jobpulse_job_state')}) == 1", ""),
            (per_job(sel("jobpulse_job_success_ratio", window="$window")), ""),
            (per_job(sel("jobpulse_job_miss_ratio", window="$window")), ""),
            (
                f"time() - {per_job(sel('jobpulse_job_last_success_timestamp_seconds') + ' > 0')}",
                "",
            ),
            (per_job(sel("jobpulse_job_running")), ""),
            (per_job(sel("jobpulse_job_consecutive_failures")), ""),
        ],
    ).with_transformation(
        model.DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True, "Value #A": True},
                "renameByName": {key: name for key, (name, _) in columns.items()},
            },
        )
    )
    for name, unit in columns.values():
        panel = panel.override_by_name(name, [model.DynamicConfigValue(id_val="unit", value=unit)])
    link = {"title": "Job detail", "url": JOB_DETAIL_LINK}
    return panel.override_by_name(
        "job_name", [model.DynamicConfigValue(id_val="links", value=[link])]
    )


def variables(sel: Selector) -> list[builder.QueryVariable]:
    """``$cluster``, ``$team``, and the hidden ``$jobs``: the jobs of those teams."""
    clustered = sel.including(CLUSTER)
    teams = clustered.including('team=~"$team"')
    return [
        label_variable(
            "cluster", "Cluster", f"label_values({sel('jobpulse_build_info')}, cluster)"
        ),
        label_variable("team", "Team", f"label_values({clustered('jobpulse_job_info')}, team)"),
        label_variable(
            "jobs", "Jobs", f"label_values({teams('jobpulse_job_info')}, job_name)", hide=True
        ),
    ]


def fleet_overview(sel: Selector) -> builder.Dashboard:
    board = dashboard(UID, "jobpulse / Fleet overview", "Every job jobpulse watches, at a glance.")
    for variable in variables(sel):
        board = board.with_variable(variable)
    board = board.with_variable(window_variable()).with_row(builder.Row("Now"))
    # Every series of one of the selected teams' jobs, in the selected clusters.
    sel = sel.including(CLUSTER).including('job_name=~"$jobs"')
    for state in ("down", "late", "up", "new", "paused"):
        board = board.with_panel(
            single_stat(
                f"Jobs {state}",
                f"Jobs whose state is {state}.",
                "short",
                f"count(max by (job_name) ({sel('jobpulse_job_state', state=state)}) == 1)"
                " or vector(0)",
            )
        )
    running = f"sum(max by (job_name) ({sel('jobpulse_job_running')}))"
    board = board.with_panel(
        single_stat("Runs in flight", "Runs started, not finished.", "short", running)
    )
    outcomes = (
        f"sum by (outcome) (max by (job_name, outcome) "
        f"(increase({sel('jobpulse_job_runs_total')}[$__rate_interval])))"
    )
    missed = (
        f"sum(max by (job_name) "
        f"(increase({sel('jobpulse_job_missed_runs_total')}[$__rate_interval])))"
    )
    p95 = (
        "topk(10, histogram_quantile(0.95, max by (job_name, le) "
        f"(rate({sel('jobpulse_job_run_duration_seconds_bucket')}[$window]))))"
    )
    return (
        board.with_row(builder.Row("Jobs"))
        .with_panel(_state_table(sel))
        .with_row(builder.Row("Trends"))
        .with_panel(
            bars(
                "Runs by outcome",
                "Finished runs per interval by outcome, and missed slots, across the fleet.",
                [(outcomes, "{{outcome}}"), (missed, "missed")],
            )
        )
        .with_panel(
            ranking(
                "Slowest jobs (p95 over $window)",
                "The ten jobs with the longest 95th-percentile run duration.",
                "s",
                p95,
                "{{job_name}}",
            )
        )
        .with_panel(
            timeseries_panel(
                "Lowest success ratios ($window)",
                "The ten jobs with the lowest share of successful runs among finished runs "
                "and missed slots.",
                "percentunit",
                [
                    (
                        "bottomk(10, max by (job_name) "
                        f"({sel('jobpulse_job_success_ratio', window='$window')}))",
                        "{{job_name}}",
                    )
                ],
            )
        )
        .with_panel(
            timeseries_panel(
                "Highest miss ratios ($window)",
                "The ten jobs with the highest share of due slots that no run filled.",
                "percentunit",
                [
                    (
                        "topk(10, max by (job_name) "
                        f"({sel('jobpulse_job_miss_ratio', window='$window')}))",
                        "{{job_name}}",
                    )
                ],
            )
        )
    )
