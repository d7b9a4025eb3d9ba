"""The sidecar as users run it: a real `jobpulse serve` process."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from jobpulse.instrumentation.wire import format_ts
from tests.conftest import need_binary
from tests.sidecar.process import Served

CONFIG = """
jobs:
  - name: backup
    schedule: "30 3 * * *"
    timezone: Europe/Riga
    labels: {team: "data \\"core\\"", owner: "a\\\\b"}
  - name: poller
    every: 1m
  - name: reports
    schedule: "0 9 * * 1-5"
"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path, CONFIG).start()
    yield s
    s.stop()


def _events(job: str, n: int) -> list[dict[str, Any]]:
    now = time.time()
    out = []
    for i in range(n):
        rid = uuid.uuid4().hex
        out += [
            {"type": "start", "job": job, "run_id": rid, "ts": format_ts(now + i)},
            {
                "type": "failure" if i % 3 == 0 else "success",
                "job": job,
                "run_id": rid,
                "ts": format_ts(now + i + 0.5),
                "duration": 0.5,
            },
        ]
    return out


def _counters(text: str) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.endswith("_total") and "job_name" in s.labels:
                out[(s.name, s.labels["job_name"], s.labels.get("outcome", ""))] = s.value
    return out


def test_counters_survive_a_restart(served: Served) -> None:
    served.post_events(_events("backup", 6) + _events("ad-hoc", 3))
    status, before = served.get("/metrics")
    assert status == 200
    counters = _counters(before.decode())
    assert counters[("jobpulse_job_runs_total", "backup", "failure")] == 2
    served.stop()
    served.start()
    _, after = served.get("/metrics")
    assert _counters(after.decode()) == counters


def test_promtool_accepts_a_live_scrape(served: Served) -> None:
    promtool = need_binary("promtool")
    served.post_events(_events("backup", 3) + _events("poller", 2) + _events("ad-hoc", 2))
    served.get("/ping/reports/start")
    _, body = served.get("/metrics")
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    text = body.decode()
    assert 'team="data \\"core\\""' in text  # label values escaped
    assert 'owner="a\\\\b"' in text


def test_sigkill_loses_no_acknowledged_event(tmp_path: Path) -> None:
    served = Served(tmp_path, "").start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def sender() -> None:
        while not stop.is_set():
            batch = _events("killed", 10)
            try:
                result = served.post_events(batch, timeout=5)
            except OSError:
                return  # the sidecar died mid-request: this batch was never acknowledged
            assert result["accepted"] == len(batch)
            acknowledged.extend(e["run_id"] for e in batch if e["type"] == "start")

    threads = [threading.Thread(target=sender) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    served.stop(signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(timeout=10)
    assert len(acknowledged) >= 100
    served.start()  # recovery from the WAL happens on open
    served.stop()
    with sqlite3.connect(tmp_path / "jobpulse.db") as conn:
        stored = {row[0] for row in conn.execute("SELECT run_id FROM runs")}
        outcomes = dict(conn.execute("SELECT run_id, outcome FROM runs").fetchall())
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged runs lost"
    assert all(outcomes[r] in ("success", "failure") for r in acknowledged)


def test_refuses_non_loopback_without_tokens(tmp_path: Path) -> None:
    served = Served(tmp_path, "", extra=["--host", "0.0.0.0"])
    proc = subprocess.run([*served_cmd(served)], capture_output=True, timeout=30, env=served.env)
    assert proc.returncode == 78
    assert b"refusing to listen on 0.0.0.0 without tokens" in proc.stderr


def served_cmd(served: Served) -> list[str]:
    from tests.sidecar.process import JOBPULSE

    return [JOBPULSE, "serve", "--port", str(served.port), "--store", served.store, *served.extra]


def test_check_config_names_job_field_and_accepted_values(tmp_path: Path) -> None:
    from tests.sidecar.process import JOBPULSE

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        'jobs:\n  - name: ok\n    schedule: "* * * * *"\n  - name: nightly-backup\n    grace: 10x\n'
    )
    proc = subprocess.run([JOBPULSE, "check-config", str(bad)], capture_output=True, timeout=30)
    assert proc.returncode == 78
    err = proc.stderr.decode()
    assert "jobs[1] (nightly-backup)" in err
    assert "grace '10x'" in err
    assert "1h30m" in err
    good = tmp_path / "good.yaml"
    good.write_text(CONFIG)
    proc = subprocess.run([JOBPULSE, "check-config", str(good)], capture_output=True, timeout=30)
    assert proc.returncode == 0
    assert b"OK (3 jobs)" in proc.stdout


def test_migrate_and_version(tmp_path: Path) -> None:
    from jobpulse.sidecar.store.migrate import head_revision
    from tests.sidecar.process import JOBPULSE

    store = f"sqlite:///{tmp_path}/m.db"
    proc = subprocess.run([JOBPULSE, "migrate", "--store", store], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert b"(was empty)" in proc.stdout
    proc = subprocess.run([JOBPULSE, "migrate", "--store", store], capture_output=True, timeout=60)
    assert f"(was {head_revision()})".encode() in proc.stdout
    proc = subprocess.run([JOBPULSE, "version"], capture_output=True, timeout=30)
    assert proc.stdout.decode().startswith("jobpulse ")


def test_serve_logs_the_urls_it_serves(served: Served) -> None:
    log = served.log.read_text()
    assert f"jobpulse serving on {served.url}" in log
    assert f"{served.url}/metrics" in log


def test_bad_environment_variable_fails_start_up_naming_it(tmp_path: Path) -> None:
    served = Served(tmp_path, "", env={"JOBPULSE_PORT": "eighty"})
    proc = subprocess.run(
        [*served_cmd(served)[:2], "--store", served.store],
        capture_output=True,
        timeout=30,
        env=served.env,
    )
    assert proc.returncode == 78
    assert b"JOBPULSE_PORT" in proc.stderr
    assert json  # the module is used by helpers above


def test_a_second_sidecar_on_the_same_sqlite_file_is_refused(served: Served) -> None:
    # Two sidecars on one file would both apply the inbox and both send every notification.
    assert served.proc is not None
    second = Served(served.workdir, CONFIG)
    proc = subprocess.run([*served_cmd(second)], capture_output=True, timeout=60, env=second.env)
    assert proc.returncode == 78
    message = proc.stderr.decode()
    assert f"another jobpulse sidecar (process {served.proc.pid}) is serving it" in message
    assert "use PostgreSQL for replicas" in message
    assert served.get("/readyz")[0] == 200  # the first one goes on serving
