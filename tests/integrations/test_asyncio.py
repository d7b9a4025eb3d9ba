"""Supervised coroutines and watched tasks: crashes, backoff, staleness, cancellation."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from jobpulse.instrumentation import InMemoryClient
from jobpulse.instrumentation.asyncio import Backoff, current_supervisor, supervise, watch
from jobpulse.sidecar.domain.clock import ManualClock

from .live import LiveSidecar


async def test_crashes_are_failures_restarted_with_backoff() -> None:
    client = InMemoryClient()
    delays: list[float] = []
    calls = {"n": 0}

    async def record_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def consume(limit: int) -> None:
        calls["n"] += 1
        current_supervisor().beat(f"attempt {calls['n']}", count=calls["n"])
        if calls["n"] <= limit:
            raise RuntimeError(f"crash {calls['n']}")

    supervisor = supervise("consumer", consume, 3, client=client, sleep=record_sleep)
    await supervisor.task
    assert delays == [1.0, 2.0, 4.0]
    assert supervisor.restarts == 3
    runs = list(client.runs("consumer").values())
    assert [[e.type for e in run] for run in runs] == [["start", "progress", "failure"]] * 3 + [
        ["start", "progress", "success"]
    ]
    for n, run in enumerate(runs[:3], start=1):
        failure = run[-1]
        assert failure.error_type == "RuntimeError"
        assert failure.will_retry is False  # a restart is recovery, not a retry
        assert failure.error_message is not None
        assert failure.error_message.startswith("Traceback (most recent call last)")
        assert "in consume" in failure.error_message
        assert failure.error_message.endswith(f"RuntimeError: crash {n}")
    assert len({run[0].run_id for run in runs}) == 4  # each incarnation is its own run


def test_backoff_is_capped_and_healthy_runs_reset_it() -> None:
    backoff = Backoff(1.0, 60.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 6, 7, 20)] == [1, 2, 4, 32, 60, 60]


async def test_a_long_healthy_incarnation_resets_the_backoff() -> None:
    now = {"t": 0.0}
    delays: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        delays.append(seconds)

    async def work() -> None:
        n = len(delays)
        now["t"] += 100.0 if n == 2 else 1.0  # the third incarnation runs for 100 s
        if n < 4:
            raise OSError("connection reset")

    supervisor = supervise(
        "resetting", work, client=InMemoryClient(), backoff=(1.0, 60.0), sleep=fake_sleep,
        monotonic=lambda: now["t"],
    )  # fmt: skip
    await supervisor.task
    assert delays == [1.0, 2.0, 1.0, 2.0]


async def test_cancelling_the_supervisor_reports_cancelled() -> None:
    client = InMemoryClient()
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    supervisor = supervise("forever", forever, client=client)
    await started.wait()
    await supervisor.stop()
    assert client.types("forever") == ["start", "cancelled"]
    with pytest.raises(RuntimeError, match="inside a supervised coroutine"):
        current_supervisor()


async def test_a_loop_that_stops_beating_goes_stale(tmp_path: Path) -> None:
    clock = ManualClock(time.time())
    live = LiveSidecar(tmp_path, clock=clock).start()
    client = live.client()
    beating = asyncio.Event()

    async def loop() -> None:
        for i in range(3):
            current_supervisor().beat(f"batch {i}", count=i)
        beating.set()
        await asyncio.Event().wait()  # stuck: no more progress

    try:
        supervisor = supervise("order-loop", loop, heartbeat_timeout=30, client=client)
        await beating.wait()
        assert await asyncio.to_thread(client.flush, 10)
        job = await asyncio.to_thread(live.job, "order-loop")
        assert (job["running"], job["config"]["heartbeat_timeout"]) == (1, 30.0)

        clock.advance(20)
        await asyncio.to_thread(live.sidecar.tick_sync)
        assert (await asyncio.to_thread(live.job, "order-loop"))["state"] != "down"

        clock.advance(11)  # past the last progress + heartbeat_timeout
        await asyncio.to_thread(live.sidecar.tick_sync)
        job = await asyncio.to_thread(live.job, "order-loop")
        assert (job["state"], job["reason"]) == ("down", "stale")
        [run] = await asyncio.to_thread(live.runs, "order-loop")
        assert "stale" in run["flags"] and run["count"] == 2
        await supervisor.stop()
    finally:
        await asyncio.to_thread(client.close, 5)
        await asyncio.to_thread(live.stop)


async def test_watch_reports_a_task_until_it_ends() -> None:
    client = InMemoryClient()

    async def ok() -> int:
        await asyncio.sleep(0)
        return 1

    async def broken() -> None:
        await asyncio.sleep(0)
        raise ValueError("bad row 7")

    async def endless() -> None:
        await asyncio.Event().wait()

    tasks = [asyncio.create_task(f()) for f in (ok, broken, endless)]
    for task, name in zip(tasks, ("w-ok", "w-broken", "w-endless"), strict=True):
        watch(task, name, client=client)
    await asyncio.wait(tasks[:2])
    tasks[2].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert client.types("w-ok") == ["start", "success"]
    assert client.types("w-endless") == ["start", "cancelled"]
    [failure] = client.filter("w-broken", type="failure")
    assert failure.error_type == "ValueError"
    assert failure.error_message is not None
    assert failure.error_message.endswith("ValueError: bad row 7")
