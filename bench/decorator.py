"""Benchmarks 1 and 2: what ``@monitor`` costs a job per call.

1. A no-op job under ``@monitor`` with the OpenTelemetry SDK configured (a span through a
   BatchSpanProcessor to a no-op exporter, a counter and a histogram) against the floor: the
   same span and metric calls, with the same attributes, written by hand. Without an SDK (the
   API's no-op providers) against the same floor. Against ``sentry_sdk.monitor`` and Cronitor's
   ``cronitor.job``, both pointed at a dummy HTTP server on loopback.
2. The same decorator while the sidecar is up, down (connection refused) and hung (accepts,
   never answers).

The cost is wall time per call on the job's thread, over a batch of calls; the background
sender shares the GIL, so whatever it takes while the batch runs is counted too. Between
batches the client is flushed (untimed), so one subject's backlog never lands on the next.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from jobpulse.instrumentation import monitor
from jobpulse.instrumentation.client import HeartbeatClient
from jobpulse.sidecar.testing import free_port

from .common import (
    Check,
    Result,
    Sidecar,
    interleaved,
    not_measured,
    python_server,
    scratch_dir,
)

JOB = "bench-noop"
SCHEDULE = "*/5 * * * *"

# Answers every POST the way the sidecar does: 200, every event accepted.
DUMMY_SERVER = """
import json
from aiohttp import web

async def events(request):
    body = await request.read()
    try:
        n = len(json.loads(body)) if body[:1] == b"[" else body.count(b"\\n")
    except ValueError:
        n = 1
    return web.json_response({"accepted": n, "duplicates": 0, "rejected": [], "warnings": []})

async def anything(request):
    await request.read()
    return web.Response(text="ok")

app = web.Application(client_max_size=64 * 1024 * 1024)
app.router.add_post("/api/v1/events", events)
app.router.add_route("*", "/{tail:.*}", anything)
web.run_app(app, host="127.0.0.1", port={port}, print=None, access_log=None)
"""


def _noop() -> None:
    return None


class _NullExporter(SpanExporter):
    def export(self, spans: Any) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def _providers() -> tuple[TracerProvider, MeterProvider]:
    tp = TracerProvider()
    tp.add_span_processor(BatchSpanProcessor(_NullExporter(), max_queue_size=1 << 17))
    mp = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tp, mp


def _per_call(fn: Callable[[], Any], calls: int, after: Callable[[], Any] | None = None) -> float:
    """Seconds per call of ``fn`` over ``calls`` calls; ``after`` runs untimed."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    if after is not None:
        after()
    return elapsed / calls


def _handwritten(tp: TracerProvider, mp: MeterProvider) -> Callable[[], None]:
    """The floor: the span and metric calls @monitor makes, with the same attributes."""
    tracer = trace.get_tracer("bench.handwritten", tracer_provider=tp)
    meter = mp.get_meter("bench.handwritten")
    runs = meter.create_counter("jobpulse.job.runs", unit="{run}")
    duration_h = meter.create_histogram("jobpulse.job.duration", unit="s")
    function = f"{_noop.__module__}.{_noop.__qualname__}"

    def call() -> None:
        start = time.time()
        mono = time.monotonic()
        span = tracer.start_span(
            JOB,
            kind=SpanKind.INTERNAL,
            attributes={
                "faas.trigger": "timer",
                "faas.time": dt.datetime.fromtimestamp(start, dt.UTC).isoformat(),
                "jobpulse.job.name": JOB,
                "jobpulse.run.id": str(uuid.uuid4()),
                "faas.cron": SCHEDULE,
                "code.function.name": function,
            },
            start_time=int(start * 1e9),
            record_exception=False,
            set_status_on_exception=False,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            _noop()
        finally:
            otel_context.detach(token)
        seconds = time.monotonic() - mono
        span.set_attribute("jobpulse.run.outcome", "success")
        span.end(end_time=int((start + seconds) * 1e9))
        runs.add(1, {"jobpulse.job.name": JOB, "outcome": "success"})
        duration_h.record(seconds, {"jobpulse.job.name": JOB, "outcome": "success"})

    return call


def _client(url: str, spool: Path, calls: int, timeout: float = 2.0) -> HeartbeatClient:
    # Room for every event of a batch: the measure is the path that queues, not the one that
    # drops (that one is cheaper).
    return HeartbeatClient(
        url, spool_dir=spool, queue_size=max(10_000, 4 * calls), timeout=timeout, environ={}
    )


def decorator_cost(quick: bool) -> Result:
    calls = 2_000 if quick else 10_000
    rounds = 3 if quick else 9
    checks: list[Check] = []
    extra: dict[str, Any] = {"calls_per_sample": calls, "rounds": rounds}
    with scratch_dir("decorator") as tmp, python_server(DUMMY_SERVER, "/healthz") as url:
        tp, mp = _providers()
        client = _client(url, tmp / "spool", calls)
        flush = lambda: client.flush(30)  # noqa: E731
        with_sdk = monitor(
            JOB, schedule=SCHEDULE, client=client, tracer_provider=tp, meter_provider=mp
        )(_noop)
        no_sdk = monitor(JOB, schedule=SCHEDULE, client=client)(_noop)
        floor = _handwritten(tp, mp)
        subjects: dict[str, Callable[[], float]] = {
            "floor": lambda: _per_call(floor, calls),
            "sdk": lambda: _per_call(with_sdk, calls, flush),
            "no_sdk": lambda: _per_call(no_sdk, calls, flush),
        }
        sentry_reason = _sentry_setup(url, tmp)
        if sentry_reason is None:
            import sentry_sdk

            sentry_job = sentry_sdk.monitor(monitor_slug="bench-noop")(_noop)
            subjects["sentry"] = lambda: _per_call(
                sentry_job, calls, lambda: sentry_sdk.flush(timeout=30)
            )
        cronitor_reason = _cronitor_setup(url)
        cronitor_calls = max(50, calls // 20)  # it posts synchronously: a few hundred suffice
        if cronitor_reason is None:
            import cronitor

            cronitor_job = cronitor.job("bench-noop")(_noop)
            subjects["cronitor"] = lambda: _per_call(cronitor_job, cronitor_calls)
        medians = interleaved(subjects, rounds)
        client.close(5)
        tp.shutdown()
        mp.shutdown()
        if sentry_reason is None:
            import sentry_sdk

            sentry_sdk.get_client().close(timeout=5)
    us = {k: v * 1e6 for k, v in medians.items()}
    extra["per_call_us"] = us
    checks.append(
        Check(
            "decorator, OTel SDK / hand-written OTel floor",
            us["sdk"],
            us["floor"],
            "<= 1.25x",
            "µs/call",
            "max",
            1.25,
        )
    )
    checks.append(
        Check(
            "decorator, no OTel SDK / hand-written OTel floor",
            us["no_sdk"],
            us["floor"],
            "<= 0.2x",
            "µs/call",
            "max",
            0.2,
        )
    )
    if "sentry" in us:
        checks.append(
            Check(
                "decorator, no OTel SDK / sentry_sdk.monitor",
                us["no_sdk"],
                us["sentry"],
                "<= 0.1x (10x cheaper)",
                "µs/call",
                "max",
                0.1,
            )
        )
    else:
        checks.append(
            not_measured(
                "decorator / sentry_sdk.monitor", "<= 0.1x", "µs/call", sentry_reason or ""
            )
        )
    if "cronitor" in us:
        checks.append(
            Check(
                "decorator, no OTel SDK / cronitor.job",
                us["no_sdk"],
                us["cronitor"],
                "<= 0.02x (50x cheaper)",
                "µs/call",
                "max",
                0.02,
            )
        )
    else:
        checks.append(
            not_measured("decorator / cronitor.job", "<= 0.02x", "µs/call", cronitor_reason or "")
        )
    return Result("decorator_cost", "Decorator cost per call (no-op job)", checks, extra)


def _sentry_setup(url: str, tmp: Path) -> str | None:
    if importlib.util.find_spec("sentry_sdk") is None:
        return "sentry-sdk is not installed (pip install sentry-sdk)"
    import sentry_sdk

    port = url.rsplit(":", 1)[1]
    sentry_sdk.init(
        dsn=f"http://public@127.0.0.1:{port}/1",
        default_integrations=False,
        traces_sample_rate=0.0,
        send_client_reports=False,
    )
    return None


def _cronitor_setup(url: str) -> str | None:
    if importlib.util.find_spec("cronitor") is None:
        return "cronitor is not installed (pip install cronitor)"
    import cronitor

    cronitor.api_key = "bench"
    cronitor.environment = "bench"
    base = f"{url}/cronitor"
    # Every ping goes to the dummy server on loopback, never to cronitor's hosts.
    cronitor.Monitor._ping_api_url = lambda self: base
    return None


# ------------------------------------------------------------------------------ benchmark 2
@contextlib.contextmanager
def _hung_server() -> Iterator[int]:
    """Accepts connections and never answers (bounded: closes everything at exit)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    srv.settimeout(0.2)
    port = srv.getsockname()[1]
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        deadline = time.monotonic() + 900
        while not done.is_set() and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, OSError):
                conn, _ = srv.accept()
                held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        done.set()
        thread.join(2)
        for conn in held:
            conn.close()
        srv.close()


def outage_cost(quick: bool) -> Result:
    calls = 300 if quick else 2_000
    rounds = 2 if quick else 7
    with (
        scratch_dir("outage") as tmp,
        Sidecar(tmp, f'jobs:\n  - name: {JOB}\n    schedule: "{SCHEDULE}"\n') as sidecar,
        _hung_server() as hung_port,
    ):
        refused_port = free_port()  # bound and released: nothing listens there
        up = _client(sidecar.url, tmp / "spool-up", calls)
        down = _client(f"http://127.0.0.1:{refused_port}", tmp / "spool-down", calls)
        hung = _client(f"http://127.0.0.1:{hung_port}", tmp / "spool-hung", calls)
        jobs = {
            name: monitor(JOB, schedule=SCHEDULE, client=c)(_noop)
            for name, c in (("up", up), ("down", down), ("hung", hung))
        }
        medians = interleaved(
            {
                "up": lambda: _per_call(jobs["up"], calls, lambda: up.flush(60)),
                "down": lambda: _per_call(jobs["down"], calls),
                "hung": lambda: _per_call(jobs["hung"], calls),
            },
            rounds,
        )
        stats = {"up": up.stats, "down": down.stats, "hung": hung.stats}
        for c in (up, down, hung):
            c.close(1)
    us = {k: v * 1e6 for k, v in medians.items()}
    return Result(
        "outage_cost",
        "Decorator cost with the sidecar down / hung vs up",
        [
            Check(
                "sidecar down (refused) / up",
                us["down"],
                us["up"],
                "<= 1.1x",
                "µs/call",
                "max",
                1.1,
            ),
            Check(
                "sidecar hung (no answer) / up",
                us["hung"],
                us["up"],
                "<= 1.1x",
                "µs/call",
                "max",
                1.1,
            ),
        ],
        {
            "per_call_us": us,
            "calls_per_sample": calls,
            "rounds": rounds,
            "client_stats": {k: str(v) for k, v in stats.items()},
        },
    )
