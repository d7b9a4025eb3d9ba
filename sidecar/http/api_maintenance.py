"""Maintenance windows over the JSON API: open one (now or from a later ``start``) for a
duration, list the open and upcoming ones (the file's and the API's), end one early.

``POST /api/v1/maintenance`` takes ``{"jobs": [...], "match": {...}, "duration": "2h",
"reason": "...", "start": "..."}`` (``jobs`` and/or ``match``; ``start`` defaults to now) and
answers 201 with the window; ``DELETE /api/v1/maintenance/{id}`` ends it now. Windows are
stored, so every replica judges with them (``store/maintenance.py``).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from sqlalchemy.orm import Session

from jobpulse.instrumentation.errors import ConfigError, InvalidEvent, unknown_fields
from jobpulse.instrumentation.wire import parse_ts

from ..maintenance_config import parse_match, parse_target_jobs, parse_window_duration
from ..service import Sidecar
from ..store.maintenance import close_window, list_windows, open_window
from ..store.tx import Tx
from .errors import json_error
from .keys import SIDECAR
from .views import api_window_view, window_view

__all__ = ["routes"]

routes = web.RouteTableDef()
FIELDS = ("jobs", "match", "duration", "reason", "start")
MAX_REASON = 500
_START_SLACK = 60.0  # a start this far in the past (client clocks) is taken as now


class _Invalid(ValueError):
    pass


def _parse(body: object, now: float) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Invalid("the body must be a JSON object with jobs and/or match, and duration")
    unknown = [k for k in body if k not in FIELDS]
    if unknown:
        raise _Invalid(unknown_fields(unknown, FIELDS))
    if body.get("jobs") is None and body.get("match") is None:
        raise _Invalid("jobs or match: give the jobs the window holds, by name and/or by labels")
    try:
        jobs = parse_target_jobs(body["jobs"]) if body.get("jobs") is not None else ()
        match = parse_match(body["match"]) if body.get("match") is not None else ()
        if "duration" not in body:
            raise _Invalid('duration: missing; give e.g. "2h" or seconds')
        duration = parse_window_duration(body["duration"])
    except ConfigError as exc:
        raise _Invalid(str(exc)) from None
    reason = body.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise _Invalid(f"reason must be text of at most {MAX_REASON} characters")
    start = now
    if body.get("start") is not None:
        try:
            start = parse_ts(body["start"], what="start")
        except InvalidEvent as exc:
            raise _Invalid(f"start: {exc.reason}") from None
        if start < now - _START_SLACK:
            raise _Invalid(
                f"start {body['start']!r} is in the past; omit start to open the window now"
            )
        start = max(start, now)
    return {
        "jobs": jobs,
        "match": dict(match),
        "start": start,
        "end": start + duration,
        "reason": reason or None,
    }


def _window_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not text.isascii() or not text.isdigit() or len(text) > 18:
        raise web.HTTPNotFound(text=f"no maintenance window {text[:40]!r}: ids are numbers")
    return int(text)


@routes.post("/api/v1/maintenance")
async def create_window(request: web.Request) -> web.Response:
    sidecar = request.app[SIDECAR]
    try:
        body = await request.json()
    except ValueError as exc:
        return json_error(400, "malformed body", f"the body is not valid JSON: {exc}")
    try:
        fields = _parse(body, sidecar.clock.now())
    except _Invalid as exc:
        return json_error(400, "invalid maintenance window", str(exc))

    def work(tx: Tx) -> dict[str, Any] | str:
        now = sidecar.clock.now()
        unknown = [name for name in fields["jobs"] if tx.job(name) is None]
        if unknown:
            return f"jobs: no job named {', '.join(map(repr, unknown))}"
        row = open_window(tx, sidecar.engine, now=now, **fields)
        return api_window_view(row, now)

    done = await sidecar.writer.run(work)
    if isinstance(done, str):
        return json_error(400, "invalid maintenance window", done)
    return web.json_response(done, status=201)


@routes.get("/api/v1/maintenance")
async def list_maintenance(request: web.Request) -> web.Response:
    def fn(sidecar: Sidecar, session: Session) -> list[dict[str, Any]]:
        now = sidecar.clock.now()
        views = [view for w in sidecar.engine.windows if (view := window_view(w, now)) is not None]
        views += [api_window_view(row, now) for row in list_windows(session, since=now)]
        return views

    return web.json_response({"windows": await request.app[SIDECAR].read(fn)})


@routes.delete("/api/v1/maintenance/{id}")
async def end_window(request: web.Request) -> web.Response:
    window_id = _window_id(request)
    sidecar = request.app[SIDECAR]

    def work(tx: Tx) -> tuple[dict[str, Any], bool] | None:
        now = sidecar.clock.now()
        row, ended = close_window(tx, sidecar.engine, window_id, now)
        return None if row is None else (api_window_view(row, now), ended)

    done = await sidecar.writer.run(work)
    if done is None:
        return json_error(404, "unknown maintenance window", f"no maintenance window {window_id}")
    view, ended = done
    if not ended:
        return json_error(409, "conflict", f"maintenance window {window_id} has already closed")
    return web.json_response(view)
