"""Untrusted input to the parsers yields a value or the documented error, never a crash
(hypothesis; the profile is the one tests/conftest.py loads)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from jobpulse.instrumentation.errors import (
    InvalidDuration,
    InvalidEvent,
    InvalidJobConfig,
    InvalidSchedule,
)
from jobpulse.instrumentation.spec import JOB_FIELDS, check_cron, parse_duration, parse_job_fields
from jobpulse.instrumentation.wire import (
    KNOWN_FIELDS,
    Event,
    Limits,
    event_to_wire,
    format_ts,
    parse_event,
)
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.service import Sidecar
from jobpulse.sidecar.settings import Settings

# JSON as json.loads produces it: lone surrogates, huge integers and NaN included.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TIMES = st.sampled_from(
    ["2026-11-23T10:00:00Z", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "x"]
)
FIELD_NAMES = sorted(KNOWN_FIELDS)  # every field the wire format knows
VALID = {"type": "success", "job": "nightly", "run_id": "r1", "ts": "2026-11-23T10:00:00Z"}
T_NOW = 1795428000.0  # 2026-11-23T10:00:00Z


@pytest.fixture(scope="module")
def shared_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sidecar]:
    """One real sidecar on SQLite for every example (a fresh one each would be slow)."""
    path = Path(tmp_path_factory.mktemp("parsers")) / "s.db"
    sidecar = Sidecar(
        Settings(store=f"sqlite:///{path}", catchup_delay=0), clock=ManualClock(T_NOW)
    )
    sidecar.start()
    yield sidecar
    sidecar.stop()


def _check_event(data: Any) -> None:
    try:
        event, warnings = parse_event(data, limits=Limits(64, 64, 64))
    except InvalidEvent as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert error.field and error.reason
        return
    assert isinstance(event, Event)
    assert all(isinstance(w, str) for w in warnings)
    json.dumps(event_to_wire(event))  # what was accepted can be sent on


@given(json_values)
def test_parse_event_never_crashes_on_any_json(data: Any) -> None:
    _check_event(data)


@given(
    st.dictionaries(
        st.sampled_from(FIELD_NAMES),
        json_values | TIMES | st.sampled_from(["start", "failure", "missed", "a" * 40]),
        max_size=10,
    )
)
@example({**VALID, "duration": 10**400})
@example({**VALID, "error_message": "\ud800" * 100})
@example({**VALID, "message": "x\udcff"})
@example({**VALID, "metadata": {"k": "\ud800"}})
@example({**VALID, "ts": "0001-01-01T00:00:00+01:00"})
@example({**VALID, "job_config": {"every": 10**400}})
def test_parse_event_never_crashes_on_event_shaped_input(fields: dict[str, Any]) -> None:
    _check_event({**VALID, **fields})


@given(
    st.text() | st.from_regex(r"(\*|[0-9,/LW#-]{1,6}|[A-Za-z]{3})( (\*|[0-9,/LW#?-]{1,6})){4,5}")
)
@example("0 0 30 2 *")
@example("* * * * * * *")
@example("*/0 * * * *")
def test_check_cron_returns_or_raises_invalid_schedule(text: str) -> None:
    try:
        expr = check_cron(text)
    except InvalidSchedule as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message
        return
    assert len(expr.split()) in (5, 6)


@given(st.text() | st.from_regex(r"[0-9.]{1,8}[smhd]?([0-9]{1,5}[smhd])*") | scalars)
@example("9" * 400 + "d")
@example("1e309")
def test_parse_duration_returns_or_raises_invalid_duration(value: Any) -> None:
    try:
        seconds = parse_duration(value)
    except InvalidDuration as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message
        return
    assert seconds > 0 and seconds != float("inf")


@given(st.dictionaries(st.sampled_from([*JOB_FIELDS, "bogus"]), json_values, max_size=5))
@example({"every": 10**400})
@example({"buckets": [1, float("nan")]})
@example({"labels": {"team": float("nan")}})
@example({"schedule": "0 0 30 2 *"})
def test_parse_job_fields_returns_or_raises_invalid_job_config(raw: dict[str, Any]) -> None:
    try:
        fields = parse_job_fields("nightly", raw)
    except InvalidJobConfig as exc:
        message = str(exc)
    else:
        message = None
    if message is not None:
        assert message
        return
    assert set(fields) <= set(JOB_FIELDS)


EXTREMES = st.sampled_from(
    [
        2**63 - 1,
        2**63,
        -(2**63) - 1,
        10**23,
        1e12,
        366 * 86400.0,
        0.0,
        "1970-01-01T00:00:00Z",
        "2999-12-31T23:59:59Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
    ]
)
STORE_FIELDS = ["count", "pid", "attempt", "exit_code", "duration", "ts", "scheduled_for"]


@given(
    st.lists(
        st.dictionaries(st.sampled_from(STORE_FIELDS), EXTREMES | json_values, max_size=4),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["start", "success", "failure", "log", "progress"]),
)
@example([{"count": 2**63 - 1, "pid": 2**63 - 1, "attempt": 2**63 - 1}], "success")
@example([{"duration": 366 * 86400.0, "ts": "1970-01-01T00:00:01Z"}], "success")
@example([{"ts": "2999-12-31T23:59:59Z", "scheduled_for": "1970-01-01T00:00:00Z"}], "start")
def test_what_the_parser_accepts_the_inbox_stores_and_the_engine_applies(
    shared_sidecar: Any, items: list[dict[str, Any]], kind: str
) -> None:
    """Bad input never costs good data: every event the parser accepts is appended, applied
    and readable back, whatever its extremes (a value the store cannot hold would stall the
    inbox or answer 500)."""
    from sqlalchemy import func, select

    from jobpulse.sidecar.domain.tables import InboxRow, Run

    sidecar = shared_sidecar
    accepted = []
    for n, fields in enumerate(items):
        raw = {**VALID, "type": kind, "run_id": f"x{uuid.uuid4().hex}-{n}", **fields}
        if kind in ("start", "log", "progress"):
            raw.pop("duration", None)
        try:
            event, _ = parse_event(raw, now=T_NOW)
        except InvalidEvent:
            continue
        accepted.append(event)
    before = sidecar.metrics.rejected.labels("apply_failed")._value.get()
    result = sidecar.ingest_sync(accepted, now=T_NOW)
    assert result.accepted + result.duplicates == len(accepted)
    assert sidecar.metrics.rejected.labels("apply_failed")._value.get() == before
    with sidecar.store.session() as session:
        assert session.scalar(select(func.count()).select_from(InboxRow)) == 0
        for run in session.scalars(select(Run)):  # every stored run renders
            json.dumps({"started": format_ts(run.started_at), "duration": run.duration})
