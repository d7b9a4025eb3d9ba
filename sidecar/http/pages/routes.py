"""Handlers of the HTML pages: parse the query, read the store in a thread, render.

``GET /`` (status page, ``?state=down&label=team=data&removed=1&refresh=30``) and
``GET /jobs/{job}`` (job page). An unknown job is a 404 page; a bad filter a 422 page.

A browser signs in once with ``?token=<read token>`` on one of these pages: the answer is a
redirect to the same URL without the token (the auth middleware sets the cookie on it), so the
token does not stay in the address bar, the history or a shared link.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TypeVar

from aiohttp import web
from sqlalchemy.orm import Session

from jobpulse.instrumentation.errors import InvalidName
from jobpulse.instrumentation.spec import parse_job_name

from ...service import Sidecar
from ..keys import SIDECAR
from .data import Filters, read_fleet, read_job
from .fleet_page import fleet_page, nav
from .job_page import job_page
from .markup import STATES, esc, html_response, page

__all__ = ["parse_filters", "routes"]

T = TypeVar("T")
routes = web.RouteTableDef()
REFRESH_RANGE = (5, 3600)
_DIGITS = re.compile(r"[0-9]{1,9}")  # ASCII only: str.isdigit() also takes '²' and '١'


async def _read(request: web.Request, fn: Callable[[Sidecar, Session], T]) -> T:
    return await request.app[SIDECAR].read(fn)


def parse_filters(query: Mapping[str, str], labels: list[str]) -> tuple[Filters, int | None]:
    """Filters and the auto-refresh period from the query; ValueError names a bad value."""
    state = query.get("state") or None
    if state is not None and state not in STATES:
        raise ValueError(f"state {state!r} is not one of {', '.join(STATES)}")
    pairs = []
    for raw in labels:
        if not raw:
            continue
        key, sep, value = raw.partition("=")
        if not sep or not key:
            raise ValueError(f"label filter {raw!r} must look like key=value (team=data)")
        pairs.append((key, value))
    refresh = None
    if query.get("refresh"):
        text = query["refresh"]
        lo, hi = REFRESH_RANGE
        if not _DIGITS.fullmatch(text) or not lo <= int(text) <= hi:
            shown = text if len(text) <= 40 else text[:40] + "…"
            raise ValueError(
                f"refresh {shown!r} must be a whole number of seconds {lo}-{hi} in ASCII digits"
            )
        refresh = int(text)
    removed = query.get("removed") in ("1", "true")
    return Filters(state=state, labels=tuple(pairs), removed=removed), refresh


def message_page(title: str, message: str, *, status: int) -> web.Response:
    body = f'{nav()}<h1>{esc(title)}</h1><p id="message">{esc(message)}</p>'
    body += '<p><a href="/">Back to all jobs</a></p>'
    return html_response(page(title, body), status=status)


def _without_token(request: web.Request) -> web.Response | None:
    """A 303 to this URL without ``?token=``, when it has one (see the module docstring)."""
    if "token" not in request.query:
        return None
    query = [(k, v) for k, v in request.query.items() if k != "token"]
    location = request.rel_url.with_query(query)
    return web.Response(status=303, headers={"Location": str(location)})


@routes.get("/")
async def status_page(request: web.Request) -> web.Response:
    if (redirect := _without_token(request)) is not None:
        return redirect
    try:
        filters, refresh = parse_filters(request.query, request.query.getall("label", []))
    except ValueError as exc:
        return message_page("Invalid filter", str(exc), status=422)
    fleet = await _read(request, lambda sidecar, session: read_fleet(sidecar, session, filters))
    return html_response(fleet_page(fleet, filters, refresh))


@routes.get("/jobs/{job}")
async def job_detail_page(request: web.Request) -> web.Response:
    if (redirect := _without_token(request)) is not None:
        return redirect
    raw = request.match_info["job"]
    try:
        name = parse_job_name(raw)
    except InvalidName:
        return message_page("Unknown job", f"No job is named {raw!r}.", status=404)
    detail = await _read(request, lambda sidecar, session: read_job(sidecar, session, name))
    if detail is None:
        return message_page("Unknown job", f"No job is named {name!r}.", status=404)
    return html_response(job_page(detail))
