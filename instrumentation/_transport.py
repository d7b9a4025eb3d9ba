"""One ``POST /api/v1/events`` over the standard library's ``http.client``.

The sender thread owns one :class:`Transport`; it keeps a connection open between batches and
drops it after any error. The answer is classified once, here: delivered (maybe with per-event
rejections), retry later (network errors, 408, 429, 5xx), or final (any other status: resending
the same bytes cannot succeed).
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

from ._backoff import retry_after_seconds

__all__ = ["Reply", "Transport"]

EVENTS_PATH: Final = "/api/v1/events"
_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Reply:
    """How one batch went.

    ``status`` is 0 when no HTTP answer arrived. ``rejected`` holds the sidecar's per-event
    rejections (``index``, ``field``, ``reason``) of a delivered batch.
    """

    outcome: str  # "delivered" | "retry" | "final"
    status: int = 0
    detail: str = ""
    retry_after: float | None = None
    rejected: list[dict[str, Any]] = field(default_factory=list)


class Transport:
    """Posts JSON batches to one sidecar. Not thread-safe: one per sender thread."""

    def __init__(self, url: str, *, token: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._path = parts.path.rstrip("/") + EVENTS_PATH
        self._timeout = timeout
        self._headers = {"Content-Type": "application/json", "User-Agent": "jobpulse-client/1"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    def post(self, body: bytes) -> Reply:
        """Send one encoded batch; never raises for network or protocol errors."""
        try:
            conn = self._connection()
            conn.request("POST", self._path, body=body, headers=self._headers)
            response = conn.getresponse()
            data = response.read()
            status = response.status
            retry_after = retry_after_seconds(response.getheader("Retry-After"))
            if response.will_close:
                self.close()
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            self.close()
            return Reply("retry", detail=f"{type(exc).__name__}: {exc}")
        if status == 200:
            return Reply("delivered", status, rejected=_rejections(data))
        detail = data[:300].decode("utf-8", "replace")
        if status in _RETRY_STATUSES:
            return Reply("retry", status, detail, retry_after=retry_after)
        return Reply("final", status, detail)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn


def _rejections(data: bytes) -> list[dict[str, Any]]:
    try:
        answer = json.loads(data)
    except ValueError:
        return []
    rejected = answer.get("rejected") if isinstance(answer, dict) else None
    if not isinstance(rejected, list):
        return []
    return [r for r in rejected if isinstance(r, dict)]
