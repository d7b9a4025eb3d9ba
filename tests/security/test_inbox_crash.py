"""`kill -9` of the sidecar during a burst of ingest: every acknowledged event is applied
exactly once after the restart (DESIGN.md "Ingest through a durable inbox"). The senders behave
as the client does: a batch without an answer is sent again, and the inbox's idempotency keys
make the second delivery a duplicate wherever the first one was committed."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.error
import uuid
from pathlib import Path
from typing import Any

import pytest

from jobpulse.instrumentation.wire import format_ts
from tests.sidecar.process import Served

RUNS_PER_BATCH = 25


def batch(tag: str) -> list[dict[str, Any]]:
    now = time.time()
    events: list[dict[str, Any]] = []
    for i in range(RUNS_PER_BATCH):
        rid = f"{tag}-{i}"
        events.append({"type": "start", "job": "burst", "run_id": rid, "ts": format_ts(now)})
        events.append(
            {
                "type": "success",
                "job": "burst",
                "run_id": rid,
                "ts": format_ts(now + 0.5),
                "duration": 0.5,
            }
        )
    return events


class Burst:
    """Sender threads posting batches round-robin to ``replicas`` until stopped; batches that
    got no answer are kept for sending again."""

    def __init__(self, replicas: list[Served], threads: int = 4) -> None:
        self.replicas = replicas
        self.acked: set[str] = set()
        self.unanswered: list[list[dict[str, Any]]] = []
        self.answers_by_replica = [0] * len(replicas)
        self._count = threads
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Burst:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, args=(t,)) for t in range(self._count)]
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _run(self, worker: int) -> None:
        n = 0
        while not self._stop.is_set():
            events = batch(f"w{worker}-{n}-{uuid.uuid4().hex[:6]}")
            target = n % len(self.replicas)
            n += 1
            if not self.send(events, target):
                time.sleep(0.02)

    def send(self, events: list[dict[str, Any]], target: int = 0) -> bool:
        replica = self.replicas[target]
        try:
            answer = replica.post_events(events, timeout=5, wait_applied=False)
        except (OSError, urllib.error.URLError, json.JSONDecodeError):
            with self._lock:
                self.unanswered.append(events)
            return False
        assert answer["rejected"] == [], answer
        assert answer["accepted"] + answer["duplicates"] == len(events), answer
        with self._lock:
            self.acked.update(e["run_id"] for e in events)
            self.answers_by_replica[target] += 1
        return True

    def resend(self, target: int = 0) -> None:
        with self._lock:
            again, self.unanswered = self.unanswered, []
        for events in again:
            assert self.send(events, target), "a restarted sidecar must answer"


def job_runs(served: Served) -> dict[str, int]:
    status, body = served.get("/api/v1/jobs/burst", timeout=60)
    assert status == 200, body
    runs: dict[str, int] = json.loads(body)["runs"]
    return runs


def stored_runs(served: Served) -> set[str]:
    found: set[str] = set()
    cursor = ""
    while True:
        status, body = served.get(f"/api/v1/jobs/burst/runs?limit=500{cursor}", timeout=60)
        assert status == 200, body
        page = json.loads(body)
        found.update(r["run_id"] for r in page["runs"])
        if not page.get("next_cursor"):
            return found
        cursor = f"&cursor={page['next_cursor']}"


@pytest.mark.slow
@pytest.mark.parametrize("apply_process", ["0", "1"], ids=["one-process", "apply-process"])
def test_sigkill_during_a_burst_loses_and_double_counts_nothing(
    tmp_path: Path, apply_process: str
) -> None:
    """With ``apply_process``, the server is killed: its applier process sees the pipe close and
    stops (mid-batch or not), and the restarted server's applier process applies the rest."""
    served = Served(tmp_path, "", env={"JOBPULSE_APPLY_PROCESS": apply_process}).start()
    burst = Burst([served])
    try:
        for _ in range(3):
            with burst:
                time.sleep(1.0)
                served.stop(signal.SIGKILL)
            served.start()
            burst.resend()
        with burst:
            time.sleep(0.5)
        served.wait_applied(60)
        runs = job_runs(served)
        assert runs["success"] == len(burst.acked), "an acknowledged run is lost or counted twice"
        assert stored_runs(served) == burst.acked
    finally:
        served.stop()


def leader(served: Served) -> bool:
    try:
        status, body = served.get("/metrics", applied=False)
    except OSError:
        return False
    return status == 200 and b"\njobpulse_leader 1.0\n" in body


def wait_for(cond: Any, timeout: float) -> None:
    started = time.monotonic()
    while not cond():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.slow
def test_leader_sigkilled_during_a_burst_the_replicas_keep_accepting_and_one_applies(
    pg_url: str, tmp_path: Path
) -> None:
    """A leader and two replicas on one PostgreSQL: the leader is killed during a burst sent to
    all three; the two others keep accepting, one of them takes the lead and applies what all
    three accepted, once."""
    for name in "abc":
        (tmp_path / name).mkdir()
    a = Served(tmp_path / "a", "", store=pg_url).start()
    wait_for(lambda: leader(a), 10)
    b = Served(tmp_path / "b", "", store=pg_url).start()
    c = Served(tmp_path / "c", "", store=pg_url).start()
    try:
        assert not leader(b) and not leader(c)
        burst = Burst([a, b, c], threads=3)
        with burst:
            time.sleep(1.5)
            a.stop(signal.SIGKILL)
            answered = burst.answers_by_replica[1] + burst.answers_by_replica[2]
            time.sleep(1.5)  # the replicas keep accepting while no one leads
            assert burst.answers_by_replica[1] + burst.answers_by_replica[2] > answered
        wait_for(lambda: leader(b) or leader(c), 10)
        burst.replicas = [b, b, c]  # the client's retry goes to a replica that is up
        burst.resend()
        new = b if leader(b) else c
        new.wait_applied(60)  # the new leader applies what the three replicas accepted
        runs = job_runs(new)
        assert runs["success"] == len(burst.acked), "an acknowledged run is lost or counted twice"
        assert stored_runs(new) == burst.acked
    finally:
        for served in (a, b, c):
            served.stop()
