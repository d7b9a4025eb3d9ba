"""The public surface is what we mean to export, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import jobpulse.instrumentation


def test_exported_members() -> None:
    assert sorted(jobpulse.instrumentation.__all__) == [
        "ClientStats",
        "ConfigError",
        "Event",
        "EventSink",
        "HeartbeatClient",
        "InMemoryClient",
        "InvalidDuration",
        "InvalidEvent",
        "InvalidJobConfig",
        "InvalidName",
        "InvalidSchedule",
        "InvalidTimezone",
        "JobpulseError",
        "Monitor",
        "Run",
        "configure",
        "get_client",
        "monitor",
        "set_client",
    ]
    for name in jobpulse.instrumentation.__all__:
        member = getattr(jobpulse.instrumentation, name)
        assert member.__module__.startswith("jobpulse.instrumentation"), name


def test_import_pulls_in_no_framework_orm_or_sdk() -> None:
    code = (
        "import sys, threading\n"
        "import jobpulse.instrumentation\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('aiohttp', 'sqlalchemy')\n"
        "         or m.startswith('opentelemetry.sdk') or m.startswith('opentelemetry.exporter')]\n"
        "assert not heavy, heavy\n"
        "assert threading.active_count() == 1, 'a thread was started at import'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_import_does_not_read_the_environment() -> None:
    code = (
        "import os\n"
        "os.environ['JOBPULSE_QUEUE_SIZE'] = 'not a number'\n"
        "import jobpulse.instrumentation\n"
        "from jobpulse.instrumentation import monitor\n"
        "monitor('declared-only', schedule='* * * * *')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
