"""The sidecar health dashboard: ingest, store writes, the evaluator, the leader."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builder

from jobpulse.sidecar.generate.fleet import variables
from jobpulse.sidecar.generate.panels import CLUSTER, Query, dashboard, timeseries_panel
from jobpulse.sidecar.generate.promql import Selector

__all__ = ["UID", "sidecar_health"]

UID = "jobpulse-sidecar-health"


def _latency(sel: Selector, histogram: str) -> list[Query]:
    buckets = f"sum by (le) (rate({sel(f'{histogram}_bucket')}[$__rate_interval]))"
    return [(f"histogram_quantile({q}, {buckets})", f"p{round(q * 100)}") for q in (0.5, 0.99)]


def sidecar_health(sel: Selector) -> builder.Dashboard:
    cluster = variables(sel)[0]
    sel = sel.including(CLUSTER)
    received = f"sum by (type) (rate({sel('jobpulse_events_received_total')}[$__rate_interval]))"
    rejected = f"sum by (reason) (rate({sel('jobpulse_events_rejected_total')}[$__rate_interval]))"
    lag = f"time() - max by (instance) ({sel('jobpulse_evaluator_last_run_timestamp_seconds')})"
    return (
        dashboard(UID, "jobpulse / Sidecar health", "The jobpulse sidecar itself.")
        .with_variable(cluster)
        .with_row(builder.Row("Ingest"))
        .with_panel(
            timeseries_panel(
                "Events received",
                "Heartbeat events per second by type.",
                "ops",
                [(received, "{{type}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Events rejected",
                "Rejected events per second by reason.",
                "ops",
                [(rejected, "{{reason}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Ingest latency",
                "Time from receiving a batch to answering it (durable).",
                "s",
                _latency(sel, "jobpulse_ingest_duration_seconds"),
            )
        )
        .with_panel(
            timeseries_panel(
                "Store write latency",
                "Duration of store writes (group commits).",
                "s",
                _latency(sel, "jobpulse_store_write_duration_seconds"),
            )
        )
        .with_row(builder.Row("Evaluator"))
        .with_panel(
            timeseries_panel(
                "Evaluator lag",
                "Seconds since the evaluator last ran, per replica (only the leader runs it).",
                "s",
                [(lag, "{{instance}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Jobs by state",
                "How many jobs are in each state.",
                "short",
                [(f"max by (state) ({sel('jobpulse_jobs')})", "{{state}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Leader",
                "1 on the replica that runs the evaluator.",
                "short",
                [(sel("jobpulse_leader"), "{{instance}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Store size",
                "Size of the execution store.",
                "bytes",
                [(f"max by (instance) ({sel('jobpulse_store_size_bytes')})", "{{instance}}")],
            )
        )
        .with_row(builder.Row("Targets"))
        .with_panel(
            timeseries_panel(
                "Scrape up",
                "1 when Prometheus reaches the sidecar.",
                "short",
                [(sel.sidecar_up(), "{{instance}}")],
            )
        )
        .with_panel(
            timeseries_panel(
                "Version",
                "Version each replica runs.",
                "short",
                [
                    (
                        f"max by (instance, version) ({sel('jobpulse_build_info')})",
                        "{{instance}} {{version}}",
                    )
                ],
            )
        )
    )
