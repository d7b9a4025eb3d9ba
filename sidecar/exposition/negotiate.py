"""Which exposition format a scrape asks for: OpenMetrics 1.0.0 or the text format 0.0.4.

The ``Accept`` header is read as HTTP says (RFC 9110 §12.5.1): each media range with its
``q``; a format takes the ``q`` of the most specific range that matches it (``type/subtype``
with parameters, then ``type/subtype``, ``type/*``, ``*/*``), and the format with the higher
``q`` wins. A tie goes to the format whose range comes first in the header, then to the text
format, as does a header that matches neither or is absent: older scrapers send none, or
``text/plain``. Prometheus sends, for example,
``application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1``.

OpenMetrics matches with no ``version`` or versions 1.0.0 and 0.0.1 (what Prometheus parses
alike); ``text/plain`` with any version (0.0.4 is what every text parser reads).
"""

from __future__ import annotations

from enum import Enum

from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["Format", "choose"]

_OM_VERSIONS = ("1.0.0", "0.0.1")


class Format(Enum):
    TEXT = CONTENT_TYPE_LATEST  # prometheus_client's text/plain, as /metrics always sent
    OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


_MEDIA = {Format.OPENMETRICS: ("application", "openmetrics-text"), Format.TEXT: ("text", "plain")}


def _ranges(accept: str) -> list[tuple[str, str, dict[str, str], float]]:
    out = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        kind, _, subtype = media.lower().partition("/")
        if not kind or not subtype:
            continue
        values = {}
        for param in params:
            name, _, value = param.partition("=")
            values[name.strip().lower()] = value.strip().strip('"')
        try:
            q = float(values.pop("q", "1"))
        except ValueError:
            q = 0.0  # an unreadable weight: not acceptable rather than preferred
        out.append((kind, subtype, values, min(max(q, 0.0), 1.0)))
    return out


def _match(fmt: Format, kind: str, subtype: str, params: dict[str, str]) -> int:
    """How specifically the range names ``fmt`` (0: not at all)."""
    want_kind, want_subtype = _MEDIA[fmt]
    if kind == "*":
        return 1 if subtype == "*" else 0
    if kind != want_kind:
        return 0
    if subtype == "*":
        return 2
    if subtype != want_subtype:
        return 0
    version = params.get("version")
    if fmt is Format.OPENMETRICS and version is not None and version not in _OM_VERSIONS:
        return 0
    return 4 if version is not None else 3


def choose(accept: str | None) -> Format:
    """The format to answer a scrape whose ``Accept`` header is ``accept``."""
    if not accept:
        return Format.TEXT
    ranges = _ranges(accept)
    best: list[tuple[float, int, int]] = []  # (q, -position, tie order) per format
    for order, fmt in enumerate((Format.TEXT, Format.OPENMETRICS)):
        specific, q, position = 0, 0.0, len(ranges)
        for i, (kind, subtype, params, weight) in enumerate(ranges):
            level = _match(fmt, kind, subtype, params)
            if level > specific or (level and level == specific and weight > q):
                specific, q, position = level, weight, i
        best.append((q, -position, -order))
    text, om = best
    return Format.OPENMETRICS if om[0] > 0 and om > text else Format.TEXT
