"""``apply_process``: a SQLite sidecar whose inbox is applied, and whose jobs are judged and
notified about, by a second process beside the server (sidecar/apply_process.py), as users run
it: a real `jobpulse serve`, a real applier process, real signals."""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobpulse.instrumentation.wire import format_ts
from jobpulse.sidecar.config import FileConfig
from jobpulse.sidecar.service import ServerLink, Sidecar
from jobpulse.sidecar.settings import Settings
from jobpulse.sidecar.store.database import FileLock, Store
from tests.security.test_inbox_crash import Burst, job_runs, stored_runs
from tests.sidecar.process import Served

APPLY_PROCESS = {"JOBPULSE_APPLY_PROCESS": "1"}
STARTED = re.compile(rb"the applier process \((\d+)\) applies the inbox")


def applier_pids(served: Served) -> list[int]:
    """The applier processes the server started, in order (from its log)."""
    return [int(pid) for pid in STARTED.findall(served.log.read_bytes())]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(
    cond: Callable[[], Any], timeout: float, what: str, show: Callable[[], Any] = str
) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := cond()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s ({show()})"
        time.sleep(0.05)
    return value


def ready(served: Served) -> tuple[int, dict[str, Any]]:
    status, body = served.get("/readyz", applied=False)
    return status, json.loads(body)


def metric(served: Served, name: str) -> float:
    _, body = served.get("/metrics", applied=False)
    found = re.search(rb"^" + re.escape(name.encode()) + rb" (\S+)$", body, re.MULTILINE)
    assert found, f"{name} is not in /metrics"
    return float(found.group(1))


def failure(job: str, run_id: str) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {"type": "start", "job": job, "run_id": run_id, "ts": format_ts(now - 1)},
        {"type": "failure", "job": job, "run_id": run_id, "ts": format_ts(now), "duration": 1},
    ]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path, "jobs:\n  - name: hourly\n    every: 1h\n", env=APPLY_PROCESS).start()
    yield s
    s.stop()


def test_the_applier_process_applies_judges_and_reports_through_the_server(
    served: Served,
) -> None:
    [pid] = wait_for(lambda: applier_pids(served), 10, "the applier process starts")
    assert alive(pid) and pid != served.proc.pid  # type: ignore[union-attr]
    answer = served.post_events(failure("hourly", "r1"), wait_applied=True)
    assert answer["accepted"] == 2 and not answer["warnings"], answer
    status, body = served.get("/api/v1/jobs/hourly", applied=False)
    assert status == 200 and json.loads(body)["runs"]["failure"] == 1
    # The evaluator runs in the applier process; the server reports it as its own.
    wait_for(lambda: ready(served)[0] == 200, 10, "/readyz says ready")
    wait_for(lambda: metric(served, "jobpulse_leader") == 1, 5, "the sidecar leads")
    last = wait_for(
        lambda: metric(served, "jobpulse_evaluator_last_run_timestamp_seconds"),
        5,
        "the evaluator's passes are reported",
    )
    assert abs(last - time.time()) < 30
    assert metric(served, "jobpulse_store_write_duration_seconds_count") > 0
    _, body = served.get("/api/v1/health", applied=False)
    assert json.loads(body)["sidecar"]["leader"] is True


def failures(served: Served) -> int:
    _, body = served.get("/api/v1/jobs/hourly", applied=False)
    return int(json.loads(body)["runs"]["failure"])


def test_an_append_wakes_a_waiting_applier_process_once_per_pass(served: Served) -> None:
    """The server tells the applier process of an append only when its evaluator waits to
    hear of one (it says so at each pass): events sent one at a time, each once the last is
    applied, are each applied at once, not at the evaluator's next timed pass (1 s)."""
    wait_for(lambda: applier_pids(served), 10, "the applier process starts")
    served.post_events(failure("hourly", "warm-up"), wait_applied=True)
    took = []
    for i in range(5):
        started = time.monotonic()
        served.post_events(failure("hourly", f"r{i}"), wait_applied=False)
        wait_for(lambda i=i: failures(served) == i + 2, 10, f"run r{i} applied")
        took.append(time.monotonic() - started)
    assert sorted(took)[2] < 0.5, took


def test_a_wake_is_sent_only_when_the_applier_process_wants_one(tmp_path: Path) -> None:
    from jobpulse.sidecar.apply_process import ApplierProcess

    sidecar = Sidecar(Settings(store=f"sqlite:///{tmp_path}/s.db"), file_config=FileConfig())
    handle = ApplierProcess(sidecar)
    here, there = multiprocessing.Pipe()
    handle._conn = here
    try:
        for _ in range(3):  # appends while a pass is on: one wake
            handle.wake()
        assert there.recv() == ("wake",) and not there.poll(0.1)
        handle._wake_wanted.value = 1  # the applier's next pass starts and wants to hear
        handle.wake()
        handle.wake()
        assert there.recv() == ("wake",) and not there.poll(0.1)
    finally:
        here.close()
        there.close()
        sidecar.store.dispose()


def test_the_applier_process_stops_with_the_server(served: Served) -> None:
    [pid] = wait_for(lambda: applier_pids(served), 10, "the applier process starts")
    served.stop()  # SIGTERM: the server stops its applier process before it exits
    assert not alive(pid)
    served.start()
    wait_for(lambda: len(applier_pids(served)) == 2, 10, "a new applier process starts")
    pid = applier_pids(served)[-1]
    served.stop(signal.SIGKILL)  # nothing stops it: it sees its server's end of the pipe close
    wait_for(lambda: not alive(pid), 8, "the orphaned applier process ends")


@pytest.mark.slow
def test_a_killed_applier_process_is_started_again_and_applies_every_event_once(
    served: Served,
) -> None:
    wait_for(lambda: ready(served)[0] == 200, 10, "the evaluator's first pass")
    burst = Burst([served], threads=1)
    with burst:
        for _ in range(2):
            time.sleep(0.5)
            pid = applier_pids(served)[-1]
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: not alive(pid), 5, "the applier process ends")
            # The server keeps accepting; /readyz says why nothing is applied meanwhile.
            status, body = ready(served)
            assert status == 503 and "applier process is not running" in body["detail"], body
            wait_for(
                lambda: ready(served)[0] == 200,
                15,
                "the applier process is back",
                lambda: ready(served),
            )
    assert not burst.unanswered, "the server stopped answering while its applier was down"
    served.wait_applied(60)
    assert len(applier_pids(served)) == 3
    assert job_runs(served)["success"] == len(burst.acked), "a run is lost or counted twice"
    assert stored_runs(served) == burst.acked


class _Hook(BaseHTTPRequestHandler):
    bodies: list[Any]

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_reloaded_configuration_reaches_the_applier_process(tmp_path: Path) -> None:
    """The notifier runs in the applier process: a receiver added by a reload (SIGHUP) gets the
    notification of a flip the applier process commits."""
    _Hook.bodies = []
    hook = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    jobs = "jobs:\n  - name: hourly\n    every: 1h\n"
    served = Served(tmp_path, jobs, env=APPLY_PROCESS).start()
    try:
        wait_for(lambda: applier_pids(served), 10, "the applier process starts")
        served.config.write_text(
            jobs + "notify:\n  webhooks:\n"
            f"    - name: ops\n      url: http://127.0.0.1:{hook.server_port}/hook\n"
        )
        served.proc.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
        wait_for(lambda: b"reloaded" in served.log.read_bytes().lower(), 10, "the server reloads")
        served.post_events(failure("hourly", "r1"), wait_applied=True)
        wait_for(lambda: _Hook.bodies, 10, "the webhook is called")
        assert any("hourly" in json.dumps(body) for body in _Hook.bodies), _Hook.bodies
    finally:
        served.stop()
        hook.shutdown()


_HOLDER = """
import sys
from jobpulse.sidecar.store.database import FileLock
lock = FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_the_file_lock_keeps_two_processes_in_turn(tmp_path: Path) -> None:
    path = str(tmp_path / "db-writing")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        lock = FileLock(path)
        taken = threading.Event()

        def take() -> None:
            with lock, lock:  # re-entrant in one thread
                taken.set()

        thread = threading.Thread(target=take)
        thread.start()
        assert not taken.wait(0.3), "taken while another process holds it"
        assert holder.stdin is not None
        holder.stdin.close()  # the holder exits: the kernel releases its lock
        assert taken.wait(10)
        thread.join()
        with lock:  # released when the last holder in this process let go
            pass
        lock.close()
    finally:
        holder.kill()
        holder.wait()


def test_the_state_lock_holds_for_a_whole_writer_transaction(tmp_path: Path) -> None:
    """Two processes' writers (here two stores on one file, as the server's and the applier
    process's are) never interleave: the second begins when the first has committed."""
    url = f"sqlite:///{tmp_path}/jobpulse.db"
    first, second = Store(url, shared=True), Store(url, shared=True)
    first.migrate()
    order: list[str] = []
    inside = threading.Event()
    go_on = threading.Event()

    def hold() -> None:
        with first.transaction():
            order.append("first begins")
            inside.set()
            go_on.wait(10)
            order.append("first ends")

    thread = threading.Thread(target=hold)
    thread.start()
    assert inside.wait(10)

    def enter() -> None:
        with second.transaction():
            order.append("second begins")

    other = threading.Thread(target=enter)
    other.start()
    other.join(0.3)
    assert other.is_alive(), "the second writer began inside the first one's transaction"
    go_on.set()
    thread.join(10)
    other.join(10)
    assert order == ["first begins", "first ends", "second begins"]
    first.dispose()
    second.dispose()


@pytest.mark.parametrize(
    "store", ["sqlite://", "postgresql://u@127.0.0.1:1/none"], ids=["memory", "postgres"]
)
def test_apply_process_is_for_sqlite_files_only(store: str) -> None:
    """In memory, one process is all there is; PostgreSQL has replicas and a leader."""
    started: list[Sidecar] = []
    sidecar = Sidecar(
        Settings(store=store, apply_process=True),
        file_config=FileConfig(),
        applier_process=lambda s: started.append(s),  # type: ignore[arg-type,func-returns-value]
    )
    assert sidecar.role == "whole" and sidecar.applier_process is None and not started
    assert not sidecar.store.shared
    sidecar.store.dispose()


def test_the_applier_process_checkpoints_the_log_and_its_server_does_not(tmp_path: Path) -> None:
    """A server's appends leave checkpoints to its applier process's commits (see Store's
    ``checkpoints``); one process checkpoints as SQLite does by default."""
    from jobpulse.sidecar.store.database import CHECKPOINT_PAGES, FALLBACK_CHECKPOINT_PAGES

    link = ServerLink(
        judge_from=123.0,
        in_flight=ctypes.c_int(0),
        on_applied=lambda: None,
        on_write=lambda s: None,
    )
    settings = Settings(store=f"sqlite:///{tmp_path}/s.db", apply_process=True)
    server = Sidecar(
        settings,
        file_config=FileConfig(),
        applier_process=lambda s: None,  # type: ignore[arg-type,return-value]
    )
    beside = Sidecar(settings, file_config=FileConfig(), server=link)
    whole = Sidecar(Settings(store=f"sqlite:///{tmp_path}/w.db"), file_config=FileConfig())
    try:
        pages = {}
        for sidecar in (server, beside, whole):
            with sidecar.store.engine.connect() as conn:
                pages[sidecar.role] = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar()
        assert pages == {
            "server": FALLBACK_CHECKPOINT_PAGES,
            "applier": CHECKPOINT_PAGES,
            "whole": CHECKPOINT_PAGES,
        }
    finally:
        for sidecar in (server, beside, whole):
            sidecar.store.dispose()


def test_an_applier_process_gives_way_to_bursts_and_holds_appends_back_later(
    tmp_path: Path,
) -> None:
    """The applier role's own rules: it gives way to four requests at once, not one, and
    its burst is over after QUIET_BESIDE of quiet, not QUIET, and its batches hold appends back from
    HOLD_LAG_BESIDE of lag, not from one process's HOLD_LAG."""
    from jobpulse.sidecar.applying import (
        BURST_BESIDE,
        HOLD_LAG,
        HOLD_LAG_BESIDE,
        QUIET,
        QUIET_BESIDE,
    )

    in_flight = ctypes.c_int(0)
    link = ServerLink(
        judge_from=123.0, in_flight=in_flight, on_applied=lambda: None, on_write=lambda s: None
    )
    store = f"sqlite:///{tmp_path}/s.db"
    whole = Sidecar(Settings(store=store), file_config=FileConfig())
    beside = Sidecar(Settings(store=store), file_config=FileConfig(), server=link)
    try:
        assert beside.role == "applier" and beside.store.shared and not whole.store.shared
        assert (beside.applier.hold_lag, whole.applier.hold_lag) == (HOLD_LAG_BESIDE, HOLD_LAG)
        assert HOLD_LAG_BESIDE > HOLD_LAG
        assert (beside.applier.quiet, whole.applier.quiet) == (QUIET_BESIDE, QUIET)
        assert beside.engine.judge_from == 123.0
        in_flight.value = BURST_BESIDE - 1
        assert not beside.applier.busy()
        in_flight.value = BURST_BESIDE  # the server's count, read from its shared memory
        assert beside.applier.busy()
    finally:
        whole.store.dispose()
        beside.store.dispose()
