"""Schedules: DST behaviour (cronsim's rules), every, errors, and properties (hypothesis)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobpulse.instrumentation.errors import InvalidSchedule, InvalidTimezone
from jobpulse.sidecar.domain.jobconfig import JobConfig
from jobpulse.sidecar.domain.schedule import Schedule, default_grace
from tests.sidecar.harness import Harness, at


def utc(text: str) -> float:
    return at(text + "+00:00")


def slots(expr: str, tz: str, lo: str, hi: str) -> list[str]:
    sched = Schedule.of(expr, None, tz)
    return [
        datetime.fromtimestamp(s, UTC).strftime("%Y-%m-%dT%H:%M")
        for s in sched.between(utc(lo), utc(hi))
    ]


@pytest.mark.parametrize(
    ("expr", "tz", "lo", "hi", "expected"),
    [
        # Riga springs forward 2026-03-29 03:00 -> 04:00: 03:30 local is skipped and fires at
        # the next valid minute, 04:00 EEST (01:00Z)
        (
            "30 3 * * *",
            "Europe/Riga",
            "2026-03-28T00:00",
            "2026-03-30T23:59",
            ["2026-03-28T01:30", "2026-03-29T01:00", "2026-03-30T00:30"],
        ),
        # Riga falls back 2026-10-25 04:00 -> 03:00: 03:30 local happens twice, fires once
        (
            "30 3 * * *",
            "Europe/Riga",
            "2026-10-24T00:00",
            "2026-10-26T23:59",
            ["2026-10-24T00:30", "2026-10-25T00:30", "2026-10-26T01:30"],
        ),
        # New York springs forward 2026-03-08 02:00 -> 03:00: 02:30 fires at 03:00 EDT
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T00:00",
            "2026-03-09T23:59",
            ["2026-03-07T07:30", "2026-03-08T07:00", "2026-03-09T06:30"],
        ),
        # New York falls back 2026-11-01 02:00 -> 01:00: 01:30 happens twice, fires once
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00",
            "2026-11-02T23:59",
            ["2026-10-31T05:30", "2026-11-01T05:30", "2026-11-02T06:30"],
        ),
        # A step in the minute field with * hours follows elapsed time: across spring-forward it
        # keeps firing every 30 minutes of real time ...
        (
            "*/30 * * * *",
            "America/New_York",
            "2026-03-08T06:00",
            "2026-03-08T07:30",
            ["2026-03-08T06:00", "2026-03-08T06:30", "2026-03-08T07:00", "2026-03-08T07:30"],
        ),
        # ... and across fall-back it fires in both repeated hours
        (
            "*/30 * * * *",
            "America/New_York",
            "2026-11-01T04:30",
            "2026-11-01T06:30",
            [
                "2026-11-01T04:30",
                "2026-11-01T05:00",
                "2026-11-01T05:30",
                "2026-11-01T06:00",
                "2026-11-01T06:30",
            ],
        ),
    ],
)
def test_dst(expr: str, tz: str, lo: str, hi: str, expected: list[str]) -> None:
    assert slots(expr, tz, lo, hi) == expected


def test_daily_job_across_spring_forward_is_not_missed(tmp_path: object) -> None:
    cfg = """
sidecar: {}
jobs:
  - name: backup
    schedule: "30 3 * * *"
    timezone: Europe/Riga
"""
    h = Harness(f"sqlite:///{tmp_path}/s.db", cfg, start=utc("2026-03-27T12:00"))
    try:
        # cron on a Riga host runs the job at these instants (Debian cron: 04:00 on the 29th)
        for when in ("2026-03-28T01:30:04", "2026-03-29T01:00:03", "2026-03-30T00:30:05"):
            h.run("backup", utc(when), 60)
        h.move(utc("2026-03-31T00:00"))
        assert h.missed("backup") == []
        assert h.job("backup").state == "up"
    finally:
        h.close()


def test_period_and_default_grace_of_irregular_crons() -> None:
    weekdays = Schedule.of("0 9 * * 1-5", None, "UTC")
    friday, monday = utc("2026-11-20T09:00"), utc("2026-11-23T09:00")
    assert weekdays.period(friday) == 72 * 3600
    assert weekdays.period(monday) == 24 * 3600
    assert default_grace(72 * 3600) == 3600  # clamped to 1 h
    assert default_grace(60) == 30  # never above half the period
    assert default_grace(300) == 30  # at least 30 s
    assert default_grace(3600) == 360


def test_six_fields_have_seconds_first() -> None:
    sched = Schedule.of("*/15 * * * * *", None, "UTC")
    start = utc("2026-11-23T10:00")
    assert [s - start for s in sched.between(start, start + 45)] == [0, 15, 30, 45]


def test_l_lw_hash_and_names() -> None:
    assert slots("0 12 L * *", "UTC", "2026-02-01T00:00", "2026-03-01T00:00") == [
        "2026-02-28T12:00"
    ]
    assert slots("0 12 LW * *", "UTC", "2026-05-01T00:00", "2026-06-01T00:00") == [
        "2026-05-29T12:00"
    ]
    assert slots("0 12 * * MON#2", "UTC", "2026-11-01T00:00", "2026-12-01T00:00") == [
        "2026-11-09T12:00"
    ]
    assert slots("0 12 1 JAN,FEB *", "UTC", "2026-01-01T00:00", "2026-03-31T00:00") == [
        "2026-01-01T12:00",
        "2026-02-01T12:00",
    ]


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # Debian cron: "0 0 13 * FRI" fires on every 13th and every Friday
    got = slots("0 0 13 * FRI", "UTC", "2026-11-01T00:00", "2026-11-30T23:59")
    assert got == ["2026-11-06T00:00", "2026-11-13T00:00", "2026-11-20T00:00", "2026-11-27T00:00"]


@pytest.mark.parametrize("expr", ["61 * * * *", "* * *", "0 0 30 2 *", "* * * * * * *", "x"])
def test_invalid_expressions_are_refused_clearly(expr: str) -> None:
    with pytest.raises(InvalidSchedule, match="schedule"):
        Schedule.of(expr, None, "UTC")


def test_invalid_timezone() -> None:
    with pytest.raises(InvalidTimezone, match="Mars/Olympus"):
        Schedule.of("* * * * *", None, "Mars/Olympus")


# -------------------------------------------------------------------- properties
def _field(lo: int, hi: int) -> st.SearchStrategy[str]:
    return st.one_of(
        st.just("*"),
        st.integers(lo, hi).map(str),
        st.tuples(st.integers(lo, hi), st.integers(lo, hi)).map(lambda p: f"{min(p)}-{max(p)}"),
        st.integers(1, max(1, (hi - lo) // 2)).map(lambda n: f"*/{n}"),
        st.lists(st.integers(lo, hi), min_size=2, max_size=4, unique=True).map(
            lambda xs: ",".join(map(str, sorted(xs)))
        ),
    )


def _matches(spec: str, value: int, lo: int) -> bool:
    for part in spec.split(","):
        if part == "*":
            return True
        if part.startswith("*/"):
            if (value - lo) % int(part[2:]) == 0:
                return True
        elif "-" in part:
            a, b = map(int, part.split("-"))
            if a <= value <= b:
                return True
        elif int(part) == value:
            return True
    return False


exprs = st.tuples(
    _field(0, 59),
    _field(0, 23),
    st.sampled_from(["*", "1-20", "*/3"]),
    st.sampled_from(["*", "1-6", "*/2"]),
    st.just("*"),
)
starts = st.integers(int(utc("2026-01-01T00:00")), int(utc("2027-12-31T00:00")))
zones = st.sampled_from(
    [
        "UTC",
        "Europe/Riga",
        "America/New_York",
        "Australia/Lord_Howe",
        "Asia/Kolkata",
        "Pacific/Chatham",
    ]
)


@given(exprs, starts)
def test_next_slot_never_skips_a_valid_fire_time_in_utc(parts: tuple[str, ...], start: int) -> None:
    expr = " ".join(parts)
    sched = Schedule.of(expr, None, "UTC")
    t = float(start)
    nxt = sched.next_after(t)
    assert nxt is not None and nxt > t
    minute = datetime.fromtimestamp(t, UTC).replace(second=0) + timedelta(minutes=1)
    # every whole minute strictly between t and nxt must not match the expression
    steps = 0
    while minute.timestamp() < nxt and steps < 3 * 1440:
        m = minute
        fields = (m.minute, m.hour, m.day, m.month)
        assert not all(
            _matches(p, v, lo) for p, v, lo in zip(parts[:4], fields, (0, 0, 1, 1), strict=True)
        ), (expr, m)
        minute += timedelta(minutes=1)
        steps += 1


@given(exprs, starts, zones)
def test_slots_are_strictly_increasing_and_consistent(
    parts: tuple[str, ...], start: int, tz: str
) -> None:
    sched = Schedule.of(" ".join(parts), None, tz)
    t = float(start)
    seq = list(sched.between(t, t + 3 * 86400))
    assert seq == sorted(set(seq))
    for a, b in itertools.pairwise(seq):
        assert sched.next_after(a) == b
        assert sched.at_or_before(b - 0.5) == a
    if seq:
        assert sched.at_or_after(t) == seq[0]
        assert sched.at_or_before(seq[0]) == seq[0]


@given(exprs, starts, zones, st.floats(0, 2 * 86400), st.sampled_from([None, 30.0, 5400.0]))
def test_a_runs_match_window_holds_every_slot_whose_window_holds_it(
    parts: tuple[str, ...], start: int, tz: str, offset: float, grace: float | None
) -> None:
    """A run is matched among the slots of ``match_window``; with the default grace that
    starts at the latest slot before the run, not an hour back. The narrow search must find
    exactly the slots the hour-wide one finds, whatever the schedule, zone and time."""
    cfg = JobConfig(name="j", schedule=Schedule.of(" ".join(parts), None, tz), grace=grace)
    t = start + offset

    def holding(lo: float, hi: float) -> list[float]:
        return [
            s
            for s in cfg.schedule.between(lo, hi)
            if s - cfg.early_at(s) <= t <= s + cfg.grace_at(s)
        ]

    widest = 3600.0 if grace is None else grace  # the longest default grace, or the set one
    assert holding(*cfg.match_window(t)) == holding(t - widest, t + 60.0)
