"""A real sidecar app served on an ephemeral port from its own thread and event loop.

Tests with a scheduler's threads, a Celery worker or the OpenTelemetry exporter talk to it over
HTTP, exactly as in production. The evaluator task is off unless asked for (these tests judge
nothing by the clock; tests that do pass a ManualClock and tick with ``sidecar.tick_sync()``):
the evaluator's start-up retention pass, still running in a worker thread when a quick test
stops the app, would otherwise hold the interpreter's exit for a minute.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from jobpulse.instrumentation import HeartbeatClient
from jobpulse.sidecar.domain.clock import Clock
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.service import Sidecar
from jobpulse.sidecar.settings import Settings
from tests.conftest import free_port


class LiveSidecar:
    def __init__(
        self,
        workdir: Path,
        *,
        clock: Clock | None = None,
        run_evaluator: bool = False,
        **overrides: Any,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings(store=f"sqlite:///{workdir}/jobpulse.db", catchup_delay=0, **overrides)
        self.app = create_app(settings, clock=clock, run_evaluator=run_evaluator)
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(self.app)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def sidecar(self) -> Sidecar:
        return self.app[SIDECAR]

    def start(self) -> LiveSidecar:
        self._thread.start()

        async def serve() -> None:
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

        asyncio.run_coroutine_threadsafe(serve(), self._loop).result(20)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(20)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def client(self) -> HeartbeatClient:
        return HeartbeatClient(url=self.url, spool_dir=self.workdir / "spool")

    def request(
        self, path: str, body: bytes | None = None, content_type: str | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        if body is None:
            # A read sees what was accepted before it: apply what waits in the inbox (the
            # evaluator task that would do it just behind is off here).
            self.sidecar.apply_pending()
        headers = {"Content-Type": content_type} if content_type else {}
        req = urllib.request.Request(self.url + path, data=body, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def get(self, path: str) -> Any:
        status, _, body = self.request(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def job(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.get(f"/api/v1/jobs/{name}")
        return found

    def runs(self, name: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.get(f"/api/v1/jobs/{name}/runs?limit=500")["runs"]
        return found

    def metric(self, line_prefix: str) -> float | None:
        status, _, body = self.request("/metrics")
        assert status == 200
        for line in body.decode().splitlines():
            if line.startswith(line_prefix + " "):
                return float(line.rsplit(" ", 1)[1])
        return None
