"""Limits answer with a clear JSON error and are counted in jobpulse_events_rejected_total."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from jobpulse.instrumentation.wire import format_ts
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.domain.ratelimit import RateLimiter
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.settings import Settings
from tests.sidecar.harness import T0

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]
CONFIG = 'jobs:\n  - name: nightly\n    schedule: "*/5 * * * *"\n'


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
async def client(
    aiohttp_client: ClientFactory, tmp_path: Any, ticker: Ticker
) -> TestClient[Any, Any]:
    settings = Settings(
        store=f"sqlite:///{tmp_path}/s.db",
        catchup_delay=0,
        max_body_bytes=4096,
        max_batch_events=20,
        job_cap=3,
        rate_limit=2.0,
    )
    app = create_app(
        settings, clock=ManualClock(T0), file_config=parse_config(CONFIG), run_evaluator=False
    )
    client = await aiohttp_client(app)
    client.app[SIDECAR].limiter = RateLimiter(2.0, clock=ticker)
    return client


def ev(job: str, n: int, **kw: Any) -> dict[str, Any]:
    return {"type": "log", "job": job, "run_id": f"r{n}", "ts": format_ts(T0 + n), **kw}


async def rejected(client: TestClient[Any, Any]) -> dict[str, float]:
    text = await (await client.get("/metrics")).text()
    return {
        s.labels["reason"]: s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "jobpulse_events_rejected"
        for s in fam.samples
        if s.name.endswith("_total")
    }


async def test_rate_limit_rejects_per_event_then_429_with_retry_after(
    client: TestClient[Any, Any], ticker: Ticker
) -> None:
    # burst of 2 for nightly; other jobs have their own buckets
    resp = await client.post(
        "/api/v1/events",
        json=[ev("nightly", 1), ev("nightly", 2), ev("nightly", 3), ev("other", 4)],
    )
    assert resp.status == 200
    body = await resp.json()
    assert body["accepted"] == 3
    assert body["rejected"] == [
        {"index": 2, "field": "job", "reason": "job 'nightly' is over its rate limit; retry later"}
    ]
    resp = await client.post("/api/v1/events", json=[ev("nightly", 5), ev("nightly", 6)])
    assert resp.status == 429
    assert resp.headers["Retry-After"] == "1"
    assert (await resp.json())["error"] == "rate limited"
    resp = await client.get("/ping/nightly")
    assert resp.status == 429 and int(resp.headers["Retry-After"]) >= 1
    ticker.t += 1.0
    resp = await client.post("/api/v1/events", json=[ev("nightly", 7), ev("nightly", 8)])
    assert (await resp.json())["accepted"] == 2
    assert (await rejected(client))["rate_limit"] == 4


async def test_every_limit_is_a_json_error_and_counted(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v1/events", data=b"x" * 5000, headers={"Content-Type": "application/json"}
    )
    assert resp.status == 413 and (await resp.json())["error"] == "request too large"
    resp = await client.post("/api/v1/events", json=[ev(f"j{i}", i) for i in range(21)])
    assert resp.status == 413 and (await resp.json())["error"] == "batch too long"
    resp = await client.post(
        "/api/v1/events", data="[" * 100000, headers={"Content-Type": "application/json"}
    )
    assert resp.status in (400, 413) and "error" in await resp.json()
    resp = await client.post(
        "/api/v1/events", data=json.dumps([[]] * 1), headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 415
    # job cap 3: nightly + two auto-registered, the third is rejected
    resp = await client.post("/api/v1/events", json=[ev("a1", 1), ev("a2", 2), ev("a3", 3)])
    body = await resp.json()
    assert [r["index"] for r in body["rejected"]] == [2]
    assert "job cap" in body["rejected"][0]["reason"]
    resp = await client.post("/api/v1/events", json=[ev("a1", 9, metadata={"k": "v" * 9000})])
    assert resp.status in (200, 413)
    counts = await rejected(client)
    assert counts["too_large"] >= 1
    assert counts["batch_too_long"] == 21
    assert counts["malformed"] >= 1
    assert counts["job_cap"] == 1


def test_token_bucket_refills_and_forgets_full_buckets() -> None:
    ticker = Ticker()
    limiter = RateLimiter(10.0, burst=2, clock=ticker)
    assert [limiter.take("a") for _ in range(3)] == [True, True, False]
    assert limiter.retry_after("a") == 1
    ticker.t += 0.1
    assert limiter.take("a") and not limiter.take("a")
    for i in range(5000):
        limiter.take(f"job{i}")
    ticker.t += 10
    for i in range(4096):
        limiter.take("b")
    assert len(limiter) < 100
    assert RateLimiter(0).take("x") and not RateLimiter(0).enabled
