"""Benchmarks of the inbox: the top of the hour, and how far the applier lags.

- ``top_of_hour``: 5,000 configured cron jobs each report a start and a success in one
  request, all sent at one instant over 64 connections (an aiohttp client in this process,
  the sidecar in its own). Reported: the p99 time from that instant to each answer, the time
  until every event is applied (``/readyz`` shows an empty inbox), and that every answer was
  200 with both events accepted (no client would have spooled). Targets: acknowledged within
  2 s, applied within 5 s. Its floor, reported, in the same run: the same client sending the
  same requests to an aiohttp hello world, until the last answer.
- ``apply_lag``: the peak rate of 100-event batches (4 connections, answers not waiting for the
  applier) is measured first; then events are sent open-loop at half that rate, and
  ``/readyz``'s age of the oldest waiting event is sampled every 20 ms. Target: p99 ≤ 250 ms.
  Measured as configured by default (``apply_process`` on: the applier in a process of its
  own); reported beside it: the same with ``apply_process`` off (one process).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from .common import Check, Result, Sidecar, median, python_server, scratch_dir
from .ingest import HELLO_SERVER

JOBS = 5000
CONNECTIONS = 64
LAG_BATCH = 100


def _cron_jobs(prefix: str, count: int) -> str:
    return "jobs:\n" + "".join(
        f'  - name: {prefix}-{i}\n    schedule: "0 * * * *"\n' for i in range(count)
    )


def _ts(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


async def _inbox(session: Any, url: str) -> dict[str, Any]:
    async with session.get(url + "/readyz") as resp:
        body: dict[str, Any] = await resp.json()
        return body.get("inbox", {})


def _bodies(jobs: int) -> list[bytes]:
    """One request per job: its start and its success, as a cron job's wrapper sends them."""
    now = time.time()
    bodies = []
    for i in range(jobs):
        rid = uuid.uuid4().hex
        bodies.append(
            json.dumps(
                [
                    {"type": "start", "job": f"top-{i}", "run_id": rid, "ts": _ts(now)},
                    {
                        "type": "success",
                        "job": f"top-{i}",
                        "run_id": rid,
                        "ts": _ts(now + 0.5),
                        "duration": 0.5,
                    },
                ]
            ).encode()
        )
    return bodies


async def _send_all(
    session: Any, url: str, bodies: list[bytes], *, check: bool
) -> tuple[list[float], int]:
    """Send every body at once (the connector allows ``CONNECTIONS``); the time of each answer
    after the start, sorted, and (``check``) how many answers did not accept both events."""
    acks: list[float] = []
    bad = 0

    async def send(body: bytes) -> None:
        nonlocal bad
        async with session.post(
            url + "/api/v1/events", data=body, headers={"Content-Type": "application/json"}
        ) as resp:
            if check:
                answer = await resp.json()
                if resp.status != 200 or answer.get("accepted") != 2:
                    bad += 1
            else:
                await resp.read()
        acks.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(send(b) for b in bodies))
    return sorted(acks), bad


async def _top_of_hour(url: str, jobs: int) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        bodies = _bodies(jobs)
        t0 = time.perf_counter()
        acks, bad = await _send_all(session, url, bodies, check=True)
        acked = time.perf_counter() - t0
        while True:
            inbox = await _inbox(session, url)
            if inbox.get("pending") == 0:
                break
            if time.perf_counter() - t0 > 300:
                raise RuntimeError(f"not applied after 300 s: {inbox}")
            await asyncio.sleep(0.01)
        applied = time.perf_counter() - t0
    return {
        "p99_ack_s": acks[int(len(acks) * 0.99) - 1],
        "p50_ack_s": acks[len(acks) // 2],
        "all_acked_s": acked,
        "all_applied_s": applied,
        "not_accepted": bad,
    }


async def _hello_floor(url: str, jobs: int) -> float:
    """The same requests from the same client to an aiohttp hello world: when the last is
    answered. What the client and the machine cost before jobpulse does anything."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        acks, _ = await _send_all(session, url, _bodies(jobs), check=False)
    return acks[-1]


def top_of_hour(quick: bool) -> Result:
    jobs = 1000 if quick else JOBS
    rounds = 1 if quick else 3
    runs: list[dict[str, Any]] = []
    floors: list[float] = []
    with scratch_dir("top") as tmp, python_server(HELLO_SERVER) as hello:
        for _ in range(rounds):
            (tmp / "jobpulse.db").unlink(missing_ok=True)
            with Sidecar(tmp, _cron_jobs("top", jobs)) as sidecar:
                runs.append(asyncio.run(_top_of_hour(sidecar.url, jobs)))
            floors.append(asyncio.run(_hello_floor(hello, jobs)))
    p99 = median([r["p99_ack_s"] for r in runs])
    applied = median([r["all_applied_s"] for r in runs])
    acked = median([r["all_acked_s"] for r in runs])
    bad = max(r["not_accepted"] for r in runs)
    note = f"{bad} requests not fully accepted" if bad else ""
    return Result(
        "top_of_hour",
        f"Top of the hour: {jobs:,} jobs report start and success at one instant",
        [
            Check("p99 time to acknowledgement", p99, 2.0, "<= 2 s", "s", "max", 1.0, note),
            Check("time until all applied", applied, 5.0, "<= 5 s", "s", "max", 1.0, note),
            Check(
                "all acknowledged / same requests to aiohttp hello world",
                acked,
                median(floors),
                "reported",
                "s",
                "max",
                float("inf"),
            ),
        ],
        {
            "runs": runs,
            "hello_world_all_answered_s": floors,
            "jobs": jobs,
            "connections": CONNECTIONS,
            "rounds": rounds,
        },
    )


async def _peak(url: str, seconds: float) -> float:
    """Events/s of 100-event batches over 4 connections, answers not waiting for the applier."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        sent = 0
        deadline = time.perf_counter() + seconds
        run = uuid.uuid4().hex[:12]  # every round's events new runs, never duplicates

        async def worker(w: int) -> None:
            nonlocal sent
            n = 0
            while time.perf_counter() < deadline:
                body = _batch(f"{run}-peak{w}-{n}")
                async with session.post(
                    url + "/api/v1/events", data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    await resp.read()
                    if resp.status == 200:
                        sent += LAG_BATCH
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(4)))
        rate = sent / (time.perf_counter() - started)
        await _drained(session, url)
        return rate


async def _drained(session: Any, url: str) -> None:
    """Wait until the inbox is empty, so the next phase starts from rest."""
    while (await _inbox(session, url)).get("pending"):
        await asyncio.sleep(0.05)


def _batch(tag: str) -> bytes:
    ts = _ts(time.time())
    return json.dumps(
        [
            {
                "type": "success",
                "job": f"lag-{i % 100}",
                "run_id": f"{tag}-{i}",
                "ts": ts,
                "duration": 1.5,
            }
            for i in range(LAG_BATCH)
        ]
    ).encode()


async def _lag_at(url: str, rate: float, seconds: float) -> list[float]:
    import aiohttp

    samples: list[float] = []
    async with aiohttp.ClientSession() as session:
        interval = LAG_BATCH / rate
        stop = time.perf_counter() + seconds
        run = uuid.uuid4().hex[:12]

        async def sender() -> None:
            n = 0
            nxt = time.perf_counter()
            pending: set[asyncio.Task[None]] = set()
            while nxt < stop:
                body = _batch(f"{run}-lag-{n}")
                task = asyncio.create_task(_post(session, url, body))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
                nxt += interval
                await asyncio.sleep(max(0.0, nxt - time.perf_counter()))
            await asyncio.gather(*pending)

        async def sampler() -> None:
            while time.perf_counter() < stop:
                samples.append(float((await _inbox(session, url)).get("lag_seconds", 0.0)))
                await asyncio.sleep(0.02)

        await asyncio.gather(sender(), sampler())
        # A backlog left behind would make the next round's peak the applier's pace.
        await _drained(session, url)
    return samples


async def _post(session: Any, url: str, body: bytes) -> None:
    async with session.post(
        url + "/api/v1/events", data=body, headers={"Content-Type": "application/json"}
    ) as resp:
        await resp.read()


def _lag_rounds(rounds: int, seconds: float, env: dict[str, str]) -> tuple[list[float], ...]:
    """Each round's peak rate and p99 lag at half of it, on one sidecar started with ``env``."""
    peaks: list[float] = []
    p99s: list[float] = []
    with scratch_dir("lag") as tmp, Sidecar(tmp, _cron_jobs("lag", 100), env=env) as sidecar:
        for _ in range(rounds):
            peak = asyncio.run(_peak(sidecar.url, seconds))
            samples = sorted(asyncio.run(_lag_at(sidecar.url, peak / 2, seconds)))
            peaks.append(peak)
            p99s.append(samples[max(int(len(samples) * 0.99) - 1, 0)])
    return peaks, p99s


def apply_lag(quick: bool) -> Result:
    """The sidecar as configured by default (``apply_process`` on: the applier in a process of
    its own, with a core of its own), and in one process (reported)."""
    seconds = 1 if quick else 8
    rounds = 1 if quick else 3
    peaks, p99s = _lag_rounds(rounds, seconds, {"JOBPULSE_APPLY_PROCESS": "1"})
    one_peaks, one_p99s = _lag_rounds(rounds, seconds, {"JOBPULSE_APPLY_PROCESS": "0"})
    return Result(
        "apply_lag",
        "Apply lag at half the peak ingest rate (100-event batches)",
        [
            Check("p99 apply lag", median(p99s), 0.25, "<= 250 ms", "s", "max", 1.0),
            Check(
                "p99 apply lag, one process (apply_process off)",
                median(one_p99s),
                0.25,
                "reported",
                "s",
                "max",
                float("inf"),
            ),
        ],
        {
            "peak_events_per_s": peaks,
            "half_peak_p99_lag_s": p99s,
            "one_process_peak_events_per_s": one_peaks,
            "one_process_half_peak_p99_lag_s": one_p99s,
            "seconds": seconds,
        },
    )
