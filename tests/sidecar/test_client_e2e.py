"""The job-side client against the real sidecar: outages cost the job nothing and lose nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from jobpulse.instrumentation import HeartbeatClient, monitor
from tests.sidecar.process import JOBPULSE, Served

CONFIG = """
jobs:
  - name: resilient
    every: 1h
"""


def _job(served: Served, name: str) -> dict[str, object]:
    status, body = served.get(f"/api/v1/jobs/{name}")
    assert status == 200, body
    data: dict[str, object] = json.loads(body)
    return data


def test_outage_spools_then_delivers_everything_once(tmp_path: Path) -> None:
    served = Served(tmp_path, CONFIG)  # not started yet: the sidecar is down
    spool = tmp_path / "spool"
    client = HeartbeatClient(url=served.url, spool_dir=str(spool), timeout=0.5)
    job = monitor("resilient", every="1h", client=client)(lambda i: i * 2)
    started = time.monotonic()
    results = [job(i) for i in range(200)]
    assert results == [i * 2 for i in range(200)]
    assert time.monotonic() - started < 5  # the job never waited on the network
    client.close(2.0)
    assert client.stats.spooled > 0
    assert any(spool.iterdir())

    served.start()
    try:
        # the next process (here: `jobpulse flush`) delivers the spool
        env = {**os.environ, "JOBPULSE_URL": served.url, "JOBPULSE_SPOOL_DIR": str(spool)}
        proc = subprocess.run([JOBPULSE, "flush"], capture_output=True, timeout=60, env=env)
        assert proc.returncode == 0, proc.stderr.decode()
        runs = _job(served, "resilient")["runs"]
        assert runs == {"success": 200, "failure": 0, "timeout": 0, "cancelled": 0, "retry": 0}
        assert not [p for p in spool.iterdir() if p.is_file()]
        # delivering the same events again (a client retry after a lost answer) counts nothing
        again = HeartbeatClient(url=served.url, spool_dir=str(tmp_path / "spool2"))
        rerun = monitor("resilient", client=again)
        with rerun.run(run_id="fixed-run"):
            pass
        with rerun.run(run_id="fixed-run"):
            pass
        assert again.flush(5.0)
        again.close(1.0)
        assert _job(served, "resilient")["runs"]["success"] == 201  # type: ignore[index]
    finally:
        served.stop()


CRON_JOB = """
import sys
from jobpulse.instrumentation import monitor

@monitor("cron-style", schedule="*/5 * * * *")
def main():
    return 42

assert main() == 42
"""


def test_short_lived_process_delivers_before_exit_or_spools(tmp_path: Path) -> None:
    served = Served(tmp_path, "").start()
    spool = tmp_path / "spool"
    env = {**os.environ, "JOBPULSE_URL": served.url, "JOBPULSE_SPOOL_DIR": str(spool)}
    try:
        proc = subprocess.run(
            [sys.executable, "-c", CRON_JOB], env=env, timeout=60, capture_output=True
        )
        assert proc.returncode == 0, proc.stderr.decode()
        job = _job(served, "cron-style")
        assert job["runs"] == {"success": 1, "failure": 0, "timeout": 0, "cancelled": 0, "retry": 0}
        assert job["schedule"] == "*/5 * * * *"  # declared by the decorator
        served.stop()
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", CRON_JOB], env=env, timeout=60, capture_output=True
        )
        assert proc.returncode == 0
        assert time.monotonic() - started < 10
        assert [p for p in spool.iterdir() if p.is_file()]  # spooled, not lost
        served.start()
        proc = subprocess.run(
            [sys.executable, "-c", CRON_JOB], env=env, timeout=60, capture_output=True
        )  # the next run delivers the spool too
        assert proc.returncode == 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if _job(served, "cron-style")["runs"]["success"] == 3:  # type: ignore[index]
                break
            time.sleep(0.1)
        assert _job(served, "cron-style")["runs"]["success"] == 3  # type: ignore[index]
    finally:
        served.stop()


BUSY_JOB = """
import asyncio
from jobpulse.instrumentation import monitor

@monitor("busy", every="1m")
def work(i):
    if i % 100 == 99:
        raise ValueError(i)
    return i

@monitor("busy-async", every="1m")
async def later():
    await asyncio.sleep(0)

for i in range(2000):
    try:
        work(i)
    except ValueError:
        pass
asyncio.run(later())
asyncio.run(later())
"""


def test_a_process_that_runs_a_job_2000_times_delivers_every_run_before_it_exits(
    tmp_path: Path,
) -> None:
    # The default exit budget (2 s) is enough once an answer waits only for the inbox append:
    # nothing is left for a later process (with a daily crontab, that would be a day late).
    spool = tmp_path / "spool"
    with Served(tmp_path, "") as served:
        env = {**os.environ, "JOBPULSE_URL": served.url, "JOBPULSE_SPOOL_DIR": str(spool)}
        proc = subprocess.run(
            [sys.executable, "-c", BUSY_JOB], env=env, timeout=60, capture_output=True
        )
        assert proc.returncode == 0, proc.stderr.decode()
        assert not spool.exists() or not [p for p in spool.rglob("*") if p.is_file()]
        runs = _job(served, "busy")["runs"]
        assert runs == {"success": 1980, "failure": 20, "timeout": 0, "cancelled": 0, "retry": 0}
        assert _job(served, "busy-async")["runs"]["success"] == 2  # type: ignore[index]


def test_a_sidecar_with_lower_limits_gets_every_event_in_smaller_batches(tmp_path: Path) -> None:
    # The client sends up to 1,000 events a request (the sidecar's default limit); a sidecar
    # configured lower answers 413, which is not the batch's fault: the client halves it (in
    # memory and in the spool) and sends no longer batches after that. Nothing is dropped.
    spool = tmp_path / "spool"
    env = {"JOBPULSE_MAX_BATCH_EVENTS": "7"}
    with Served(tmp_path, "", env=env) as served:
        client = HeartbeatClient(url=served.url, spool_dir=str(spool), start=False)
        job = monitor("limited", every="1h", client=client)(lambda: None)
        for _ in range(60):
            job()
        client.close(20.0)  # the sender starts with all 120 events queued: 120 > 7
        stats = client.stats
        assert (stats.sent, stats.rejected, stats.dropped, stats.spooled) == (120, 0, 0, 0)
        assert _job(served, "limited")["runs"]["success"] == 60  # type: ignore[index]

        # A batch spooled by an earlier process, longer than the limit, is split in its place.
        down = HeartbeatClient(url="http://127.0.0.1:9", spool_dir=str(spool), timeout=0.2)
        offline = monitor("spooled", every="1h", client=down)(lambda: None)
        for _ in range(25):
            offline()
        down.close(0.5)
        assert down.stats.spooled == 50
        flush_env = {**os.environ, "JOBPULSE_URL": served.url, "JOBPULSE_SPOOL_DIR": str(spool)}
        proc = subprocess.run([JOBPULSE, "flush"], capture_output=True, timeout=60, env=flush_env)
        assert proc.returncode == 0, proc.stderr.decode()
        assert not [p for p in spool.rglob("*") if p.is_file()]
        assert _job(served, "spooled")["runs"]["success"] == 25  # type: ignore[index]
