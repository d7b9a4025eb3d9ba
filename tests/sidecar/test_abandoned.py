"""Abandoned runs (docs/concepts.md "Runs"): a run with no max_runtime that will never finish is
closed as `timeout` (error_type `abandoned`) when its process starts another run or when it sent
nothing for `abandon_after`, before any later start is judged for overlap."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from jobpulse.instrumentation.errors import ConfigError
from jobpulse.instrumentation.wire import format_ts
from jobpulse.sidecar.settings import build_settings
from tests.sidecar.harness import T0, Harness
from tests.sidecar.process import JOBPULSE

DAY = 86400.0
EPS = 0.001

CONFIG = """
jobs:
  - name: worker
  - name: strict
    concurrency: forbid
  - name: bounded
    max_runtime: 1h
"""

SAME = {"host": "web-1", "pid": 7}


@contextmanager
def _sidecar(tmp_path: Path, config: str = CONFIG, **settings: Any) -> Iterator[Harness]:
    # A context manager, not a fixture: tests/security/test_pg_parity.py borrows these tests
    # and swaps `Harness` for one over PostgreSQL.
    h = Harness(f"sqlite:///{tmp_path}/s.db", config, start=T0 - 60, **settings)
    try:
        yield h
    finally:
        h.close()


def _crash(h: Harness, job: str) -> None:
    """The job is up, then run `a` starts at T0 + 60 on web-1, pid 7, and never finishes."""
    h.run(job, T0, 5, **SAME)
    h.send("start", job, ts=T0 + 60, run_id="a", **SAME)


@pytest.mark.parametrize(
    ("job", "second", "abandoned", "state"),
    [
        # the same process went on to another run: `a` is gone
        ("worker", SAME, True, ("up", None)),
        ("strict", SAME, True, ("up", None)),
        # another process (or one we cannot tell): `a` may be alive, an overlap as before
        ("worker", {"host": "web-1", "pid": 8}, False, ("up", None)),
        ("worker", {"host": "web-2", "pid": 7}, False, ("up", None)),
        ("worker", {"host": "web-1"}, False, ("up", None)),
        ("worker", {}, False, ("up", None)),
        ("strict", {"host": "web-1", "pid": 8}, False, ("down", "overlap")),
    ],
)
def test_a_later_start_of_the_same_process_abandons_the_run_before_overlap_is_judged(
    tmp_path: Path, job: str, second: dict[str, Any], abandoned: bool, state: tuple[str, str | None]
) -> None:
    with _sidecar(tmp_path) as h:
        _crash(h, job)
        h.send("start", job, ts=T0 + 3600, run_id="b", **second)
        runs = {r.run_id: r for r in h.runs(job)}
        got = h.job(job)
        if abandoned:
            assert (runs["a"].outcome, runs["a"].error_type) == ("timeout", "abandoned")
            assert runs["a"].finished_at is None and runs["a"].duration is None
            assert not runs["b"].overlap and got.overlap_total == 0
            assert got.runs_timeout == 1 and got.bad_streak == 0
            assert got.running == 1
        else:
            assert runs["a"].outcome == "running" and runs["a"].error_type is None
            assert runs["b"].overlap and got.overlap_total == 1
            assert got.runs_timeout == 0 and got.running == 2
        assert (got.state, got.reason) == state
        flips = [("new", "up", None)] + ([] if state[0] == "up" else [("up", *state)])
        assert h.flips(job) == flips


def test_an_earlier_start_from_the_same_process_abandons_nothing(tmp_path: Path) -> None:
    with _sidecar(tmp_path) as h:
        # A spooled start delivered after a newer one: the newer run is not left by its process.
        h.send("start", "worker", ts=T0 + 600, run_id="new", **SAME)
        h.send("start", "worker", ts=T0 + 60, run_id="old", arrive=T0 + 700, **SAME)
        assert {r.run_id: r.outcome for r in h.runs("worker")} == {
            "new": "running",
            "old": "running",
        }
        assert h.job("worker").overlap_total == 1


def test_a_job_with_max_runtime_times_out_as_before(tmp_path: Path) -> None:
    with _sidecar(tmp_path) as h:
        _crash(h, "bounded")
        h.send("start", "bounded", ts=T0 + 600, run_id="b", **SAME)
        job = h.job("bounded")
        assert job.overlap_total == 1 and job.running == 2
        h.move(T0 + 60 + 3600 + 1)
        a = next(r for r in h.runs("bounded") if r.run_id == "a")
        assert (a.outcome, a.error_type) == ("timeout", None)
        job = h.job("bounded")
        assert (job.state, job.reason, job.runs_timeout) == ("down", "timed_out", 1)


@pytest.mark.parametrize(
    ("settings", "progress", "closes_at"),
    [
        ({}, None, T0 + 60 + DAY),  # the documented default: 24 h
        ({"abandon_after": 3600.0}, None, T0 + 60 + 3600),
        ({"abandon_after": 3600.0}, T0 + 1800, T0 + 1800 + 3600),  # from the last progress
        ({"abandon_after": 0.0}, None, None),  # off
    ],
)
def test_the_evaluator_abandons_a_run_silent_past_the_bound(
    tmp_path: Path, settings: dict[str, Any], progress: float | None, closes_at: float | None
) -> None:
    with _sidecar(tmp_path, **settings) as h:
        _crash(h, "worker")
        if progress is not None:
            h.send("progress", "worker", ts=progress, run_id="a", count=1)
        if closes_at is None:
            assert h.job("worker").next_deadline is None
            h.move(T0 + 30 * DAY)
            assert h.runs("worker")[-1].outcome == "running"
            return
        assert h.job("worker").next_deadline == pytest.approx(closes_at + EPS)
        h.move(closes_at)
        assert h.runs("worker")[-1].outcome == "running"
        h.move(closes_at + 1)
        a = h.runs("worker")[-1]
        assert (a.outcome, a.error_type, a.finished_at) == ("timeout", "abandoned", None)
        job = h.job("worker")
        assert (job.state, job.runs_timeout, job.running, job.bad_streak) == ("up", 1, 0, 0)
        assert job.last_failure_at == pytest.approx(closes_at)
        assert job.next_deadline is None
        # a later start from any process is no overlap any more
        h.send("start", "worker", ts=closes_at + 60, run_id="b", host="web-9", pid=1)
        assert h.job("worker").overlap_total == 0


def test_a_start_arriving_past_the_bound_closes_the_run_before_any_tick(tmp_path: Path) -> None:
    with _sidecar(tmp_path) as h:
        _crash(h, "strict")
        h.clock.set(T0 + 60 + DAY + 100)  # no evaluator pass since
        h.send("start", "strict", ts=T0 + 60 + DAY + 100, run_id="b", host="web-2", pid=1)
        job = h.job("strict")
        assert (job.state, job.overlap_total, job.runs_timeout) == ("up", 0, 1)
        assert [(r.run_id, r.outcome, r.error_type) for r in h.runs("strict")] == [
            (h.runs("strict")[0].run_id, "success", None),
            ("a", "timeout", "abandoned"),
            ("b", "running", None),
        ]


def test_a_late_finish_of_an_abandoned_run_keeps_its_outcome_and_reason(tmp_path: Path) -> None:
    with _sidecar(tmp_path) as h:
        _crash(h, "worker")
        h.send("start", "worker", ts=T0 + 3600, run_id="b", **SAME)
        h.send("failure", "worker", ts=T0 + 3700, run_id="a", error_type="OSError")
        a = next(r for r in h.runs("worker") if r.run_id == "a")
        assert (a.outcome, a.late_outcome, a.error_type) == ("timeout", "failure", "abandoned")
        job = h.job("worker")
        assert (job.runs_timeout, job.runs_failure, job.state) == (1, 0, "up")


@pytest.mark.parametrize(
    ("flags", "env", "section", "expected"),
    [
        ({}, {}, {}, DAY),
        ({}, {}, {"abandon_after": "6h"}, 6 * 3600.0),
        ({}, {"JOBPULSE_ABANDON_AFTER": "90m"}, {"abandon_after": "6h"}, 5400.0),
        ({}, {"JOBPULSE_ABANDON_AFTER": "0"}, {}, 0.0),
    ],
)
def test_abandon_after_setting(
    flags: dict[str, Any], env: dict[str, str], section: dict[str, Any], expected: float
) -> None:
    assert build_settings(flags, env, section).abandon_after == expected


def test_a_bad_abandon_after_names_its_variable() -> None:
    with pytest.raises(ConfigError, match="JOBPULSE_ABANDON_AFTER"):
        build_settings({}, {"JOBPULSE_ABANDON_AFTER": "soon"}, {})


REPLAY_CONFIG = """
sidecar:
  catchup_delay: 0
jobs:
  - name: worker
"""


# worker succeeds, run r1 crashes (no finish), the restarted process starts r2 on the same
# host with the same pid (a container's pid 1)
STEPS = [
    ("start", "r0", T0),
    ("success", "r0", T0 + 10),
    ("start", "r1", T0 + 600),
    ("start", "r2", T0 + 1200),
    ("success", "r2", T0 + 1230),
]


def test_replay_of_a_crash_and_a_restart_on_the_same_process(tmp_path: Path) -> None:
    cfg = tmp_path / "jobpulse.yaml"
    cfg.write_text(REPLAY_CONFIG)
    events = tmp_path / "events.ndjson"
    events.write_text(
        "".join(
            json.dumps({"type": t, "job": "worker", "run_id": r, "ts": format_ts(ts), **SAME})
            + "\n"
            for t, r, ts in STEPS
        )
    )
    proc = subprocess.run(
        [
            *(JOBPULSE, "replay", "--config", str(cfg), "--events", str(events)),
            *("--since", format_ts(T0 - 60), "--until", format_ts(T0 + 3600)),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    worker = json.loads(proc.stdout)["jobs"]["worker"]
    assert worker["state"] == {"state": "up", "reason": None}
    assert [
        (r["run_id"], r["outcome"], r.get("error_type"), r["flags"]) for r in worker["runs"]
    ] == [
        ("r0", "success", None, []),
        ("r1", "timeout", "abandoned", []),
        ("r2", "success", None, []),
    ]
    assert worker["flips"] == [
        {"at": format_ts(T0 + 10), "from": "new", "to": "up", "reason": None}
    ]
    assert worker["stats"]["runs"]["timeout"] == 1

    # a live sidecar fed the same events agrees (on PostgreSQL too, in the parity suite)
    with _sidecar(tmp_path, REPLAY_CONFIG) as h:
        for kind, rid, ts in STEPS:
            h.send(kind, "worker", ts=ts, run_id=rid, **SAME)
        h.move(T0 + 3600)
        live = [(r.run_id, r.outcome, r.error_type, r.overlap) for r in h.runs("worker")]
        assert live == [
            ("r0", "success", None, False),
            ("r1", "timeout", "abandoned", False),
            ("r2", "success", None, False),
        ]
        job = h.job("worker")
        assert (job.state, job.overlap_total, job.runs_timeout) == ("up", 0, 1)
