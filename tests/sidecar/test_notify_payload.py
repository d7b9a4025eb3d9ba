"""The pushed alert is the generated rule's alert: ``promtool test rules`` evaluates the
generated JobPulseJobDown rule over series like the sidecar's and expects exactly the labels and
annotations the push computes (identical label sets are one alert in Alertmanager, so a team
running both paths is paged once)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from jobpulse.sidecar.generate import render_rules
from jobpulse.sidecar.generate.rules import RuleSettings
from jobpulse.sidecar.notify.payload import (
    alert_annotations,
    alert_labels,
    alertmanager_alert,
    expand,
)
from tests.conftest import need_binary

# job name -> its configured labels (jobpulse_job_info carries them, empty ones left out)
JOBS: dict[str, dict[str, str]] = {
    "backup": {"team": "data", "owner": "ana", "tier": "gold"},
    "report": {"team": "sales", "severity": "critical", "runbook": "https://wiki.example.com/r"},
    "sync": {"team": "web", "severity": "page"},  # not a known severity: the rule's warning
    "bare": {},
}


def _series(job: str, labels: dict[str, str], extra: str) -> str:
    pairs = {"job": "jobpulse", "instance": "127.0.0.1:8484", "job_name": job, **labels}
    text = ", ".join(f'{k}="{v}"' for k, v in pairs.items())
    return f"{{{text}{extra}}}"


@pytest.mark.parametrize(
    ("settings", "static"),
    [
        (RuleSettings(), ()),
        (
            RuleSettings(
                runbook_url="https://runbooks.example.com/jobpulse",
                grafana_url="https://grafana.example.com",
                group_by=("cluster",),
            ),
            (("cluster", "eu-1"),),
        ),
    ],
    ids=["default", "group-by-cluster"],
)
def test_the_generated_rule_fires_with_exactly_the_pushed_labels_and_annotations(
    settings: RuleSettings, static: tuple[tuple[str, str], ...], tmp_path: Path
) -> None:
    promtool = need_binary("promtool")
    (tmp_path / "rules.yml").write_text(render_rules("default", settings=settings))
    target = dict(static)  # the target labels Prometheus would attach (group-by labels)
    series = []
    expected = []
    for job, labels in JOBS.items():
        extra = "".join(f', {k}="{v}"' for k, v in target.items())
        series.append(
            {
                "series": "jobpulse_job_state" + _series(job, {"state": "down"}, extra),
                "values": "1x10",
            }
        )
        info = {"schedule": "@daily", "timezone": "UTC", **labels}
        series.append({"series": "jobpulse_job_info" + _series(job, info, extra), "values": "1x10"})
        pushed = alert_labels(job, labels, settings, static)
        expected.append(
            {
                "exp_labels": {k: v for k, v in pushed.items() if k != "alertname"},
                "exp_annotations": alert_annotations(pushed, settings, reason=None),
            }
        )
    (tmp_path / "test.yml").write_text(
        yaml.safe_dump(
            {
                "rule_files": ["rules.yml"],
                "evaluation_interval": "1m",
                "tests": [
                    {
                        "interval": "1m",
                        "input_series": series,
                        "alert_rule_test": [
                            {
                                "eval_time": "5m",
                                "alertname": "JobPulseJobDown",
                                "exp_alerts": expected,
                            }
                        ],
                    }
                ],
            }
        )
    )
    done = subprocess.run(
        [promtool, "test", "rules", "test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_labels_and_severity() -> None:
    settings = RuleSettings()
    labels = alert_labels("report", JOBS["report"], settings, (("team", "x"), ("env", "prod")))
    assert labels == {
        "alertname": "JobPulseJobDown",
        "job_name": "report",
        "team": "sales",  # the job's own label wins over a static one, as over external_labels
        "severity": "critical",
        "runbook": "https://wiki.example.com/r",
        "env": "prod",
    }
    assert alert_labels("sync", JOBS["sync"], settings)["severity"] == "warning"
    assert "tier" not in alert_labels("backup", JOBS["backup"], settings)  # not joined by rules
    annotations = alert_annotations(labels, settings, "failed")
    assert annotations["runbook_url"] == "https://wiki.example.com/r"
    assert annotations["description"].endswith(" Reason: failed.")


def test_a_resolved_alert_ends_at_the_recovery() -> None:
    labels = alert_labels("bare", {}, RuleSettings())
    alert = alertmanager_alert(labels, RuleSettings(), reason=None, starts_at=100.0, ends_at=160.5)
    assert (alert["startsAt"], alert["endsAt"]) == (
        "1970-01-01T00:01:40Z",
        "1970-01-01T00:02:40.500000Z",
    )


def test_expand_refuses_what_it_cannot_render() -> None:
    assert (
        expand("job {{ $labels.job_name }} in {{$labels.cluster}}", {"job_name": "a"})
        == "job a in "
    )
    with pytest.raises(ValueError, match="only"):
        expand("{{ $value | humanize }}", {})
