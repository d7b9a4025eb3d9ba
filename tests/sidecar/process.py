"""Run `jobpulse serve` as a real process on an ephemeral port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.conftest import free_port

JOBPULSE = str(Path(sys.executable).parent / "jobpulse")


class Served:
    def __init__(
        self,
        workdir: Path,
        config: str = "",
        *,
        store: str | None = None,
        env: dict[str, str] | None = None,
        extra: list[str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "jobpulse.yaml"
        self.config.write_text(config)
        self.store = store or f"sqlite:///{workdir}/jobpulse.db"
        self.env = {**os.environ, "JOBPULSE_CATCHUP_DELAY": "0", **(env or {})}
        self.extra = extra or []
        self.log = workdir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> Served:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    JOBPULSE,
                    "serve",
                    "--port",
                    str(self.port),
                    "--config",
                    str(self.config),
                    "--store",
                    self.store,
                    *self.extra,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jobpulse serve exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"jobpulse serve did not answer: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)
        self.proc = None

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post_events(self, events: list[dict[str, Any]], timeout: float = 10) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url + "/api/v1/events",
            data=json.dumps(events).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result
