"""An example Alertmanager webhook receiver: logs each alert it is sent as one JSON line.

docker-compose.yml runs it as the `alert-receiver` service (python:3.11-slim, no dependencies);
deploy/alertmanager.yml sends every receiver's webhook here, under a path naming the receiver
(/alerts, /page, /page/data, /chat/data). Watch it with `docker compose logs -f alert-receiver`,
then replace it with a real receiver. Usage: python alert-receiver.py [--host H] [--port P].
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LABELS = ("alertname", "job_name", "severity", "team", "cluster", "namespace")


def lines(path: str, notification: dict[str, Any]) -> list[str]:
    """One log line per alert of an Alertmanager webhook notification."""
    out = []
    for alert in notification.get("alerts", []):
        labels = alert.get("labels", {})
        record = {
            "receiver": notification.get("receiver"),
            "path": path,
            "status": alert.get("status"),
            **{name: labels[name] for name in LABELS if name in labels},
            "summary": alert.get("annotations", {}).get("summary"),
            "runbook_url": alert.get("annotations", {}).get("runbook_url"),
            "startsAt": alert.get("startsAt"),
        }
        out.append(json.dumps(record, sort_keys=True))
    return out


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            notification = json.loads(self.rfile.read(length))
        except ValueError:
            self.send_response(400)
            self.end_headers()
            return
        for line in lines(self.path, notification):
            print(line, flush=True)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per alert is the log; no access log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a container's service
    parser.add_argument("--port", type=int, default=5001)
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"alert-receiver listening on {args.host}:{server.server_address[1]}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `docker stop`: PID 1 exits at once
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
