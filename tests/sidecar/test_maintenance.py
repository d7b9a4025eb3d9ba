"""Maintenance windows in the engine, under a manual clock: which slots are skipped (before,
inside, straddling either end, across DST), what a failure, a timeout or a silence inside a
window does, a window opened through the API while a slot is already late, label targeting,
the exported gauge, and replay judging the file's windows as the live sidecar does."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from jobpulse.instrumentation.wire import format_ts
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.maintenance import Window
from jobpulse.sidecar.domain.tables import Rollup
from jobpulse.sidecar.maintenance_config import WindowSpec
from jobpulse.sidecar.replay import replay
from jobpulse.sidecar.store.maintenance import close_window, open_window
from jobpulse.sidecar.store.tx import Tx
from tests.sidecar.harness import T0, Harness, at

MIN = 60.0
# A one-off window 10:12-10:22 UTC; */5 jobs with a 4-minute grace, so a slot's deadline can
# fall inside the window while the slot itself is before it.
ONE_OFF = """
jobs:
  - name: five
    schedule: "*/5 * * * *"
    grace: 4m
    labels: {team: data}
  - name: other
    schedule: "*/5 * * * *"
    grace: 4m
    labels: {team: web}
maintenance:
  - name: upgrade
    match: {team: data}
    start: "2026-11-23T10:12:00Z"
    duration: 10m
"""


@pytest.fixture
def win(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(f"sqlite:///{tmp_path}/s.db", ONE_OFF, start=T0 - 60)
    yield harness
    harness.close()


def status(h: Harness, job: str, slot: float) -> str | None:
    return {s: st for s, st, _ in h.slots(job)}.get(slot)


@pytest.mark.parametrize(
    ("slot", "expected", "why"),
    [
        ("10:05", "missed", "deadline 10:09, before the window"),
        ("10:10", "skipped", "already late when the window opens; deadline 10:14 inside it"),
        ("10:15", "skipped", "inside the window"),
        ("10:20", "skipped", "straddles the window's end: deadline 10:24, window ends 10:22"),
        ("10:25", "missed", "after the window"),
    ],
)
def test_slot_before_inside_and_straddling_a_window(
    win: Harness, slot: str, expected: str, why: str
) -> None:
    win.move(T0 + 3600)
    assert status(win, "five", at(f"2026-11-23T{slot}:00+00:00")) == expected, why
    # The window holds only jobs labelled team=data.
    assert status(win, "other", at(f"2026-11-23T{slot}:00+00:00")) == "missed"


def test_skipped_slots_are_neither_missed_nor_due(win: Harness) -> None:
    win.move(T0 + 30 * MIN)
    job = win.job("five")
    skipped = [s for s, st, _ in win.slots("five") if st == "skipped"]
    assert len(skipped) == 3
    missed = [s for s, st, _ in win.slots("five") if st == "missed"]
    assert job.missed_total == len(missed)
    with win.sidecar.store.session() as session:
        from jobpulse.sidecar.domain.rollup import stats_from_rows
        from jobpulse.sidecar.domain.tables import Rollup

        stats = stats_from_rows(session.query(Rollup).filter(Rollup.job_id == job.id))
    assert stats.missed == len(missed)
    assert stats.due == len(missed)
    # Counted by reason, and exported as a counter with both reasons present.
    assert (job.skipped_maintenance, job.skipped_upstream) == (3, 0)
    win.sidecar.cache.refresh()
    text = win.sidecar.cache.render().decode()
    assert 'jobpulse_job_skipped_runs_total{job_name="five",reason="maintenance"} 3.0' in text
    assert 'jobpulse_job_skipped_runs_total{job_name="five",reason="upstream"} 0.0' in text
    assert 'jobpulse_job_skipped_runs_total{job_name="other",reason="maintenance"} 0.0' in text


def test_a_run_inside_a_window_still_fills_its_slot(win: Harness) -> None:
    rid = win.run("five", T0 + 15 * MIN + 5, 30)
    win.move(T0 + 30 * MIN)
    assert (T0 + 15 * MIN, "filled", rid) in win.slots("five")


def test_the_job_is_in_maintenance_only_while_the_window_is_open(win: Harness) -> None:
    def gauge() -> str:
        win.sidecar.cache.refresh()
        lines = win.sidecar.cache.render().decode().splitlines()
        return next(x for x in lines if x.startswith('jobpulse_job_in_maintenance{job_name="five"'))

    win.move(T0 + 11 * MIN)
    assert not win.job("five").in_maintenance
    assert gauge().endswith(" 0")
    win.move(T0 + 12 * MIN + 1)
    assert win.job("five").in_maintenance
    assert gauge().endswith(" 1")
    assert not win.job("other").in_maintenance
    win.move(T0 + 22 * MIN + 1)
    assert not win.job("five").in_maintenance
    assert gauge().endswith(" 0")


# --------------------------------------------------------------------------- outcomes
OUTCOMES = """
jobs:
  - name: flaky
    schedule: "0 2-5 * * *"
    max_runtime: 10m
    failure_threshold: 1
maintenance:
  - name: db
    jobs: [flaky]
    schedule: "0 2 * * *"
    duration: 2h
"""
NIGHT = at("2026-11-24T00:00:00+00:00")


@pytest.fixture
def night(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(f"sqlite:///{tmp_path}/n.db", OUTCOMES, start=NIGHT - 60)
    harness.run("flaky", NIGHT, 30)  # up (its slots are 02:00-05:00)
    yield harness
    harness.close()


def test_a_failure_inside_a_window_is_counted_but_does_not_flip(night: Harness) -> None:
    night.run("flaky", NIGHT + 2 * 3600, 30, "failure")  # 02:00, inside
    job = night.job("flaky")
    assert job.state == "up"
    assert job.runs_failure == 1  # recorded and counted
    assert job.bad_streak == 0  # not toward failure_threshold
    assert night.runs("flaky")[-1].outcome == "failure"


def test_failures_inside_a_window_do_not_lower_the_success_ratio(night: Harness) -> None:
    # Recorded on the runs and in the counters, but not in the hourly statistics that the
    # success ratios (and JobPulseFailureRatioHigh after the window) are computed from.
    night.run("flaky", NIGHT + 2 * 3600, 30, "failure")  # 02:00, inside
    night.send("start", "flaky", ts=NIGHT + 3 * 3600)  # times out at 03:10, inside
    night.move(NIGHT + 3 * 3600 + 15 * MIN)
    night.run("flaky", NIGHT + 4 * 3600, 30, "failure")  # 04:00, after: counted in both
    job = night.job("flaky")
    assert (job.runs_failure, job.runs_timeout) == (2, 1)
    with night.sidecar.store.session() as s:
        rolls = {
            r.hour: (r.success, r.failure, r.timeout)
            for r in s.scalars(select(Rollup).where(Rollup.job_id == job.id))
        }
    hour = int(NIGHT)  # rollups are keyed by the epoch second their hour starts at
    assert rolls[hour] == (1, 0, 0)
    assert rolls.get(hour + 2 * 3600, (0, 0, 0))[1:] == (0, 0)
    assert rolls.get(hour + 3 * 3600, (0, 0, 0))[1:] == (0, 0)
    assert rolls[hour + 4 * 3600][1] == 1


def test_a_timeout_inside_a_window_is_counted_but_does_not_flip(night: Harness) -> None:
    night.send("start", "flaky", ts=NIGHT + 3 * 3600)  # times out at 03:10, inside
    night.move(NIGHT + 3 * 3600 + 15 * MIN)
    job = night.job("flaky")
    assert job.runs_timeout == 1
    assert job.state == "up"


def test_after_the_window_failures_and_recovery_behave_as_usual(night: Harness) -> None:
    night.run("flaky", NIGHT + 3 * 3600, 30, "failure")  # inside: no flip
    night.run("flaky", NIGHT + 4 * 3600, 30, "failure")  # 04:00, the window has closed
    assert night.job("flaky").state == "down"
    assert night.flips("flaky")[-1] == ("up", "down", "failed")
    night.run("flaky", NIGHT + 5 * 3600, 30)
    assert night.job("flaky").state == "up"


def test_a_job_down_before_the_window_recovers_after_it(night: Harness) -> None:
    night.run("flaky", NIGHT + 3600, 30, "failure")  # 01:00: down
    night.move(NIGHT + 4 * 3600 + 30)  # slots 02:00 and 03:00 skipped
    assert [st for s, st, _ in night.slots("flaky") if s in (NIGHT + 7200, NIGHT + 10800)] == [
        "skipped",
        "skipped",
    ]
    assert night.job("flaky").state == "down"
    night.run("flaky", NIGHT + 4 * 3600 + 40, 30)
    assert night.job("flaky").state == "up"


SILENT = """
jobs:
  - name: loop
    max_silence: 10m
  - name: forbid
    concurrency: forbid
maintenance:
  - name: quiet
    jobs: [loop, forbid]
    start: "2026-11-23T10:05:00Z"
    duration: 30m
"""


def test_silence_inside_a_window_is_judged_when_it_closes(tmp_path: Path) -> None:
    h = Harness(f"sqlite:///{tmp_path}/q.db", SILENT, start=T0)
    try:
        h.run("loop", T0 + 60, 5)  # silent from 10:11, inside the window
        h.move(T0 + 34 * MIN)
        assert h.job("loop").state == "up"
        h.move(T0 + 36 * MIN)  # the window closed at 10:35 and nothing came
        assert h.job("loop").state == "down"
        assert h.job("loop").reason == "silent"
        assert h.job("loop").state_since == T0 + 35 * MIN
    finally:
        h.close()


def test_silence_broken_inside_the_window_never_takes_the_job_down(tmp_path: Path) -> None:
    h = Harness(f"sqlite:///{tmp_path}/q.db", SILENT, start=T0)
    try:
        h.run("loop", T0 + 60, 5)
        h.run("loop", T0 + 30 * MIN, 5)  # an event before the window closes
        h.move(T0 + 39 * MIN)
        assert h.job("loop").state == "up"
        h.move(T0 + 41 * MIN)  # 10 minutes after the last event: silent as usual
        assert h.job("loop").reason == "silent"
    finally:
        h.close()


def test_an_overlap_inside_a_window_is_counted_and_takes_nothing_down(tmp_path: Path) -> None:
    h = Harness(f"sqlite:///{tmp_path}/q.db", SILENT, start=T0)
    try:
        h.run("forbid", T0 + 60, 5)
        h.send("start", "forbid", ts=T0 + 10 * MIN)
        h.send("start", "forbid", ts=T0 + 11 * MIN)
        job = h.job("forbid")
        assert job.overlap_total == 1
        assert job.state == "up"
    finally:
        h.close()


# --------------------------------------------------------------------------- DST
# A nightly window 02:00-04:00 on Riga's local clock. On the spring-forward night
# (2026-03-29, 03:00 EET -> 04:00 EEST at 01:00 UTC) it is open one real hour, 00:00-01:00 UTC;
# the night before, two hours (00:00-02:00 UTC).
DST = """
jobs:
  - name: half-hourly
    schedule: "*/30 * * * *"
    timezone: Europe/Riga
    grace: 1m
  - name: three-thirty
    schedule: "30 3 * * *"
    timezone: Europe/Riga
    grace: 1m
maintenance:
  - name: nightly
    jobs: [half-hourly, three-thirty]
    schedule: "0 2 * * *"
    duration: 2h
    timezone: Europe/Riga
"""


@pytest.mark.parametrize(
    ("job", "slot", "expected"),
    [
        ("half-hourly", "2026-03-28T23:30:00+00:00", "missed"),  # 01:30 EET
        ("half-hourly", "2026-03-29T00:00:00+00:00", "skipped"),  # 02:00 EET, opening
        ("half-hourly", "2026-03-29T00:30:00+00:00", "skipped"),  # 02:30 EET
        ("half-hourly", "2026-03-29T01:00:00+00:00", "missed"),  # 04:00 EEST: closed
        ("half-hourly", "2026-03-29T01:30:00+00:00", "missed"),
        # 03:30 does not exist that night: cronsim fires at 04:00 EEST, as the window closes.
        ("three-thirty", "2026-03-29T01:00:00+00:00", "missed"),
        # The night before, 03:30 EET is inside the window.
        ("three-thirty", "2026-03-28T01:30:00+00:00", "skipped"),
    ],
)
def test_a_recurring_window_on_the_spring_forward_night(
    tmp_path: Path, job: str, slot: str, expected: str
) -> None:
    h = Harness(f"sqlite:///{tmp_path}/d.db", DST, start=at("2026-03-27T23:00:00+00:00"))
    try:
        h.move(at("2026-03-29T03:00:00+00:00"))
        assert status(h, job, at(slot)) == expected
    finally:
        h.close()


# --------------------------------------------------------------------------- API windows
PLAIN = """
jobs:
  - name: five
    schedule: "*/5 * * * *"
    grace: 4m
"""


def test_a_window_opened_through_the_api_while_a_slot_is_late_skips_it(tmp_path: Path) -> None:
    h = Harness(f"sqlite:///{tmp_path}/a.db", PLAIN, start=T0 - 60)
    try:
        h.run("five", T0, 5)
        h.run("five", T0 + 5 * MIN, 5)
        h.move(T0 + 12 * MIN)  # the 10:10 slot is late (deadline 10:14)
        assert h.job("five").state == "late"
        now = h.clock.now()

        def open_(tx: Tx) -> int:
            row = open_window(
                tx,
                h.sidecar.engine,
                jobs=["five"],
                match={},
                start=now,
                end=now + 3600,
                reason="db upgrade",
                now=now,
            )
            return row.id

        window_id = h.sidecar.writer.run_sync(open_)
        assert h.job("five").in_maintenance
        h.move(T0 + 31 * MIN)
        assert status(h, "five", T0 + 10 * MIN) == "skipped"
        assert h.job("five").state in ("up", "late")
        # Ended early at 10:31: the 10:30 slot was in it, the 10:35 slot is judged as usual.
        h.sidecar.writer.run_sync(
            lambda tx: close_window(tx, h.sidecar.engine, window_id, h.clock.now())
        )
        assert not h.job("five").in_maintenance
        h.move(T0 + 45 * MIN)
        assert status(h, "five", T0 + 30 * MIN) == "skipped"
        assert status(h, "five", T0 + 35 * MIN) == "missed"
        assert h.job("five").state == "down"
    finally:
        h.close()


def test_api_windows_survive_a_restart(tmp_path: Path) -> None:
    h = Harness(f"sqlite:///{tmp_path}/a.db", PLAIN, start=T0 - 60)
    try:
        now = h.clock.now()
        h.sidecar.writer.run_sync(
            lambda tx: open_window(
                tx,
                h.sidecar.engine,
                jobs=["five"],
                match={},
                start=T0 + 20 * MIN,
                end=T0 + 40 * MIN,
                reason=None,
                now=now,
            )
        )
        h.restart(at_time=T0 + 10 * MIN)
        h.move(T0 + 60 * MIN)
        assert status(h, "five", T0 + 25 * MIN) == "skipped"
        assert status(h, "five", T0 + 45 * MIN) == "missed"
    finally:
        h.close()


# --------------------------------------------------------------------------- replay
def test_replay_judges_the_files_windows_as_the_live_sidecar_does(tmp_path: Path) -> None:
    cfg = parse_config(ONE_OFF + "sidecar:\n  catchup_delay: 0\n")
    since, until = T0 - 60, T0 + 30 * MIN
    result = replay(cfg, [], since, until)
    slots = {s["slot"]: s for s in result["jobs"]["five"]["slots"]}
    assert slots["2026-11-23T10:15:00Z"] == {
        "slot": "2026-11-23T10:15:00Z",
        "status": "skipped",
        "run_id": None,
        "reason": "maintenance",
    }
    assert slots["2026-11-23T10:05:00Z"]["status"] == "missed"
    live = Harness(f"sqlite:///{tmp_path}/l.db", ONE_OFF, start=since)
    try:
        live.move(until)
        statuses = [(s, st) for s, st, _ in live.slots("five")]
    finally:
        live.close()
    replayed = [
        (at(s["slot"].replace("Z", "+00:00")), s["status"])
        for s in result["jobs"]["five"]["slots"]
        if s["status"] != "pending"
    ]
    assert replayed == statuses
    assert json.loads(json.dumps(result)) == result  # as the CLI prints it


# --------------------------------------------------------------------------- window spans
def _window(schedule: str, duration: float, timezone: str) -> Window:
    spec = WindowSpec("w", jobs=("x",), schedule=schedule, duration=duration, timezone=timezone)
    return Window.from_spec(spec)


@pytest.mark.parametrize(
    ("schedule", "duration", "probe", "span"),
    [
        # An ordinary night: 02:00-04:00 EET is 00:00-02:00 UTC.
        ("0 2 * * *", 7200, "2026-03-10T01:00:00+00:00", ("00:00", "02:00")),
        # Spring-forward: 02:00 EET to 04:00 EEST, one real hour.
        ("0 2 * * *", 7200, "2026-03-29T00:30:00+00:00", ("00:00", "01:00")),
        # Fall-back (2026-10-25): 02:00 EEST to 04:00 EET, three real hours.
        ("0 2 * * *", 7200, "2026-10-25T01:30:00+00:00", ("23:00", "02:00")),
        # A close that the spring-forward jump skips (03:30 local) happens at the jump.
        ("0 1 * * *", 9000, "2026-03-29T00:30:00+00:00", ("23:00", "01:00")),
    ],
)
def test_a_recurring_window_counts_its_duration_on_the_local_clock(
    schedule: str, duration: float, probe: str, span: tuple[str, str]
) -> None:
    found = _window(schedule, duration, "Europe/Riga").span_at(at(probe))
    assert found is not None
    assert tuple(format_ts(t)[11:16] for t in found) == span


def test_a_window_is_open_from_its_opening_until_just_before_its_close() -> None:
    w = _window("0 2 * * *", 7200, "UTC")
    night = at("2026-03-10T02:00:00+00:00")
    assert w.span_at(night - 1) is None
    assert w.span_at(night) == (night, night + 7200)
    assert w.span_at(night + 7199) == (night, night + 7200)
    assert w.span_at(night + 7200) is None
    assert w.overlaps(night - 60, night)  # a slot whose grace reaches the opening
    assert not w.overlaps(night + 7200, night + 7260)
    assert w.next_boundary(night - 1) == night
    assert w.next_boundary(night) == night + 7200
