"""JSON errors: ``{"error": ..., "detail": ...}`` with the right status, never a stack trace."""

from __future__ import annotations

import logging

from aiohttp import web

__all__ = ["error_response", "json_error"]

log = logging.getLogger("jobpulse.sidecar.http")


def json_error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


def error_response(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The JSON answer to what a handler raised (``sidecar_middleware``); an HTTP exception
    that is a redirect or already JSON is raised again, for aiohttp to answer."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return json_error(413, "request too large", exc.text or "the body is over the limit")
    if isinstance(exc, web.HTTPException):
        if exc.status < 400 or exc.content_type == "application/json":
            raise exc
        return json_error(exc.status, exc.reason, exc.text or exc.reason)
    log.error("unhandled error serving %s %s", request.method, request.path, exc_info=exc)
    return json_error(500, "internal error", "the sidecar failed to handle this request")
