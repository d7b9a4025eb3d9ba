"""Query parameters of the JSON API: run-list cursors, times, bounded integers, and CSV cells
that a spreadsheet will not run as formulas."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TypeVar

from aiohttp import web

from jobpulse.instrumentation.errors import InvalidEvent
from jobpulse.instrumentation.spec import INT64_MAX
from jobpulse.instrumentation.wire import TS_MAX, parse_ts

__all__ = [
    "CSV_COLUMNS",
    "csv_cell",
    "decode_cursor",
    "encode_cursor",
    "int_param",
    "time_param",
]

T = TypeVar("T")
OUTCOME_FILTERS = ("running", "success", "failure", "retry", "timeout", "cancelled")


def encode_cursor(started_at: float, row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([started_at, row_id]).encode()).decode()


_CURSOR_MAX_CHARS = 200
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() also takes '²' and '١'


def _shown(value: str) -> str:
    """``value`` for an error message: quoted, and cut when a hostile sender made it long."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def decode_cursor(text: str) -> tuple[float, int]:
    """The position a ``next_cursor`` of this API names; 422 for anything else."""
    invalid = web.HTTPUnprocessableEntity(
        text=f"cursor {_shown(text)} is not one this API returned: pass next_cursor as it is"
    )
    if not text.isascii() or len(text) > _CURSOR_MAX_CHARS:
        raise invalid
    try:
        decoded = json.loads(base64.b64decode(text, altchars=b"-_", validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise invalid from None
    if not isinstance(decoded, list) or len(decoded) != 2:
        raise invalid
    started_at, row_id = decoded
    if (
        isinstance(started_at, bool)
        or not isinstance(started_at, int | float)
        or not -TS_MAX < started_at < TS_MAX  # NaN fails it too
        or isinstance(row_id, bool)
        or not isinstance(row_id, int)
        or not 0 <= row_id <= INT64_MAX
    ):
        raise invalid
    return float(started_at), row_id


def time_param(request: web.Request, name: str) -> float | None:
    value = request.query.get(name)
    if value is None:
        return None
    if not value.isascii():
        raise web.HTTPUnprocessableEntity(
            text=f"{name} {_shown(value)}: use an RFC 3339 timestamp in ASCII digits "
            "(like 2026-11-23T10:00:03Z)"
        )
    try:
        return parse_ts(value, what=name)
    except InvalidEvent as exc:
        raise web.HTTPUnprocessableEntity(text=f"{name}: {exc.reason}") from None


def int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    value = request.query.get(name)
    if value is None:
        return default
    if not _DIGITS.fullmatch(value) or not lo <= int(value) <= hi:
        raise web.HTTPUnprocessableEntity(
            text=f"{name} {_shown(value)}: use a whole number {lo}-{hi} in ASCII digits (0-9)"
        )
    return int(value)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """``value`` safe to open in a spreadsheet (OWASP's CSV injection advice): text beginning
    with ``= + - @``, a tab or a carriage return gets a leading ``'`` so it is not run as a
    formula. Numbers (a negative exit code or duration included) are written as they are."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


CSV_COLUMNS = (
    "run_id",
    "slot",
    "started_at",
    "finished_at",
    "outcome",
    "duration",
    "attempt",
    "exit_code",
    "error_type",
    "error_message",
    "host",
    "trace_id",
    "flags",
)
