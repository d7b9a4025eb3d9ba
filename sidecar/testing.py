"""``jobpulse serve`` as a real process on an ephemeral loopback port, for integration tests
and benchmarks (jobpulse's own, and users' tests of their jobs against a real sidecar)::

    with ServedSidecar(tmp_path, "jobs:\\n  - name: nightly\\n    schedule: '0 3 * * *'\\n") as sc:
        os.environ["JOBPULSE_URL"] = sc.url
        ...
        status, body = sc.get("/api/v1/jobs/nightly")

The sidecar uses a SQLite store in ``workdir`` unless ``store`` is given, and judges slots from
its first second (``JOBPULSE_CATCHUP_DELAY=0``); its output goes to ``workdir/serve.log``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["JOBPULSE", "ServedSidecar", "free_port"]

JOBPULSE = str(Path(sys.executable).parent / "jobpulse")


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS line in /proc/{pid}/status")


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (and its threads did) that still run."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def _open(target: str | urllib.request.Request, timeout: float) -> Any:
    # Only ever http://127.0.0.1:<port> of the process this module started.
    return urllib.request.urlopen(target, timeout=timeout)  # noqa: S310


class ServedSidecar:
    def __init__(
        self,
        workdir: Path,
        config: str = "",
        *,
        store: str | None = None,
        env: dict[str, str] | None = None,
        extra: list[str] | None = None,
        start_timeout: float = 20.0,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = workdir / "jobpulse.yaml"
        self.config.write_text(config)
        self.store = store or f"sqlite:///{workdir}/jobpulse.db"
        self.env = {**os.environ, "JOBPULSE_CATCHUP_DELAY": "0", **(env or {})}
        self.extra = extra or []
        self.start_timeout = start_timeout
        self.log = workdir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        return [
            JOBPULSE,
            "serve",
            "--port",
            str(self.port),
            "--config",
            str(self.config),
            "--store",
            self.store,
            *self.extra,
        ]

    def start(self, timeout: float | None = None) -> ServedSidecar:
        """Start the process and wait until ``/healthz`` answers."""
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.workdir
            )
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"jobpulse serve exited: {self.log.read_text()[-2000:]}")
            try:
                with _open(self.url + "/healthz", timeout=1):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"jobpulse serve did not answer: {self.log.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Send ``sig`` and wait for the exit (killing the process if it does not exit)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> ServedSidecar:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def wait_applied(self, timeout: float = 10) -> None:
        """Wait until every event the sidecar accepted is applied (``/readyz`` reports an empty
        inbox), so that reads see them."""
        deadline = time.monotonic() + timeout
        while True:
            status, body = self.get("/readyz", applied=False)
            if status == 200 and json.loads(body).get("inbox", {}).get("pending") == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"events still wait in the inbox after {timeout} s: {body!r}")
            time.sleep(0.02)

    def get(self, path: str, timeout: float = 10, *, applied: bool = True) -> tuple[int, bytes]:
        """``GET path``: the status and the body, whatever the status. With ``applied`` (the
        default) the read waits until every accepted event is applied: it sees its writes."""
        if applied:
            self.wait_applied(timeout)
        try:
            with _open(self.url + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def post_events(
        self, events: list[dict[str, Any]], timeout: float = 10, *, wait_applied: bool = True
    ) -> dict[str, Any]:
        """Send ``events``; with ``wait_applied`` the answer comes once they are applied."""
        req = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.url + "/api/v1/events" + ("?wait=applied" if wait_applied else ""),
            data=json.dumps(events).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with _open(req, timeout=timeout) as resp:
            result: dict[str, Any] = json.loads(resp.read())
            return result

    def rss_bytes(self) -> int:
        """The resident memory (Linux) of the sidecar: the process, and its applier process
        when it has one (``apply_process``)."""
        assert self.proc is not None
        return sum(_rss(pid) for pid in (self.proc.pid, *_children(self.proc.pid)))
