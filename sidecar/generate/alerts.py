"""The jobpulse alerting rules: what each alert means, when it fires, how long it waits.

Per-job rules aggregate ``by (job_name)`` first (several sidecar replicas serve the same
values), then join the configured job labels from ``jobpulse_job_info``. Sidecar rules keep
the scrape target's labels. Durations come from a :class:`Profile`; docs/runbooks.md explains
the default ones. A job's alerts default to ``warning``: only the job's own ``severity`` label
makes them ``critical``. ``JobPulseJobDown`` waits as long as the per-run alerts, so they reach
Alertmanager together and the shipped inhibition (deploy/alertmanager.yml) leaves one
notification per incident. No per-job alert fires for a job in a maintenance window
(``jobpulse_job_in_maintenance``): state alerts while the window is open, alerts on counted
events while a window was open at any time in the counting window (a failure counted in the
window would otherwise fire once it closes).
"""

from __future__ import annotations

from dataclasses import dataclass

from jobpulse.instrumentation.spec import parse_duration
from jobpulse.sidecar.generate.promql import Selector, join_job_labels
from jobpulse.sidecar.generate.rules import AlertRule, RuleGroup, RuleSettings, Severity

__all__ = ["PROFILES", "Profile", "rule_groups"]

# increase() extrapolates (1 failure may read 1.07): print counts as whole numbers.
COUNT = '{{ printf "%.0f" $value }}'
JOB_DASHBOARD = "jobpulse-job-detail"
SIDECAR_DASHBOARD = "jobpulse-sidecar-health"


@dataclass(frozen=True)
class Profile:
    """Pending durations and windows. ``test`` exists so an end-to-end test takes a minute."""

    name: str
    event_window: str  # increase() window over run-outcome and missed-run counters
    for_event: str  # a counted failure, timeout or miss
    for_state: str  # job down, run stuck, no recent success
    for_trend: str  # success ratio below the threshold
    for_sidecar: str  # sidecar down or absent, evaluator stalled
    evaluator_lag_seconds: int  # evaluator's last pass older than this: stalled
    rejected_window: str  # increase() window over rejected events
    for_rejected: str


PROFILES: dict[str, Profile] = {
    "default": Profile(
        name="default",
        event_window="15m",
        for_event="1m",
        for_state="5m",
        for_trend="30m",
        for_sidecar="5m",
        evaluator_lag_seconds=120,
        rejected_window="15m",
        for_rejected="15m",
    ),
    "test": Profile(
        name="test",
        event_window="1m",
        for_event="0s",
        for_state="10s",
        for_trend="10s",
        for_sidecar="15s",
        evaluator_lag_seconds=20,
        rejected_window="1m",
        for_rejected="0s",
    ),
}


def _job_rules(p: Profile, sel: Selector, s: RuleSettings) -> tuple[AlertRule, ...]:
    def per_job(expr: str) -> str:
        return f"max by ({s.by('job_name')}) ({expr})"

    def joined(expr: str) -> str:
        return join_job_labels(expr, sel, s.job_labels, s.group_by)

    def held(over: str | None = None) -> str:
        """Not for a job in maintenance (``over``: at any time in that window)."""
        series = sel("jobpulse_job_in_maintenance")
        if over is not None:
            series = f"max_over_time({series}[{over}])"
        return f"unless on ({s.by('job_name')}) {per_job(series)} == 1"

    def counted(metric: str, **labels: str) -> str:
        """Counted in the window. ``increase()`` takes nothing from a series' first sample, so
        a job created within the window counts its whole counter, which started at 0 then: a
        miss before Prometheus first scraped the job still pages, and a series that is only
        new to Prometheus (it or the sidecar restarted) pages for nothing old."""
        counter = sel(metric, **labels)
        increase = f"increase({counter}[{p.event_window}])"
        age = f"time() - {per_job(sel('jobpulse_job_created_timestamp_seconds'))}"
        young = (
            f"{per_job(counter)} > 0\n    and on ({s.by('job_name')}) {age} < "
            f"{parse_duration(p.event_window):g}"
        )
        either = f"(\n    {young}\n  or\n    {per_job(increase)} > 0\n  )"
        return joined(f"{either}\n{held(p.event_window)}")

    cluster = "&var-cluster={{ $labels.cluster }}" if "cluster" in s.group_by else ""
    url = s.dashboard(JOB_DASHBOARD, "?var-job_name={{ $labels.job_name }}" + cluster)
    job = "job {{ $labels.job_name }}"
    not_paused = (
        f"unless on ({s.by('job_name')}) {per_job(sel('jobpulse_job_state', state='paused'))} == 1"
    )
    runs = "jobpulse_job_runs_total"
    count = COUNT
    return (
        AlertRule(
            alert="JobPulseJobDown",
            expr=joined(f"{per_job(sel('jobpulse_job_state', state='down'))} == 1\n{held()}"),
            # as long as the per-run alerts it inhibits: they reach Alertmanager together
            for_=p.for_event,
            severity=Severity.WARNING,
            summary=f"The {job} is down.",
            description=f"jobpulse reports {job} as down: it counted enough failed, timed-out "
            "or missed runs in a row. The reason is on the job's page in the sidecar.",
            dashboard_url=url,
            job_severity=True,
        ),
        AlertRule(
            alert="JobPulseRunMissed",
            expr=counted("jobpulse_job_missed_runs_total"),
            for_=p.for_event,
            severity=Severity.WARNING,
            summary=f"The {job} missed a scheduled run.",
            description=f"The {job} did not start within its grace period {count} time(s) "
            f"in the last {p.event_window}.",
            dashboard_url=url,
            job_severity=True,
        ),
        AlertRule(
            alert="JobPulseRunFailed",
            expr=counted(runs, outcome="failure"),
            for_=p.for_event,
            severity=Severity.WARNING,
            summary=f"A run of {job} failed.",
            description=f"The {job} reported {count} failed run(s) in the last {p.event_window} "
            "(retried attempts are not counted).",
            dashboard_url=url,
            job_severity=True,
        ),
        AlertRule(
            alert="JobPulseRunTimedOut",
            expr=counted(runs, outcome="timeout"),
            for_=p.for_event,
            severity=Severity.WARNING,
            summary=f"A run of {job} timed out.",
            description=f"The {job} had {count} run(s) still running past max_runtime, or "
            f"silent past heartbeat_timeout, in the last {p.event_window}.",
            dashboard_url=url,
            job_severity=True,
        ),
        AlertRule(
            alert="JobPulseRunSlow",
            expr=counted("jobpulse_job_slow_runs_total"),
            for_=p.for_event,
            severity=Severity.WARNING,
            summary=f"A run of {job} was much slower than usual.",
            description=f"The {job} finished {count} run(s) in the last {p.event_window} that "
            "took longer than its anomaly factor (default 3) times its p95 duration over the "
            "anomaly window (default 7d). It still finished: look for growing input, a slower "
            "dependency or contention before it becomes a timeout.",
            dashboard_url=url,
            job_severity=True,
        ),
        AlertRule(
            alert="JobPulseRunStuck",
            expr=joined(
                f"(time() - {per_job(sel('jobpulse_job_oldest_running_start_timestamp_seconds'))})"
                f"\n  > {per_job(sel('jobpulse_job_expected_interval_seconds'))}"
                f"\nand on ({s.by('job_name')}) {per_job(sel('jobpulse_job_running'))} > 0"
                f"\n{held()}"
            ),
            for_=p.for_state,
            severity=Severity.WARNING,
            summary=f"A run of {job} has been running longer than its schedule's interval.",
            description=f"The oldest running run of {job} started "
            "{{ $value | humanizeDuration }} ago, longer than the interval between its runs.",
            dashboard_url=url,
            job_severity=True,
        ),
        AlertRule(
            alert="JobPulseFailureRatioHigh",
            expr=joined(
                f"{per_job(sel('jobpulse_job_success_ratio', window='24h'))}"
                f" < {s.success_ratio_threshold:g}\n{held()}"
            ),
            for_=p.for_trend,
            severity=Severity.WARNING,
            summary=f"The {job} fails or misses too many runs.",
            description=f"Only {{{{ $value | humanizePercentage }}}} of {job}'s due runs "
            f"succeeded over the last 24h (threshold {s.success_ratio_threshold:.0%}).",
            dashboard_url=url,
            job_severity=True,
        ),
        AlertRule(
            alert="JobPulseNoRecentSuccess",
            expr=joined(
                f"(time() - {per_job(sel('jobpulse_job_last_success_timestamp_seconds') + ' > 0')})"
                f"\n  > 2 * {per_job(sel('jobpulse_job_expected_interval_seconds'))}"
                f"\n{not_paused}\n{held()}"
            ),
            for_=p.for_state,
            severity=Severity.WARNING,
            summary=f"The {job} has not succeeded for two expected intervals.",
            description=f"The last success of {job} was {{{{ $value | humanizeDuration }}}} "
            "ago, more than twice its expected interval. This check uses only the exported "
            "timestamps, not the sidecar's own state.",
            dashboard_url=url,
            job_severity=True,
        ),
    )


def _sidecar_rules(p: Profile, sel: Selector, s: RuleSettings) -> tuple[AlertRule, ...]:
    url = s.dashboard(SIDECAR_DASHBOARD)
    up = sel.sidecar_up(s.scrape_job)
    return (
        AlertRule(
            alert="JobPulseSidecarDown",
            expr=f"{up} == 0",
            for_=p.for_sidecar,
            severity=Severity.WARNING,
            summary="A jobpulse sidecar cannot be scraped.",
            description="Prometheus cannot scrape the jobpulse sidecar at {{ $labels.instance }}.",
            dashboard_url=url,
        ),
        AlertRule(
            alert="JobPulseSidecarAbsent",
            expr=f"absent({up} == 1)",
            for_=p.for_sidecar,
            severity=Severity.CRITICAL,
            summary="No jobpulse sidecar is up: no job is being watched.",
            description="Prometheus has no reachable jobpulse sidecar target, so job alerts "
            "cannot fire.",
            dashboard_url=url,
        ),
        AlertRule(
            alert="JobPulseEvaluatorStalled",
            expr=f"time() - max by ({s.by('job')}) "
            f"({sel('jobpulse_evaluator_last_run_timestamp_seconds')}) > {p.evaluator_lag_seconds}",
            for_=p.for_sidecar,
            severity=Severity.CRITICAL,
            summary="The jobpulse evaluator has stopped, or judges far behind.",
            description="No jobpulse replica has judged schedules up to the last "
            "{{ $value | humanizeDuration }} (stopped, or behind an inbox backlog: /readyz "
            "says which): missed and timed-out runs go undetected meanwhile.",
            dashboard_url=url,
        ),
        AlertRule(
            alert="JobPulseEventsRejected",
            expr=f"sum by ({s.by('job', 'reason')}) (increase("
            f"{sel('jobpulse_events_rejected_total')}[{p.rejected_window}])) > 0",
            for_=p.for_rejected,
            severity=Severity.WARNING,
            summary="The jobpulse sidecar is rejecting events ({{ $labels.reason }}).",
            description=f"{COUNT} heartbeat event(s) were rejected with reason "
            f"{{{{ $labels.reason }}}} in the last {p.rejected_window}.",
            dashboard_url=url,
        ),
    )


def rule_groups(profile: Profile, selector: Selector, settings: RuleSettings) -> list[RuleGroup]:
    return [
        RuleGroup("jobpulse-jobs", _job_rules(profile, selector, settings)),
        RuleGroup("jobpulse-sidecar", _sidecar_rules(profile, selector, settings)),
    ]
