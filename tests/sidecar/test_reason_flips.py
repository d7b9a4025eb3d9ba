"""A job that stays ``down`` for a new reason records the change as a flip (down → down with
the new reason) on its timeline, and ``state_since`` follows the latest flip; its state,
counters and exposition are what they would have been without it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sidecar.harness import T0, Harness

CONFIG = """
jobs:
  - name: five
    schedule: "*/5 * * * *"
  - name: long
    schedule: "0 * * * *"
    heartbeat_timeout: 2m
"""


@pytest.fixture
def h(tmp_path: object) -> Iterator[Harness]:
    harness = Harness(f"sqlite:///{tmp_path}/s.db", CONFIG, start=T0 - 60)
    yield harness
    harness.close()


def _state_lines(h: Harness, job: str) -> list[str]:
    h.sidecar.cache.refresh()
    text = h.sidecar.cache.render().decode()
    return [
        line
        for line in text.splitlines()
        if line.startswith("jobpulse_job_state{") and f'job_name="{job}"' in line
    ]


def test_down_failed_then_missed_records_a_reason_flip(h: Harness) -> None:
    h.run("five", T0, 1, outcome="failure")
    job = h.job("five")
    assert (job.state, job.reason) == ("down", "failed")
    states = _state_lines(h, "five")
    h.move(T0 + 300 + 60)  # the next slot's deadline passes with no run
    job = h.job("five")
    assert (job.state, job.reason) == ("down", "missed")
    assert h.flips("five") == [("new", "down", "failed"), ("down", "down", "missed")]
    assert job.state_since == T0 + 300 + 30  # the deadline of the missed slot
    assert job.runs_failure == 1 and job.missed_total == 1
    assert _state_lines(h, "five") == states


def test_down_failed_then_stale_records_a_reason_flip(h: Harness) -> None:
    h.run("long", T0, 1, outcome="failure")
    job = h.job("long")
    assert (job.state, job.reason) == ("down", "failed")
    states = _state_lines(h, "long")
    h.send("start", "long", ts=T0 + 3600, run_id="L")
    h.move(T0 + 3600 + 121)  # no progress for heartbeat_timeout
    job = h.job("long")
    assert (job.state, job.reason) == ("down", "stale")
    assert h.flips("long") == [("new", "down", "failed"), ("down", "down", "stale")]
    assert job.state_since == T0 + 3600 + 120  # when the run went stale
    assert job.runs_failure == 1 and job.missed_total == 0
    assert _state_lines(h, "long") == states


def test_the_same_reason_again_records_no_flip(h: Harness) -> None:
    h.run("five", T0, 1, outcome="failure")
    h.run("five", T0 + 300, 1, outcome="failure")
    assert h.flips("five") == [("new", "down", "failed")]
    h.run("five", T0 + 600, 1)
    assert h.flips("five") == [("new", "down", "failed"), ("down", "up", None)]
