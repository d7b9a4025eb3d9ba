"""The JSON API under /api/v1, writes: pause, resume, put and delete a job; reload the
configuration file. Each write runs in the writer and answers with the job as ``GET`` shows it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from jobpulse.instrumentation.errors import ConfigError, InvalidJobConfig
from jobpulse.instrumentation.spec import parse_job_fields

from ..domain.tables import Job
from ..service import Sidecar
from ..store.tx import Tx
from .api import job_response, path_job, unknown_job
from .errors import json_error
from .keys import SIDECAR

__all__ = ["routes"]

T = TypeVar("T")
routes = web.RouteTableDef()


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
        return unknown_job(name)
    return await job_response(request)


@routes.post("/api/v1/jobs/{job}/pause")
async def pause_job(request: web.Request) -> web.Response:
    return await _write_job(
        request, lambda sc, tx, job, now: sc.engine.pause(tx, job, now), path_job(request)
    )


@routes.post("/api/v1/jobs/{job}/resume")
async def resume_job(request: web.Request) -> web.Response:
    return await _write_job(
        request, lambda sc, tx, job, now: sc.engine.resume(tx, job, now), path_job(request)
    )


@routes.put("/api/v1/jobs/{job}")
async def put_job(request: web.Request) -> web.Response:
    name = path_job(request)
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
        try:
            sidecar.check_dependencies(tx.session, {name: fields}, layer="declared")
        except ConfigError as exc:
            raise InvalidJobConfig(f"job {name!r}: {exc}", job=name, field="after") from exc
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
    except InvalidJobConfig as exc:
        return json_error(422, "invalid job", str(exc))
    except ConfigError as exc:
        return json_error(409, "conflict", str(exc))
    response = await job_response(request)
    if outcome == "created":
        response.set_status(201)
    return response


@routes.delete("/api/v1/jobs/{job}")
async def delete_job(request: web.Request) -> web.Response:
    name = path_job(request)
    sidecar = request.app[SIDECAR]

    if not await sidecar.writer.run(lambda tx: sidecar.delete_job(tx, name)):
        return unknown_job(name)
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
