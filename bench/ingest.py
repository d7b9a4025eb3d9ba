"""Benchmarks 3 and 4: durable ingest over HTTP.

3. One ping per request (``POST /ping/<job>``, 64 jobs in turn), 64 concurrent connections from
   wrk in its own process, against a hello-world aiohttp handler served the same way (one
   process, ``AppRunner(access_log=None)``) and against pushes to a Prometheus Pushgateway.
   Every jobpulse answer means the ping is durable in the inbox (applied just behind).
4. Batches of 100 events per request (``POST /api/v1/events``, every event a new finish-only
   run, so nothing is deduplicated), against raw ``sqlite3`` ``executemany`` of 100 rows per
   transaction in WAL mode with ``synchronous=FULL``, and on PostgreSQL against raw psycopg
   ``executemany`` of 100 rows per transaction.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jobpulse.sidecar.testing import free_port

from .common import (
    PG_ADMIN_URL,
    Check,
    Result,
    Sidecar,
    have,
    median,
    not_measured,
    python_server,
    scratch_dir,
    stop,
    wait_http,
    wrk,
)

PING_JOBS = 64
BATCH = 100
BATCH_JOBS = 100

HELLO_SERVER = """
from aiohttp import web

async def hello(request):
    await request.read()
    return web.Response(text="OK")

async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", {port}).start()
    import asyncio
    await asyncio.sleep(3600)

import asyncio
asyncio.run(main())
"""

PING_SCRIPT = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/ping/ping-" .. (n % {PING_JOBS}))
end
"""

PUSH_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, "/metrics/job/x", nil,
    "# TYPE bench_last_run gauge\\nbench_last_run " .. n .. "\\n")
end
"""

# Every request: 100 finish-only runs with new run ids (thread id + counter), spread over jobs.
# Each wrk run gets its own run-id prefix (`{run}`): LuaJIT's math.random is unseeded, so a tag
# drawn from it is the same in every run, and every run after the first would resend the
# first one's events, answered as duplicates instead of appended and applied.
BATCH_SCRIPT = f"""
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local counter = 0
tag = ""
local k = 0
setup = function(thread)
  k = k + 1
  thread:set("tag", "{{run}}-t" .. k)
end
request = function()
  local ts = os.date("!%Y-%m-%dT%H:%M:%SZ")
  local parts = {{}}
  for i = 1, {BATCH} do
    counter = counter + 1
    parts[i] = '{{"type":"success","job":"batch-' .. (counter % {BATCH_JOBS})
      .. '","run_id":"' .. tag .. "-" .. counter .. '","ts":"' .. ts
      .. '","duration":1.5}}'
  end
  return wrk.format(nil, "/api/v1/events", nil, "[" .. table.concat(parts, ",") .. "]")
end
"""


def _jobs_yaml(prefix: str, count: int) -> str:
    return "jobs:\n" + "".join(
        f'  - name: {prefix}-{i}\n    schedule: "*/5 * * * *"\n' for i in range(count)
    )


@contextlib.contextmanager
def _pushgateway(tmp: Path) -> Iterator[str | None]:
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def single_ingest(quick: bool) -> Result:
    seconds = 1 if quick else 5
    rounds = 1 if quick else 3
    if not have("wrk"):
        reason = "wrk is not installed (apt-get install -y wrk)"
        return Result(
            "single_ingest",
            "Single-event durable ingest over HTTP (64 connections)",
            [
                not_measured("pings/s vs aiohttp hello world", ">= 0.5x", "req/s", reason),
                not_measured("pings/s vs Pushgateway pushes", ">= 5x", "req/s", reason),
            ],
        )
    samples: dict[str, list[float]] = {"jobpulse": [], "hello": [], "pushgateway": []}
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in samples}
    with (
        scratch_dir("ping") as tmp,
        Sidecar(tmp, _jobs_yaml("ping", PING_JOBS)) as sidecar,
        python_server(HELLO_SERVER) as hello,
        _pushgateway(tmp) as pushgw,
    ):
        targets = {"jobpulse": (sidecar.url, PING_SCRIPT), "hello": (hello, PING_SCRIPT)}
        if pushgw is not None:
            targets["pushgateway"] = (pushgw, PUSH_SCRIPT)
        for url, script in targets.values():  # warm-up
            wrk(url, script=script, seconds=1, connections=64)
        for _ in range(rounds):
            for key, (url, script) in targets.items():
                if key == "jobpulse":
                    sidecar.wait_applied(timeout=600)  # each round from an empty inbox
                out = wrk(url, script=script, seconds=seconds, connections=64)
                runs[key].append(out)
                samples[key].append(out["rps"] if not out["non2xx"] else 0.0)
    rps = {k: median(v) if v else None for k, v in samples.items()}
    checks = [
        Check(
            "pings/s vs aiohttp hello world",
            rps["jobpulse"],
            rps["hello"],
            ">= 0.5x",
            "req/s",
            "min",
            0.5,
        ),
    ]
    if rps["pushgateway"]:
        checks.append(
            Check(
                "pings/s vs Pushgateway pushes",
                rps["jobpulse"],
                rps["pushgateway"],
                ">= 5x",
                "req/s",
                "min",
                5.0,
            )
        )
    else:
        checks.append(
            not_measured(
                "pings/s vs Pushgateway pushes",
                ">= 5x",
                "req/s",
                "prometheus-pushgateway is not installed",
            )
        )
    return Result(
        "single_ingest",
        "Single-event durable ingest over HTTP (64 connections)",
        checks,
        {"wrk_runs": runs, "seconds_per_run": seconds, "rounds": rounds, "connections": 64},
    )


# ------------------------------------------------------------------------------ benchmark 4
_ROW_SQL = (
    "CREATE TABLE runs (id INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, run_id TEXT NOT NULL, "
    "outcome TEXT NOT NULL, started_at REAL, finished_at REAL, duration REAL, host TEXT, "
    "UNIQUE (job_id, run_id))"
)


def _rows(start: int) -> list[tuple[Any, ...]]:
    now = time.time()
    return [
        (i % BATCH_JOBS, f"r-{i}", "success", now - 1.5, now, 1.5, "bench")
        for i in range(start, start + BATCH)
    ]


def _sqlite_rate(path: Path, seconds: float) -> float:
    """Events/s of raw executemany, 100 rows per transaction, WAL, synchronous=FULL."""
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(_ROW_SQL)
    sql = (
        "INSERT INTO runs (job_id, run_id, outcome, started_at, finished_at, duration, host) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline and n < 10_000_000:
        conn.execute("BEGIN")
        conn.executemany(sql, _rows(n))
        conn.execute("COMMIT")
        n += BATCH
    rate = n / (time.perf_counter() - start)
    conn.close()
    return rate


def _pg_rate(url: str, seconds: float) -> float:
    import psycopg

    with psycopg.connect(url) as conn:
        conn.execute("DROP TABLE IF EXISTS runs")
        conn.execute(_ROW_SQL.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY"))
        conn.commit()
        sql = (
            "INSERT INTO runs (job_id, run_id, outcome, started_at, finished_at, duration, "
            "host) VALUES (%s, %s, %s, %s, %s, %s, %s)"
        )
        n = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline and n < 10_000_000:
            with conn.cursor() as cur:
                cur.executemany(sql, _rows(n))
            conn.commit()
            n += BATCH
        rate = n / (time.perf_counter() - start)
        conn.execute("DROP TABLE runs")
        conn.commit()
    return rate


@contextlib.contextmanager
def _pg_database() -> Iterator[str | None]:
    try:
        import psycopg

        admin = psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception:
        yield None
        return
    name = f"jobpulse_bench_{uuid.uuid4().hex[:8]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _batch_script() -> str:
    """BATCH_SCRIPT with a run-id prefix of its own: every event a new run."""
    return BATCH_SCRIPT.replace("{run}", uuid.uuid4().hex[:12])


def _jobpulse_batch_rate(
    sidecar: Sidecar, seconds: float, rounds: int, raw: Callable[[], float]
) -> tuple[float, list[Any], float]:
    """Rounds of jobpulse and of its raw baseline, interleaved (raw, jobpulse, raw, ...), so
    both see the same machine and the same state of the database server (a checkpoint after
    the raw inserts falls on both alike). Each jobpulse round starts from an empty inbox: a
    backlog left by the round before would make the next one's rate depend on where the
    applier happened to be. Returns the medians, jobpulse's and the raw one's, and wrk's
    output per round."""
    wrk(sidecar.url, script=_batch_script(), seconds=1, connections=4)  # warm-up
    rates, outs, raws = [], [], []
    for _ in range(rounds):
        raws.append(raw())
        sidecar.wait_applied(timeout=600)
        out = wrk(sidecar.url, script=_batch_script(), seconds=seconds, connections=4)
        outs.append(out)
        rates.append(out["rps"] * BATCH if not out["non2xx"] else 0.0)
    return median(rates), outs, median(raws)


def batched_ingest(quick: bool) -> Result:
    seconds = 1 if quick else 8
    rounds = 1 if quick else 3
    title = "Batched durable ingest (100 events per request)"
    if not have("wrk"):
        reason = "wrk is not installed (apt-get install -y wrk)"
        return Result(
            "batched_ingest",
            title,
            [
                not_measured("SQLite events/s vs raw executemany", ">= 0.6x", "events/s", reason),
                not_measured(
                    "PostgreSQL events/s vs raw executemany", ">= 0.5x", "events/s", reason
                ),
            ],
        )
    extra: dict[str, Any] = {"seconds_per_run": seconds, "rounds": rounds, "connections": 4}
    checks: list[Check] = []
    env = {"JOBPULSE_MAX_BATCH_EVENTS": "1000"}
    with scratch_dir("batch") as tmp:
        with Sidecar(tmp, _jobs_yaml("batch", BATCH_JOBS), env=env) as sidecar:
            ours, outs, raw = _jobpulse_batch_rate(
                sidecar, seconds, rounds, lambda: _sqlite_rate(tmp / "raw.db", seconds)
            )
        extra["sqlite_wrk_runs"] = outs
        checks.append(
            Check(
                "SQLite events/s vs raw sqlite3 executemany",
                ours,
                raw,
                ">= 0.6x",
                "events/s",
                "min",
                0.6,
            )
        )
        with _pg_database() as pg, _pg_database() as pg_raw:
            if pg is None or pg_raw is None:
                checks.append(
                    not_measured(
                        "PostgreSQL events/s vs raw executemany",
                        ">= 0.5x",
                        "events/s",
                        f"no PostgreSQL at {PG_ADMIN_URL}",
                    )
                )
            else:
                store = pg.replace("postgresql://", "postgresql+psycopg://", 1)
                raw_url: str = pg_raw
                with Sidecar(tmp, _jobs_yaml("batch", BATCH_JOBS), store=store, env=env) as sc:
                    ours_pg, outs_pg, raw_pg = _jobpulse_batch_rate(
                        sc, seconds, rounds, lambda: _pg_rate(raw_url, seconds)
                    )
                extra["postgresql_wrk_runs"] = outs_pg
                checks.append(
                    Check(
                        "PostgreSQL events/s vs raw psycopg executemany",
                        ours_pg,
                        raw_pg,
                        ">= 0.5x",
                        "events/s",
                        "min",
                        0.5,
                    )
                )
    return Result("batched_ingest", title, checks, extra)
