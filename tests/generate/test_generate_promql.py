"""Every PromQL expression parses in a real Prometheus and names only exported metrics."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

# The metric names the sidecar exposes (DESIGN.md, "Metrics"); histograms by their series.
JOB_METRICS = {
    "jobpulse_job_info",
    "jobpulse_job_runs_total",
    "jobpulse_job_missed_runs_total",
    "jobpulse_job_overlapping_runs_total",
    "jobpulse_job_slow_runs_total",
    "jobpulse_job_in_maintenance",
    "jobpulse_job_created_timestamp_seconds",
    "jobpulse_job_skipped_runs_total",
    "jobpulse_job_run_duration_seconds_bucket",
    "jobpulse_job_run_duration_seconds_sum",
    "jobpulse_job_run_duration_seconds_count",
    "jobpulse_job_last_success_timestamp_seconds",
    "jobpulse_job_last_failure_timestamp_seconds",
    "jobpulse_job_last_run_start_timestamp_seconds",
    "jobpulse_job_last_run_duration_seconds",
    "jobpulse_job_next_expected_run_timestamp_seconds",
    "jobpulse_job_expected_interval_seconds",
    "jobpulse_job_running",
    "jobpulse_job_oldest_running_start_timestamp_seconds",
    "jobpulse_job_state",
    "jobpulse_job_consecutive_failures",
    "jobpulse_job_success_ratio",
    "jobpulse_job_miss_ratio",
}
SIDECAR_METRICS = {
    "jobpulse_build_info",
    "jobpulse_events_received_total",
    "jobpulse_events_rejected_total",
    *(
        f"jobpulse_{h}_duration_seconds_{suffix}"
        for h in ("ingest", "store_write")
        for suffix in ("bucket", "sum", "count")
    ),
    "jobpulse_evaluator_last_run_timestamp_seconds",
    "jobpulse_jobs",
    "jobpulse_leader",
    "jobpulse_store_size_bytes",
}
KNOWN = JOB_METRICS | SIDECAR_METRICS | {"up"}
# A metric name is an identifier followed by a selector, or a bare jobpulse_* identifier.
_NAMES = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{|\b(jobpulse_[a-z0-9_]+)\b")


def _metric_names(expr: str) -> set[str]:
    return {a or b for a, b in _NAMES.findall(expr)}


def test_only_exported_metrics_are_used(rule_exprs: list[str], dashboard_exprs: list[str]) -> None:
    used: set[str] = set()
    for expr in rule_exprs + dashboard_exprs:
        names = _metric_names(expr)
        assert names, expr
        assert names <= KNOWN, f"unknown metric(s) {names - KNOWN} in {expr}"
        used |= names
    unused = (
        KNOWN
        - used
        - {"jobpulse_job_run_duration_seconds_sum", "jobpulse_job_run_duration_seconds_count"}
    )
    unused -= {
        f"jobpulse_{h}_duration_seconds_{s}"
        for h in ("ingest", "store_write")
        for s in ("sum", "count")
    }
    assert not unused, f"exported but shown nowhere: {unused}"


def test_metric_name_extraction_sees_bare_and_selected_names() -> None:
    names = _metric_names('max(jobpulse_leader) + up{job="x"} + rate(jobpulse_bogus[1m])')
    assert names == {"jobpulse_leader", "up", "jobpulse_bogus"}


def _query_error(url: str, expr: str) -> str | None:
    query = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=10) as response:
            body = json.load(response)
    except urllib.error.HTTPError as exc:
        body = json.load(exc)
    if body.get("status") == "success":
        return None
    return f"{body.get('errorType')}: {body.get('error')}"


def test_prometheus_rejects_a_broken_expression(prometheus_url: str) -> None:
    assert _query_error(prometheus_url, "max by (job_name (jobpulse_jobs)") is not None


def test_prometheus_parses_every_rule(prometheus_url: str, rule_exprs: list[str]) -> None:
    errors = {e: _query_error(prometheus_url, e) for e in rule_exprs}
    assert not {e: err for e, err in errors.items() if err}


def test_prometheus_parses_every_dashboard_query(
    prometheus_url: str, dashboard_exprs: list[str]
) -> None:
    errors = {e: _query_error(prometheus_url, e) for e in dashboard_exprs}
    assert not {e: err for e, err in errors.items() if err}
