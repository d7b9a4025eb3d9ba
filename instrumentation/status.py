"""``jobpulse status``: the fleet at a glance, from the sidecar's JSON API (stdlib only).

Reads ``GET {url}/api/v1/jobs`` (or ``/api/v1/jobs/{job}`` with ``--job``) with the read token
as a bearer token, and prints a table, or the JSON with ``--json``. Colours only on a terminal
and only when ``NO_COLOR`` is not set (no-color.org).

Exit status: 0 when no job is down, 1 when any job is down, 2 when the sidecar cannot be
reached, answers an error, or does not know the job asked for.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, TextIO
from urllib.parse import quote

from ._settings import ClientSettings
from .errors import ConfigError

__all__ = ["EXIT_DOWN", "EXIT_ERROR", "EXIT_OK", "main", "render_table"]

EXIT_OK: Final = 0
EXIT_DOWN: Final = 1
EXIT_ERROR: Final = 2
COLOURS: Final = {"up": "32", "late": "33", "down": "31", "paused": "90", "new": "34"}
HEADERS: Final = ("NAME", "STATE", "LAST SUCCESS", "NEXT EXPECTED", "RUNNING", "SUCCESS 24H")


class Unavailable(Exception):
    """The sidecar could not be asked, or answered with an error (the message says which)."""


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _ago(value: object, now: float) -> str:
    at = _epoch(value)
    return "never" if at is None else f"{_span(now - at)} ago"


def _until(value: object, now: float) -> str:
    at = _epoch(value)
    if at is None:
        return "-"
    return f"in {_span(at - now)}" if at >= now else f"due {_span(now - at)} ago"


def _state(job: Mapping[str, Any]) -> str:
    reason = job.get("reason")
    return f"{job.get('state')}({reason})" if reason else str(job.get("state"))


def render_table(jobs: Sequence[Mapping[str, Any]], *, now: float, colour: bool) -> str:
    """The table ``jobpulse status`` prints, with a summary line of counts by state."""
    rows = []
    for job in jobs:
        ratio = job.get("success_ratio_24h")
        rows.append(
            (
                str(job.get("name")),
                _state(job),
                _ago(job.get("last_success"), now),
                _until(job.get("next_expected"), now),
                str(job.get("running", 0)),
                "-" if ratio is None else f"{100 * float(ratio):.1f}%",
            )
        )
    widths = [max(len(r[i]) for r in [HEADERS, *rows]) for i in range(len(HEADERS))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True)).rstrip()]
    for job, row in zip(jobs, rows, strict=True):
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        code = COLOURS.get(str(job.get("state")))
        if colour and code:
            cells[1] = f"\033[{code}m{cells[1]}\033[0m"
        lines.append("  ".join(cells).rstrip())
    counts: dict[str, int] = {}
    for job in jobs:
        counts[str(job.get("state"))] = counts.get(str(job.get("state")), 0) + 1
    summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
    lines.append(
        f"{len(jobs)} job{'s' if len(jobs) != 1 else ''}" + (f": {summary}" if jobs else "")
    )
    return "\n".join(lines) + "\n"


def _error_text(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace").strip()
    if isinstance(data, dict) and "error" in data:
        return f"{data.get('error')}: {data.get('detail')}"
    return str(data)[:200]


def fetch(url: str, token: str | None, timeout: float, job: str | None) -> Any:
    """The decoded JSON of the jobs list (or one job); raises :class:`Unavailable`."""
    target = f"{url}/api/v1/jobs" + (f"/{quote(job, safe='')}" if job else "")
    headers = {"Accept": "application/json", "User-Agent": "jobpulse-status"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(target, headers=headers)  # noqa: S310 - http(s) checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as exc:
        detail = _error_text(exc.read())
        if exc.code == 404 and job:
            raise Unavailable(f"the sidecar at {url} has no job named {job!r} ({detail})") from None
        hint = (
            " (give a read token with --token or JOBPULSE_TOKEN)" if exc.code in (401, 403) else ""
        )
        raise Unavailable(f"the sidecar at {url} answered {exc.code} {detail}{hint}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(f"cannot reach the sidecar at {url}: {reason}") from None
    try:
        return json.loads(body)
    except ValueError:
        raise Unavailable(f"the sidecar at {url} answered something that is not JSON") from None


def _use_colour(stream: TextIO) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR")


def main(args: argparse.Namespace) -> int:
    try:
        settings = ClientSettings.resolve(url=args.url, token=args.token)
        data = fetch(settings.url, settings.token, settings.timeout, args.job)
        jobs = [data] if args.job else data.get("jobs") if isinstance(data, dict) else None
        if not isinstance(jobs, list) or not all(isinstance(j, dict) for j in jobs):
            raise Unavailable(f"the sidecar at {settings.url} answered an unexpected JSON shape")
    except (ConfigError, Unavailable) as exc:
        print(f"jobpulse status: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        sys.stdout.write(render_table(jobs, now=time.time(), colour=_use_colour(sys.stdout)))
    return EXIT_DOWN if any(j.get("state") == "down" for j in jobs) else EXIT_OK
