"""Two real `jobpulse serve` replicas on one PostgreSQL under ingest: the leader is SIGKILLed,
the other takes over within the documented bound, no slot is missed or recorded twice, and no
acknowledged event is lost."""

from __future__ import annotations

import math
import signal
import threading
import time
import urllib.error
import uuid
from pathlib import Path

import psycopg
import pytest

from jobpulse.instrumentation.wire import format_ts
from tests.sidecar.process import Served

CONFIG = """
jobs:
  - name: tick
    schedule: "*/2 * * * * *"
    grace: 1s
"""
TAKEOVER_BOUND = 5.0  # documented: ~2 s after a leader's death; generous for loaded CI


def leader(served: Served) -> bool:
    try:
        status, body = served.get("/metrics")
    except OSError:
        return False
    return status == 200 and b"\njobpulse_leader 1.0\n" in body


def wait_for(cond: object, timeout: float) -> float:
    started = time.monotonic()
    while not cond():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.mark.slow
def test_leader_killed_mid_run_the_other_takes_over(pg_url: str, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Served(tmp_path / "a", CONFIG, store=pg_url)
    b = Served(tmp_path / "b", CONFIG, store=pg_url)
    a.start()
    wait_for(lambda: leader(a), 10)
    b.start()
    assert not leader(b)
    acked: dict[str, float] = {}  # run id -> slot
    skipped: list[float] = []
    stop = threading.Event()
    errors: list[str] = []

    def send() -> None:
        replicas = [a, b]
        n = 0
        while not stop.is_set():
            slot = math.ceil(time.time() / 2) * 2
            time.sleep(max(0.0, slot - time.time()) + 0.05)
            n += 1
            if n % 3 == 0:
                skipped.append(slot)  # no run for this slot: it must be missed
                continue
            rid = uuid.uuid4().hex
            now = time.time()
            events = [
                {
                    "type": "start",
                    "job": "tick",
                    "run_id": rid,
                    "ts": format_ts(now),
                    "scheduled_for": format_ts(slot),
                },
                {
                    "type": "success",
                    "job": "tick",
                    "run_id": rid,
                    "ts": format_ts(now + 0.01),
                    "scheduled_for": format_ts(slot),
                },
            ]
            for replica in replicas[n % 2 :] + replicas[: n % 2]:
                try:
                    # Acknowledged = durable in the inbox; not waiting for the apply keeps the
                    # sender on its 2 s slots while no replica leads.
                    result = replica.post_events(events, timeout=3, wait_applied=False)
                except (OSError, urllib.error.URLError):
                    continue  # that replica is down: the client retries on the other
                if result["accepted"] + result["duplicates"] == 2:
                    acked[rid] = slot
                    break
            else:
                errors.append(f"slot {slot}: no replica acknowledged")

    sender = threading.Thread(target=send)
    sender.start()
    time.sleep(7)
    assert a.proc is not None
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait(5)
    killed = time.monotonic()
    took = wait_for(lambda: leader(b), TAKEOVER_BOUND)
    print(f"takeover after SIGKILL of the leader: {took:.2f} s")
    time.sleep(8)
    stop.set()
    sender.join()
    time.sleep(3.5)  # the last slot's grace passes and the new leader judges it
    b.stop()
    assert time.monotonic() - killed < 30
    assert errors == []

    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT s.slot, s.status, s.run_id FROM slots s JOIN jobs j ON j.id = s.job_id "
            "WHERE j.name = 'tick' ORDER BY s.slot"
        ).fetchall()
        runs = dict(
            conn.execute(
                "SELECT r.run_id, r.outcome FROM runs r JOIN jobs j ON j.id = r.job_id "
                "WHERE j.name = 'tick'"
            ).fetchall()
        )
        missed_total = conn.execute("SELECT missed_total FROM jobs WHERE name = 'tick'").fetchone()
    slots = [r[0] for r in rows]
    assert len(slots) == len(set(slots)), "a slot was recorded twice"
    status = {r[0]: (r[1], r[2]) for r in rows}
    # no acknowledged event lost; every run filled its slot
    assert all(runs.get(rid) == "success" for rid in acked), "an acknowledged run is missing"
    for rid, slot in acked.items():
        assert status.get(slot) == ("filled", rid), f"slot {slot} of run {rid}: {status.get(slot)}"
    # misses exactly where no run was sent, between the first and last run
    first, last = min(acked.values()), max(acked.values())
    expected_missed = {s for s in skipped if first < s < last}
    missed = {s for s, (st, _) in status.items() if st == "missed" and first < s < last}
    assert missed == expected_missed
    assert missed_total is not None and missed_total[0] == sum(
        1 for st, _ in status.values() if st == "missed"
    )
    # the scenario did skip slots (how many fall between the first and last run depends on how
    # promptly the sender thread ran on a loaded machine; one is enough to prove the point)
    assert len(expected_missed) >= 1
