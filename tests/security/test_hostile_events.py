"""Events and job fields from a hostile (or broken) sender: integers a column cannot hold,
durations and times that cannot be rendered, intervals that flood the store, times far ahead,
look-alike names. Each once made the sidecar answer 500 or misbehave; each test pins the fix."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobpulse.instrumentation.errors import ConfigError, InvalidEvent, InvalidJobConfig, InvalidName
from jobpulse.instrumentation.spec import MIN_EVERY, parse_job_fields, parse_job_name
from jobpulse.instrumentation.wire import MAX_DURATION, MAX_FUTURE, format_ts, parse_event
from jobpulse.sidecar.config import parse_config
from tests.security.conftest import event, ingest
from tests.sidecar.harness import T0

VALID = {"type": "success", "job": "nightly", "run_id": "r1", "ts": format_ts(T0)}


# -- 1. integers a store column cannot hold ---------------------------------------------------


@pytest.mark.parametrize("name", ["count", "pid", "attempt"])
@pytest.mark.parametrize("value", [10**23, 2**63, -(2**63) - 1])
def test_integers_outside_64_bits_are_rejected_naming_the_field(name: str, value: int) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**VALID, name: value})
    assert caught.value.field == name
    assert "9223372036854775807" in caught.value.reason


def test_the_largest_64_bit_integer_is_accepted() -> None:
    event, _ = parse_event({**VALID, "count": 2**63 - 1, "pid": 2**63 - 1})
    assert event.count == event.pid == 2**63 - 1


async def test_one_huge_integer_rejects_only_its_event(
    sidecar_client: TestClient[Any, Any],
) -> None:
    body = await ingest(
        sidecar_client, [event(1), event(2, count=10**23), event(3, exit_code=10**23), event(4)]
    )
    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "count"), (2, "exit_code")]
    assert "0-255" in body["rejected"][1]["reason"]


# -- 2. durations and timestamps that cannot be rendered --------------------------------------


@pytest.mark.parametrize("duration", [1e12, MAX_DURATION + 1, 10**400, float("inf")])
def test_duration_is_bounded(duration: float) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**VALID, "duration": duration})
    assert caught.value.field == "duration"
    assert "366 days" in caught.value.reason
    assert parse_event({**VALID, "duration": MAX_DURATION})[0].duration == MAX_DURATION


@pytest.mark.parametrize("name", ["ts", "scheduled_for", "sent_at"])
@pytest.mark.parametrize(
    "value", ["0100-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "3000-01-01T00:00:00Z"]
)
def test_timestamps_outside_the_renderable_range_are_rejected(name: str, value: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**VALID, name: value})
    assert caught.value.field == name
    assert "1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z" in caught.value.reason


async def test_a_run_that_would_start_before_year_one_is_never_stored(
    sidecar_client: TestClient[Any, Any],
) -> None:
    body = await ingest(
        sidecar_client,
        [
            event(1, ts="1970-01-01T00:00:01Z", duration=1e12),
            event(2, ts="0001-01-01T00:00:10Z", duration=100),
            event(3, duration=2.5),
        ],
    )
    assert body["accepted"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "duration"), (1, "ts")]
    resp = await sidecar_client.get("/api/v1/jobs/nightly/runs")
    assert resp.status == 200
    assert [r["run_id"] for r in (await resp.json())["runs"]] == ["r3"]
    assert (await sidecar_client.get("/jobs/nightly")).status == 200


# -- 4. every: below one second ---------------------------------------------------------------


@pytest.mark.parametrize("every", [0.001, "0.5s", 0.999])
def test_every_below_one_second_is_refused(every: object) -> None:
    with pytest.raises(InvalidJobConfig) as caught:
        parse_job_fields("fast", {"every": every})
    assert caught.value.field == "every"
    assert "minimum interval of 1s" in str(caught.value)
    assert parse_job_fields("fast", {"every": MIN_EVERY}) == {"every": 1.0}


def test_every_below_one_second_fails_the_configuration_file() -> None:
    with pytest.raises(ConfigError, match="every"):
        parse_config("jobs:\n  - name: fast\n    every: 0.001\n")


async def test_put_with_every_below_one_second_is_422(sidecar_client: TestClient[Any, Any]) -> None:
    resp = await sidecar_client.put("/api/v1/jobs/fast", json={"every": 0.001})
    assert resp.status == 422
    detail = (await resp.json())["detail"]
    assert "every" in detail
    assert "1s" in detail
    assert (await sidecar_client.get("/api/v1/jobs/fast")).status == 404


async def test_an_event_declaring_every_below_one_second_is_rejected(
    sidecar_client: TestClient[Any, Any],
) -> None:
    body = await ingest(
        sidecar_client, [event(1, job="fast", job_config={"every": 0.001}), event(2)]
    )
    assert body["accepted"] == 1
    [rejection] = body["rejected"]
    assert rejection["field"] == "job_config.every"
    assert "1s" in rejection["reason"]


@pytest.mark.parametrize("field", ["every", "grace", "max_runtime", "max_silence"])
def test_job_durations_are_bounded(field: str) -> None:
    with pytest.raises(InvalidJobConfig) as caught:
        parse_job_fields("slow", {field: 10**299})
    assert caught.value.field == field
    assert "366d" in str(caught.value)


# -- 7. timestamps far ahead of the receiver's clock ------------------------------------------


def test_ts_more_than_a_day_ahead_of_now_is_rejected_when_now_is_given() -> None:
    ahead = {**VALID, "ts": format_ts(T0 + MAX_FUTURE + 1)}
    parse_event(ahead)  # without a clock, parse_event cannot tell
    with pytest.raises(InvalidEvent) as caught:
        parse_event(ahead, now=T0)
    assert caught.value.field == "ts"
    assert "1 day" in caught.value.reason
    parse_event({**VALID, "ts": format_ts(T0 + MAX_FUTURE)}, now=T0)  # the bound is inclusive
    far = {**VALID, "ts": "9999-01-01T00:00:00Z"}
    with pytest.raises(InvalidEvent):
        parse_event(far, now=T0)
    with pytest.raises(InvalidEvent) as caught:
        parse_event({**VALID, "scheduled_for": format_ts(T0 + 2 * MAX_FUTURE)}, now=T0)
    assert caught.value.field == "scheduled_for"


def test_with_sent_at_the_bound_follows_the_senders_clock() -> None:
    # A client whose clock runs two days fast: the sidecar corrects it from sent_at.
    skewed = {**VALID, "ts": format_ts(T0 + 2 * 86400), "sent_at": format_ts(T0 + 2 * 86400 + 5)}
    assert parse_event(skewed, now=T0)[0].ts == T0 + 2 * 86400
    ahead_of_sending = {**skewed, "sent_at": format_ts(T0)}
    with pytest.raises(InvalidEvent, match="sent_at"):
        parse_event(ahead_of_sending, now=T0)


# -- 14. look-alike job names -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["ſync", "\u212aube", "ﬁle", "ｓync"])
def test_non_ascii_look_alikes_are_not_folded_into_ascii_names(name: str) -> None:
    with pytest.raises(InvalidName):
        parse_job_name(name)


def test_ascii_names_are_still_lower_cased() -> None:
    assert parse_job_name("Nightly-Backup.V2") == "nightly-backup.v2"


async def test_a_look_alike_name_is_not_another_job(sidecar_client: TestClient[Any, Any]) -> None:
    body = await ingest(sidecar_client, [event(1, job="ſync"), event(2, job="NIGHTLY")])
    assert body["accepted"] == 1
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(0, "job")]
    resp = await sidecar_client.get("/api/v1/jobs/ſync")
    assert resp.status == 404
