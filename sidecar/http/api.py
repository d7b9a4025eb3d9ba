"""The JSON API under /api/v1, reads: jobs, runs (JSON or CSV), missed slots, flips, stats,
health. Handlers parse, call the store or the engine, and serialise. Writes are in
``api_admin.py``; query parameters are parsed in ``params.py``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from jobpulse.instrumentation.errors import InvalidName
from jobpulse.instrumentation.spec import parse_job_name

from ..domain.rollup import WINDOWS, stats_from_rows, window_start
from ..domain.tables import Flip, Job, Rollup, Run, Slot
from ..service import Sidecar
from .errors import json_error
from .keys import SIDECAR
from .params import CSV_COLUMNS, csv_cell, decode_cursor, encode_cursor, int_param, time_param
from .views import flip_view, full_job_view, full_job_views, run_view, slot_view

__all__ = ["format_or_none", "job_response", "path_job", "routes", "unknown_job"]

T = TypeVar("T")
routes = web.RouteTableDef()
OUTCOME_FILTERS = ("running", "success", "failure", "retry", "timeout", "cancelled")


async def _read(request: web.Request, fn: Callable[[Sidecar, Session], T]) -> T:
    return await request.app[SIDECAR].read(fn)


def path_job(request: web.Request) -> str:
    try:
        return parse_job_name(request.match_info["job"])
    except InvalidName as exc:
        raise web.HTTPNotFound(text=str(exc)) from None


def unknown_job(name: str) -> web.Response:
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
    return await job_response(request)


async def job_response(request: web.Request) -> web.Response:
    name = path_job(request)

    def fn(sidecar: Sidecar, session: Session) -> dict[str, Any] | None:
        job = session.scalars(select(Job).where(Job.name == name)).first()
        return full_job_view(sidecar, session, job) if job is not None else None

    view = await _read(request, fn)
    return web.json_response(view) if view is not None else unknown_job(name)


@routes.get("/api/v1/jobs/{job}/runs")
async def list_runs(request: web.Request) -> web.StreamResponse:
    name = path_job(request)
    outcome = request.query.get("outcome")
    if outcome is not None and outcome not in OUTCOME_FILTERS:
        return json_error(
            422, "invalid outcome", f"outcome {outcome!r}: use {', '.join(OUTCOME_FILTERS)}"
        )
    since, until = time_param(request, "since"), time_param(request, "until")
    text = request.query.get("q")
    limit = int_param(request, "limit", 100, 1, 1000)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "csv"):
        return json_error(422, "invalid format", f"format {fmt!r}: use json or csv")
    cursor = decode_cursor(request.query["cursor"]) if "cursor" in request.query else None

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
        return unknown_job(name)
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
    next_cursor = encode_cursor(runs[-1].started_at, runs[-1].id) if more and runs else None
    return web.json_response({"runs": views, "next_cursor": next_cursor})


@routes.get("/api/v1/jobs/{job}/missed")
async def list_missed(request: web.Request) -> web.Response:
    name = path_job(request)
    hours = int_param(request, "hours", 24, 1, 24 * 400)

    def fn(sidecar: Sidecar, session: Session) -> list[dict[str, Any]] | None:
        job_id = session.scalar(select(Job.id).where(Job.name == name))
        if job_id is None:
            return None
        since = sidecar.clock.now() - hours * 3600
        rows = session.scalars(
            select(Slot)
            # A skipped slot (maintenance, or its upstream failed or missed) is not a miss.
            .where(Slot.job_id == job_id, Slot.status.in_(("missed", "gap")), Slot.slot >= since)
            .order_by(Slot.slot.desc())
        )
        return [slot_view(s) for s in rows]

    found = await _read(request, fn)
    if found is None:
        return unknown_job(name)
    return web.json_response({"missed": found, "count": sum(s["count"] for s in found)})


@routes.get("/api/v1/jobs/{job}/flips")
async def list_flips(request: web.Request) -> web.Response:
    name = path_job(request)
    limit = int_param(request, "limit", 100, 1, 1000)

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
    return web.json_response({"flips": found}) if found is not None else unknown_job(name)


@routes.get("/api/v1/jobs/{job}/stats")
async def job_stats(request: web.Request) -> web.Response:
    name = path_job(request)
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
    return web.json_response(found) if found is not None else unknown_job(name)


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
            "sidecar": {"writer_healthy": sidecar.writer.healthy, "leader": sidecar.leads()},
            "jobs": jobs,
        }

    return web.json_response(await _read(request, fn))


def format_or_none(value: float | None) -> str | None:
    from .views import ts

    return ts(value)
