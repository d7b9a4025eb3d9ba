"""The evaluator's semantics under a controlled clock (DESIGN.md "Concepts and exact semantics")."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jobpulse.instrumentation.wire import Event
from jobpulse.sidecar.store.inbox import inbox_lag
from tests.sidecar.harness import T0, Harness, at

FIVE = """
jobs:
  - name: five
    schedule: "*/5 * * * *"
"""


@pytest.fixture
def h(tmp_path: object) -> Iterator[Harness]:
    harness = Harness(f"sqlite:///{tmp_path}/s.db", FIVE, start=T0 - 60)
    yield harness
    harness.close()


def test_run_exactly_at_the_slot_fills_it(h: Harness) -> None:
    rid = h.run("five", T0, 10)
    h.move(T0 + 200)
    assert (T0, "filled", rid) in h.slots("five")
    assert h.missed("five") == []
    job = h.job("five")
    assert job.state == "up"
    assert job.runs_success == 1


def test_early_within_tolerance_fills_the_next_slot(h: Harness) -> None:
    # */5: early tolerance is min(60 s, 10% of 300 s) = 30 s
    rid = h.run("five", T0 - 30, 5)
    h.move(T0 + 120)
    assert (T0, "filled", rid) in h.slots("five")
    assert h.missed("five") == []


def test_earlier_than_tolerance_fills_nothing_and_the_slot_is_missed(h: Harness) -> None:
    h.run("five", T0 - 31, 5)
    h.move(T0 + 31)
    assert h.missed("five") == [T0]


def test_late_within_grace_fills_the_slot(h: Harness) -> None:
    # */5: grace is 10% of 300 s clamped to >= 30 s: 30 s; a start at exactly s + grace is in time
    rid = h.run("five", T0 + 30, 5)
    h.move(T0 + 200)
    assert (T0, "filled", rid) in h.slots("five")
    assert h.job("five").state == "up"


def test_late_past_grace_is_missed_and_the_late_run_is_still_recorded(h: Harness) -> None:
    h.move(T0 + 30.5)
    assert h.missed("five") == [T0]
    assert h.job("five").state == "down" and h.job("five").reason == "missed"
    rid = h.run("five", T0 + 45, 5)
    runs = h.runs("five")
    assert [r.run_id for r in runs] == [rid]
    assert runs[0].late and runs[0].slot is None and runs[0].outcome == "success"
    assert h.missed("five") == [T0]  # once missed, always missed
    assert h.job("five").missed_total == 1


def test_late_run_arriving_before_the_tick_does_not_fill_a_passed_slot(h: Harness) -> None:
    # the event arrives before the evaluator judged the slot; its start is past the window
    h.send("start", "five", ts=T0 + 45, arrive=T0 + 45)
    h.move(T0 + 60)
    assert h.missed("five") == [T0]


def test_two_runs_in_one_slot(h: Harness) -> None:
    first = h.run("five", T0 + 1, 2)
    second = h.run("five", T0 + 5, 2)
    h.move(T0 + 200)
    assert (T0, "filled", first) in h.slots("five")
    runs = {r.run_id: r for r in h.runs("five")}
    assert runs[second].slot is None and not runs[second].late
    assert h.missed("five") == []
    assert h.job("five").runs_success == 2


def test_start_without_finish_times_out_after_max_runtime(h: Harness) -> None:
    rid = h.run_id = "r-stuck"
    h.send("start", "five", ts=T0 + 1, run_id=rid)
    h.move(T0 + 1 + 270)  # default max_runtime: 90% of the 300 s period
    assert h.runs("five")[0].outcome == "running"
    h.move(T0 + 1 + 270.5)
    job = h.job("five")
    assert h.runs("five")[0].outcome == "timeout"
    assert job.runs_timeout == 1 and job.state == "down" and job.reason == "timed_out"
    assert job.running == 0


def test_finish_after_timeout_is_recorded_and_counts_toward_recovery(h: Harness) -> None:
    h.send("start", "five", ts=T0 + 1, run_id="slow")
    h.move(T0 + 280)
    h.send("success", "five", ts=T0 + 290, run_id="slow", duration=289)
    run = h.runs("five")[0]
    assert run.outcome == "timeout" and run.late_outcome == "success"
    assert run.finished_at == pytest.approx(T0 + 290)
    job = h.job("five")
    assert job.runs_timeout == 1 and job.runs_success == 0  # counters stay as they were
    assert job.state in ("up", "late")
    assert h.flips("five")[-1] == ("down", "up", None)


def test_retries_then_success_are_not_failures(h: Harness) -> None:
    h.send("start", "five", ts=T0 + 1, run_id="a1", attempt=1)
    h.send(
        "failure", "five", ts=T0 + 2, run_id="a1", attempt=1, will_retry=True, error_type="Timeout"
    )
    h.send("start", "five", ts=T0 + 3, run_id="a2", attempt=2)
    h.send("success", "five", ts=T0 + 4, run_id="a2", attempt=2)
    job = h.job("five")
    assert (job.runs_retry, job.runs_failure, job.runs_success) == (1, 0, 1)
    assert job.state == "up" and job.bad_streak == 0
    assert job.last_failure_at is None


def test_retries_exhausted_is_one_failure(h: Harness) -> None:
    for attempt in (1, 2):
        h.send("start", "five", ts=T0 + attempt, run_id=f"a{attempt}", attempt=attempt)
        h.send(
            "failure",
            "five",
            ts=T0 + attempt + 0.5,
            run_id=f"a{attempt}",
            attempt=attempt,
            will_retry=True,
        )
    h.send("start", "five", ts=T0 + 3, run_id="a3", attempt=3)
    h.send("failure", "five", ts=T0 + 3.5, run_id="a3", attempt=3, error_type="ValueError")
    job = h.job("five")
    assert (job.runs_retry, job.runs_failure) == (2, 1)
    assert job.state == "down" and job.reason == "failed"


THRESHOLDS = """
jobs:
  - name: flaky
    schedule: "*/5 * * * *"
    failure_threshold: 3
    recovery_threshold: 2
"""


@pytest.mark.parametrize("failures, state", [(2, "up"), (3, "down")])
def test_failure_threshold(tmp_path: object, failures: int, state: str) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", THRESHOLDS, start=T0 - 60)
    try:
        h.run("flaky", T0, 1)
        for i in range(failures):
            h.run("flaky", T0 + 300 * (i + 1), 1, outcome="failure")
        job = h.job("flaky")
        assert job.state == state and job.bad_streak == failures
    finally:
        h.close()


def test_recovery_threshold(store_url: str) -> None:
    h = Harness(store_url, THRESHOLDS, start=T0 - 60)
    try:
        for i in range(3):
            h.run("flaky", T0 + 300 * i, 1, outcome="failure")
        assert h.job("flaky").state == "down"
        h.run("flaky", T0 + 900, 1)
        assert h.job("flaky").state == "down"
        h.run("flaky", T0 + 1200, 1)
        assert h.job("flaky").state == "up"
        assert h.flips("flaky") == [("new", "down", "failed"), ("down", "up", None)]
    finally:
        h.close()


def test_a_bad_outcome_ends_a_success_streak_and_retries_end_neither(h: Harness) -> None:
    h.run("five", T0, 1)
    h.send("start", "five", ts=T0 + 300, run_id="r", attempt=1)
    h.send("failure", "five", ts=T0 + 301, run_id="r", will_retry=True)
    h.send("start", "five", ts=T0 + 302, run_id="c")
    h.send("cancelled", "five", ts=T0 + 303, run_id="c")
    assert h.job("five").good_streak == 1


def test_pause_resume_no_misses_while_paused(h: Harness) -> None:
    h.run("five", T0, 1)
    with h.sidecar.store.transaction() as tx:
        h.sidecar.engine.pause(tx, tx.job("five"), h.clock.now())
    h.move(T0 + 3 * 3600)
    assert h.job("five").state == "paused"
    assert h.missed("five") == []
    h.run("five", T0 + 3 * 3600 + 1, 1)  # runs are still recorded while paused
    assert h.job("five").runs_success == 2
    with h.sidecar.store.transaction() as tx:
        h.sidecar.engine.resume(tx, tx.job("five"), h.clock.now())
    assert h.job("five").state in ("up", "late")
    h.move(T0 + 3 * 3600 + 331)
    assert h.missed("five") == [T0 + 3 * 3600 + 300]
    assert h.flips("five") == [
        ("new", "up", None),
        ("up", "paused", None),
        ("paused", "up", None),
        ("up", "down", "missed"),
    ]


def test_configured_job_that_never_reports_goes_down_after_first_slot(h: Harness) -> None:
    h.move(T0 + 30)
    assert h.job("five").state == "new"  # late is only shown from up
    h.move(T0 + 30.01)
    job = h.job("five")
    assert job.state == "down" and job.reason == "missed"
    assert h.flips("five") == [("new", "down", "missed")]


def test_downtime_of_three_hours_is_caught_up_exactly_once(store_url: str) -> None:
    h = Harness(store_url, FIVE, start=T0 - 60)
    try:
        for i in range(12):  # 10:00 .. 10:55 all run
            h.run("five", T0 + 300 * i + 2, 10)
        h.move(T0 + 57 * 60)
        assert h.missed("five") == []
        # down from 10:57 to 13:57: slots 11:00 .. 13:55 pass unseen (36 of them)
        h.restart(at_time=T0 + 237 * 60, catchup_delay=60)
        h.move(T0 + 237 * 60 + 59)
        assert h.missed("five") == []  # still within catchup_delay
        h.move(T0 + 238 * 60 + 0.5)
        missed = h.missed("five")
        assert len(missed) == 36
        assert missed[0] == at("2026-11-23T11:00:00+00:00")
        assert missed[-1] == at("2026-11-23T13:55:00+00:00")
        assert h.job("five").missed_total == 36
        h.restart(at_time=T0 + 239 * 60, catchup_delay=60)
        h.move(T0 + 240 * 60 + 1)  # 14:00:01, before the 14:00 slot's deadline
        assert h.missed("five") == missed
        assert h.job("five").missed_total == 36
    finally:
        h.close()


def test_runs_spooled_during_downtime_fill_their_slots_within_catchup_delay(
    tmp_path: object,
) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", FIVE, start=T0 - 60)
    try:
        h.run("five", T0 + 2, 10)
        h.move(T0 + 4 * 60)
        h.restart(at_time=T0 + 3 * 3600, catchup_delay=60)
        restarted = h.clock.now()
        # the client spooled two runs while the sidecar was down; they arrive 20 s after start-up
        for slot in (T0 + 300, T0 + 3600):
            rid = f"spooled-{slot}"
            h.send(
                "start",
                "five",
                ts=slot + 3,
                run_id=rid,
                arrive=restarted + 20,
                sent_at=restarted + 20,
            )
            h.send("success", "five", ts=slot + 40, run_id=rid, sent_at=restarted + 20)
        h.move(restarted + 61)
        missed = h.missed("five")
        assert T0 + 300 not in missed and T0 + 3600 not in missed
        # 10:05 .. 13:00 is 36 slots (13:00's deadline passed at 13:00:30); two were filled
        assert len(missed) == 34
        assert not any(r.clock_skew for r in h.runs("five"))
    finally:
        h.close()


def test_catchup_past_the_cap_is_one_gap_record(tmp_path: object) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", FIVE, start=T0 - 60, catchup_cap=10)
    try:
        h.run("five", T0, 1)
        h.restart(at_time=T0 + 3 * 3600 + 1)
        h.move(T0 + 3 * 3600 + 2)
        slots = [s for s in h.slots("five") if s[1] != "filled"]
        assert [s[1] for s in slots] == ["missed"] * 10 + ["gap"]
        assert h.job("five").missed_total == 35  # 10:05 .. 12:55
        with h.sidecar.store.session() as s:
            from sqlalchemy import select

            from jobpulse.sidecar.domain.tables import Slot

            gap = s.scalars(select(Slot).where(Slot.status == "gap")).one()
            assert gap.count == 25
    finally:
        h.close()


WEEKDAYS = """
jobs:
  - name: report
    schedule: "0 9 * * 1-5"
"""


def test_weekday_cron_over_a_weekend(tmp_path: object) -> None:
    friday = at("2026-11-20T08:00:00+00:00")
    h = Harness(f"sqlite:///{tmp_path}/s.db", WEEKDAYS, start=friday)
    try:
        h.run("report", friday + 3600 + 5, 60)
        h.move(at("2026-11-21T12:00:00+00:00"))  # Saturday
        engine = h.sidecar.engine
        assert engine.expected_interval(h.job("report"), h.clock.now()) == 72 * 3600
        h.move(at("2026-11-23T08:59:00+00:00"))  # Monday before the run
        assert h.missed("report") == []
        assert h.job("report").state == "up"
        h.run("report", at("2026-11-23T09:00:04+00:00"), 60)
        h.move(at("2026-11-23T09:10:00+00:00"))  # Monday morning after it
        assert engine.expected_interval(h.job("report"), h.clock.now()) == 72 * 3600
        assert h.missed("report") == []
    finally:
        h.close()


FINISH_ONLY = """
jobs:
  - name: curl-job
    schedule: "*/5 * * * *"
    grace: 5m
"""


def test_finish_only_pings_of_a_long_job_are_not_missed(tmp_path: object) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", FINISH_ONLY, start=T0 - 60)
    try:
        for i in range(12):
            h.send("success", "curl-job", ts=T0 + 300 * i + 280)  # `job && curl`, 4 m 40 s
        h.move(T0 + 3600 + 299)
        assert h.missed("curl-job") == []
        filled = [s for s, status, _ in h.slots("curl-job") if status == "filled"]
        assert filled == [T0 + 300 * i for i in range(12)]
    finally:
        h.close()


def test_client_clock_ten_minutes_behind_is_corrected(h: Harness) -> None:
    skew = -600.0
    arrival = T0 + 3
    h.send("start", "five", ts=T0 + 2 + skew, run_id="s", arrive=arrival, sent_at=arrival + skew)
    run = h.runs("five")[0]
    assert run.clock_skew
    assert run.started_at == pytest.approx(T0 + 2 + 0, abs=1.5)
    assert run.slot == T0


def test_spooled_event_hours_old_is_not_taken_for_skew(h: Harness) -> None:
    h.move(T0 + 3 * 3600)
    h.send("start", "five", ts=T0 + 1, run_id="old", sent_at=h.clock.now())
    run = h.runs("five")[0]
    assert not run.clock_skew
    assert run.started_at == T0 + 1
    assert run.slot is None and run.late  # T0 was judged missed long ago


MINUTELY = """
jobs:
  - name: minutely
    schedule: "* * * * *"
"""


def test_minutely_job_always_two_seconds_late_is_shown_late_without_flips(
    tmp_path: object,
) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", MINUTELY, start=T0 - 30)
    try:
        seen = set()
        for i in range(10):
            slot = T0 + 60 * i
            h.move(slot + 1)
            seen.add(h.job("minutely").state)
            h.run("minutely", slot + 2, 5)
        assert "late" in seen
        assert h.missed("minutely") == []
        assert h.flips("minutely") == [("new", "up", None)]
    finally:
        h.close()


def test_scheduler_reported_missed_event(h: Harness) -> None:
    h.run("five", T0, 1)
    h.send("missed", "five", ts=T0 + 301, scheduled_for=T0 + 300, reason="misfire", run_id="m1")
    assert h.missed("five") == [T0 + 300]
    job = h.job("five")
    assert job.state == "down" and job.reason == "missed" and job.missed_total == 1
    h.move(T0 + 400)  # the evaluator passes the same slot: no second record
    assert h.job("five").missed_total == 1
    h.send("missed", "five", ts=T0 + 301, scheduled_for=T0 + 300, run_id="m1")  # re-sent
    assert h.job("five").missed_total == 1


def test_max_instances_skip_counts_an_overlap(h: Harness) -> None:
    h.send("missed", "five", ts=T0 + 1, scheduled_for=T0, reason="max_instances")
    job = h.job("five")
    assert job.overlap_total == 1 and job.missed_total == 1


def test_overlap_counted_and_forbid_takes_the_job_down(tmp_path: object) -> None:
    cfg = """
jobs:
  - name: allow
    schedule: "*/5 * * * *"
  - name: forbid
    schedule: "*/5 * * * *"
    concurrency: forbid
"""
    h = Harness(f"sqlite:///{tmp_path}/s.db", cfg, start=T0 - 60)
    try:
        for name in ("allow", "forbid"):
            h.run(name, T0 - 100, 1)
            h.send("start", name, ts=T0 + 1, run_id=f"{name}-1")
            h.send("start", name, ts=T0 + 2, run_id=f"{name}-2")
        assert h.job("allow").overlap_total == 1 and h.job("allow").state == "up"
        forbid = h.job("forbid")
        assert forbid.overlap_total == 1
        assert forbid.state == "down" and forbid.reason == "overlap"
    finally:
        h.close()


def test_stale_when_progress_stops(tmp_path: object) -> None:
    cfg = """
jobs:
  - name: long
    schedule: "0 * * * *"
    heartbeat_timeout: 2m
"""
    h = Harness(f"sqlite:///{tmp_path}/s.db", cfg, start=T0 - 60)
    try:
        h.send("start", "long", ts=T0 + 1, run_id="L")
        h.send("progress", "long", ts=T0 + 100, run_id="L", count=10)
        h.move(T0 + 220)
        assert h.job("long").state != "down"
        h.move(T0 + 221)
        job = h.job("long")
        assert job.state == "down" and job.reason == "stale"
        assert h.runs("long")[0].stale and h.runs("long")[0].count == 10
    finally:
        h.close()


def test_unscheduled_job_with_max_silence(tmp_path: object) -> None:
    cfg = """
jobs:
  - name: worker
    max_silence: 10m
"""
    h = Harness(f"sqlite:///{tmp_path}/s.db", cfg, start=T0)
    try:
        h.run("worker", T0 + 5, 1)  # its last event arrives at T0 + 6
        h.move(T0 + 6 + 600)
        assert h.job("worker").state == "up"
        h.move(T0 + 6 + 600.01)
        job = h.job("worker")
        assert job.state == "down" and job.reason == "silent"
        assert h.missed("worker") == []  # unscheduled jobs never miss a slot
        h.run("worker", T0 + 700, 1)
        assert h.job("worker").state == "up"
    finally:
        h.close()


EVERY = """
jobs:
  - name: poll
    every: 10m
"""


def test_every_is_anchored_on_runs(tmp_path: object) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", EVERY, start=T0)
    try:
        # first slot: creation + 10 m; a run at 7 m is early (more than 60 s): it fills
        # nothing and re-anchors the series at 17 m, dropping the 10 m slot
        h.run("poll", T0 + 420, 1)
        h.move(T0 + 1000)
        assert h.missed("poll") == []
        assert h.job("poll").cursor == T0 + 1020
        h.run("poll", T0 + 1025, 1)  # within grace (60 s: 10% of 600 s) of 17 m: fills it
        assert (T0 + 1020, "filled") in [(s, st) for s, st, _ in h.slots("poll")]
        # nothing more: misses continue every 10 m from the last anchor (27 m 05 s)
        h.move(T0 + 1025 + 600 * 3 + 61)
        assert h.missed("poll") == [T0 + 1025 + 600 * k for k in (1, 2, 3)]
    finally:
        h.close()


def test_every_run_past_grace_before_the_tick_still_misses_the_slot(tmp_path: object) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", EVERY, start=T0)
    try:
        # the slot at 10 m (grace 60 s) has passed when a run at 12 m arrives, before any tick
        h.send("start", "poll", ts=T0 + 720, arrive=T0 + 720)
        assert h.missed("poll") == [T0 + 600]
        assert h.runs("poll")[0].late
    finally:
        h.close()


def test_idempotent_events_are_counted_once(h: Harness) -> None:
    for _ in range(2):
        h.send("start", "five", ts=T0 + 1, run_id="dup")
        result = h.send("success", "five", ts=T0 + 2, run_id="dup")
    assert result.duplicates == 1 and result.accepted == 0
    assert h.job("five").runs_success == 1
    assert len(h.runs("five")) == 1


def test_auto_registered_job_fills_its_first_runs_slot(h: Harness) -> None:
    h.send("start", "fresh", ts=T0 + 2, run_id="f", job_config={"schedule": "*/5 * * * *"})
    run = h.runs("fresh")[0]
    assert run.slot == T0  # the slot before the job existed is filled, never missed
    h.move(T0 + 330.5)
    assert h.missed("fresh") == [T0 + 300]


def test_short_jobs_time_out_at_max_runtime_not_after_a_delivery_allowance(
    tmp_path: object,
) -> None:
    cfg = 'jobs:\n  - name: quick\n    schedule: "*/15 * * * * *"\n'
    h = Harness(f"sqlite:///{tmp_path}/s.db", cfg, start=T0 - 5)
    try:
        h.send("start", "quick", ts=T0 + 1, run_id="q")  # delivered at once
        h.move(T0 + 1 + 13.5 + 0.01)  # 90% of the 15 s period
        assert h.runs("quick")[0].outcome == "timeout"
    finally:
        h.close()


def test_a_spooled_start_waits_for_its_finish(h: Harness) -> None:
    h.move(T0 + 3600)
    h.send("start", "five", ts=T0 + 1, run_id="old", sent_at=T0 + 3600)
    h.move(T0 + 3600 + 30)  # its max_runtime passed long ago; the finish is on its way
    assert h.runs("five")[0].outcome == "running"
    h.send("success", "five", ts=T0 + 20, run_id="old", duration=19)
    assert h.runs("five")[0].outcome == "success"


def test_runs_recorded_while_paused_count_when_resumed(h: Harness) -> None:
    h.run("five", T0, 1)
    with h.sidecar.store.transaction() as tx:
        h.sidecar.engine.pause(tx, tx.job("five"), h.clock.now())
    h.run("five", T0 + 300, 1, outcome="failure")  # recorded while paused
    assert h.job("five").state == "paused"
    with h.sidecar.store.transaction() as tx:
        h.sidecar.engine.resume(tx, tx.job("five"), h.clock.now())
    job = h.job("five")
    assert job.state == "down"
    assert job.reason == "failed"


TEN = """
jobs:
  - name: ten
    every: 10m
"""


def test_every_runs_spooled_newest_first_during_catchup_fill_their_own_intervals(
    tmp_path: object,
) -> None:
    # During catchup_delay an every: job's events wait in the inbox and are then applied in ts
    # order: a newer run arriving first cannot judge the older run's interval missed.
    h = Harness(f"sqlite:///{tmp_path}/s.db", TEN, start=T0 - 60)
    try:
        first = T0 + 540  # created at T0 - 60: the first interval ends at T0 + 540
        h.run("ten", first, 5)
        h.move(first + 60)
        h.restart(at_time=T0 + 3 * 3600, catchup_delay=60)
        restarted = h.clock.now()
        # two runs while the sidecar was down, delivered newest first 20 s after start-up
        for start in (first + 1200 + 5, first + 600 + 5):
            rid = f"spooled-{start}"
            h.send("start", "ten", ts=start, run_id=rid, arrive=restarted + 20)
            h.send("success", "ten", ts=start + 30, run_id=rid, duration=30.0)
        h.move(restarted + 61)
        slots = {s: (status, rid) for s, status, rid in h.slots("ten")}
        assert slots[first + 600] == ("filled", f"spooled-{first + 605}")
        assert first + 600 not in h.missed("ten")
        assert not any(r.late for r in h.runs("ten"))
        assert h.job("ten").runs_success == 3
    finally:
        h.close()


TEN_AND_HOURLY = (
    TEN
    + """  - name: hourly
    schedule: "0 * * * *"
"""
)


def test_rows_held_during_catchup_stay_in_the_inbox_among_the_rows_applied_around_them(
    tmp_path: object,
) -> None:
    # One apply batch reads an every: job's rows interleaved with a cron job's. During the
    # catch-up delay the every: job's are held back; the rows applied are deleted with the
    # batch's effects, and the held rows between them must stay until the delay ends.
    h = Harness(f"sqlite:///{tmp_path}/s.db", TEN_AND_HOURLY, start=T0 - 60)
    try:
        h.restart(at_time=T0 + 3 * 3600, catchup_delay=60)
        restarted = h.clock.now()
        events = []
        for n in range(3):
            hour = T0 + n * 3600
            events.append(Event(type="success", job="hourly", run_id=f"h{n}", ts=hour + 40))
            events.append(Event(type="success", job="ten", run_id=f"t{n}", ts=hour + 600))
        events.append(Event(type="success", job="hourly", run_id="h3", ts=T0 + 3 * 3600 + 5))
        h.sidecar.appender.submit(events, at=restarted + 20).result(10)

        h.clock.set(restarted + 20)
        h.sidecar.apply_pending()
        with h.sidecar.store.engine.connect() as conn:
            assert inbox_lag(conn)[0] == 3  # the every: job's three, held
        assert h.job("hourly").runs_success == 4
        assert h.job("ten").runs_success == 0

        h.move(restarted + 61)
        with h.sidecar.store.engine.connect() as conn:
            assert inbox_lag(conn)[0] == 0
        assert h.job("ten").runs_success == 3
        assert h.job("hourly").runs_success == 4
    finally:
        h.close()
