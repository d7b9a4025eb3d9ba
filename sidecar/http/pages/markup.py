"""HTML building blocks of the status pages: escaping, the page frame, badges, times.

Every piece of text that reaches the page goes through :func:`esc` (``html.escape`` with
quotes), so a label value, an error message or a log is shown as text, never as markup. Pages
carry a Content-Security-Policy that allows no script at all and only the page's own style
block, as a second line of defence.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from datetime import UTC, datetime
from typing import Final

from aiohttp import web

__all__ = [
    "STATES",
    "age",
    "badge",
    "esc",
    "html_response",
    "page",
    "percent",
    "seconds",
    "stamp",
    "until",
]

STATES: Final = ("down", "late", "new", "up", "paused")

CSS: Final = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1d2330;background:#fff}
h1{font-size:1.4rem;margin:0 0 .5rem}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
a{color:#1f5fbf}table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #e3e6ec;vertical-align:top}
th{background:#f4f6f9}.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:.1rem .45rem;border-radius:.6rem;font-size:.8rem;
font-weight:600;color:#fff}
.s-up,.o-success{background:#2e7d32}.s-late,.o-retry{background:#b26a00}
.s-down,.o-failure,.o-timeout{background:#c62828}.s-paused,.o-cancelled{background:#757575}
.s-new,.o-running{background:#1565c0}.muted{color:#667085}.summary{margin:.4rem 0 1rem}
.labels code{background:#f0f2f5;padding:0 .25rem;margin-right:.25rem;border-radius:.2rem}
pre{white-space:pre-wrap;word-break:break-word;margin:.2rem 0;font-size:.85rem}
form{margin:.5rem 0 1rem}nav{margin-bottom:1rem}dl{display:grid;
grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
""".strip()
_CSS_HASH: Final = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP: Final = (
    f"default-src 'none'; style-src 'sha256-{_CSS_HASH}'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def esc(value: object) -> str:
    """Text for HTML content or a quoted attribute value."""
    return html.escape("" if value is None else str(value), quote=True)


def page(title: str, body: str, *, refresh: int | None = None) -> str:
    meta = f'<meta http-equiv="refresh" content="{refresh}">' if refresh else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{meta}<title>{esc(title)} · jobpulse</title><style>{CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def html_response(text: str, *, status: int = 200) -> web.Response:
    return web.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Content-Security-Policy": CSP,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        },
    )


def badge(kind: str, value: str, reason: str | None = None) -> str:
    """A coloured badge: ``kind`` is ``s`` for job states, ``o`` for run outcomes."""
    text = value if not reason else f"{value} ({reason})"
    return f'<span class="badge {kind}-{esc(value)}">{esc(text)}</span>'


def stamp(value: float | None) -> str:
    """A UTC time to the second, as ``2026-11-23 10:00:03Z``."""
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _small(value: float, unit: str) -> str:
    """``value`` (under 999.5) of ``unit``: one decimal below ten, whole above."""
    return f"{value:.1f} {unit}" if value < 9.95 else f"{value:.0f} {unit}"


def _pair(total: int, size: int, big: str, small: str) -> str:
    return f"{total // size}{big} {total % size:02d}{small}"


def seconds(value: float | None) -> str:
    """A measured duration for people: ``3.8 ms``, ``1.25 s``, ``2m 05s``, ``1h 02m``, ``1d 03h``
    (about three figures below a minute, then the two largest units); ``—`` for None or a
    non-finite value, and a negative one shown as 0. Configured durations (``grace: 1h30m``) are
    written exactly by ``spec.format_duration`` instead."""
    if value is None or not math.isfinite(value):
        return "—"
    value = max(float(value), 0.0)
    if value == 0:
        return "0 s"
    if value < 999.5e-6:
        return _small(value * 1e6, "µs")
    if value < 0.9995:
        return _small(value * 1e3, "ms")
    if value < 9.995:
        return f"{value:.2f} s"
    if value < 59.95:
        return f"{value:.1f} s"
    if (whole := round(value)) < 3600:
        return _pair(whole, 60, "m", "s")
    if (minutes := round(value / 60)) < 24 * 60:
        return _pair(minutes, 60, "h", "m")
    return _pair(round(value / 3600), 24, "d", "h")


def _coarse(delta: float) -> str:
    delta = abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit}"
    return f"{int(delta)}s"


def age(value: float | None, now: float) -> str:
    """``3h ago`` with the exact time as a tooltip; ``never`` for None."""
    if value is None:
        return '<span class="muted">never</span>'
    return f'<time title="{stamp(value)}">{_coarse(now - value)} ago</time>'


def until(value: float | None, now: float) -> str:
    """``in 5m``, or ``due 2m ago`` once passed; ``—`` when nothing is expected."""
    if value is None:
        return '<span class="muted">—</span>'
    words = f"in {_coarse(value - now)}" if value >= now else f"due {_coarse(now - value)} ago"
    return f'<time title="{stamp(value)}">{words}</time>'


def percent(value: float | None) -> str:
    if value is None:
        return '<span class="muted">—</span>'
    return f"{100 * value:.1f}%"
