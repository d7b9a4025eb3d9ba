"""The status page (``GET /``): every job's state, last success, next run and 24 h ratios,
filterable by state and by label, with a summary line of counts by state."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

from jobpulse.instrumentation.wire import parse_ts

from .data import Filters, Fleet, Notifications
from .markup import STATES, age, badge, esc, page, percent, until

__all__ = ["fleet_page", "job_href", "nav"]


def job_href(name: str) -> str:
    return "/jobs/" + quote(name, safe="")


def nav() -> str:
    return (
        '<nav><strong>jobpulse</strong> · <a href="/">status</a> · '
        '<a href="/api/v1/jobs">JSON</a> · <a href="/metrics">metrics</a></nav>'
    )


def _href(filters: Filters, refresh: int | None) -> str:
    """The status page's URL for these filters (as an href, before escaping)."""
    params: list[tuple[str, str]] = []
    if filters.state:
        params.append(("state", filters.state))
    params.extend(("label", f"{k}={v}") for k, v in filters.labels)
    if filters.removed:
        params.append(("removed", "1"))
    if refresh:
        params.append(("refresh", str(refresh)))
    return "/?" + urlencode(params) if params else "/"


def _summary(fleet: Fleet, filters: Filters, refresh: int | None) -> str:
    total = sum(fleet.counts.values())
    links = " · ".join(
        f'<a href="{esc(_href(replace(filters, state=state), refresh))}">'
        f"{fleet.counts.get(state, 0)} {state}</a>"
        for state in STATES
    )
    filtered = filters.state is not None or filters.labels or filters.removed
    shown = f" — showing {len(fleet.jobs)}" if filtered else ""
    return f'<p class="summary" id="summary">{total} jobs: {links}{shown}</p>'


def _form(filters: Filters, refresh: int | None) -> str:
    options = ['<option value="">any state</option>'] + [
        f'<option value="{s}"{" selected" if s == filters.state else ""}>{s}</option>'
        for s in STATES
    ]
    first, *more = [f"{k}={v}" for k, v in filters.labels] or [""]
    hidden = "".join(f'<input type="hidden" name="label" value="{esc(m)}">' for m in more)
    if filters.removed:
        hidden += '<input type="hidden" name="removed" value="1">'
    if refresh:
        hidden += f'<input type="hidden" name="refresh" value="{refresh}">'
    toggle = (
        f'<a href="{esc(_href(filters, None))}">stop auto-refresh</a>'
        if refresh
        else f'<a href="{esc(_href(filters, 30))}">auto-refresh every 30s</a>'
    )
    return (
        '<form method="get" action="/"><label>State <select name="state">'
        + "".join(options)
        + '</select></label> <label>Label <input name="label" placeholder="team=data" '
        f'value="{esc(first)}"></label> {hidden}<button type="submit">Filter</button> '
        f'<a href="/">clear</a> · {toggle}</form>'
    )


def _labels(labels: dict[str, str]) -> str:
    return " ".join(f"<code>{esc(k)}={esc(v)}</code>" for k, v in sorted(labels.items()))


def _row(job: dict[str, Any], now: float) -> str:
    def when(key: str) -> float | None:
        value = job.get(key)
        return parse_ts(value) if value else None

    removed = ' <span class="muted">(removed)</span>' if job.get("removed") else ""
    return (
        f'<tr data-job="{esc(job["name"])}" data-state="{esc(job["state"])}">'
        f'<td><a href="{esc(job_href(job["name"]))}">{esc(job["name"])}</a>{removed}</td>'
        f"<td>{badge('s', job['state'], job.get('reason'))}</td>"
        f"<td>{age(when('state_since'), now)}</td>"
        f"<td>{age(when('last_success'), now)}</td>"
        f"<td>{until(when('next_expected'), now)}</td>"
        f'<td class="num">{esc(job.get("running", 0))}</td>'
        f'<td class="num">{percent(job.get("success_ratio_24h"))}</td>'
        f'<td class="num">{percent(job.get("miss_ratio_24h"))}</td>'
        f'<td class="labels">{_labels(job.get("labels") or {})}</td></tr>'
    )


def _notifications(notes: Notifications | None, now: float) -> str:
    """Pending and given-up notifications and the latest delivery error (docs/runbooks.md,
    "Notifications are failing")."""
    if notes is None:
        return ""
    out = notes.outbox
    receivers = ", ".join(f"<code>{esc(name)}</code>" for name in notes.receivers) or (
        '<span class="muted">none configured</span>'
    )
    error = ""
    if out.last_error is not None:
        error = (
            f'<p id="notify-error">Last error ({esc(out.last_error_receiver)}, '
            f"{age(out.last_error_at, now)}): <code>{esc(out.last_error)}</code></p>"
        )
    return (
        '<section id="notifications"><h2>Notifications</h2>'
        f'<p id="notify-counts"><span id="notify-pending">{out.pending} pending</span> · '
        f'<span id="notify-gave-up">{out.gave_up} given up</span> (kept 7 days) · '
        f"receivers: {receivers}</p>{error}</section>"
    )


def fleet_page(fleet: Fleet, filters: Filters, refresh: int | None) -> str:
    rows = "".join(_row(job, fleet.now) for job in fleet.jobs)
    if not rows:
        rows = '<tr><td colspan="9" class="muted">No job matches.</td></tr>'
    body = (
        f"{nav()}<h1>Jobs</h1>{_summary(fleet, filters, refresh)}{_form(filters, refresh)}"
        '<table id="jobs"><thead><tr><th>Job</th><th>State</th><th>Since</th>'
        "<th>Last success</th><th>Next expected</th><th>Running</th><th>Success 24h</th>"
        f"<th>Missed 24h</th><th>Labels</th></tr></thead><tbody>{rows}</tbody></table>"
        f"{_notifications(fleet.notifications, fleet.now)}"
    )
    return page("Jobs", body, refresh=refresh)
