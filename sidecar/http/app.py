"""The aiohttp application: ``create_app(settings) -> web.Application``.

The sidecar (store, writer, configuration) starts and stops in ``cleanup_ctx``, and so does the
evaluator task, so an app built in a test behaves exactly like ``jobpulse serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

from ..apply_process import ApplierProcess
from ..config import FileConfig
from ..domain.clock import Clock
from ..exposition.negotiate import Format, choose
from ..service import Sidecar
from ..settings import Settings
from .api import routes as api_routes
from .api_admin import routes as admin_routes
from .api_maintenance import routes as maintenance_routes
from .artifacts import RULE_SETTINGS, served_rule_settings
from .artifacts import routes as artifact_routes
from .auth import COOKIE, Auth, request_token, scope_for
from .errors import error_response, json_error
from .ingest import events_handler, ping_handler
from .keys import AUTH, SIDECAR
from .openapi import openapi_handler
from .otlp import otlp_handler
from .pages import routes as web_routes

__all__ = ["create_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


_INGEST_PATHS = ("/api/v1/events", "/ping/", "/v1/traces")


@web.middleware
async def sidecar_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every request: counted while in flight if it ingests (while any is, the applier gives
    way), authorized, and answered with a JSON error for what its handler raises. One
    middleware rather than three: each is a coroutine and an await per request, and a ping is
    not much more than aiohttp's own work."""
    ingest = request.path.startswith(_INGEST_PATHS)
    if ingest:
        request.app[SIDECAR].ingesting += 1
    try:
        auth = request.app[AUTH]
        scope = scope_for(request.method, request.path) if auth.enabled else None
        if scope is None:
            return await handler(request)
        token = request_token(request)
        denied = _denied(request, auth, scope, token)
        if denied is not None:
            return denied
        response = await handler(request)
        if token is not None and request.query.get("token") == token and request.method == "GET":
            secure = request.secure or request.headers.get("X-Forwarded-Proto") == "https"
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict", secure=secure)
        return response
    except Exception as exc:
        return error_response(request, exc)
    finally:
        if ingest:
            request.app[SIDECAR].ingesting -= 1


def _denied(request: web.Request, auth: Auth, scope: str, token: str | None) -> web.Response | None:
    """The 401 or 403 for a request whose ``token`` lacks ``scope``; None when it has it."""
    scopes = auth.scopes_of(token) if token is not None else set()
    if scope in scopes:
        return None
    if scope == "ingest":
        request.app[SIDECAR].metrics.rejected.labels("unauthorized").inc()
    if scopes:
        return json_error(403, "forbidden", f"this endpoint needs a {scope} token")
    denied = json_error(
        401,
        "unauthorized",
        f"this endpoint needs a {scope} token: send Authorization: Bearer <token>"
        + ("; the token is unknown" if token is not None else ""),
    )
    denied.headers["WWW-Authenticate"] = 'Basic realm="jobpulse", charset="UTF-8"'
    return denied


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    sidecar = request.app[SIDECAR]
    fmt = choose(request.headers.get("Accept"))
    await asyncio.to_thread(sidecar.cache.refresh)
    # The inbox gauges are read at the scrape (a count of the inbox), not after every pass of
    # the evaluator, which a flood of appends wakes hundreds of times a second.
    await asyncio.to_thread(sidecar.update_inbox_metrics)
    for state, count in sidecar.cache.states().items():
        sidecar.metrics.jobs.labels(state).set(count)
    sidecar.metrics.leader.set(1 if sidecar.leads() else 0)
    # The per-job text is hundreds of MB for a large fleet: sent as it is cached, not copied
    # into one body with the sidecar's own metrics.
    jobs: tuple[bytes | memoryview, ...]
    if fmt is Format.OPENMETRICS:
        jobs = sidecar.cache.render_openmetrics()
        own = openmetrics_latest(sidecar.metrics.registry)  # type: ignore[no-untyped-call]
    else:
        jobs = (sidecar.cache.render(),)
        own = generate_latest(sidecar.metrics.registry)
    response = web.StreamResponse(headers={"Content-Type": fmt.value, "Vary": "Accept"})
    response.content_length = sum(map(len, jobs)) + len(own)
    await response.prepare(request)
    for piece in jobs:
        await response.write(piece)
    await response.write(own)
    await response.write_eof()
    return response


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    sidecar = request.app[SIDECAR]
    problems = []
    try:
        await asyncio.to_thread(sidecar.next_deadline)
    except Exception as exc:
        problems.append(f"store unreachable: {type(exc).__name__}")
    if not sidecar.writer.healthy:
        problems.append("the last store commit failed")
    if sidecar.applier_process is not None and not sidecar.applier_process.leading:
        problems.append("the applier process is not running (it is being started)")
    if sidecar.leads():
        last = sidecar.evaluator_last_run
        now = sidecar.clock.now()
        # Never judged yet: counted from when it could first judge (a first pass through a
        # backlog applies for up to 10 s before it judges, and is no reason to be unready).
        since = max(sidecar.started_at, sidecar.engine.judge_from) if last is None else last
        if now >= sidecar.engine.judge_from and now - since > 30:
            ran = sidecar.evaluator_ran_at
            if last is not None and ran is not None and now - ran <= 30:
                problems.append(
                    f"the evaluator judges {now - last:.0f} s behind: events that arrived "
                    "since then still wait in the inbox"
                )
            else:
                problems.append("the evaluator has not run in the last 30 s")
    inbox: dict[str, float] = {}
    try:
        pending, lag = await asyncio.to_thread(sidecar.update_inbox_metrics)
        inbox = {"pending": pending, "lag_seconds": round(lag, 3)}
    except Exception as exc:
        problems.append(f"inbox unreadable: {type(exc).__name__}")
    # How far behind the applier is; a backlog is reported, not a reason to stop taking events.
    if problems:
        body = {"error": "not ready", "detail": "; ".join(problems), "inbox": inbox}
        return web.json_response(body, status=503)
    return web.json_response({"status": "ready", "inbox": inbox})


_PING_METHODS = "GET, HEAD, POST"


async def _ping_method_not_allowed(request: web.Request) -> web.Response:
    # A JSON 405 that keeps its Allow header (the error middleware would rebuild aiohttp's own
    # 405 without it): PUT, DELETE, OPTIONS... must not record a run.
    response = json_error(
        405, "method not allowed", f"pings accept {_PING_METHODS}, not {request.method}"
    )
    response.headers["Allow"] = _PING_METHODS
    return response


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    file_config: FileConfig | None = None,
    run_evaluator: bool = True,
) -> web.Application:
    """Build the sidecar's app. ``run_evaluator=False`` leaves ticking to the caller (tests
    with a manual clock call ``app[SIDECAR].tick_sync()``). With either of those test seams,
    an injected ``clock`` or ``run_evaluator=False``, the sidecar is one process whatever
    ``apply_process`` says: an applier process could share neither."""
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[sidecar_middleware],
    )
    rules = served_rule_settings(settings, os.environ)  # before anything is opened
    sidecar = Sidecar(
        settings,
        clock=clock,
        file_config=file_config,
        rule_settings=rules,
        applier_process=ApplierProcess if clock is None and run_evaluator else None,
    )
    app[SIDECAR] = sidecar
    app[RULE_SETTINGS] = rules
    app[AUTH] = Auth.from_settings(settings)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await asyncio.to_thread(sidecar.start)
        tasks = (
            [
                asyncio.create_task(sidecar.run_evaluator()),
                asyncio.create_task(sidecar.run_notifier()),
            ]
            if run_evaluator
            else []
        )
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await sidecar.notifier.close()
        await asyncio.to_thread(sidecar.stop)

    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/api/v1/events", events_handler)
    app.router.add_get("/ping/{tail:.*}", ping_handler)  # and HEAD
    app.router.add_post("/ping/{tail:.*}", ping_handler)
    app.router.add_route("*", "/ping/{tail:.*}", _ping_method_not_allowed)
    app.router.add_post("/v1/traces", otlp_handler)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/api/v1/openapi.json", openapi_handler)
    app.router.add_routes(api_routes)
    app.router.add_routes(admin_routes)
    app.router.add_routes(maintenance_routes)
    app.router.add_routes(artifact_routes)
    app.router.add_routes(web_routes)
    return app
