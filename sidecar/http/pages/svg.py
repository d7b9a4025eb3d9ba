"""The job page's duration chart: inline SVG rendered on the server (no script, no library).

One bar a finished run, oldest on the left, coloured by outcome, with the run's start, outcome
and duration as its tooltip; the y axis is scaled to a round maximum (1, 2 or 5 x 10^k s).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

from .markup import esc, seconds

__all__ = ["duration_chart", "nice_ceiling"]

WIDTH: Final = 760
HEIGHT: Final = 200
LEFT: Final = 56  # room for the axis labels
TOP: Final = 10
BOTTOM: Final = 24
MAX_BAR: Final = 24.0
COLOURS: Final = {
    "success": "#2e7d32",
    "failure": "#c62828",
    "timeout": "#c62828",
    "retry": "#b26a00",
    "cancelled": "#757575",
}


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k that is >= ``value`` (1 s for nothing to show)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 2.0, 5.0, 10.0):
        candidate = step * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)  # pragma: no cover - the loop always returns


def duration_chart(runs: Sequence[Mapping[str, Any]]) -> str:
    """An SVG bar chart of ``runs`` (run views, newest first) that have a duration."""
    points = [r for r in reversed(runs) if r.get("duration") is not None]
    if not points:
        return '<p class="muted">No finished run with a duration yet.</p>'
    top = nice_ceiling(max(float(r["duration"]) for r in points))
    plot_w = WIDTH - LEFT - 8
    plot_h = HEIGHT - TOP - BOTTOM
    slot_w = plot_w / len(points)
    bar_w = min(MAX_BAR, max(1.0, slot_w * 0.8))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="Durations of the last {len(points)} runs, up to {esc(seconds(top))}">'
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - 8}" y2="{y:.1f}" stroke="#e3e6ec"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#667085">{esc(seconds(top * fraction))}</text>'
        )
    for index, run in enumerate(points):
        duration = float(run["duration"])
        bar_h = max(1.0, plot_h * min(duration, top) / top)
        x = LEFT + index * slot_w + (slot_w - bar_w) / 2
        y = TOP + plot_h - bar_h
        colour = COLOURS.get(str(run.get("outcome")), "#1565c0")
        tip = f"{run.get('started_at')} · {run.get('outcome')} · {seconds(duration)}"
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{bar_h:.1f}" '
            f'fill="{colour}"><title>{esc(tip)}</title></rect>'
        )
    first, last = points[0].get("started_at"), points[-1].get("started_at")
    parts.append(
        f'<text x="{LEFT}" y="{HEIGHT - 6}" font-size="11" fill="#667085">{esc(first)}</text>'
        f'<text x="{WIDTH - 8}" y="{HEIGHT - 6}" font-size="11" text-anchor="end" '
        f'fill="#667085">{esc(last)}</text></svg>'
    )
    return "".join(parts)
