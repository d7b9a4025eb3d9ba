"""`kill -9` of the sidecar after a flip is committed and before its notification is delivered:
the notification is in the outbox, committed with the flip, and arrives once after the restart,
with the idempotency key it had before."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobpulse.sidecar.testing import free_port
from tests.sidecar.process import Served

SECRET = "crash-test-secret"


class Hook:
    """A webhook receiver on a fixed port, started when the test says so."""

    def __init__(self, port: int) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def outbox(db: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        return conn.execute("SELECT key, alert, attempts FROM outbox ORDER BY id").fetchall()


def wait_for(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_notification_committed_before_a_sigkill_arrives_once_after_the_restart(
    tmp_path: Path,
) -> None:
    port = free_port()  # the receiver is down at first: nothing listens here
    config = f"""
jobs:
  - name: crashy
    every: 2s
    grace: 1s
    labels: {{team: ops}}
notify:
  webhooks:
    - name: ops
      url: http://127.0.0.1:{port}/hook
      secret: {SECRET}
      timeout: 1s
  retry: {{initial_delay: 0.5s, max_delay: 1s}}
"""
    served = Served(tmp_path, config).start()
    db = tmp_path / "jobpulse.db"
    hook: Hook | None = None
    try:
        # the job misses its first slot: down, and the firing notification fails to deliver
        ((key, alert, _),) = wait_for(
            "a failed delivery attempt", lambda: [r for r in outbox(db) if r[2] >= 1], 30
        )
        assert alert == "firing"
        served.stop(signal.SIGKILL)
        assert [r[0] for r in outbox(db)] == [key]  # committed, not delivered

        hook = Hook(port)
        served.start()
        wait_for("the delivery", lambda: hook.requests, 60)
        wait_for("the outbox to empty", lambda: outbox(db) == [], 10)
        time.sleep(3)  # anything sent twice would have arrived by now
        ((headers, body),) = hook.requests
        assert headers["Idempotency-Key"] == key
        payload = json.loads(body)
        assert (payload["id"], payload["status"], payload["job"]) == (key, "firing", "crashy")
        assert payload["reason"] == "missed"
        assert headers["X-Jobpulse-Signature"].startswith("t=")
    finally:
        served.stop()
        if hook is not None:
            hook.server.shutdown()
