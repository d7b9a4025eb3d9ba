"""The monitor decorator and context managers, recorded with the shipped InMemoryClient."""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import traceback
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import UTC, datetime

import pytest

from jobpulse.instrumentation import (
    InMemoryClient,
    InvalidJobConfig,
    InvalidName,
    monitor,
)
from jobpulse.instrumentation.wire import Event, event_to_wire, parse_event


class Boom(Exception):
    pass


class FakeClock:
    """Wall and monotonic time that only move when told to."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 100.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def assert_valid_on_the_wire(events: list[Event]) -> None:
    for event in events:
        parsed, warnings = parse_event(event_to_wire(event))
        assert warnings == []
        assert parsed.run_id == event.run_id


def test_plain_function_reports_start_and_success() -> None:
    client = InMemoryClient()
    clock = FakeClock()

    @monitor(
        "Nightly-Report",
        schedule="0 3 * * *",
        grace="5m",
        client=client,
        clock=clock.time,
        monotonic=clock.monotonic,
    )
    def job(x: int) -> int:
        clock.advance(2.5)
        return x * 2

    assert job(21) == 42
    start, success = client.events
    assert (start.type, success.type) == ("start", "success")
    assert start.job == success.job == "nightly-report"
    assert start.run_id == success.run_id
    uuid.UUID(start.run_id)
    assert start.ts == 1_800_000_000.0
    assert success.duration == 2.5
    assert success.ts == 1_800_000_002.5
    assert start.job_config == {"schedule": "0 3 * * *", "grace": 300.0}
    assert success.job_config is None
    assert start.pid == os.getpid()
    assert start.host == socket.gethostname()
    assert job.__name__ == "job"
    assert_valid_on_the_wire(client.events)


def test_job_config_is_sent_with_the_first_event_only() -> None:
    client = InMemoryClient()
    job = monitor("every-five", every="5m", timezone="Europe/Riga", client=client)(lambda: None)
    job()
    job()
    starts = client.filter(type="start")
    assert starts[0].job_config == {"every": 300.0, "timezone": "Europe/Riga"}
    assert starts[1].job_config is None
    assert len(client.runs()) == 2


def test_exception_propagates_untouched_and_is_reported() -> None:
    client = InMemoryClient()
    error = Boom("disk full: /var/data")

    @monitor("failing", client=client)
    def job() -> None:
        raise error

    with pytest.raises(Boom) as info:
        job()
    assert info.value is error
    frames = [frame.name for frame in traceback.extract_tb(info.value.__traceback__)]
    assert frames[-1] == "job"
    (failure,) = client.finished()
    assert failure.type == "failure"
    assert failure.error_type == "Boom"
    assert failure.error_message == "disk full: /var/data"
    assert failure.duration is not None
    assert failure.duration >= 0
    assert_valid_on_the_wire(client.events)


def test_long_error_messages_are_truncated_with_the_marker() -> None:
    client = InMemoryClient()

    @monitor("long-error", client=client)
    def job() -> None:
        raise ValueError("x" * 10_000)

    with pytest.raises(ValueError):
        job()
    (failure,) = client.finished()
    assert failure.error_message is not None
    assert len(failure.error_message.encode()) <= 4096
    assert failure.error_message.endswith("…[truncated]")


async def test_async_function_is_timed_across_its_awaits() -> None:
    client = InMemoryClient()
    clock = FakeClock()
    gate = asyncio.Event()

    @monitor("async-job", client=client, clock=clock.time, monotonic=clock.monotonic)
    async def job() -> str:
        await gate.wait()
        return "done"

    task = asyncio.create_task(job())
    await asyncio.sleep(0)
    assert client.types() == ["start"]
    clock.advance(3.0)
    gate.set()
    assert await task == "done"
    assert client.types() == ["start", "success"]
    assert client.finished()[0].duration == 3.0
    assert inspect.iscoroutinefunction(job)


async def test_overlapping_async_runs_are_distinct_with_their_own_durations() -> None:
    client = InMemoryClient()
    clock = FakeClock()
    gates = {name: asyncio.Event() for name in ("a", "b")}

    @monitor("overlap", client=client, clock=clock.time, monotonic=clock.monotonic)
    async def job(name: str) -> str:
        await gates[name].wait()
        return name

    first = asyncio.create_task(job("a"))
    await asyncio.sleep(0)
    clock.advance(1.0)
    second = asyncio.create_task(job("b"))
    await asyncio.sleep(0)
    clock.advance(2.0)
    gates["a"].set()
    assert await first == "a"
    clock.advance(4.0)
    gates["b"].set()
    assert await second == "b"

    runs = client.runs("overlap")
    assert len(runs) == 2
    durations = sorted(events[-1].duration or 0.0 for events in runs.values())
    assert durations == [3.0, 6.0]
    for events in runs.values():
        assert [e.type for e in events] == ["start", "success"]


async def test_cancelled_task_reports_cancelled_and_stays_cancelled() -> None:
    client = InMemoryClient()

    @monitor("cancel-me", client=client)
    async def job() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(job())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (finish,) = client.finished()
    assert finish.type == "cancelled"
    assert finish.error_type == "CancelledError"


def test_generator_run_lasts_until_exhausted() -> None:
    client = InMemoryClient()

    @monitor("gen-job", client=client)
    def job(n: int) -> Iterator[int]:
        for i in range(n):
            received = yield i
            assert received is None
        return

    gen = job(3)
    assert client.events == []  # creating the generator runs nothing
    assert next(gen) == 0
    assert client.types() == ["start"]
    assert list(gen) == [1, 2]
    assert client.types() == ["start", "success"]
    assert inspect.isgeneratorfunction(job)


def test_generator_send_throw_and_return_value_pass_through() -> None:
    client = InMemoryClient()

    @monitor("echo", client=client)
    def echo() -> Generator[str, str | None, list[str]]:
        total: list[str] = []
        while True:
            try:
                value = yield "ready"
            except KeyError:
                yield "caught"
                continue
            if value is None:
                return total
            total.append(value)

    gen = echo()
    assert next(gen) == "ready"
    assert gen.send("a") == "ready"
    assert gen.throw(KeyError("k")) == "caught"
    assert gen.send(None) == "ready"  # resumes after "caught"
    with pytest.raises(StopIteration) as stop:
        gen.send(None)  # None ends the generator
    assert stop.value.value == ["a"]
    assert client.types() == ["start", "success"]


def test_generator_closed_early_reports_cancelled() -> None:
    client = InMemoryClient()
    cleaned = []

    @monitor("closed-early", client=client)
    def job() -> Iterator[int]:
        try:
            yield 1
            yield 2
        finally:
            cleaned.append(True)

    for value in job():
        assert value == 1
        break
    assert cleaned == [True]
    assert client.types() == ["start", "cancelled"]
    assert client.finished()[0].error_type == "GeneratorExit"


def test_generator_exception_propagates() -> None:
    client = InMemoryClient()
    error = Boom("in the middle")

    @monitor("gen-fail", client=client)
    def job() -> Iterator[int]:
        yield 1
        raise error

    gen = job()
    next(gen)
    with pytest.raises(Boom) as info:
        next(gen)
    assert info.value is error
    assert client.finished()[0].error_type == "Boom"


async def test_async_generator_run_lasts_until_exhausted() -> None:
    client = InMemoryClient()

    @monitor("agen-job", client=client)
    async def job(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    assert inspect.isasyncgenfunction(job)
    assert [i async for i in job(3)] == [0, 1, 2]
    assert client.types() == ["start", "success"]


async def test_async_generator_closed_early_and_failing() -> None:
    client = InMemoryClient()
    error = Boom("agen")

    @monitor("agen-close", client=client)
    async def job(fail: bool) -> AsyncIterator[int]:
        yield 1
        if fail:
            raise error
        yield 2

    agen = job(False)
    assert await agen.__anext__() == 1
    await agen.aclose()
    agen = job(True)
    assert await agen.__anext__() == 1
    with pytest.raises(Boom) as info:
        await agen.__anext__()
    assert info.value is error
    assert [e.type for e in client.finished()] == ["cancelled", "failure"]


def test_sync_context_manager_yields_a_run_handle() -> None:
    client = InMemoryClient()
    job = monitor("ctx-job", heartbeat_timeout="10m", client=client)
    with job as run:
        run.progress("half way", count=50)
        run.set_count(100)
        run.set_metadata(rows=100, table="orders")
    _start, progress, success = client.events
    assert progress.type == "progress"
    assert progress.message == "half way"
    assert progress.count == 50
    assert success.type == "success"
    assert success.count == 100
    assert success.metadata == {"rows": 100, "table": "orders"}
    assert {e.run_id for e in client.events} == {run.run_id}
    assert_valid_on_the_wire(client.events)


def test_context_manager_exception_and_fail() -> None:
    client = InMemoryClient()
    job = monitor("ctx-fail", client=client)
    with pytest.raises(Boom), job:
        raise Boom("inside with")
    with job as run:
        run.fail("3 of 10 files were empty")
    finishes = client.finished()
    assert [(e.type, e.error_type) for e in finishes] == [("failure", "Boom"), ("failure", None)]
    assert finishes[1].error_message == "3 of 10 files were empty"


def test_nested_runs_of_one_monitor_are_distinct() -> None:
    client = InMemoryClient()
    job = monitor("nested", client=client)
    with job as outer:
        with job as inner:
            assert inner.run_id != outer.run_id
        assert client.types() == ["start", "start", "success"]
    assert client.finished()[-1].run_id == outer.run_id


async def test_async_context_manager_and_explicit_run_parameters() -> None:
    client = InMemoryClient()
    job = monitor("celery-like", client=client)
    slot = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    async with job.run(run_id="task-1-attempt-2", attempt=2, scheduled_for=slot) as run:
        run.will_retry = True
        run.fail("timeout talking to the bank", error_type="TimeoutError")
    async with job:
        await asyncio.sleep(0)
    start, retry, _start2, success = client.events
    assert start.run_id == retry.run_id == "task-1-attempt-2"
    assert retry.type == "failure"
    assert retry.will_retry is True
    assert retry.attempt == 2
    assert retry.scheduled_for == slot.timestamp()
    assert start.scheduled_for == slot.timestamp()
    assert success.type == "success"
    assert_valid_on_the_wire(client.events)


def test_system_exit_zero_is_success_and_nonzero_a_failure() -> None:
    client = InMemoryClient()

    @monitor("exits", client=client)
    def job(code: int | None) -> None:
        raise SystemExit(code)

    with pytest.raises(SystemExit):
        job(None)
    with pytest.raises(SystemExit):
        job(3)
    ok, failed = client.finished()
    assert (ok.type, ok.exit_code) == ("success", 0)
    assert (failed.type, failed.exit_code, failed.error_type) == ("failure", 3, "SystemExit")


def test_keyboard_interrupt_is_cancelled() -> None:
    client = InMemoryClient()

    @monitor("interrupted", client=client)
    def job() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        job()
    assert client.finished()[0].type == "cancelled"


def test_instrumentation_failures_never_reach_the_job(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenClient(InMemoryClient):
        def emit(self, event: Event) -> None:
            raise RuntimeError("sink exploded")

    job = monitor("robust", client=BrokenClient())
    wrapped = job(lambda x: x + 1)
    assert wrapped(1) == 2
    assert wrapped(2) == 3
    assert job.instrumentation_errors == 4
    logged = [r for r in caplog.records if "robust" in r.getMessage()]
    assert len(logged) == 2  # one per kind (start, finish), not one per call


def test_oversized_metadata_is_dropped_but_the_finish_is_sent() -> None:
    client = InMemoryClient()
    job = monitor("big-metadata", client=client)
    with job as run:
        run.set_metadata(blob="x" * 10_000)
    (finish,) = client.finished()
    assert finish.type == "success"
    assert finish.metadata is None
    assert job.instrumentation_errors == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"name": "Bad Name!"}, InvalidName, "Bad Name!"),
        ({"name": "ok", "schedule": "61 * * * *"}, InvalidJobConfig, "61 * * * *"),
        ({"name": "ok", "schedule": "* * *"}, InvalidJobConfig, "fields"),
        ({"name": "ok", "timezone": "Mars/Olympus"}, InvalidJobConfig, "Mars/Olympus"),
        ({"name": "ok", "grace": "soon"}, InvalidJobConfig, "soon"),
        ({"name": "ok", "max_runtime": -5}, InvalidJobConfig, "max_runtime"),
        ({"name": "ok", "schedule": "* * * * *", "every": "5m"}, InvalidJobConfig, "not both"),
        ({"name": "ok", "labels": {"job": "x"}}, InvalidJobConfig, "reserved"),
    ],
)
def test_invalid_declarations_raise_at_decoration_time(
    kwargs: dict[str, object], error: type[Exception], text: str
) -> None:
    name = kwargs.pop("name")
    with pytest.raises(error) as info:
        monitor(name, client=InMemoryClient(), **kwargs)  # type: ignore[arg-type]
    assert text in str(info.value)
    assert isinstance(info.value, ValueError)
