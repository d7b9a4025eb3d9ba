"""Soak: a real `jobpulse serve` under ~20 s of mixed valid and invalid traffic on loopback.
Memory stays flat after warm-up, every valid event is stored, every invalid one is rejected
with its reason."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from jobpulse.instrumentation.wire import format_ts
from tests.sidecar.process import Served

DURATION = 20.0
WARMUP = 5.0
JOBS = [f"soak-{i}" for i in range(40)]
INVALID: list[tuple[dict[str, Any], str]] = [
    ({"type": "started"}, "type"),
    ({"ts": "yesterday"}, "ts"),
    ({"run_id": ""}, "run_id"),
    ({"job": "Bad Name!"}, "job"),
    ({"exit_code": 300}, "exit_code"),
    ({"trace_id": "XYZ"}, "trace_id"),
]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def post(url: str, body: bytes, content_type: str = "application/json") -> tuple[int, Any]:
    req = urllib.request.Request(
        url + "/api/v1/events", data=body, headers={"Content-Type": content_type}, method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.slow
def test_soak_mixed_traffic_memory_flat_and_nothing_lost(tmp_path: Path) -> None:
    need_proc = Path("/proc/self/status").exists()
    if not need_proc:
        pytest.skip("needs /proc")
    served = Served(tmp_path, "").start()
    assert served.proc is not None
    pid = served.proc.pid
    totals = {"valid": 0, "invalid": 0, "malformed": 0}
    lock = threading.Lock()
    stop = threading.Event()
    failures: list[str] = []

    def worker(seed: int) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            now = time.time()
            batch: list[dict[str, Any]] = []
            expected_bad: dict[int, str] = {}
            for i in range(30):
                event = {
                    "type": "success",
                    "job": JOBS[(n + i + seed) % len(JOBS)],
                    "run_id": uuid.uuid4().hex,
                    "ts": format_ts(now),
                    "duration": 0.5,
                    "error_message": "x" * (i * 50),
                }
                if i % 5 == 4:
                    bad, field = INVALID[(n + i) % len(INVALID)]
                    event.update(bad)
                    expected_bad[i] = field
                batch.append(event)
            status, body = post(served.url, json.dumps(batch).encode())
            if status != 200 or body["accepted"] != 30 - len(expected_bad):
                failures.append(f"{status} {body}")
                return
            got = {r["index"]: r["field"] for r in body["rejected"]}
            if got != expected_bad:
                failures.append(f"rejections {got} != {expected_bad}")
                return
            status, body = post(served.url, b'[{"type": "start",', "application/json")
            if status != 400 or body["error"] != "malformed body":
                failures.append(f"malformed: {status} {body}")
                return
            with lock:
                totals["valid"] += 30 - len(expected_bad)
                totals["invalid"] += len(expected_bad)
                totals["malformed"] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    try:  # a failure must not leave the sidecar or the senders running
        started = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(WARMUP)
        baseline = rss_kib(pid)
        peak = baseline
        while time.monotonic() - started < DURATION:
            time.sleep(0.5)
            peak = max(peak, rss_kib(pid))
        stop.set()
        for t in threads:
            t.join()
        final = rss_kib(pid)
        # A sustained overload leaves a backlog of up to HOLD_LAG_BESIDE (10 s) of ingest for
        # the applier process, which it then applies at its own pace: wait for all of it.
        served.wait_applied(timeout=90)
        _, metrics = served.get("/metrics")
    finally:
        stop.set()
        for t in threads:
            if t.ident is not None:  # started
                t.join()
        served.stop()
    assert failures == []
    print(f"soak: {totals}, RSS {baseline} -> peak {peak} -> {final} KiB")
    assert totals["valid"] > 5000
    # flat: growth after warm-up stays under 32 MiB and a quarter of the baseline
    assert peak - baseline < min(32 * 1024, baseline // 4 + 8 * 1024)
    with sqlite3.connect(tmp_path / "jobpulse.db") as conn:
        stored = conn.execute(
            "SELECT count(*) FROM runs WHERE outcome = 'failure' OR outcome = 'success'"
        ).fetchone()[0]
    assert stored == totals["valid"]
    text = metrics.decode()
    assert f'jobpulse_events_rejected_total{{reason="invalid"}} {totals["invalid"]}.0' in text
    assert f'jobpulse_events_rejected_total{{reason="malformed"}} {totals["malformed"]}.0' in text
    assert f'jobpulse_events_received_total{{type="success"}} {totals["valid"]}.0' in text
