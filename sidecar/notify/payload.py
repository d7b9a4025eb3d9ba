"""What a notification says: the Alertmanager alert and the webhook body of a job's flip.

The pushed alert is the generated ``JobPulseJobDown`` rule's alert (sidecar/generate/alerts.py):
the same ``alertname``, exactly the labels the rule's series carries (``job_name``, the job
labels the rules join from ``jobpulse_job_info`` when the job has them, the rule's templated
``severity``) plus the receiver's static ``labels`` where the alert has none of that name (as
Prometheus adds its ``external_labels``), and the rule's annotations rendered for the job.
Identical label sets are one alert in Alertmanager, so a team that also runs the generated rules
gets one page, not two (docs/concepts.md, "Notifications").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final

from jobpulse.instrumentation.wire import format_ts

from ..generate.alerts import PROFILES, rule_groups
from ..generate.promql import Selector
from ..generate.rules import RUNBOOK_LABEL, AlertRule, RuleSettings, Severity

__all__ = [
    "JOB_DOWN",
    "alert_annotations",
    "alert_labels",
    "alertmanager_alert",
    "expand",
    "webhook_body",
]

JOB_DOWN: Final = "JobPulseJobDown"
_LABEL_REF = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@lru_cache(maxsize=8)
def _job_down_rule(settings: RuleSettings) -> AlertRule:
    for group in rule_groups(PROFILES["default"], Selector(), settings):
        for rule in group.rules:
            if rule.alert == JOB_DOWN:
                return rule
    raise LookupError(f"the generated rules have no {JOB_DOWN}")


def expand(template: str, labels: Mapping[str, str]) -> str:
    """``template`` with each ``{{ $labels.NAME }}`` replaced by the label's value (empty when
    absent), as Prometheus expands it. Any other template construct raises ValueError: the
    rule's text changed in a way this renderer does not follow, and a test says so."""
    text = _LABEL_REF.sub(lambda m: labels.get(m.group(1), ""), template)
    if "{{" in text:
        raise ValueError(f"cannot render {template!r}: only {{{{ $labels.NAME }}}} is supported")
    return text


def alert_labels(
    job: str,
    job_labels: Mapping[str, str],
    settings: RuleSettings,
    static: Iterable[tuple[str, str]] = (),
) -> dict[str, str]:
    """The labels of the ``JobPulseJobDown`` alert Prometheus would send for ``job``."""
    rule = _job_down_rule(settings)
    labels = {"alertname": JOB_DOWN, "job_name": job}
    for name in settings.job_labels:  # group_left copies these; an empty label is no label
        value = job_labels.get(name, "")
        if value:
            labels[name] = value
    own = labels.get("severity")
    overridable = rule.job_severity and "severity" in settings.job_labels
    valid = {str(s) for s in Severity}
    labels["severity"] = own if overridable and own in valid else str(rule.severity)
    for name, value in static:
        if value and name not in labels:
            labels[name] = value
    return labels


def alert_annotations(
    labels: Mapping[str, str], settings: RuleSettings, reason: str | None
) -> dict[str, str]:
    """The rule's annotations for an alert with ``labels``; the description adds the reason."""
    rule = _job_down_rule(settings)
    description = expand(rule.description, labels)
    if reason:
        description += f" Reason: {reason}."
    runbook = f"{settings.runbook_url}#{rule.anchor}"
    if rule.job_severity and RUNBOOK_LABEL in settings.job_labels and labels.get(RUNBOOK_LABEL):
        runbook = labels[RUNBOOK_LABEL]
    return {
        "summary": expand(rule.summary, labels),
        "description": description,
        "runbook_url": runbook,
        "dashboard_url": expand(rule.dashboard_url, labels),
    }


def alertmanager_alert(
    labels: Mapping[str, str],
    settings: RuleSettings,
    *,
    reason: str | None,
    starts_at: float,
    ends_at: float,
) -> dict[str, Any]:
    """One alert of Alertmanager's ``POST /api/v2/alerts`` body."""
    return {
        "labels": dict(labels),
        "annotations": alert_annotations(labels, settings, reason),
        "startsAt": format_ts(starts_at),
        "endsAt": format_ts(max(ends_at, starts_at)),
    }


def webhook_body(
    *,
    key: str,
    status: str,
    job: str,
    from_state: str,
    to_state: str,
    reason: str | None,
    at: float,
    job_labels: Mapping[str, str],
    settings: RuleSettings,
) -> dict[str, Any]:
    """The JSON body of a webhook notification (docs/api.md, "Webhook notifications")."""
    labels = alert_labels(job, job_labels, settings)
    return {
        "version": 1,
        "id": key,
        "status": status,
        "job": job,
        "state": to_state,
        "previous_state": from_state,
        "reason": reason,
        "at": format_ts(at),
        "labels": dict(sorted(job_labels.items())),
        "severity": labels["severity"],
        **alert_annotations(labels, settings, reason if status == "firing" else None),
    }
