"""`make run`: the sidecar on the embedded SQLite store with the example jobs reporting to it.

Starts `jobpulse serve --config examples/jobpulse.yaml`, waits until it answers, then runs
examples/run_jobs.py against it. Ctrl-C stops both.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
URL = os.environ.get("JOBPULSE_URL", "http://127.0.0.1:8484")


def main() -> int:
    jobpulse = Path(sys.executable).parent / "jobpulse"
    sidecar = subprocess.Popen([str(jobpulse), "serve", "--config", str(HERE / "jobpulse.yaml")])
    try:
        for _ in range(100):
            if sidecar.poll() is not None:
                return sidecar.returncode or 1
            try:
                with urllib.request.urlopen(f"{URL}/healthz", timeout=1):
                    break
            except OSError:
                time.sleep(0.1)
        print(
            f"\n  jobpulse is up: status page {URL}/  metrics {URL}/metrics  "
            f"API {URL}/api/v1/jobs\n  try: curl {URL}/ping/nightly-backup/start\n",
            flush=True,
        )
        jobs = subprocess.Popen(
            [sys.executable, str(HERE / "run_jobs.py")], env={**os.environ, "JOBPULSE_URL": URL}
        )
        try:
            return jobs.wait()
        except KeyboardInterrupt:
            jobs.send_signal(signal.SIGINT)
            jobs.wait(timeout=10)
            return 0
    finally:
        if sidecar.poll() is None:
            sidecar.send_signal(signal.SIGINT)
            try:
                sidecar.wait(timeout=10)
            except subprocess.TimeoutExpired:
                sidecar.kill()


if __name__ == "__main__":
    sys.exit(main())
