"""The sidecar's metrics about itself, in a registry the app owns (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from jobpulse.instrumentation.cli import package_version
from jobpulse.instrumentation.wire import EVENT_TYPES

__all__ = ["REJECT_REASONS", "SelfMetrics"]

REJECT_REASONS = (
    "invalid",
    "job_cap",
    "unknown_job",
    "rate_limit",
    "too_large",
    "batch_too_long",
    "malformed",
    "unauthorized",
    "apply_failed",
)
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.build_info = Gauge(
            "jobpulse_build_info", "jobpulse build information.", ["version"], registry=r
        )
        self.build_info.labels(package_version()).set(1)
        self.received = Counter(
            "jobpulse_events_received",
            "Heartbeat events accepted, by type.",
            ["type"],
            registry=r,
        )
        # A ping counts itself here: the child is looked up once (labels() is 1 µs a call).
        self.received_by_type = {etype: self.received.labels(etype) for etype in EVENT_TYPES}
        self.rejected = Counter(
            "jobpulse_events_rejected",
            "Heartbeat events or requests rejected, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in REJECT_REASONS:
            self.rejected.labels(reason)
        self.ingest_latency = Histogram(
            "jobpulse_ingest_duration_seconds",
            "Time from receiving an ingest request to answering it (appended, durable).",
            buckets=_LATENCY,
            registry=r,
        )
        self.inbox_append = Histogram(
            "jobpulse_inbox_append_duration_seconds",
            "Time to append and commit one group of accepted events to the inbox.",
            buckets=_LATENCY,
            registry=r,
        )
        self.inbox_pending = Gauge(
            "jobpulse_inbox_pending_events",
            "Accepted events not yet applied (waiting in the inbox).",
            registry=r,
        )
        self.inbox_lag = Gauge(
            "jobpulse_inbox_apply_lag_seconds",
            "How long the oldest event waiting in the inbox has waited (0 when none waits).",
            registry=r,
        )
        self.store_write = Histogram(
            "jobpulse_store_write_duration_seconds",
            "Time to apply and commit one group of writes.",
            buckets=_LATENCY,
            registry=r,
        )
        self.evaluator_last_run = Gauge(
            "jobpulse_evaluator_last_run_timestamp_seconds",
            "When the evaluator last completed a pass (0 on a replica that is not the leader).",
            registry=r,
        )
        self.leader = Gauge(
            "jobpulse_leader", "1 on the replica that runs the evaluator.", registry=r
        )
        self.jobs = Gauge("jobpulse_jobs", "Jobs by state.", ["state"], registry=r)
        self.notifications = Counter(
            "jobpulse_notifications",
            "Notification deliveries by receiver and outcome: sent, resent (an Alertmanager "
            "re-send of firing alerts), failed (an attempt failed), gave_up, dropped (its "
            "receiver is no longer configured).",
            ["receiver", "outcome"],
            registry=r,
        )
        self.notifications_pending = Gauge(
            "jobpulse_notifications_pending",
            "Notifications in the outbox waiting for delivery (on the replica that sends).",
            registry=r,
        )
        self.store_size = Gauge(
            "jobpulse_store_size_bytes", "Size of the store's database.", registry=r
        )
