"""A sidecar without HTTP under a manual clock: feed events, move time, read what it recorded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from jobpulse.instrumentation.wire import Event, format_ts, parse_event
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.domain.tables import Flip, Job, Run, Slot
from jobpulse.sidecar.service import IngestResult, Sidecar
from jobpulse.sidecar.settings import Settings

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp()  # a Monday, 10:00 UTC


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class Harness:
    def __init__(
        self,
        store: str,
        config: str = "",
        *,
        start: float = T0,
        catchup_delay: float = 0.0,
        **settings: Any,
    ) -> None:
        self.clock = ManualClock(start)
        self.settings = Settings(store=store, catchup_delay=catchup_delay, **settings)
        self.sidecar = Sidecar(self.settings, clock=self.clock, file_config=parse_config(config))
        self.sidecar.start()

    def close(self) -> None:
        self.sidecar.stop()

    def restart(
        self,
        *,
        at_time: float | None = None,
        config: str | None = None,
        catchup_delay: float | None = None,
    ) -> None:
        self.sidecar.stop()
        if at_time is not None:
            self.clock.set(at_time)
        settings = self.settings
        if catchup_delay is not None:
            from dataclasses import replace

            settings = replace(settings, catchup_delay=catchup_delay)
            self.settings = settings
        cfg = parse_config(config) if config is not None else self.sidecar.file_config
        self.sidecar = Sidecar(settings, clock=self.clock, file_config=cfg)
        self.sidecar.start()

    # time
    def move(self, t: float) -> None:
        """Move the clock to ``t`` in steps, ticking at every deadline on the way, as the
        live evaluator would."""
        while True:
            nxt = self.sidecar.next_deadline()
            if nxt is None or nxt > t:
                break
            if nxt > self.clock.now():
                self.clock.set(nxt)
            self.sidecar.tick_sync()
        if t > self.clock.now():
            self.clock.set(t)
        self.sidecar.tick_sync()

    # events
    def send(
        self,
        type: str,
        job: str,
        *,
        ts: float | None = None,
        run_id: str | None = None,
        arrive: float | None = None,
        **fields: Any,
    ) -> IngestResult:
        """Send one event; ``arrive`` moves the clock there first (default: ``ts``)."""
        now = self.clock.now()
        when = ts if ts is not None else now
        arrival = arrive if arrive is not None else max(when, now)
        if arrival > now:
            self.move(arrival)
        raw: dict[str, Any] = {
            "type": type,
            "job": job,
            "run_id": run_id or uuid.uuid4().hex,
            "ts": format_ts(when),
        }
        for key, value in fields.items():
            raw[key] = format_ts(value) if key in ("scheduled_for", "sent_at") else value
        event, _ = parse_event(raw)
        return self.sidecar.ingest_sync([event])

    def run(
        self, job: str, start: float, duration: float, outcome: str = "success", **fields: Any
    ) -> str:
        rid = uuid.uuid4().hex
        self.send("start", job, ts=start, run_id=rid, **fields)
        self.send(outcome, job, ts=start + duration, run_id=rid, duration=duration)
        return rid

    def ping(self, events: list[Event], **kw: Any) -> IngestResult:
        return self.sidecar.ingest_sync(events, **kw)

    # reads
    def job(self, name: str) -> Job:
        with self.sidecar.store.session() as s:
            job = s.scalars(select(Job).where(Job.name == name)).one()
            s.expunge(job)
            return job

    def slots(self, name: str) -> list[tuple[float, str, str | None]]:
        with self.sidecar.store.session() as s:
            jid = s.scalar(select(Job.id).where(Job.name == name))
            rows = s.scalars(select(Slot).where(Slot.job_id == jid).order_by(Slot.slot))
            return [(r.slot, r.status, r.run_id) for r in rows]

    def missed(self, name: str) -> list[float]:
        return [s for s, status, _ in self.slots(name) if status != "filled"]

    def runs(self, name: str) -> list[Run]:
        with self.sidecar.store.session() as s:
            jid = s.scalar(select(Job.id).where(Job.name == name))
            rows = list(s.scalars(select(Run).where(Run.job_id == jid).order_by(Run.started_at)))
            for r in rows:
                s.expunge(r)
            return rows

    def flips(self, name: str) -> list[tuple[str, str, str | None]]:
        with self.sidecar.store.session() as s:
            jid = s.scalar(select(Job.id).where(Job.name == name))
            rows = s.scalars(select(Flip).where(Flip.job_id == jid).order_by(Flip.id))
            return [(f.from_state, f.to_state, f.reason) for f in rows]
