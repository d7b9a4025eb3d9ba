"""Fixtures for the job-side library: a recording fake sidecar, dead endpoints, OTel readers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from jobpulse.instrumentation.errors import InvalidEvent
from jobpulse.instrumentation.wire import parse_event

Answer = tuple[int, dict[str, Any], dict[str, str]]


class FakeSidecar:
    """Records every POSTed batch and answers in the sidecar's response shape.

    Events are validated with the real wire parser (invalid ones come back as rejections) and
    deduplicated on (run_id, type) as the sidecar does. ``script`` holds answers to give instead,
    one per request, e.g. ``(503, {}, {})`` or ``(429, {}, {"Retry-After": "7"})``.
    """

    def __init__(self, port: int = 0) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.script: list[Answer] = []
        self.reject: Callable[[dict[str, Any]], str | None] = lambda event: None
        self.seen: set[tuple[str, str]] = set()
        self.lock = threading.Lock()
        self.received = threading.Condition(self.lock)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, answer, extra = fake.answer(self.path, dict(self.headers), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in extra.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def answer(self, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self.lock:
            if self.script:
                return self.script.pop(0)
            if path != "/api/v1/events":
                return 404, {"error": "not found", "detail": path}, {}
            try:
                batch = json.loads(body)
            except ValueError:
                return 400, {"error": "bad json", "detail": ""}, {}
            self.batches.append(batch)
            self.headers.append(headers)
            accepted = duplicates = 0
            rejected: list[dict[str, Any]] = []
            for index, raw in enumerate(batch):
                reason = self.reject(raw)
                try:
                    event, _ = parse_event(raw)
                except InvalidEvent as exc:
                    rejected.append({"index": index, "field": exc.field, "reason": exc.reason})
                    continue
                if reason:
                    rejected.append({"index": index, "field": "job", "reason": reason})
                    continue
                key = (event.run_id, event.type)
                if key in self.seen:
                    duplicates += 1
                else:
                    self.seen.add(key)
                    accepted += 1
            self.received.notify_all()
            answer = {
                "accepted": accepted,
                "duplicates": duplicates,
                "rejected": rejected,
                "warnings": [],
            }
            return 200, answer, {}

    @property
    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event for batch in self.batches for event in batch]

    def wait_for(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until at least ``n`` events arrived (a bound, not a sleep: returns at once)."""
        with self.received:
            self.received.wait_for(lambda: sum(len(b) for b in self.batches) >= n, timeout=timeout)
        return self.events

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sidecar() -> Iterator[FakeSidecar]:
    fake = FakeSidecar()
    yield fake
    fake.close()


@pytest.fixture
def closed_url() -> str:
    """A URL on an ephemeral port nobody listens on: connection refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A server that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            held.append(conn)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def meters() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """No test reads the developer's JOBPULSE_* settings or writes to their cache dir."""
    for name in (
        "JOBPULSE_URL",
        "JOBPULSE_TOKEN",
        "JOBPULSE_QUEUE_SIZE",
        "JOBPULSE_TIMEOUT",
        "JOBPULSE_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("JOBPULSE_SPOOL_DIR", str(tmp_path / "default-spool"))
