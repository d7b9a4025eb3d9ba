"""Ingest, pings, the JSON API and /metrics over HTTP (aiohttp test client, manual clock)."""

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
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.settings import Settings
from tests.sidecar.harness import T0

CONFIG = """
jobs:
  - name: nightly
    schedule: "*/5 * * * *"
    labels: {team: data, severity: warning}
"""
ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def client(aiohttp_client: ClientFactory, tmp_path: Any) -> TestClient[Any, Any]:
    settings = Settings(
        store=f"sqlite:///{tmp_path}/s.db",
        catchup_delay=0,
        max_body_bytes=65536,
        max_batch_events=50,
    )
    app = create_app(
        settings, clock=ManualClock(T0), file_config=parse_config(CONFIG), run_evaluator=False
    )
    return await aiohttp_client(app)


def ev(type_: str, run_id: str, ts: float, job: str = "nightly", **kw: Any) -> dict[str, Any]:
    return {"type": type_, "job": job, "run_id": run_id, "ts": format_ts(ts), **kw}


async def post(client: TestClient[Any, Any], events: Any, *, ndjson: bool = False) -> Any:
    if ndjson:
        body = "\n".join(json.dumps(e) for e in events)
        resp = await client.post(
            "/api/v1/events?wait=applied",
            data=body,
            headers={"Content-Type": "application/x-ndjson"},
        )
    else:
        resp = await client.post("/api/v1/events?wait=applied", json=events)
    return resp.status, await resp.json()


async def test_batch_is_accepted_with_counts(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, [ev("start", "r1", T0 + 1), ev("success", "r1", T0 + 5)])
    assert status == 200
    assert body == {"accepted": 2, "duplicates": 0, "rejected": [], "warnings": []}


async def test_ndjson_is_accepted(client: TestClient[Any, Any]) -> None:
    status, body = await post(
        client, [ev("start", "n1", T0), ev("success", "n1", T0 + 1)], ndjson=True
    )
    assert status == 200
    assert body["accepted"] == 2


async def test_malformed_json_is_400(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v1/events?wait=applied",
        data="{not json",
        headers={"Content-Type": "application/json"},
    )
    assert resp.status == 400
    body = await resp.json()
    assert body["error"] == "malformed body"
    assert "not valid JSON" in body["detail"]


@pytest.mark.parametrize(
    ("event", "field", "fragment"),
    [
        ({"type": "begin"}, "type", "'begin' is not one of"),
        ({"job": "Bad Name!"}, "job", "is invalid"),
        ({"ts": "yesterday"}, "ts", "not an RFC 3339 timestamp"),
        ({"ts": "2026-11-23T10:00:00"}, "ts", "offset"),
        ({"run_id": ""}, "run_id", "1-64 characters"),
        ({"attempt": 0}, "attempt", "integer >= 1"),
        ({"exit_code": 256}, "exit_code", "0-255"),
        ({"duration": -1}, "duration", ">= 0"),
        ({"trace_id": "XYZ"}, "trace_id", "32 lowercase hex"),
        ({"will_retry": True}, "will_retry", "only valid on failure"),
        ({"metadata": {"k": "x" * 9000}}, "metadata", "limit is 8192 bytes"),
        ({"job_config": {"schedule": "61 * * * *"}}, "job_config.schedule", "not a valid cron"),
    ],
)
async def test_bad_events_are_rejected_one_by_one(
    client: TestClient[Any, Any], event: dict[str, Any], field: str, fragment: str
) -> None:
    bad = {**ev("start", "bad", T0), **event}
    status, body = await post(client, [ev("start", "good", T0), bad])
    assert status == 200
    assert body["accepted"] == 1
    [rejection] = body["rejected"]
    assert rejection["index"] == 1
    assert rejection["field"] == field
    assert fragment in rejection["reason"]


async def test_what_the_fast_json_parser_refuses_is_judged_event_by_event_as_before(
    client: TestClient[Any, Any],
) -> None:
    # NaN, a lone surrogate and a huge integer are read by the stdlib's parser (orjson
    # refuses them): the bad event is rejected alone, with the field named, not the body.
    good = json.dumps(ev("start", "good", T0))
    nan = json.dumps({**ev("start", "nan", T0), "duration": float("nan")})
    huge = json.dumps({**ev("start", "big", T0), "exit_code": 2**70})
    surrogate = json.dumps({**ev("start", "sur", T0), "error_type": "x\ud800"})
    for bad, field in ((nan, "duration"), (huge, "exit_code")):
        resp = await client.post(
            "/api/v1/events", data=f"[{good}, {bad}]", headers={"Content-Type": "application/json"}
        )
        assert resp.status == 200
        body = await resp.json()
        assert [r["field"] for r in body["rejected"]] == [field]
    resp = await client.post(
        "/api/v1/events", data=f"[{surrogate}]", headers={"Content-Type": "application/json"}
    )
    assert resp.status == 200, await resp.text()


async def test_unknown_fields_are_ignored_with_a_warning(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, [ev("start", "u1", T0, shiny_new_field=1)])
    assert status == 200
    assert body["accepted"] == 1
    assert body["warnings"] == ["event 0: unknown field 'shiny_new_field' ignored"]


async def test_oversized_body_is_413(client: TestClient[Any, Any]) -> None:
    big = [ev("log", "r", T0, message="x" * 40000), ev("log", "r", T0 + 1, message="y" * 40000)]
    resp = await client.post("/api/v1/events?wait=applied", json=big)
    assert resp.status == 413
    assert (await resp.json())["error"] == "request too large"


async def test_too_many_events_is_413(client: TestClient[Any, Any]) -> None:
    status, body = await post(client, [ev("log", "r", T0 + i) for i in range(51)])
    assert status == 413
    assert "limit is 50" in body["detail"]


async def test_long_error_message_is_truncated_not_rejected(client: TestClient[Any, Any]) -> None:
    status, body = await post(
        client, [ev("start", "t1", T0), ev("failure", "t1", T0 + 1, error_message="e" * 9000)]
    )
    assert status == 200
    assert body["accepted"] == 2
    assert any("truncated" in w for w in body["warnings"])
    runs = await (await client.get("/api/v1/jobs/nightly/runs")).json()
    message = runs["runs"][0]["error_message"]
    assert len(message.encode()) <= 4096
    assert message.endswith("[truncated]")


async def test_same_batch_twice_is_counted_once(client: TestClient[Any, Any]) -> None:
    batch = [
        ev("start", "d1", T0 + 1),
        ev("progress", "d1", T0 + 2, count=5),
        ev("success", "d1", T0 + 3, duration=2.0),
    ]
    _, first = await post(client, batch)
    _, second = await post(client, batch)
    assert (first["accepted"], first["duplicates"]) == (3, 0)
    assert (second["accepted"], second["duplicates"]) == (0, 3)
    job = await (await client.get("/api/v1/jobs/nightly")).json()
    assert job["runs"]["success"] == 1


async def test_unsupported_content_type_is_415(client: TestClient[Any, Any]) -> None:
    resp = await client.post(
        "/api/v1/events?wait=applied", data="x", headers={"Content-Type": "text/plain"}
    )
    assert resp.status == 415


# ------------------------------------------------------------------------------------ pings
async def runs_of(client: TestClient[Any, Any], job: str) -> list[dict[str, Any]]:
    body = await (await client.get(f"/api/v1/jobs/{job}/runs")).json()
    return list(reversed(body["runs"]))


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD"])
async def test_ping_success_each_method(client: TestClient[Any, Any], method: str) -> None:
    resp = await client.request(method, "/ping/nightly?wait=applied")
    assert resp.status == 200
    [run] = await runs_of(client, "nightly")
    assert run["outcome"] == "success"


@pytest.mark.parametrize(("code", "outcome"), [(0, "success"), (1, "failure"), (255, "failure")])
async def test_ping_exit_status(client: TestClient[Any, Any], code: int, outcome: str) -> None:
    resp = await client.get(f"/ping/nightly/{code}?wait=applied")
    assert resp.status == 200
    [run] = await runs_of(client, "nightly")
    assert run["outcome"] == outcome
    assert run["exit_code"] == code


async def test_ping_exit_status_over_255_is_400(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/ping/nightly/256?wait=applied")
    assert resp.status == 400
    assert "0-255" in await resp.text()
    assert await runs_of(client, "nightly") == []


async def test_ping_start_then_finish_without_rid_pairs_with_latest(
    client: TestClient[Any, Any],
) -> None:
    assert (await client.get("/ping/nightly/start?wait=applied")).status == 200
    client.app[SIDECAR].clock.advance(42)
    resp = await client.post("/ping/nightly/fail?wait=applied", data=b"disk full\nexit 1")
    assert resp.status == 200
    [run] = await runs_of(client, "nightly")
    assert run["outcome"] == "failure"
    assert run["duration"] == pytest.approx(42)
    assert run["log"] == "disk full\nexit 1"
    assert run["error_message"] == "disk full\nexit 1"


async def test_ping_with_rid(client: TestClient[Any, Any]) -> None:
    await client.get("/ping/nightly/start?rid=aaa&wait=applied")
    await client.get("/ping/nightly/start?rid=bbb&wait=applied")
    await client.get("/ping/nightly?rid=aaa&wait=applied")
    runs = {r["run_id"]: r for r in await runs_of(client, "nightly")}
    assert runs["aaa"]["outcome"] == "success"
    assert runs["bbb"]["outcome"] == "running"
    assert "overlap" in runs["bbb"]["flags"]


async def test_ping_log_is_kept_on_the_running_run(client: TestClient[Any, Any]) -> None:
    await client.get("/ping/nightly/start?wait=applied")
    await client.post("/ping/nightly/log?wait=applied", data=b"step 1 done")
    [run] = await runs_of(client, "nightly")
    assert run["log"] == "step 1 done"


async def test_ping_body_kept_up_to_10_kb(client: TestClient[Any, Any]) -> None:
    await client.post("/ping/nightly?wait=applied", data=b"z" * 20000)
    [run] = await runs_of(client, "nightly")
    assert len(run["log"]) == 10240


async def test_ping_unknown_job_is_404_and_create_registers_it(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/ping/brand-new?wait=applied")
    assert resp.status == 404
    assert "?create=1" in await resp.text()
    assert (await client.get("/api/v1/jobs/brand-new")).status == 404
    assert (await client.get("/ping/brand-new?create=1&wait=applied")).status == 200
    job = await (await client.get("/api/v1/jobs/brand-new")).json()
    assert job["runs"]["success"] == 1


async def test_ping_unknown_action_is_404(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/ping/nightly/explode?wait=applied")).status == 404


# ------------------------------------------------------------------------------------ API
async def test_api_errors_are_json(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/api/v1/jobs/missing-job")
    assert resp.status == 404
    assert await resp.json() == {"error": "unknown job", "detail": "no job named 'missing-job'"}
    resp = await client.get("/api/v1/jobs/nightly/runs?outcome=bogus")
    assert resp.status == 422
    assert "bogus" in (await resp.json())["detail"]
    resp = await client.get("/api/v1/jobs/nightly/runs?since=yesterday")
    assert resp.status == 422


async def test_runs_keyset_pagination_and_filters(client: TestClient[Any, Any]) -> None:
    events = []
    for i in range(7):
        kind = "failure" if i % 2 else "success"
        extra = {"error_message": f"boom {i}"} if kind == "failure" else {}
        events += [ev("start", f"p{i}", T0 + 10 * i), ev(kind, f"p{i}", T0 + 10 * i + 1, **extra)]
    await post(client, events)
    seen: list[str] = []
    cursor = None
    while True:
        url = "/api/v1/jobs/nightly/runs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        page = await (await client.get(url)).json()
        seen += [r["run_id"] for r in page["runs"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"p{i}" for i in reversed(range(7))]
    failures = await (await client.get("/api/v1/jobs/nightly/runs?outcome=failure")).json()
    assert [r["run_id"] for r in failures["runs"]] == ["p5", "p3", "p1"]
    found = await (await client.get("/api/v1/jobs/nightly/runs?q=boom%203")).json()
    assert [r["run_id"] for r in found["runs"]] == ["p3"]
    since = format_ts(T0 + 25)
    recent = await (await client.get(f"/api/v1/jobs/nightly/runs?since={since}")).json()
    assert [r["run_id"] for r in recent["runs"]] == ["p6", "p5", "p4", "p3"]
    csv_resp = await client.get("/api/v1/jobs/nightly/runs?format=csv")
    assert csv_resp.content_type == "text/csv"
    lines = (await csv_resp.text()).strip().splitlines()
    assert lines[0].startswith("run_id,slot,started_at")
    assert len(lines) == 8


async def test_healthz_and_readyz(client: TestClient[Any, Any]) -> None:
    assert (await client.get("/healthz")).status == 200
    client.app[SIDECAR].tick_sync()
    assert (await client.get("/readyz")).status == 200


# ------------------------------------------------------------------------------------ metrics
def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def val(metrics: dict[Any, float], name: str, **labels: str) -> float | None:
    return metrics.get((name, tuple(sorted(labels.items()))))


async def test_metrics_after_a_known_sequence(client: TestClient[Any, Any]) -> None:
    sidecar = client.app[SIDECAR]
    clock = sidecar.clock
    await post(
        client,
        [
            ev("start", "m1", T0 + 1),
            ev("success", "m1", T0 + 31, duration=30.0),
            ev("start", "m2", T0 + 301),
            ev("failure", "m2", T0 + 302, duration=1.0),
            ev("start", "m3", T0 + 303, attempt=1),
            ev("failure", "m3", T0 + 304, will_retry=True, attempt=1),
            ev("start", "other-1", T0 + 5, job="other"),
        ],
    )
    clock.set(T0 + 900 + 31)
    sidecar.tick_sync()
    m = samples(await (await client.get("/metrics")).text())
    j = {"job_name": "nightly"}
    assert val(m, "jobpulse_job_runs_total", outcome="success", **j) == 1
    assert val(m, "jobpulse_job_runs_total", outcome="failure", **j) == 1
    assert val(m, "jobpulse_job_runs_total", outcome="retry", **j) == 1
    assert val(m, "jobpulse_job_runs_total", outcome="timeout", **j) == 0
    assert val(m, "jobpulse_job_runs_total", outcome="cancelled", **j) == 0
    assert val(m, "jobpulse_job_missed_runs_total", **j) == 2  # 10:10 and 10:15
    assert val(m, "jobpulse_job_run_duration_seconds_count", **j) == 3
    assert val(m, "jobpulse_job_run_duration_seconds_sum", **j) == 32
    assert val(m, "jobpulse_job_run_duration_seconds_bucket", le="0.5", **j) == 0
    assert val(m, "jobpulse_job_run_duration_seconds_bucket", le="1.0", **j) == 2
    assert val(m, "jobpulse_job_run_duration_seconds_bucket", le="30.0", **j) == 3
    assert val(m, "jobpulse_job_last_success_timestamp_seconds", **j) == T0 + 31
    assert val(m, "jobpulse_job_last_failure_timestamp_seconds", **j) == T0 + 302
    assert val(m, "jobpulse_job_last_run_start_timestamp_seconds", **j) == T0 + 303
    assert val(m, "jobpulse_job_last_run_duration_seconds", **j) == 1.0
    assert val(m, "jobpulse_job_running", **j) == 0
    assert val(m, "jobpulse_job_running", job_name="other") == 1
    assert val(m, "jobpulse_job_oldest_running_start_timestamp_seconds", job_name="other") == T0 + 5
    assert val(m, "jobpulse_job_state", state="down", **j) == 1
    assert val(m, "jobpulse_job_state", state="up", **j) == 0
    assert val(m, "jobpulse_job_consecutive_failures", **j) == 3  # failure + 2 missed
    assert val(m, "jobpulse_job_expected_interval_seconds", **j) == 300
    assert val(m, "jobpulse_job_next_expected_run_timestamp_seconds", **j) == T0 + 1200
    assert (
        val(
            m,
            "jobpulse_job_info",
            schedule="*/5 * * * *",
            timezone="UTC",
            team="data",
            severity="warning",
            **j,
        )
        == 1
    )
    # success ratio = 1 success / (2 finished + 2 missed); miss ratio = 2 missed / 4 due
    assert val(m, "jobpulse_job_success_ratio", window="24h", **j) == 0.25
    assert val(m, "jobpulse_job_miss_ratio", window="24h", **j) == 0.5
    assert val(m, "jobpulse_job_success_ratio", window="1h", job_name="other") is None
    assert (
        val(
            m,
            "jobpulse_build_info",
            version=pytest.importorskip("importlib.metadata").version("jobpulse"),
        )
        == 1
    )
    assert val(m, "jobpulse_events_received_total", type="start") == 4
    assert val(m, "jobpulse_events_rejected_total", reason="job_cap") == 0
    assert val(m, "jobpulse_evaluator_last_run_timestamp_seconds") == T0 + 931
    assert val(m, "jobpulse_jobs", state="down") == 1
    assert val(m, "jobpulse_jobs", state="new") == 1


async def test_metrics_leave_when_a_job_is_deleted(client: TestClient[Any, Any]) -> None:
    await post(client, [ev("start", "x", T0, job="temp")])
    assert 'job_name="temp"' in await (await client.get("/metrics")).text()
    assert (await client.delete("/api/v1/jobs/temp")).status == 204
    assert 'job_name="temp"' not in await (await client.get("/metrics")).text()
    assert (await client.get("/api/v1/jobs/temp")).status == 404
