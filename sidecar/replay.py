"""``jobpulse replay``: the live evaluator over a simulated clock and a file of recorded events.

Each NDJSON line is a wire event plus ``received_at`` (its arrival; default its ``ts``). The
clock starts at ``--since`` (default: the earliest arrival), where the configured jobs are
created, as a sidecar started then would create them. Events are applied in arrival order;
between arrivals the clock jumps from deadline to deadline, ticking the evaluator at each, as
the live one does. The store is an in-memory SQLite database: nothing is left behind, and
no notification is queued for the receivers the file names.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from jobpulse.instrumentation.errors import ConfigError, InvalidEvent
from jobpulse.instrumentation.wire import Event, format_ts, parse_event, parse_ts

from .config import FileConfig, load_config
from .domain.clock import ManualClock
from .domain.rollup import stats_from_rows
from .domain.tables import Flip, Job, Rollup, Run, Slot
from .service import Sidecar
from .settings import build_settings

__all__ = ["RecordedEvent", "advance", "main", "read_events", "report"]

EX_DATAERR = 65
EX_CONFIG = 78


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    line: int
    received_at: float
    event: Event


def read_events(path: str) -> tuple[list[RecordedEvent], list[dict[str, Any]]]:
    """Parse the event file. Lines that are not JSON raise; invalid events are returned as
    rejections (line, field, reason), as the sidecar would reject them."""
    events: list[RecordedEvent] = []
    rejected: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not a JSON object: {exc}") from None
            try:
                if not isinstance(data, dict):
                    raise InvalidEvent("event", "must be a JSON object")
                raw_arrival = data.pop("received_at", None)
                received = (
                    parse_ts(raw_arrival, what="received_at") if raw_arrival is not None else None
                )
                # Judged against its arrival, as the live sidecar judges against its clock.
                event, _ = parse_event(data, now=received)
                arrival = received if received is not None else event.ts
            except InvalidEvent as exc:
                rejected.append({"line": number, "field": exc.field, "reason": exc.reason})
                continue
            events.append(RecordedEvent(number, arrival, event))
    events.sort(key=lambda r: (r.received_at, r.line))
    return events, rejected


def advance(sidecar: Sidecar, clock: ManualClock, until: float) -> None:
    """Move the clock to ``until``, ticking at every deadline on the way."""
    while True:
        nxt = sidecar.next_deadline()
        if nxt is None or nxt > until:
            break
        if nxt > clock.now():
            clock.set(nxt)
        sidecar.tick_sync()
    if until > clock.now():
        clock.set(until)
    sidecar.tick_sync()


def _pending(sidecar: Sidecar, job: Job, until: float, taken: set[float]) -> list[float]:
    cfg = sidecar.engine.config(job)
    out: list[float] = []
    s = job.cursor
    while s is not None and s <= until and len(out) < 10000:
        if s not in taken:
            out.append(s)
        s = cfg.schedule.next_after(s) if cfg.schedule.every is None else None
    # A job due by its upstreams: the ticks that became due and are not judged yet.
    out += [e["tick"] for e in job.ticks or [] if e["due"] is not None and e["tick"] not in taken]
    return sorted(out)


def report(sidecar: Sidecar, since: float, until: float) -> dict[str, Any]:
    jobs: dict[str, Any] = {}
    with sidecar.store.session() as session:
        for job in session.scalars(select(Job).order_by(Job.name)):
            slots = list(
                session.scalars(select(Slot).where(Slot.job_id == job.id).order_by(Slot.slot))
            )
            slot_views = [
                {
                    "slot": format_ts(s.slot),
                    "status": s.status if s.status in ("filled", "skipped") else "missed",
                    "run_id": s.run_id,
                    **({"count": s.count} if s.status == "gap" else {}),
                    **({"reason": s.reason} if s.status == "skipped" else {}),
                    **({"upstream": s.upstream} if s.upstream is not None else {}),
                }
                for s in slots
            ]
            taken = {s.slot for s in slots}
            slot_views += [
                {"slot": format_ts(p), "status": "pending", "run_id": None}
                for p in _pending(sidecar, job, until, taken)
            ]
            runs = session.scalars(
                select(Run).where(Run.job_id == job.id).order_by(Run.started_at, Run.id)
            )
            flips = session.scalars(
                select(Flip).where(Flip.job_id == job.id).order_by(Flip.at, Flip.id)
            )
            stats = stats_from_rows(session.scalars(select(Rollup).where(Rollup.job_id == job.id)))
            jobs[job.name] = {
                "state": {"state": job.state, "reason": job.reason},
                "removed": job.removed,
                "slots": slot_views,
                "runs": [
                    {
                        "run_id": r.run_id,
                        "slot": format_ts(r.slot) if r.slot is not None else None,
                        "started_at": format_ts(r.started_at),
                        "finished_at": format_ts(r.finished_at) if r.finished_at else None,
                        "outcome": r.outcome,
                        **({"late_outcome": r.late_outcome} if r.late_outcome else {}),
                        **({"error_type": r.error_type} if r.error_type else {}),
                        "flags": [
                            f for f in ("late", "clock_skew", "overlap", "stale") if getattr(r, f)
                        ],
                    }
                    for r in runs
                ],
                "flips": [
                    {
                        "at": format_ts(f.at),
                        "from": f.from_state,
                        "to": f.to_state,
                        "reason": f.reason,
                    }
                    for f in flips
                ],
                "stats": stats.as_dict(),
            }
    return {"since": format_ts(since), "until": format_ts(until), "jobs": jobs}


def replay(
    cfg: FileConfig, events: list[RecordedEvent], since: float | None, until: float
) -> dict[str, Any]:
    start = since if since is not None else min((r.received_at for r in events), default=until)
    clock = ManualClock(start)
    settings = build_settings({"store": "sqlite://"}, {}, cfg.sidecar)
    sidecar = Sidecar(settings, clock=clock, file_config=cfg)
    sidecar.start()
    # A replay notifies nobody: the receivers the file names get no outbox rows to go unsent.
    sidecar.outbox.receivers = sidecar.outbox.alertmanagers = ()
    try:
        for rec in events:
            if rec.received_at < start:
                continue
            if rec.received_at > until:
                break
            advance(sidecar, clock, rec.received_at)
            sidecar.ingest_sync([rec.event])
        advance(sidecar, clock, until)
        return report(sidecar, start, until)
    finally:
        sidecar.stop()


def main(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
        until = parse_ts(args.until, what="--until")
        since = parse_ts(args.since, what="--since") if args.since else None
    except ConfigError as exc:
        print(f"jobpulse replay: {exc}", file=sys.stderr)
        return EX_CONFIG
    except InvalidEvent as exc:
        print(f"jobpulse replay: {exc.field} {exc.reason}", file=sys.stderr)
        return 2
    if since is not None and since > until:
        print("jobpulse replay: --since is after --until", file=sys.stderr)
        return 2
    try:
        events, rejected = read_events(args.events)
    except OSError as exc:
        print(f"jobpulse replay: cannot read {args.events!r}: {exc.strerror}", file=sys.stderr)
        return EX_DATAERR
    except ValueError as exc:
        print(f"jobpulse replay: {exc}", file=sys.stderr)
        return EX_DATAERR
    result = replay(cfg, events, since, until)
    if rejected:
        result["rejected"] = rejected
    json.dump(result, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")
    return 0
