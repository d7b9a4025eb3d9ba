"""End to end: a real sidecar scraped by a real Prometheus evaluating the generated rules (test
profile), routing through a real Alertmanager, configured with the shipped
deploy/alertmanager.yml (only its timings shortened and its webhooks pointed here), to a webhook
receiver in this test."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobpulse.instrumentation.wire import format_ts
from jobpulse.sidecar.generate import render_dashboards, render_rules
from tests.conftest import free_port, need_binary
from tests.sidecar.process import Served

pytestmark = pytest.mark.slow

CONFIG = """
sidecar:
  catchup_delay: 0
jobs:
  - name: e2e-failing
    every: 1h
    failure_threshold: 3
    labels: {team: data}
  - name: e2e-warning
    every: 1h
    labels: {team: data}
  - name: e2e-slow
    labels: {team: data}
  - name: e2e-steady
    labels: {team: data}
"""
# Deployed once Prometheus scrapes the sidecar (see test_missed_and_failed_runs_page_and_resolve).
SILENT = """
  - name: e2e-silent
    schedule: "*/4 * * * * *"
    grace: 1s
    failure_threshold: 3
    labels: {team: payments, severity: critical, owner: "pay-oncall"}
"""
REPO = Path(__file__).resolve().parents[2]
SHIPPED_RECEIVER = "http://alert-receiver:5001"


def alertmanager_config(receiver: str) -> dict[str, Any]:
    """deploy/alertmanager.yml with test timings and its webhooks sent to ``receiver``."""
    config: dict[str, Any] = yaml.safe_load(
        (REPO / "deploy" / "alertmanager.yml").read_text(encoding="utf-8")
    )
    config["route"].update(group_wait="1s", group_interval="1s")
    for entry in config["receivers"]:
        for hook in entry["webhook_configs"]:
            assert hook["url"].startswith(SHIPPED_RECEIVER)
            hook["url"] = receiver + hook["url"].removeprefix(SHIPPED_RECEIVER)
    return config


class Receiver:
    """Alertmanager's webhook target: keeps every notification."""

    def __init__(self) -> None:
        self.notifications: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    outer.notifications.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def alerts(self, status: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            out = [a for n in self.notifications for a in n["alerts"]]
        return [a for a in out if status is None or a["status"] == status]

    def of_job(self, job: str) -> list[dict[str, Any]]:
        """The notifications of one job's group."""
        with self.lock:
            return [n for n in self.notifications if n["groupLabels"].get("job_name") == job]

    def find(self, name: str, job: str, status: str) -> dict[str, Any] | None:
        for alert in self.alerts(status):
            labels = alert["labels"]
            if labels.get("alertname") == name and labels.get("job_name") == job:
                return alert
        return None


# What a timed-out wait prints: a log file's tail, or a view taken at that moment.
Log = Path | Callable[[], str]


def _tail(log: Log) -> str:
    if isinstance(log, Path):
        return f"--- {log.name}\n{log.read_text()[-1500:]}" if log.exists() else ""
    try:
        return log()
    except Exception as exc:  # a view of a process that is gone says so
        return f"--- view failed: {exc!r}"


def _wait(what: str, check: Any, timeout: float, logs: list[Log]) -> Any:
    started = time.monotonic()
    while time.monotonic() < started + timeout:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    tails = "\n".join(_tail(log) for log in logs)
    raise AssertionError(f"timed out waiting for {what} ({timeout:.0f} s)\n{tails}")


def _sidecar_view(served: Served) -> str:
    """The sidecar's own view of the jobs and of its evaluator, from its /metrics."""
    _, body = served.get("/metrics", applied=False)
    wanted = re.compile(
        r"^jobpulse_(job_missed_runs_total|job_runs_total|job_state|job_next_expected_run|"
        r"evaluator_last_run|inbox_pending|inbox_apply_lag|leader)\S*( |\{)"
    )
    lines = [ln for ln in body.decode().splitlines() if wanted.match(ln)]
    return "--- sidecar /metrics (at the timeout)\n" + "\n".join(
        ln for ln in lines if "state=" not in ln or float(ln.rsplit(" ", 1)[1]) == 1
    )


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return json.loads(resp.read())


def _query(prometheus: str, query: str) -> list[dict[str, Any]]:
    """The result of an instant query (a range selector gives each series' samples)."""
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(query)}"
    result: list[dict[str, Any]] = _get_json(url)["data"]["result"]
    return result


def _prometheus_view(prometheus: str) -> str:
    """What Prometheus has: its targets' health, the missed-run increase, ALERTS, each
    alert's activeAt, and e2e-silent's samples of its missed runs and its down state."""
    out = ["--- Prometheus (at the timeout)"]
    for query in ("up", "increase(jobpulse_job_missed_runs_total[1m])", "ALERTS"):
        result = _query(prometheus, query)
        out += [f"{query}: {r['metric']} = {r['value'][1]}" for r in result] or [f"{query}: none"]
    alerts = _get_json(f"{prometheus}/api/v1/alerts")["data"]["alerts"]
    out += [
        f"alert {a['labels']['alertname']} {a['labels'].get('job_name')}: {a['state']} "
        f"since {a['activeAt']}"
        for a in alerts
    ]
    for query in (
        'jobpulse_job_missed_runs_total{job_name="e2e-silent"}[2m]',
        'jobpulse_job_state{job_name="e2e-silent",state="down"}[2m]',
    ):
        for r in _query(prometheus, query):
            out.append(f"{query}: " + " ".join(f"{t:.1f}={v}" for t, v in r["values"]))
    return "\n".join(out)


def _alertmanager_view(alertmanager: str) -> str:
    """What Alertmanager holds: each alert's state and what inhibits or silences it."""
    alerts = _get_json(f"{alertmanager}/api/v2/alerts")
    return "--- Alertmanager (at the timeout)\n" + "\n".join(
        f"{a['labels']['alertname']} {a['labels'].get('job_name')}: {a['status']} "
        f"since {a['startsAt']}, updated {a['updatedAt']}"
        for a in alerts
    )


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Served, Receiver, list[Log], str]]:
    prometheus = need_binary("prometheus")
    alertmanager = need_binary("prometheus-alertmanager")
    served = Served(tmp_path, CONFIG).start()
    receiver = Receiver()
    rules = tmp_path / "rules.yml"
    rules.write_text(render_rules("test", 'job="jobpulse"'))
    am_port, prom_port = free_port(), free_port()
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(alertmanager_config(receiver.url)))
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(rules)],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
                "scrape_configs": [
                    {
                        "job_name": "jobpulse",
                        "static_configs": [{"targets": [f"127.0.0.1:{served.port}"]}],
                    }
                ],
            }
        )
    )
    files = [tmp_path / "alertmanager.log", tmp_path / "prometheus.log", served.log]
    prometheus_url = f"http://127.0.0.1:{prom_port}"
    logs: list[Log] = [
        *files,
        lambda: _sidecar_view(served),
        lambda: _prometheus_view(prometheus_url),
        lambda: _alertmanager_view(f"http://127.0.0.1:{am_port}"),
    ]
    procs = [
        subprocess.Popen(
            [
                alertmanager,
                f"--config.file={tmp_path / 'alertmanager.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                # One Alertmanager, no HA: no gossip to wait for before it notifies.
                "--cluster.listen-address=",
            ],
            stdout=open(files[0], "wb"),
            stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [
                prometheus,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'prom'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=open(files[1], "wb"),
            stderr=subprocess.STDOUT,
        ),
    ]
    try:
        yield served, receiver, logs, prometheus_url
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        served.stop()
        receiver.server.shutdown()


def _scraped(prometheus: str, job: str, metric: str = "jobpulse_job_runs_total") -> bool:
    try:
        return bool(_query(prometheus, f'{metric}{{job_name="{job}"}}'))
    except OSError:
        return False


def _firing(prometheus: str, job: str) -> set[str]:
    result = _query(prometheus, f'ALERTS{{job_name="{job}", alertstate="firing"}}')
    return {r["metric"]["alertname"] for r in result}


def test_missed_and_failed_runs_page_and_resolve(
    stack: tuple[Served, Receiver, list[Log], str],
) -> None:
    served, receiver, logs, prometheus = stack

    def scraped() -> bool:
        return _scraped(prometheus, "e2e-failing")

    # counters must be seen at 0 before they move, as in any long-running setup
    _wait("Prometheus to scrape the sidecar", scraped, 30, logs)
    # e2e-silent is deployed now, into a steady scrape, as a new job is: Prometheus sees its
    # missed-run counter at 0 (or at 1) before its third miss takes it down. Had its first
    # scrape come after two misses (a slow start), the first increase() would coincide with
    # JobDown, which inhibits JobPulseRunMissed in the shipped Alertmanager routes.
    served.config.write_text(CONFIG + SILENT)
    assert served.proc is not None
    served.proc.send_signal(signal.SIGHUP)
    _wait(
        "Prometheus to scrape the new job",
        lambda: _scraped(prometheus, "e2e-silent", "jobpulse_job_missed_runs_total"),
        30,
        logs,
    )
    # e2e-failing reports one failed run; e2e-silent never reports at all
    served.get("/ping/e2e-failing/start")
    served.get("/ping/e2e-failing/fail")

    missed = _wait(
        "JobPulseRunMissed",
        lambda: receiver.find("JobPulseRunMissed", "e2e-silent", "firing"),
        60,
        logs,
    )
    assert missed["labels"]["team"] == "payments"
    assert missed["labels"]["owner"] == "pay-oncall"
    assert missed["labels"]["severity"] == "critical"  # the job's own severity wins
    assert missed["annotations"]["runbook_url"].endswith("runbooks.md#jobpulserunmissed")
    failed = _wait(
        "JobPulseRunFailed",
        lambda: receiver.find("JobPulseRunFailed", "e2e-failing", "firing"),
        60,
        logs,
    )
    assert failed["labels"]["team"] == "data"
    assert failed["labels"]["severity"] == "warning"  # no job severity: the rule's default
    assert receiver.of_job("e2e-failing")[0]["receiver"] == "data-chat"  # the shipped routes
    assert "runbook_url" in failed["annotations"]
    down = _wait(
        "JobPulseJobDown",
        lambda: receiver.find("JobPulseJobDown", "e2e-silent", "firing"),
        60,
        logs,
    )
    assert down["labels"]["team"] == "payments"

    # the job starts running on schedule and the failing one succeeds: everything resolves
    stop = threading.Event()

    def run_on_schedule() -> None:
        while not stop.is_set():
            now = time.time()
            slot = now - now % 4 + 4
            if stop.wait(slot - now + 0.2):
                return
            served.get("/ping/e2e-silent/start")
            served.get("/ping/e2e-silent")

    runner = threading.Thread(target=run_on_schedule, daemon=True)
    runner.start()
    served.get("/ping/e2e-failing")
    try:
        for name, job in (
            ("JobPulseJobDown", "e2e-silent"),
            ("JobPulseRunMissed", "e2e-silent"),
            ("JobPulseRunFailed", "e2e-failing"),
        ):
            _wait(
                f"{name} resolved", lambda n=name, j=job: receiver.find(n, j, "resolved"), 150, logs
            )
    finally:
        stop.set()
        runner.join(timeout=10)


def test_one_failure_of_a_warning_job_is_one_notification(
    stack: tuple[Served, Receiver, list[Log], str],
) -> None:
    """A failed run takes e2e-warning down (failure_threshold 1): JobDown, RunFailed and then
    FailureRatioHigh fire in Prometheus, and the receiver hears of it once."""
    served, receiver, logs, prometheus = stack
    _wait("Prometheus to scrape the sidecar", lambda: _scraped(prometheus, "e2e-warning"), 30, logs)
    served.get("/ping/e2e-warning/start")
    served.get("/ping/e2e-warning/fail")

    (first,) = _wait("a notification", lambda: receiver.of_job("e2e-warning"), 60, logs)
    expected = {"JobPulseJobDown", "JobPulseRunFailed", "JobPulseFailureRatioHigh"}
    _wait(
        "every alert of the incident",
        lambda: _firing(prometheus, "e2e-warning") >= expected,
        60,
        logs,
    )
    time.sleep(5)  # several group_intervals (1 s): anything more would have been sent by now
    assert receiver.of_job("e2e-warning") == [first]
    (alert,) = first["alerts"]
    assert (alert["labels"]["alertname"], alert["status"]) == ("JobPulseJobDown", "firing")
    assert alert["labels"]["severity"] == "warning"  # an unlabelled job does not page
    assert first["receiver"] == "data-chat"


def _finish(job: str, ts: float, duration: float) -> dict[str, Any]:
    """A finish-only success that carries its duration (``job && curl``, timed)."""
    return {
        "v": 1,
        "type": "success",
        "job": job,
        "run_id": uuid.uuid4().hex,
        "ts": format_ts(ts),
        "duration": duration,
    }


def test_a_run_five_times_slower_than_its_history_pages_and_one_and_a_half_does_not(
    stack: tuple[Served, Receiver, list[Log], str],
) -> None:
    """Two jobs with the same history (20 runs of 10 s in the last half hour: the default
    anomaly needs 20): a 50 s run of e2e-slow pages JobPulseRunSlow; a 15 s run of e2e-steady
    stays quiet."""
    served, receiver, logs, prometheus = stack
    _wait("Prometheus to scrape the sidecar", lambda: _scraped(prometheus, "e2e-steady"), 30, logs)
    now = time.time()
    history = [
        _finish(j, now - 1800 + 60 * i, 10.0) for j in ("e2e-slow", "e2e-steady") for i in range(20)
    ]
    served.post_events(history)
    served.post_events([_finish("e2e-slow", now, 50.0), _finish("e2e-steady", now, 15.0)])

    slow = _wait(
        "JobPulseRunSlow",
        lambda: receiver.find("JobPulseRunSlow", "e2e-slow", "firing"),
        60,
        logs,
    )
    assert slow["labels"]["team"] == "data"
    assert slow["labels"]["severity"] == "warning"
    assert slow["annotations"]["runbook_url"].endswith("runbooks.md#jobpulserunslow")
    # Prometheus has evaluated the rule over both counters by now: the 1.5x run is not slow.
    assert "JobPulseRunSlow" not in _firing(prometheus, "e2e-steady")
    assert receiver.find("JobPulseRunSlow", "e2e-steady", "firing") is None
    for job, flagged in (("e2e-slow", True), ("e2e-steady", False)):
        _, body = served.get(f"/api/v1/jobs/{job}/runs?limit=1")
        (latest,) = json.loads(body)["runs"]
        assert ("slow" in latest["flags"]) is flagged, latest


_NAMES = re.compile(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{|\b(jobpulse_[a-z0-9_]+)\b")


def _used_metric_names() -> set[str]:
    exprs = [r["expr"] for g in yaml.safe_load(render_rules())["groups"] for r in g["rules"]]
    for text in render_dashboards().values():
        board = json.loads(text)
        for panel in board.get("panels", []):
            exprs += [t["expr"] for t in panel.get("targets", []) if t.get("expr")]
        for var in board.get("templating", {}).get("list", []):
            query = var.get("query")
            if isinstance(query, dict):
                query = query.get("query")
            if isinstance(query, str) and "jobpulse_" in query:
                exprs.append(query)
    names = {a or b for e in exprs for a, b in _NAMES.findall(e)}
    return {n for n in names if n.startswith("jobpulse_")}


def test_every_metric_the_rules_and_dashboards_use_is_in_a_live_scrape(tmp_path: Path) -> None:
    served = Served(tmp_path, CONFIG + SILENT).start()
    try:
        served.get("/ping/e2e-failing/start")
        served.get("/ping/e2e-failing/fail")
        served.get("/ping/e2e-failing")
        served.get("/ping/e2e-failing/start")  # one in flight
        time.sleep(5)  # e2e-silent misses a slot (every 4 s, grace 1 s) on the real clock
        served.get("/ping/bogus-job")  # an unknown job without ?create=1
        _, body = served.get("/metrics")
    finally:
        served.stop()
    exposed = {
        line.split("{")[0].split(" ")[0]
        for line in body.decode().splitlines()
        if line and not line.startswith("#")
    }
    used = _used_metric_names()
    assert len(used) > 15
    assert used <= exposed, f"used by rules/dashboards but not exposed: {used - exposed}"


def test_used_metric_extraction_finds_names() -> None:
    assert "jobpulse_job_state" in _used_metric_names()
