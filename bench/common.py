"""What every jobpulse benchmark shares: results, the machine, timing, processes, load.

Every figure is a ratio to a baseline measured in the same run, and every measurement is
repeated and reported as a median, because the machine is shared and noisy.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from jobpulse.sidecar.testing import ServedSidecar, free_port

PG_ADMIN_URL = os.environ.get("JOBPULSE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@dataclass
class Check:
    """One target: ``value`` compared with ``baseline``; ``ratio`` = value / baseline."""

    name: str
    value: float | None
    baseline: float | None
    target: str
    unit: str
    # "max" (ratio must be <= limit) or "min" (ratio must be >= limit)
    kind: str = "max"
    limit: float = 1.0
    note: str = ""
    ratio: float | None = None
    met: bool | None = None

    def __post_init__(self) -> None:
        if self.value is not None and self.baseline:
            self.ratio = self.value / self.baseline
            self.met = self.ratio <= self.limit if self.kind == "max" else self.ratio >= self.limit
        else:
            self.met = False  # not measured: not met, and ``note`` says why


@dataclass
class Result:
    name: str
    title: str
    checks: list[Check]
    extra: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        first = self.checks[0]
        return {
            "name": self.name,
            "title": self.title,
            "value": first.value,
            "baseline": first.baseline,
            "ratio": first.ratio,
            "target": first.target,
            "met": all(c.met for c in self.checks),
            "unit": first.unit,
            "checks": [asdict(c) for c in self.checks],
            "extra": self.extra,
        }


def not_measured(name: str, target: str, unit: str, reason: str) -> Check:
    return Check(name, None, None, target, unit, note=f"not measured: {reason}")


# ------------------------------------------------------------------------------ the machine
def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = int(line.split()[1]) * 1024
    return {
        "cpu_model": cpu,
        "cores": os.cpu_count(),
        "memory_bytes": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


# ------------------------------------------------------------------------------ timing
def median(values: list[float]) -> float:
    return statistics.median(values)


def interleaved(
    subjects: dict[str, Callable[[], float]], rounds: int, *, warmup: bool = True
) -> dict[str, float]:
    """Run each subject ``rounds`` times, interleaved (a, b, c, a, b, c, ...) so that a noisy
    neighbour hurts every subject alike; the median of each."""
    if warmup:
        for fn in subjects.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in subjects}
    for _ in range(rounds):
        for key, fn in subjects.items():
            samples[key].append(fn())
    return {k: median(v) for k, v in samples.items()}


@contextlib.contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"jobpulse-bench-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def wait_http(url: str, proc: subprocess.Popen[bytes] | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Sidecar(ServedSidecar):
    """``jobpulse serve`` as a real process on an ephemeral loopback port, given two minutes
    to start (a store with 100,000 jobs is migrated and loaded first)."""

    def __init__(
        self,
        workdir: Path,
        config: str = "",
        *,
        store: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(workdir, config, store=store, env=env, start_timeout=120)

    def body(self, path: str, timeout: float = 60) -> bytes:
        """``GET path``; an error unless it answers 200."""
        status, body = self.get(path, timeout=timeout)
        if status != 200:
            raise RuntimeError(f"GET {path} answered {status}: {body[:200]!r}")
        return body


@contextlib.contextmanager
def python_server(code: str, health_path: str = "/") -> Iterator[str]:
    """A Python server (``code`` formats ``{port}``) in its own process for the block; yields
    its URL once ``health_path`` answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", code.replace("{port}", str(port))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}{health_path}", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


# ------------------------------------------------------------------------------ wrk
def wrk(
    url: str, *, script: str, seconds: float, connections: int, threads: int = 1
) -> dict[str, float]:
    """Run wrk against a loopback ``url`` with a Lua ``script``; requests/s and non-2xx."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError("load generators run against 127.0.0.1 only")
    binary = shutil.which("wrk")
    if binary is None:
        raise FileNotFoundError("wrk is not installed (apt-get install -y wrk)")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script + _WRK_DONE)
        path = f.name
    try:
        out = subprocess.run(
            [
                binary,
                "-t",
                str(threads),
                "-c",
                str(connections),
                "-d",
                f"{seconds:g}s",
                "--timeout",
                "10s",
                "-s",
                path,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(path)
    for line in out.splitlines():
        if line.startswith("JSON "):
            data: dict[str, float] = json.loads(line[5:])
            return data
    raise RuntimeError(f"wrk printed no summary: {out[-500:]}")


_WRK_DONE = """
non2xx = 0
local threads_ = {}
function setup(thread) table.insert(threads_, thread) end
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local bad = 0
  for _, t in ipairs(threads_) do bad = bad + (t:get("non2xx") or 0) end
  local secs = summary.duration / 1e6
  io.write(string.format(
    'JSON {"requests": %d, "seconds": %.6f, "rps": %.3f, "errors": %d, "non2xx": %d, '
    .. '"p50_ms": %.3f, "p99_ms": %.3f}\\n',
    summary.requests, secs, summary.requests / secs,
    summary.errors.connect + summary.errors.read + summary.errors.write
      + summary.errors.timeout, bad,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
"""


def have(binary: str) -> bool:
    return shutil.which(binary) is not None
