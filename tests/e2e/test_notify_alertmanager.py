"""End to end: the sidecar pushes job state flips to a real Alertmanager (its v2 API), which
routes them with the shipped deploy/alertmanager.yml (timings shortened, webhooks pointed here)
to a webhook receiver in this test; and beside a real Prometheus evaluating the generated
rules against the same sidecar, the team still gets one alert, not two."""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobpulse.instrumentation.cli import main as cli_main
from jobpulse.instrumentation.wire import parse_ts
from jobpulse.sidecar.generate import render_rules
from tests.conftest import free_port, need_binary
from tests.e2e.test_alerting import Receiver, _scraped, _wait, alertmanager_config
from tests.sidecar.process import Served

pytestmark = pytest.mark.slow


def _config(job: str, am_port: int, resend: str) -> str:
    return f"""
sidecar:
  catchup_delay: 0
jobs:
  - name: {job}
    every: 4s
    grace: 1s
    labels: {{team: data, owner: etl}}
notify:
  alertmanagers:
    - name: am
      url: http://127.0.0.1:{am_port}
      resend_interval: {resend}
"""


class Stack:
    """Alertmanager (and optionally Prometheus) as processes, stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.receiver = Receiver()
        self.am_port = free_port()
        self.prom_port: int | None = None
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []

    def _spawn(self, name: str, command: list[str]) -> None:
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        with open(log, "wb") as out:
            self.procs.append(subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT))

    def start_alertmanager(self, text: str | None = None) -> None:
        """Alertmanager with ``text`` as its configuration (default: the shipped one, with test
        timings and its webhooks sent to the receiver)."""
        binary = need_binary("prometheus-alertmanager")
        config = self.tmp / "alertmanager.yml"
        config.write_text(text or yaml.safe_dump(alertmanager_config(self.receiver.url)))
        self._spawn(
            "alertmanager",
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={self.tmp / 'am'}",
                f"--web.listen-address=127.0.0.1:{self.am_port}",
                "--cluster.listen-address=",  # one Alertmanager, no HA: no gossip to wait for
            ],
        )
        _wait(
            "Alertmanager to be ready", lambda: self._ready(self.am_port, "/-/ready"), 30, self.logs
        )

    def start_prometheus(self, sidecar_port: int) -> str:
        binary = need_binary("prometheus")
        self.prom_port = free_port()
        rules = self.tmp / "rules.yml"
        rules.write_text(render_rules("test", 'job="jobpulse"'))
        config = self.tmp / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(rules)],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}
                        ]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "jobpulse",
                            "static_configs": [{"targets": [f"127.0.0.1:{sidecar_port}"]}],
                        }
                    ],
                }
            )
        )
        self._spawn(
            "prometheus",
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.tmp / 'prom'}",
                f"--web.listen-address=127.0.0.1:{self.prom_port}",
                "--rules.alert.resend-delay=1s",  # every evaluation updates Alertmanager
            ],
        )
        return f"http://127.0.0.1:{self.prom_port}"

    @staticmethod
    def _ready(port: int, path: str) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def am_alerts(self, job: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"filter": f'job_name="{job}"'})
        url = f"http://127.0.0.1:{self.am_port}/api/v2/alerts?{query}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            alerts: list[dict[str, Any]] = json.loads(resp.read())
        return alerts

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.receiver.server.shutdown()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path)
    try:
        yield stack
    finally:
        stack.stop()


def _flips(served: Served, job: str) -> list[dict[str, Any]]:
    _, body = served.get(f"/api/v1/jobs/{job}/flips")
    flips: list[dict[str, Any]] = json.loads(body)["flips"]
    return flips


def _sent(served: Served) -> float:
    _, body = served.get("/metrics")
    for line in body.decode().splitlines():
        if line.startswith('jobpulse_notifications_total{outcome="sent",receiver="am"}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("jobpulse_notifications_total for receiver am is not exposed")


@contextlib.contextmanager
def _down(
    stack: Stack, tmp_path: Path, job: str, resend: str
) -> Iterator[tuple[Served, dict[str, Any]]]:
    """Alertmanager, and a sidecar pushing to it whose job ``job`` goes down (it never runs):
    yields the sidecar and the JobPulseJobDown the receiver got; stops the sidecar after."""
    stack.start_alertmanager()
    served = Served(tmp_path, _config(job, stack.am_port, resend)).start()
    stack.logs.append(served.log)
    try:
        firing = _wait(
            "the pushed JobPulseJobDown",
            lambda: stack.receiver.find("JobPulseJobDown", job, "firing"),
            60,
            stack.logs,
        )
        yield served, firing
    finally:
        served.stop()


def test_a_missed_run_is_pushed_routed_by_team_and_resolved_at_the_recovery(
    stack: Stack, tmp_path: Path
) -> None:
    job = "e2e-push"
    with _down(stack, tmp_path, job, "1m") as (served, firing):
        assert firing["labels"] == {
            "alertname": "JobPulseJobDown",
            "job_name": job,
            "team": "data",
            "owner": "etl",
            "severity": "warning",
        }
        assert firing["annotations"]["description"].endswith("Reason: missed.")
        (note,) = stack.receiver.of_job(job)
        assert note["receiver"] == "data-chat"  # the shipped route for team="data"
        down = next(f for f in _flips(served, job) if f["to"] == "down")
        assert down["reason"] == "missed"
        assert parse_ts(firing["startsAt"]) == pytest.approx(parse_ts(down["at"]), abs=1e-3)

        served.get(f"/ping/{job}")  # a run: up again
        _, body = served.get(f"/api/v1/jobs/{job}")  # (reads wait until the run is applied)
        assert json.loads(body)["state"] == "up"
        # Paused, so no slot is missed after the recovery (up -> paused notifies nothing).
        req = urllib.request.Request(f"{served.url}/api/v1/jobs/{job}/pause", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        resolved = _wait(
            "the pushed resolution",
            lambda: stack.receiver.find("JobPulseJobDown", job, "resolved"),
            60,
            stack.logs,
        )
        up = next(f for f in _flips(served, job) if f["from"] == "down" and f["to"] == "up")
        assert parse_ts(resolved["endsAt"]) == pytest.approx(parse_ts(up["at"]), abs=1e-3)
        assert resolved["fingerprint"] == firing["fingerprint"]
        assert _sent(served) == 2


def test_the_push_beside_the_generated_rules_is_one_alert_not_two(
    stack: Stack, tmp_path: Path
) -> None:
    """Prometheus evaluates the generated rules against the sidecar's /metrics and sends
    JobPulseJobDown to Alertmanager (every evaluation); the sidecar pushes its own. Both carry
    the same labels, so Alertmanager keeps one alert: the earliest start (the push's) and the
    latest update (Prometheus's generator URL), and the receiver hears of it once."""
    job = "e2e-both"
    stack.start_alertmanager()
    served = Served(tmp_path, _config(job, stack.am_port, "1h")).start()
    stack.logs.append(served.log)
    try:
        prometheus = stack.start_prometheus(served.port)
        _wait("Prometheus to scrape the sidecar", lambda: _scraped(prometheus, job), 60, stack.logs)

        def merged() -> dict[str, Any] | None:
            alerts = [
                a for a in stack.am_alerts(job) if a["labels"]["alertname"] == "JobPulseJobDown"
            ]
            assert len(alerts) <= 1, alerts  # two label sets would be two alerts
            # Prometheus links its graph page; the push sends no generator URL
            from_prometheus = (
                "/graph?g0.expr=" in alerts[0].get("generatorURL", "") if alerts else False
            )
            if from_prometheus and _sent(served):
                return alerts[0]
            return None

        alert = _wait("Prometheus's alert merged with the push", merged, 90, stack.logs)
        down = next(f for f in _flips(served, job) if f["to"] == "down")
        assert parse_ts(alert["startsAt"]) == pytest.approx(parse_ts(down["at"]), abs=1e-3)
        time.sleep(4)  # several group intervals (1 s): a second alert would have been sent
        notified = [
            a
            for note in stack.receiver.of_job(job)
            for a in note["alerts"]
            if a["labels"]["alertname"] == "JobPulseJobDown"
        ]
        assert notified, "the receiver heard nothing"
        assert {a["fingerprint"] for a in notified} == {alert["fingerprint"]}
        assert all(
            sum(a["labels"]["alertname"] == "JobPulseJobDown" for a in note["alerts"]) == 1
            for note in stack.receiver.of_job(job)
        )
        assert (
            len([a for a in stack.am_alerts(job) if a["labels"]["alertname"] == "JobPulseJobDown"])
            == 1
        )
    finally:
        served.stop()


def test_a_down_job_deleted_is_resolved_at_once_not_when_its_alert_expires(
    stack: Stack, tmp_path: Path
) -> None:
    """Re-sent every hour, the pushed alert's endsAt lies four hours ahead: only the
    resolution the deletion sends can end it, and Alertmanager tells the team at once."""
    job = "e2e-gone"
    with _down(stack, tmp_path, job, "1h") as (served, firing):
        req = urllib.request.Request(f"{served.url}/api/v1/jobs/{job}", method="DELETE")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 204
        resolved = _wait(
            "the resolution of the deleted job",
            lambda: stack.receiver.find("JobPulseJobDown", job, "resolved"),
            60,
            stack.logs,
        )
        assert resolved["fingerprint"] == firing["fingerprint"]
        assert not [a for a in stack.am_alerts(job) if a["status"]["state"] == "active"]


def _post_alerts(port: int, labels: list[dict[str, str]]) -> None:
    body = json.dumps([{"labels": {"alertname": "JobPulseRunFailed", **x}} for x in labels])
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v2/alerts",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def test_maintenance_merged_into_the_teams_config_mutes_held_jobs_and_routes_the_rest(
    stack: Stack, tmp_path: Path
) -> None:
    """`jobpulse generate alertmanager --base` on the shipped configuration, in a real
    Alertmanager: a job held by an open window is muted, and so is one held by an open window
    after a closed one that also names it; a job whose only window is closed still reaches its
    team's receiver (the hand-merged snippet sent it to the root's)."""
    closed_hour = (datetime.now(UTC).hour + 12) % 24
    config = tmp_path / "jobpulse.yaml"
    config.write_text(
        f"""
maintenance:
  - name: a-closed
    jobs: [routed, twice]
    schedule: "0 {closed_hour} * * *"
    duration: 1h
  - name: b-held
    jobs: [held]
    schedule: "0 0 * * *"
    duration: 24h
  - name: c-ops
    match: {{team: ops}}
    schedule: "0 0 * * *"
    duration: 24h
""",
        encoding="utf-8",
    )
    base = tmp_path / "base.yml"
    base.write_text(yaml.safe_dump(alertmanager_config(stack.receiver.url)), encoding="utf-8")
    merged = tmp_path / "merged.yml"
    args = ["generate", "alertmanager", "--config", str(config), "--base", str(base)]
    assert cli_main([*args, "-o", str(merged)]) == 0
    stack.start_alertmanager(merged.read_text(encoding="utf-8"))
    _post_alerts(
        stack.am_port,
        [
            {"job_name": "held", "team": "data", "severity": "warning"},
            {"job_name": "twice", "team": "ops", "severity": "warning"},
            {"job_name": "routed", "team": "data", "severity": "warning"},
            {"job_name": "free", "team": "data", "severity": "warning"},
        ],
    )
    for job in ("routed", "free"):
        _wait(f"the notification of {job}", lambda j=job: stack.receiver.of_job(j), 30, stack.logs)
    # Three more group intervals (1s each in the test timings) for the muted ones to show up.
    time.sleep(3)
    receivers = {n["groupLabels"]["job_name"]: n["receiver"] for n in stack.receiver.notifications}
    assert receivers == {"routed": "data-chat", "free": "data-chat"}
