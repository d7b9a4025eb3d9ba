"""What keeps a monitored call cheap must not change what is reported: run ids, the pid, ts
formatting and the events the decorator queues to the heartbeat client as plain values."""

from __future__ import annotations

import itertools
import math
import os
import random
import socket
import threading
import uuid
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobpulse.instrumentation import HeartbeatClient, InMemoryClient, _ids, monitor
from jobpulse.instrumentation.wire import (
    EVENT_FIELDS,
    Event,
    EventValues,
    event_to_wire,
    format_ts,
    parse_event,
    values_to_wire,
)

if TYPE_CHECKING:
    from conftest import FakeSidecar


def reference_format_ts(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, UTC)
    text = dt.isoformat(timespec="microseconds" if dt.microsecond else "seconds")
    return text.replace("+00:00", "Z")


# -- run ids and the pid ---------------------------------------------------------------------


def test_run_ids_are_version_8_uuids_unique_across_threads() -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        mine = [_ids.new_run_id() for _ in range(5000)]
        with lock:
            ids.extend(mine)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(ids)) == len(ids) == 20000
    for run_id in ids[:100]:
        parsed = uuid.UUID(run_id)
        assert str(parsed) == run_id  # canonical: 36 lowercase characters
        assert parsed.version == 8
        assert parsed.variant == uuid.RFC_4122


def test_processes_draw_different_prefixes() -> None:
    prefixes = {_ids._Identity().prefix for _ in range(1000)}
    assert len(prefixes) == 1000


def test_a_forked_child_never_repeats_its_parents_run_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        line = f"{_ids.current_pid()} {os.getpid()} {_ids.new_run_id()}"
        os.write(write, line.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child_seen_pid, child_pid, child_id = pipe.read().split()
    os.waitpid(pid, 0)
    assert int(child_seen_pid) == int(child_pid) == pid
    assert _ids.current_pid() == os.getpid()
    parent_ids = {_ids.new_run_id() for _ in range(10)}
    assert child_id not in parent_ids
    assert child_id[:24] != next(iter(parent_ids))[:24]


def test_an_exhausted_counter_starts_over_with_a_new_prefix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    identity = _ids._Identity()
    identity.counter = itertools.count(_ids._COUNTER_LIMIT - 1)
    monkeypatch.setattr(_ids, "_identity", identity)
    last = _ids.new_run_id()
    assert last == f"{identity.prefix}ffffffffffff"
    fresh = _ids.new_run_id()
    assert fresh[:24] != identity.prefix
    assert fresh.endswith("000000000000")
    uuid.UUID(fresh)


def test_monitored_runs_report_the_pid_and_a_run_id_per_call() -> None:
    client = InMemoryClient()
    job = monitor("ids", client=client)(lambda: None)
    job()
    job()
    runs = client.runs()
    assert len(runs) == 2
    assert {e.pid for e in client.events} == {os.getpid()}


# -- timestamps ------------------------------------------------------------------------------


def test_format_ts_matches_datetime_formatting() -> None:
    rng = random.Random(7)
    values: list[float] = [0.0, 0.5, 1e-7, 4e-7, 5e-7, 6e-7, 1_800_000_000.0, 253402300799.0]
    for _ in range(20000):
        whole = float(rng.randrange(0, 4_000_000_000))
        values += [
            rng.uniform(0, 4e9),
            whole + rng.randrange(1_000_000) / 1e6,
            whole + (2 * rng.randrange(1_000_000) + 1) / 2e6,  # half a microsecond: ties
            whole + 0.9999995,
            math.nextafter(whole, 0.0),
            math.nextafter(whole, 1e12),
        ]
    for ts in values:
        assert format_ts(ts) == reference_format_ts(ts), repr(ts)


@pytest.mark.parametrize("ts", [-1.5, -0.0000001, 1_800_000_000, 253402300799.5])
def test_format_ts_outside_the_fast_path(ts: float) -> None:
    assert format_ts(ts) == reference_format_ts(ts)


@pytest.mark.parametrize("ts", [math.nan, math.inf, 1e20])
def test_format_ts_rejects_what_datetime_rejects(ts: float) -> None:
    with pytest.raises((ValueError, OverflowError, OSError)):
        reference_format_ts(ts)
    with pytest.raises((ValueError, OverflowError, OSError)):
        format_ts(ts)


# -- events as values ------------------------------------------------------------------------


def test_event_fields_are_the_events_wire_fields_in_order() -> None:
    assert EVENT_FIELDS == tuple(f.name for f in fields(Event) if f.name != "truncated")


def _values(**kw: Any) -> EventValues:
    base: dict[str, Any] = dict.fromkeys(EVENT_FIELDS)
    base.update(type="start", job="j", run_id="r-1", ts=1_800_000_000.25, will_retry=False)
    base.update(kw)
    values: EventValues = tuple(base[name] for name in EVENT_FIELDS)  # type: ignore[assignment]
    return values


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"host": "h", "pid": 12, "job_config": {"schedule": "* * * * *"}},
        {"type": "success", "duration": 0.0, "count": 0, "exit_code": 0, "metadata": {}},
        {
            "type": "failure",
            "will_retry": True,
            "attempt": 2,
            "scheduled_for": 1_799_999_999.0,
            "error_type": "Boom",
            "error_message": "bad",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331",
            "metadata": {"rows": 3},
        },
        {"type": "progress", "message": "half way", "count": 50},
        {"type": "missed", "scheduled_for": 1_800_000_000.0, "reason": "x", "sent_at": 1.5},
    ],
)
def test_values_to_wire_is_event_to_wire_of_the_event(kw: dict[str, Any]) -> None:
    values = _values(**kw)
    wire = values_to_wire(values)
    expected = event_to_wire(Event(*values))
    assert list(wire.items()) == list(expected.items())  # the same keys, in the same order


def test_the_decorator_queues_values_that_arrive_as_the_same_events(
    sidecar: FakeSidecar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = HeartbeatClient(sidecar.url, spool_dir=tmp_path)
    queued: list[EventValues] = []
    emit_values = client.emit_values

    def spy(values: EventValues) -> None:
        queued.append(values)
        emit_values(values)

    monkeypatch.setattr(client, "emit_values", spy)
    job = monitor("queued", schedule="*/5 * * * *", client=client)(lambda: None)
    job()
    assert len(queued) == 2
    assert client.flush(5)
    client.close()
    start, success = sidecar.events
    for raw, values in zip((start, success), queued, strict=True):
        raw.pop("sent_at")
        assert raw == event_to_wire(Event(*values))
        assert parse_event(raw)[1] == []  # valid, no warnings
    assert (start["type"], success["type"]) == ("start", "success")
    assert start["run_id"] == success["run_id"]
    assert start["job_config"] == {"schedule": "*/5 * * * *"}
    assert start["pid"] == success["pid"] == os.getpid()
    assert start["host"] == socket.gethostname()
    assert success["duration"] >= 0


def test_a_client_subclass_still_gets_events_through_emit(tmp_path: Path) -> None:
    received: list[Event] = []

    class Recording(HeartbeatClient):
        def emit(self, event: Event) -> None:
            received.append(event)

    client = Recording("http://127.0.0.1:9", spool_dir=tmp_path, start=False)
    monitor("subclassed", client=client)(lambda: None)()
    client.close(0)
    assert [e.type for e in received] == ["start", "success"]
    assert all(isinstance(e, Event) for e in received)
