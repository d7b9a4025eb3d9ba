"""The heartbeat client against a recording fake sidecar, a closed port and a hung server."""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jobpulse.instrumentation import (
    ConfigError,
    HeartbeatClient,
    get_client,
    monitor,
    set_client,
)
from jobpulse.instrumentation.client import flush_main
from jobpulse.instrumentation.wire import Event, parse_ts

if TYPE_CHECKING:
    from conftest import FakeSidecar


def event(job: str = "unit", type_: str = "start", run_id: str | None = None) -> Event:
    return Event(type=type_, job=job, run_id=run_id or str(uuid.uuid4()), ts=1_800_000_000.0)


def keys(events: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["run_id"], e["type"]) for e in events]


def test_events_are_delivered_with_sent_at_and_the_token(
    sidecar: FakeSidecar, tmp_path: Path
) -> None:
    client = HeartbeatClient(
        sidecar.url, token="s3cret", spool_dir=tmp_path, clock=lambda: 1_800_000_005.0
    )
    sent = [event() for _ in range(3)]
    for e in sent:
        client.emit(e)
    assert client.flush(5)
    received = sidecar.events
    assert keys(received) == [(e.run_id, "start") for e in sent]
    assert {parse_ts(e["sent_at"]) for e in received} == {1_800_000_005.0}
    assert sidecar.headers[0]["Authorization"] == "Bearer s3cret"
    assert client.stats.sent == 3
    client.close()
    assert list(tmp_path.iterdir()) == []


def test_batches_hold_at_most_batch_size_events(sidecar: FakeSidecar, tmp_path: Path) -> None:
    client = HeartbeatClient(sidecar.url, spool_dir=tmp_path, batch_size=100, start=False)
    for _ in range(1050):
        client.emit(event())
    assert client.flush(5)
    client.close()
    assert len(sidecar.events) == 1050
    assert max(len(b) for b in sidecar.batches) <= 100


def test_per_event_rejections_are_dropped_counted_and_logged_once(
    sidecar: FakeSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sidecar.reject = lambda raw: "job_cap" if raw["job"] == "over-cap" else None
    client = HeartbeatClient(sidecar.url, spool_dir=tmp_path)
    for job in ("ok", "over-cap", "ok", "over-cap"):
        client.emit(event(job))
        assert client.flush(5)
    client.close()
    assert client.stats.rejected == 2
    assert client.stats.sent == 2
    assert len(sidecar.events) == 4  # nothing was resent
    assert sum("rejected" in r.getMessage() for r in caplog.records) == 1


def test_client_errors_are_final_for_the_batch(sidecar: FakeSidecar, tmp_path: Path) -> None:
    sidecar.script = [(401, {"error": "unauthorized", "detail": ""}, {})]
    client = HeartbeatClient(sidecar.url, spool_dir=tmp_path, start=False)
    client.emit(event())
    assert client.flush(5)
    client.emit(event())
    assert client.flush(5)
    client.close()
    assert client.stats.rejected == 1
    assert client.stats.sent == 1
    assert list(tmp_path.iterdir()) == []


def test_retries_back_off_with_jitter_and_honour_retry_after(
    sidecar: FakeSidecar, tmp_path: Path
) -> None:
    delays: list[float] = []
    sidecar.script = [
        (503, {"error": "store unavailable", "detail": ""}, {}),
        (503, {"error": "store unavailable", "detail": ""}, {}),
        (429, {"error": "rate limited", "detail": ""}, {"Retry-After": "7"}),
    ]
    client = HeartbeatClient(
        sidecar.url, spool_dir=tmp_path, sleep=delays.append, rng=random.Random(1), start=False
    )
    client.emit(event())
    sidecar.wait_for(1)
    client.close()
    assert len(sidecar.events) == 1
    assert len(delays) == 3
    assert 0 <= delays[0] <= 0.5
    assert 0 <= delays[1] <= 1.0
    assert delays[2] >= 7.0


def test_a_full_queue_drops_counts_and_never_blocks(
    hung_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The sender holds one event in flight, stuck on a server that never answers.
    client = HeartbeatClient(hung_url, spool_dir=tmp_path, queue_size=10, batch_size=1)
    began = time.monotonic()
    for _ in range(25):
        client.emit(event())
    assert time.monotonic() - began < 0.5
    assert 14 <= client.stats.dropped <= 15
    assert sum("queue is full" in r.getMessage() for r in caplog.records) == 1
    client.close(0)


def test_disabled_client_sends_nothing(sidecar: FakeSidecar, tmp_path: Path) -> None:
    client = HeartbeatClient(sidecar.url, spool_dir=tmp_path, disabled=True)
    client.emit(event())
    assert client.flush(1)
    client.close()
    assert sidecar.events == []
    assert client.stats.sent == 0


def _run_many(url: str, tmp_path: Path, *, timeout: float) -> HeartbeatClient:
    client = HeartbeatClient(url, spool_dir=tmp_path, timeout=timeout)
    job = monitor("bulk", client=client)(lambda i: i * 2)
    began = time.monotonic()
    assert [job(i) for i in range(1000)] == [i * 2 for i in range(1000)]
    assert time.monotonic() - began < 5.0
    client.close(timeout=1.0)
    return client


@pytest.mark.parametrize("endpoint", ["closed_url", "hung_url"])
def test_sidecar_down_or_hung_jobs_run_and_events_are_spooled_then_delivered(
    endpoint: str, request: pytest.FixtureRequest, sidecar: FakeSidecar, tmp_path: Path
) -> None:
    url = request.getfixturevalue(endpoint)
    began = time.monotonic()
    first = _run_many(url, tmp_path, timeout=0.3)
    assert time.monotonic() - began < 5.0
    assert first.stats.spooled == 2000
    assert first.stats.sent == 0
    assert any(tmp_path.iterdir())

    second = HeartbeatClient(sidecar.url, spool_dir=tmp_path)
    received = sidecar.wait_for(2000)
    assert second.flush(5)
    second.close()
    assert len(received) == 2000
    assert len(set(keys(received))) == 2000  # nothing duplicated
    assert second.stats.sent == 2000
    assert list(tmp_path.iterdir()) == []


def test_a_long_outage_moves_the_backlog_to_disk_and_recovery_delivers_it(
    sidecar: FakeSidecar, tmp_path: Path
) -> None:
    sidecar.script = [(503, {"error": "down", "detail": ""}, {})] * 5
    client = HeartbeatClient(sidecar.url, spool_dir=tmp_path, sleep=lambda s: None, start=False)
    for _ in range(10):
        client.emit(event())
    assert not client.flush(5)
    deadline = time.monotonic() + 5
    while client.stats.spooled < 10 and time.monotonic() < deadline:
        client.flush(0.05)
    assert client.stats.spooled == 10
    client.emit(event())  # the sidecar is back: this succeeds and the spool follows
    received = sidecar.wait_for(11)
    client.close()
    assert len(received) == 11
    assert len(set(keys(received))) == 11


def test_fork_gives_the_child_a_fresh_queue_and_thread(
    sidecar: FakeSidecar, tmp_path: Path
) -> None:
    client = HeartbeatClient(sidecar.url, spool_dir=tmp_path)
    parent_event = event("parent")
    client.emit(parent_event)
    assert client.flush(5)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        client.emit(event("child"))
        os._exit(0 if client.flush(5) and client.stats.sent == 1 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.emit(event("parent"))
    assert client.flush(5)
    client.close()
    jobs = sorted(e["job"] for e in sidecar.events)
    assert jobs == ["child", "parent", "parent"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("JOBPULSE_QUEUE_SIZE", "lots"),
        ("JOBPULSE_QUEUE_SIZE", "0"),
        ("JOBPULSE_TIMEOUT", "-1"),
        ("JOBPULSE_DISABLED", "maybe"),
        ("JOBPULSE_URL", "ftp://example.com"),
        ("JOBPULSE_URL", "http://localhost:99999"),
    ],
)
def test_bad_environment_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        HeartbeatClient()


def test_default_client_reads_the_environment_at_first_use(
    monkeypatch: pytest.MonkeyPatch, sidecar: FakeSidecar, tmp_path: Path
) -> None:
    previous = set_client(None)
    try:
        monkeypatch.setenv("JOBPULSE_URL", sidecar.url)
        monkeypatch.setenv("JOBPULSE_QUEUE_SIZE", "77")
        monkeypatch.setenv("JOBPULSE_SPOOL_DIR", str(tmp_path))
        client = get_client()
        assert isinstance(client, HeartbeatClient)
        assert client.settings.queue_size == 77
        assert get_client() is client
        monitor("from-env")(lambda: None)()
        assert len(sidecar.wait_for(2)) == 2
    finally:
        restored = set_client(previous)
        if restored is not None:
            restored.close(0)


def test_flush_command_delivers_the_spool(
    sidecar: FakeSidecar, closed_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    down = HeartbeatClient(closed_url, spool_dir=tmp_path)
    for _ in range(3):
        down.emit(event())
    down.close(1.0)
    assert down.stats.spooled == 3
    os.environ["JOBPULSE_SPOOL_DIR"] = str(tmp_path)  # restored by the autouse fixture
    assert flush_main(argparse.Namespace(url=closed_url)) == 1
    assert any(tmp_path.iterdir())
    assert flush_main(argparse.Namespace(url=sidecar.url)) == 0
    assert len(sidecar.events) == 3
    assert list(tmp_path.iterdir()) == []
