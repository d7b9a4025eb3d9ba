"""Tokens and scopes. Comparison is constant-time; tokens configured as ``sha256:<hex>`` are
stored hashed and compared by hash.

Scopes: ``ingest`` (events, /v1/traces), ``read`` (/metrics, API reads, rules, dashboards,
status page), ``admin`` (everything read has, plus reload, pause/resume, PUT/DELETE). Pings
authenticate with the ping key in their path. /healthz and /readyz are open.

A request's credential is, in this order, a bearer token, the password of HTTP Basic, the
``?token=`` of a GET of an HTML page (``/`` and ``/jobs/...``, which answer with a redirect that
drops it and sets the cookie), or the cookie. An empty one counts as none; ``?token=`` anywhere
else authenticates nothing, so a token never has to travel in an API or ingest URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from aiohttp import web

from ..settings import Settings

__all__ = ["COOKIE", "Auth", "scope_for"]

COOKIE = "jobpulse_token"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _stored(token: str) -> bytes:
    if token.startswith("sha256:"):
        return bytes.fromhex(token[7:])
    return _digest(token)


@dataclass(frozen=True, slots=True)
class Auth:
    enabled: bool
    ingest: tuple[bytes, ...]
    read: tuple[bytes, ...]
    admin: tuple[bytes, ...]
    ping_key: str | None

    @staticmethod
    def from_settings(settings: Settings) -> Auth:
        return Auth(
            enabled=settings.auth_enabled,
            ingest=tuple(_stored(t) for t in settings.ingest_tokens),
            read=tuple(_stored(t) for t in settings.read_tokens),
            admin=tuple(_stored(t) for t in settings.admin_tokens),
            ping_key=settings.ping_key,
        )

    def scopes_of(self, token: str) -> set[str]:
        digest = _digest(token)
        found: set[str] = set()
        for scope, stored in (("ingest", self.ingest), ("read", self.read), ("admin", self.admin)):
            # compare against every stored token, so timing says nothing about which matched
            hit = False
            for candidate in stored:
                hit |= hmac.compare_digest(candidate, digest)
            if hit:
                found.add(scope)
        if "admin" in found:
            found.add("read")
        return found

    def check_ping_key(self, key: str) -> bool:
        if self.ping_key is None:
            return False
        return hmac.compare_digest(key.encode(), self.ping_key.encode())


def is_page(method: str, path: str) -> bool:
    """A GET of an HTML page: the only request a ``?token=`` may sign in."""
    return method == "GET" and (path == "/" or path.startswith("/jobs/"))


def request_token(request: web.Request) -> str | None:
    """The credential the request carries (see the module docstring), or None."""
    header = request.headers.get("Authorization", "")
    scheme = header[:7].lower()
    if scheme == "bearer ":
        token: str | None = header[7:].strip()
    elif scheme.startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        token = decoded.partition(":")[2]
    else:
        token = None
    if not token and is_page(request.method, request.path):
        token = request.query.get("token")
    return token or request.cookies.get(COOKIE) or None


def scope_for(method: str, path: str) -> str | None:
    """The scope a request needs, or None when it is open (or authenticates itself)."""
    if path in ("/healthz", "/readyz") or path.startswith("/ping/"):
        return None
    if path in ("/api/v1/events", "/v1/traces"):
        return "ingest"
    if method in ("GET", "HEAD"):
        return "read"
    return "admin"
