"""The job page (``GET /jobs/{job}``): state, the maintenance windows open or coming, the
configuration with the source of each field, the jobs it runs after and before with their
states, a duration chart, recent runs, missed and skipped slots and state changes, and the CSV
export link."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from jobpulse.instrumentation.wire import parse_ts

from .data import ChainLink, JobDetail
from .fleet_page import job_href, nav
from .markup import age, badge, esc, page, percent, seconds, stamp, until
from .svg import duration_chart

__all__ = ["job_page"]


def _when(view: dict[str, Any], key: str) -> float | None:
    value = view.get(key)
    return parse_ts(value) if value else None


def _table(table_id: str, heads: Sequence[str], rows: Sequence[str], empty: str) -> str:
    head = "".join(f"<th>{h}</th>" for h in heads)
    body = "".join(rows) or f'<tr><td colspan="{len(heads)}" class="muted">{empty}</td></tr>'
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _summary(detail: JobDetail) -> str:
    job, now, stats = detail.job, detail.now, detail.stats
    runs = job["runs"]
    totals = ", ".join(f"{n} {outcome}" for outcome, n in runs.items())
    duration = stats["duration"]
    items = [
        ("Last success", age(_when(job, "last_success"), now)),
        ("Last failure", age(_when(job, "last_failure"), now)),
        ("Last start", age(_when(job, "last_start"), now)),
        ("Last duration", esc(seconds(job.get("last_duration")))),
        ("Next expected", until(_when(job, "next_expected"), now)),
        ("Expected interval", esc(seconds(job.get("expected_interval")))),
        (
            "Running",
            f"{esc(job['running'])} (oldest started {age(_when(job, 'oldest_running_start'), now)})"
            if job["running"]
            else "0",
        ),
        ("Consecutive bad outcomes", esc(job["consecutive_failures"])),
        ("Success ratio 24h", percent(job.get("success_ratio_24h"))),
        ("Miss ratio 24h", percent(job.get("miss_ratio_24h"))),
        (
            "Duration 24h",
            f"p50 {esc(seconds(duration['p50']))} · p95 "
            f"{esc(seconds(duration['p95']))} · max {esc(seconds(duration['max']))}",
        ),
        ("Runs (all time)", esc(totals)),
        ("Missed slots (all time)", esc(job["missed"])),
        ("Overlapping starts", esc(job["overlaps"])),
        ("Slow runs (all time)", esc(job.get("slow_runs", 0))),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def _maintenance(detail: JobDetail) -> str:
    """The windows that hold the job: open now, or their next span."""
    items = []
    for window in detail.job.get("maintenance") or []:
        name = window["name"] or f"#{window['id']}"
        start, end = _when(window, "start"), _when(window, "end")
        when = (
            f"open until {esc(stamp(end))}"
            if window["active"]
            else f"next {esc(stamp(start))} – {esc(stamp(end))}"
        )
        every = f" (every <code>{esc(window['schedule'])}</code>)" if window["schedule"] else ""
        reason = f": {esc(window['reason'])}" if window.get("reason") else ""
        state = "open" if window["active"] else "upcoming"
        items.append(
            f'<li data-window="{esc(name)}" data-state="{state}">Maintenance window '
            f"<strong>{esc(name)}</strong>{every}, {when}{reason}</li>"
        )
    if not items:
        return ""
    return f'<ul id="maintenance">{"".join(items)}</ul>'


def _config(detail: JobDetail) -> str:
    rows = [
        f'<tr data-field="{esc(r.field)}"><td>{esc(r.field)}</td><td>{esc(r.value)}</td>'
        f"<td>{esc(r.source)}</td></tr>"
        for r in detail.config
    ]
    return _table("config", ("Field", "Value", "Set by"), rows, "")


def _run_row(run: dict[str, Any]) -> str:
    outcome = badge("o", run["outcome"])
    if run.get("late_outcome"):
        outcome += f' <span class="muted">then {esc(run["late_outcome"])}</span>'
    error = ""
    if run.get("error_type") or run.get("error_message"):
        kind = f"<strong>{esc(run.get('error_type'))}</strong>" if run.get("error_type") else ""
        error = f"{kind}<pre>{esc(run.get('error_message') or '')}</pre>"
    if run.get("exit_code") not in (None, 0):
        error = f"exit code {esc(run['exit_code'])} {error}"
    if run.get("log"):
        error += f"<details><summary>log</summary><pre>{esc(run['log'])}</pre></details>"
    return (
        f'<tr data-run="{esc(run["run_id"])}"><td>{outcome}</td>'
        f"<td>{esc(stamp(_when(run, 'started_at')))}</td>"
        f'<td class="num">{esc(seconds(run.get("duration")))}</td>'
        f"<td>{error}</td><td><code>{esc(run.get('trace_id') or '')}</code></td>"
        f"<td>{esc(run.get('host') or '')}</td><td>{esc(', '.join(run['flags']))}</td>"
        f"<td><code>{esc(run['run_id'])}</code></td></tr>"
    )


def _slot_row(slot: dict[str, Any]) -> str:
    count = f" ({esc(slot['count'])} slots)" if slot.get("count", 1) > 1 else ""
    reason = esc(slot.get("reason") or "")
    if slot.get("upstream"):
        upstream = slot["upstream"]
        reason += f': <a href="{esc(job_href(upstream))}">{esc(upstream)}</a> did not succeed'
    return (
        f"<tr><td>{esc(stamp(_when(slot, 'slot')))}</td><td>{esc(slot['status'])}{count}</td>"
        f"<td>{reason}</td></tr>"
    )


def _chain_row(link: ChainLink) -> str:
    state = badge("s", link.state, link.reason) if link.state else "not a known job"
    return (
        f'<tr data-chain="{esc(link.name)}"><td>{"runs after" if link.upstream else "runs before"}'
        f'</td><td><a href="{esc(job_href(link.name))}">{esc(link.name)}</a></td>'
        f"<td>{state}</td></tr>"
    )


def _chain(detail: JobDetail) -> str:
    if not detail.chain:
        return ""
    return "<h2>Dependencies</h2>" + _table(
        "chain", ("", "Job", "State"), [_chain_row(link) for link in detail.chain], ""
    )


def _flip_row(flip: dict[str, Any]) -> str:
    return (
        f"<tr><td>{esc(stamp(_when(flip, 'at')))}</td><td>{badge('s', flip['from'])} → "
        f"{badge('s', flip['to'])}</td><td>{esc(flip.get('reason') or '')}</td></tr>"
    )


def job_page(detail: JobDetail) -> str:
    job = detail.job
    name = job["name"]
    quoted = quote(name, safe="")
    labels = " ".join(
        f"<code>{esc(k)}={esc(v)}</code>" for k, v in sorted((job.get("labels") or {}).items())
    )
    removed = (
        '<p class="muted">Removed from the configuration file: no longer evaluated.</p>'
        if job.get("removed")
        else ""
    )
    csv_href = f"/api/v1/jobs/{quoted}/runs?format=csv"
    body = (
        f"{nav()}<h1>{esc(name)} {badge('s', job['state'], job.get('reason'))}</h1>"
        f'<p class="muted">since {esc(stamp(_when(job, "state_since")))}</p>{removed}'
        f'<p class="labels">{labels}</p>{_maintenance(detail)}'
        f'<p><a id="csv" href="{esc(csv_href)}">Download runs as CSV</a> · '
        f'<a href="{esc("/api/v1/jobs/" + quoted)}">JSON</a></p>'
        f"<h2>Summary</h2>{_summary(detail)}"
        f"{_chain(detail)}"
        f"<h2>Configuration</h2>{_config(detail)}"
        f"<h2>Durations</h2>{duration_chart(detail.runs)}"
        "<h2>Recent runs</h2>"
        + _table(
            "runs",
            ("Outcome", "Started", "Duration", "Error", "Trace id", "Host", "Flags", "Run id"),
            [_run_row(r) for r in detail.runs[:50]],
            "No run recorded yet.",
        )
        + "<h2>Missed and skipped slots</h2>"
        + _table(
            "missed",
            ("Slot", "Status", "Reason"),
            [_slot_row(s) for s in detail.missed],
            "No missed or skipped slot.",
        )
        + "<h2>State changes</h2>"
        + _table(
            "flips",
            ("At", "Change", "Reason"),
            [_flip_row(f) for f in detail.flips],
            "No state change yet.",
        )
    )
    return page(name, body)
