"""The JSON API under /api/v1. Handlers parse, call the store or the engine, and serialise."""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from jobpulse.instrumentation.errors import ConfigError, InvalidEvent, InvalidJobConfig, InvalidName
from jobpulse.instrumentation.spec import INT64_MAX, parse_job_fields, parse_job_name
from jobpulse.instrumentation.wire import TS_MAX, parse_ts

from .domain.rollup import WINDOWS, stats_from_rows, window_start
from .domain.tables import Flip, Job, Rollup, Run, Slot
from .errors import json_error
from .keys import SIDECAR
from .service import Sidecar
from .store.tx import Tx
from .views import flip_view, full_job_view, full_job_views, run_view, slot_view

__all__ = ["routes"]

T = TypeVar("T")
routes = web.RouteTableDef()
OUTCOME_FILTERS = ("running", "success", "failure", "retry", "timeout", "cancelled")


async def _read(request: web.Request, fn: Callable[[Sidecar, Session], T]) -> T:
    return await request.app[SIDECAR].read(fn)


def _job_name(request: web.Request) -> str:
    try:
        return parse_job_name(request.match_info["job"])
    except InvalidName as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


def _not_found(name: str) -> web.Response:
    return json_error(404, "unknown job", f"no job named {name!r}")


@routes.get("/api/v1/jobs")
async def list_jobs(request: web.Request) -> web.Response:
    state = request.query.get("state")
    if state is not None and state not in ("new", "up", "late", "down", "paused"):
        return json_error(422, "invalid state", f"state {state!r}: use new, up, late, down, paused")
    label_filters: list[tuple[str, str]] = []
    for raw in request.query.getall("label", []):
        key, sep, value = raw.partition("=")
        if not sep:
            return json_error(422, "invalid label filter", f"label {raw!r}: use label=key=value")
        label_filters.append((key, value))
    include_removed = request.query.get("removed") in ("1", "true")

    def fn(sidecar: Sidecar, session: Session) -> list[dict[str, Any]]:
        query = select(Job).order_by(Job.name)
        if state is not None:
            query = query.where(Job.state == state)
        if not include_removed:
            query = query.where(Job.removed.is_(False))
        chosen = [
            job
            for job in session.scalars(query)
            if all(sidecar.engine.config(job).labels.get(k) == v for k, v in label_filters)
        ]
        return full_job_views(sidecar, session, chosen)

    return web.json_response({"jobs": await _read(request, fn)})


@routes.get("/api/v1/jobs/{job}")
async def get_job(request: web.Request) -> web.Response:
    return await _job_response(request)


async def _job_response(request: web.Request) -> web.Response:
    name = _job_name(request)

    def fn(sidecar: Sidecar, session: Session) -> dict[str, Any] | None:
        job = session.scalars(select(Job).where(Job.name == name)).first()
        return full_job_view(sidecar, session, job) if job is not None else None

    view = await _read(request, fn)
    return web.json_response(view) if view is not None else _not_found(name)


def _encode_cursor(started_at: float, row_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([started_at, row_id]).encode()).decode()


_CURSOR_MAX_CHARS = 200
_DIGITS = re.compile(r"[0-9]{1,18}")  # ASCII only: str.isdigit() also takes '²' and '١'


def _shown(value: str) -> str:
    """``value`` for an error message: quoted, and cut when a hostile sender made it long."""
    return repr(value if len(value) <= 40 else value[:40] + "…")


def _decode_cursor(text: str) -> tuple[float, int]:
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


def _time_param(request: web.Request, name: str) -> float | None:
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


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
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


@routes.get("/api/v1/jobs/{job}/runs")
async def list_runs(request: web.Request) -> web.StreamResponse:
    name = _job_name(request)
    outcome = request.query.get("outcome")
    if outcome is not None and outcome not in OUTCOME_FILTERS:
        return json_error(
            422, "invalid outcome", f"outcome {outcome!r}: use {', '.join(OUTCOME_FILTERS)}"
        )
    since, until = _time_param(request, "since"), _time_param(request, "until")
    text = request.query.get("q")
    limit = _int_param(request, "limit", 100, 1, 1000)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        return json_error(422, "invalid format", f"format {fmt!r}: use json or csv")
    cursor = _decode_cursor(request.query["cursor"]) if "cursor" in request.query else None

    def fn(sidecar: Sidecar, session: Session) -> tuple[list[Run], bool] | None:
        job_id = session.scalar(select(Job.id).where(Job.name == name))
        if job_id is None:
            return None
        query = select(Run).where(Run.job_id == job_id)
        if outcome is not None:
            query = query.where(Run.outcome == outcome)
        if since is not None:
            query = query.where(Run.started_at >= since)
        if until is not None:
            query = query.where(Run.started_at < until)
        if text:  # literal text: % and _ in it are not LIKE wildcards
            query = query.where(
                or_(
                    Run.error_message.contains(text, autoescape=True),
                    Run.error_type.contains(text, autoescape=True),
                )
            )
        if cursor is not None:
            query = query.where(
                or_(
                    Run.started_at < cursor[0], (Run.started_at == cursor[0]) & (Run.id < cursor[1])
                )
            )
        query = query.order_by(Run.started_at.desc(), Run.id.desc()).limit(limit + 1)
        rows = list(session.scalars(query))
        return rows[:limit], len(rows) > limit

    found = await _read(request, fn)
    if found is None:
        return _not_found(name)
    runs, more = found
    views = [run_view(r) for r in runs]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(CSV_COLUMNS)
        for view in views:
            writer.writerow(
                [
                    csv_cell(";".join(view["flags"]) if c == "flags" else view.get(c))
                    for c in CSV_COLUMNS
                ]
            )
        return web.Response(
            text=buf.getvalue(),
            content_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}-runs.csv"'},
        )
    next_cursor = _encode_cursor(runs[-1].started_at, runs[-1].id) if more and runs else None
    return web.json_response({"runs": views, "next_cursor": next_cursor})


@routes.get("/api/v1/jobs/{job}/missed")
async def list_missed(request: web.Request) -> web.Response:
    name = _job_name(request)
    hours = _int_param(request, "hours", 24, 1, 24 * 400)

    def fn(sidecar: Sidecar, session: Session) -> list[dict[str, Any]] | None:
        job_id = session.scalar(select(Job.id).where(Job.name == name))
        if job_id is None:
            return None
        since = sidecar.clock.now() - hours * 3600
        rows = session.scalars(
            select(Slot)
            .where(Slot.job_id == job_id, Slot.status != "filled", Slot.slot >= since)
            .order_by(Slot.slot.desc())
        )
        return [slot_view(s) for s in rows]

    found = await _read(request, fn)
    if found is None:
        return _not_found(name)
    return web.json_response({"missed": found, "count": sum(s["count"] for s in found)})


@routes.get("/api/v1/jobs/{job}/flips")
async def list_flips(request: web.Request) -> web.Response:
    name = _job_name(request)
    limit = _int_param(request, "limit", 100, 1, 1000)

    def fn(sidecar: Sidecar, session: Session) -> list[dict[str, Any]] | None:
        job_id = session.scalar(select(Job.id).where(Job.name == name))
        if job_id is None:
            return None
        rows = session.scalars(
            select(Flip)
            .where(Flip.job_id == job_id)
            .order_by(Flip.at.desc(), Flip.id.desc())
            .limit(limit)
        )
        return [flip_view(f) for f in rows]

    found = await _read(request, fn)
    return web.json_response({"flips": found}) if found is not None else _not_found(name)


@routes.get("/api/v1/jobs/{job}/stats")
async def job_stats(request: web.Request) -> web.Response:
    name = _job_name(request)
    window = request.query.get("window", "24h")
    if window not in WINDOWS:
        return json_error(422, "invalid window", f"window {window!r}: use {', '.join(WINDOWS)}")

    def fn(sidecar: Sidecar, session: Session) -> dict[str, Any] | None:
        job = session.scalars(select(Job).where(Job.name == name)).first()
        if job is None:
            return None
        now = sidecar.clock.now()
        rows = session.scalars(
            select(Rollup).where(Rollup.job_id == job.id, Rollup.hour >= window_start(window, now))
        )
        last = job.last_success_at
        return {
            "window": window,
            **stats_from_rows(rows).as_dict(),
            "time_since_last_success_seconds": (now - last) if last is not None else None,
        }

    found = await _read(request, fn)
    return web.json_response(found) if found is not None else _not_found(name)


@routes.get("/api/v1/health")
async def health(request: web.Request) -> web.Response:
    def fn(sidecar: Sidecar, session: Session) -> dict[str, Any]:
        now = sidecar.clock.now()
        start = window_start("24h", now)
        jobs = []
        for job in session.scalars(select(Job).where(Job.removed.is_(False)).order_by(Job.name)):
            st = stats_from_rows(
                session.scalars(select(Rollup).where(Rollup.job_id == job.id, Rollup.hour >= start))
            )
            last = job.last_success_at
            jobs.append(
                {
                    "name": job.name,
                    "is_healthy": job.state in ("new", "up", "late", "paused"),
                    "state": job.state,
                    "reason": job.reason,
                    "last_successful_run": format_or_none(last),
                    "time_since_last_success_seconds": (now - last) if last is not None else None,
                    "recent": {
                        "window": "24h",
                        "success": st.success,
                        "failed": st.failure + st.timeout,
                        "missed": st.missed,
                    },
                }
            )
        healthy = all(j["is_healthy"] for j in jobs)
        return {
            "status": "ok" if healthy else "degraded",
            "is_healthy": healthy,
            "sidecar": {"writer_healthy": sidecar.writer.healthy, "leader": sidecar.is_leader},
            "jobs": jobs,
        }

    return web.json_response(await _read(request, fn))


def format_or_none(value: float | None) -> str | None:
    from .views import ts

    return ts(value)


async def _write_job(
    request: web.Request, action: Callable[[Sidecar, Tx, Job, float], None], name: str
) -> web.Response:
    sidecar = request.app[SIDECAR]

    def work(tx: Tx) -> bool:
        job = tx.job(name)
        if job is None:
            return False
        action(sidecar, tx, job, sidecar.clock.now())
        return True

    if not await sidecar.writer.run(work):
        return _not_found(name)
    return await _job_response(request)


@routes.post("/api/v1/jobs/{job}/pause")
async def pause_job(request: web.Request) -> web.Response:
    return await _write_job(
        request, lambda sc, tx, job, now: sc.engine.pause(tx, job, now), _job_name(request)
    )


@routes.post("/api/v1/jobs/{job}/resume")
async def resume_job(request: web.Request) -> web.Response:
    return await _write_job(
        request, lambda sc, tx, job, now: sc.engine.resume(tx, job, now), _job_name(request)
    )


@routes.put("/api/v1/jobs/{job}")
async def put_job(request: web.Request) -> web.Response:
    name = _job_name(request)
    try:
        body = await request.json()
    except ValueError as exc:
        return json_error(400, "malformed body", f"the body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return json_error(422, "invalid job", "the body must be a JSON object of job fields")
    body.pop("name", None)
    try:
        fields = parse_job_fields(name, body)
    except InvalidJobConfig as exc:
        return json_error(422, "invalid job", str(exc))
    sidecar = request.app[SIDECAR]

    def work(tx: Tx) -> str:
        now = sidecar.clock.now()
        job = tx.job(name)
        if job is None:
            sidecar.engine.create_job(tx, name, now, declared=fields)
            return "created"
        if job.in_file:
            overlap = sorted(set(fields) & set(job.file_fields or {}))
            if overlap:
                raise ConfigError(
                    f"job {name!r}: {', '.join(overlap)} set by the configuration file; "
                    "change the file instead"
                )
        sidecar.engine.reconfigure(tx, job, now, declared=fields)
        return "updated"

    try:
        outcome = await sidecar.writer.run(work)
    except ConfigError as exc:
        return json_error(409, "conflict", str(exc))
    response = await _job_response(request)
    if outcome == "created":
        response.set_status(201)
    return response


@routes.delete("/api/v1/jobs/{job}")
async def delete_job(request: web.Request) -> web.Response:
    name = _job_name(request)
    sidecar = request.app[SIDECAR]

    if not await sidecar.writer.run(lambda tx: sidecar.delete_job(tx, name)):
        return _not_found(name)
    sidecar.cache.invalidate()
    return web.Response(status=204)


@routes.post("/api/v1/config/reload")
async def reload_config(request: web.Request) -> web.Response:
    sidecar = request.app[SIDECAR]
    try:
        report = await asyncio.to_thread(sidecar.reload)
    except ConfigError as exc:
        return json_error(422, "invalid configuration", str(exc))
    return web.json_response(report)
