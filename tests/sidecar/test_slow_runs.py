"""Slow runs (docs/concepts.md "Slow runs"): a finished run slower than `anomaly.factor` x the
job's p95 duration over `anomaly.window`, judged against the history before it and only once
that window holds `min_runs` runs, is flagged `slow` and counted in `Job.slow_total`."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from jobpulse.instrumentation.errors import InvalidJobConfig
from jobpulse.instrumentation.spec import parse_job_fields
from jobpulse.instrumentation.wire import format_ts, parse_event
from jobpulse.sidecar.domain.jobconfig import Anomaly, JobConfig
from jobpulse.sidecar.http.views import run_view
from tests.sidecar.harness import T0, Harness

HOUR = 3600.0
DAY = 86400.0
USUAL = 10.0  # every run of the history takes 10 s; its p95 is 10 s


def _config(anomaly: Any = None) -> str:
    line = "" if anomaly is None else f"    anomaly: {json.dumps(anomaly)}\n"
    return f"jobs:\n  - name: etl\n{line}"


@pytest.fixture
def harness(store_url: str) -> Iterator[Any]:
    made: list[Harness] = []

    def make(anomaly: Any = None) -> Harness:
        h = Harness(store_url, _config(anomaly), start=T0)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def history(h: Harness, runs: int, *, ago: float = HOUR, duration: float = USUAL) -> None:
    """``runs`` finish-only successes with a duration, one a minute, ending ``ago`` before now."""
    now = h.clock.now()
    for i in range(runs):
        h.send("success", "etl", ts=now - ago - 60.0 * i, duration=duration)


@dataclass(frozen=True)
class Case:
    name: str
    duration: float
    slow: bool
    anomaly: Any = None
    runs: int = 20
    ago: float = HOUR
    outcome: str = "success"
    fields: dict[str, Any] = field(default_factory=dict)


CASES = [
    Case("five-times-slower", 5 * USUAL, True),
    Case("one-and-a-half-times", 1.5 * USUAL, False),
    Case("exactly-at-the-bar-is-not-slow", 3 * USUAL, False),
    Case("below-min-runs-never-slow", 50 * USUAL, False, runs=19),
    Case("smaller-min-runs", 5 * USUAL, True, anomaly={"min_runs": 5}, runs=5),
    Case("higher-factor", 5 * USUAL, False, anomaly={"factor": 6}),
    Case("lower-factor", 2 * USUAL, True, anomaly={"factor": 1.5}),
    Case("history-outside-the-window", 5 * USUAL, False, anomaly={"window": "1d"}, ago=2 * DAY),
    Case("longer-window-holds-it", 5 * USUAL, True, anomaly={"window": "3d"}, ago=2 * DAY),
    Case("default-window-is-7d", 5 * USUAL, False, ago=8 * DAY + HOUR),
    Case("disabled", 50 * USUAL, False, anomaly=False),
    Case("disabled-off", 50 * USUAL, False, anomaly="off"),
    Case("failed-run-judged-too", 5 * USUAL, True, outcome="failure"),
    Case(
        "retried-attempt-not-judged",
        5 * USUAL,
        False,
        outcome="failure",
        fields={"will_retry": True},
    ),
    Case("cancelled-not-judged", 5 * USUAL, False, outcome="cancelled"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_finish_only_run_with_duration(harness: Any, case: Case) -> None:
    h = harness(case.anomaly)
    history(h, case.runs, ago=case.ago)
    rid = uuid.uuid4().hex
    h.send(case.outcome, "etl", run_id=rid, duration=case.duration, **case.fields)
    run = next(r for r in h.runs("etl") if r.run_id == rid)
    assert run.slow is case.slow
    assert ("slow" in run_view(run)["flags"]) is case.slow
    assert h.job("etl").slow_total == (1 if case.slow else 0)
    assert all(not r.slow for r in h.runs("etl") if r.run_id != rid)


@pytest.mark.parametrize(("duration", "slow"), [(5 * USUAL, True), (1.5 * USUAL, False)])
def test_start_and_finish_pings_carry_a_duration(harness: Any, duration: float, slow: bool) -> None:
    h = harness()
    history(h, 20)
    h.run("etl", h.clock.now(), duration)
    assert [r.slow for r in h.runs("etl")][-1] is slow
    assert h.job("etl").slow_total == int(slow)


def test_finish_without_a_duration_is_not_judged(harness: Any) -> None:
    h = harness()
    history(h, 20)
    h.send("success", "etl")  # a bare ping: no start, no duration
    assert h.job("etl").slow_total == 0


def test_the_run_never_raises_its_own_bar_and_a_batch_sees_its_earlier_runs(harness: Any) -> None:
    """History and the slow run in one batch: the earlier events count, the run itself not."""
    h = harness({"min_runs": 20})
    now = h.clock.now()

    def finish(ts: float, duration: float) -> Any:
        raw = {"type": "success", "job": "etl", "run_id": uuid.uuid4().hex, "ts": format_ts(ts)}
        return parse_event({**raw, "duration": duration})[0]

    batch = [finish(now - HOUR - 60 * i, USUAL) for i in range(19)]
    batch.append(finish(now, 50 * USUAL))  # 19 runs before it: not judged yet
    batch.append(finish(now, 50 * USUAL))  # 20 before it, one of them slow: p95 still 10 s
    h.ping(batch)
    assert [r.slow for r in h.runs("etl") if r.duration == 50 * USUAL] in (
        [False, True],
        [True, False],
    )
    assert h.job("etl").slow_total == 1


def test_counter_survives_restart(harness: Any) -> None:
    h = harness()
    history(h, 20)
    h.send("success", "etl", duration=5 * USUAL)
    h.restart(at_time=h.clock.now() + 60)
    assert h.job("etl").slow_total == 1
    h.send("failure", "etl", duration=5 * USUAL)
    assert h.job("etl").slow_total == 2
    assert sum(r.slow for r in h.runs("etl")) == 2


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        (False, False),
        ("off", False),
        (True, {}),
        (
            {"factor": 3, "window": "7d", "min_runs": 20},
            {"factor": 3.0, "window": 7 * DAY, "min_runs": 20},
        ),
        ({"window": "36h"}, {"window": 36 * HOUR}),
        (None, None),
    ],
)
def test_anomaly_field_parses(raw: Any, parsed: Any) -> None:
    assert parse_job_fields("etl", {"anomaly": raw}) == {"anomaly": parsed}


@pytest.mark.parametrize(
    "raw",
    [
        {"factor": 0.5},
        {"factor": True},
        {"window": "30m"},
        {"window": "31d"},
        {"min_runs": 0},
        {"threshold": 2},
        "sometimes",
        3,
    ],
)
def test_bad_anomaly_field_names_it(raw: Any) -> None:
    with pytest.raises(InvalidJobConfig, match="anomaly"):
        parse_job_fields("etl", {"anomaly": raw})


def test_job_config_defaults_to_on() -> None:
    assert JobConfig.from_fields("etl", {}).anomaly == Anomaly(3.0, 7 * DAY, 20)
    assert JobConfig.from_fields("etl", {"anomaly": False}).anomaly is None
    assert JobConfig.from_fields("etl", {"anomaly": {"factor": 5.0}}).anomaly == Anomaly(5.0)


def _slow_samples(h: Harness) -> dict[str, float]:
    h.sidecar.cache.refresh()
    text = h.sidecar.cache.render().decode()
    return {
        s.labels["job_name"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "jobpulse_job_slow_runs_total"
    }


def test_counter_is_exposed_and_preset_to_zero(store_url: str) -> None:
    h = Harness(store_url, "jobs:\n  - name: etl\n  - name: quiet\n", start=T0)
    try:
        assert _slow_samples(h) == {"etl": 0, "quiet": 0}
        history(h, 20)
        h.send("success", "etl", duration=5 * USUAL)
        assert _slow_samples(h) == {"etl": 1, "quiet": 0}
    finally:
        h.close()


@pytest.mark.parametrize("jobs", [3, 40])
def test_a_batch_reads_the_windows_of_all_its_jobs_in_one_statement(
    tmp_path: Any, jobs: int
) -> None:
    names = [f"job-{i}" for i in range(jobs)]
    config = "jobs:\n" + "".join(f"  - name: {n}\n" for n in names)
    h = Harness(f"sqlite:///{tmp_path}/cost.db", config, start=T0)
    try:
        now = h.clock.now()

        def finish(job: str, ts: float) -> Any:
            raw = {"type": "success", "job": job, "run_id": uuid.uuid4().hex}
            return parse_event({**raw, "ts": format_ts(ts), "duration": USUAL})[0]

        h.ping([finish(n, now - HOUR - 60 * i) for n in names for i in range(3)])
        statements: list[str] = []

        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(h.sidecar.store.engine, "before_cursor_execute", note)
        try:
            h.ping([finish(n, now) for n in names])
        finally:
            event.remove(h.sidecar.store.engine, "before_cursor_execute", note)
        windows = [s for s in statements if "FROM rollups" in s and "rollups.hour >=" in s]
        assert len(windows) == 1, windows
    finally:
        h.close()
