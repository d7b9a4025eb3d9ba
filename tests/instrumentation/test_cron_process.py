"""A cron-style short-lived process: the finish heartbeat is delivered or spooled at exit."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import FakeSidecar

JOB = """
from jobpulse.instrumentation import monitor

@monitor("nightly-cleanup", schedule="30 2 * * *")
def cleanup():
    return 42

assert cleanup() == 42
"""


def run_job(url: str, spool: Path) -> float:
    env = {**os.environ, "JOBPULSE_URL": url, "JOBPULSE_SPOOL_DIR": str(spool)}
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", JOB], env=env, check=True, timeout=30)
    return time.monotonic() - began


def test_finish_heartbeat_is_delivered_before_exit(sidecar: FakeSidecar, tmp_path: Path) -> None:
    run_job(sidecar.url, tmp_path)
    # No wait: the process flushed at exit, so the events are already here.
    assert [e["type"] for e in sidecar.events] == ["start", "success"]
    assert sidecar.events[0]["job_config"] == {"schedule": "30 2 * * *"}
    assert list(tmp_path.iterdir()) == []


def test_undeliverable_heartbeats_are_spooled_and_the_next_process_delivers_them(
    sidecar: FakeSidecar, closed_url: str, tmp_path: Path
) -> None:
    elapsed = run_job(closed_url, tmp_path)
    assert elapsed < 10
    assert len(list(tmp_path.iterdir())) == 1
    run_job(sidecar.url, tmp_path)
    events = sidecar.events
    assert sorted(e["type"] for e in events) == ["start", "start", "success", "success"]
    assert len({(e["run_id"], e["type"]) for e in events}) == 4
    assert list(tmp_path.iterdir()) == []


def test_jobpulse_flush_command_exit_code(
    sidecar: FakeSidecar, closed_url: str, tmp_path: Path
) -> None:
    run_job(closed_url, tmp_path)
    env = {**os.environ, "JOBPULSE_SPOOL_DIR": str(tmp_path)}
    cli = [sys.executable, "-m", "jobpulse.instrumentation.cli", "flush", "--url"]
    down = subprocess.run([*cli, closed_url], env=env, capture_output=True, text=True, timeout=30)
    assert down.returncode == 1
    assert "unreachable" in down.stderr
    up = subprocess.run([*cli, sidecar.url], env=env, capture_output=True, text=True, timeout=30)
    assert up.returncode == 0, up.stderr
    assert [e["type"] for e in sidecar.events] == ["start", "success"]
