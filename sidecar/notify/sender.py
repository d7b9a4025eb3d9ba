"""The sender: delivers the outbox after commit, on the replica that leads.

Each pass (woken after a commit that added outbox rows, and at least once a second):

1. Rows of receivers no longer configured are dropped (counted ``dropped``).
2. Due rows are claimed (a conditional UPDATE that also counts the attempt and leases the row
   for the request's timeout, so a sender killed mid-request leaves it to be retried), sent
   concurrently, then deleted when the receiver answered 2xx (``sent``), or rescheduled with
   exponential backoff and full jitter (``failed``; ``Retry-After`` honoured), or given up
   (``gave_up``) after ``retry.max_attempts`` attempts, past ``retry.max_age``, or at once on a
   4xx other than 408/425/429 (the receiver refuses the request itself; retrying cannot help).
3. Every Alertmanager receiver gets the alerts of the jobs that are down now again each
   ``resend_interval``, with ``endsAt`` four intervals ahead (``resent``), so Alertmanager
   keeps them firing while the condition holds and lets them expire if jobpulse goes away.

Delivery is at least once: a crash between a receiver's 2xx and the row's deletion sends the
row again after the lease, with the same ``Idempotency-Key`` (webhooks) or as the same alert
(Alertmanager dedups it by its labels).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import aiohttp
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from jobpulse.instrumentation._backoff import Backoff, retry_after_seconds
from jobpulse.instrumentation.cli import package_version

from ..domain.clock import Clock
from ..domain.tables import Job
from ..exposition.selfmetrics import SelfMetrics
from ..generate.rules import RuleSettings
from ..notifyconfig import NotifyConfig, Receiver
from ..store.database import Store
from ..store.outbox import (
    GAVE_UP_KEPT,
    OutboxRow,
    claim,
    delivered,
    drop_receivers,
    due_rows,
    firing_jobs,
    give_up,
    prune_given_up,
    retry_at,
)
from ..store.tx import Tx
from ..store.writer import Writer
from .payload import alert_labels, alertmanager_alert, webhook_body
from .signing import SIGNATURE_HEADER, sign

__all__ = ["OUTCOMES", "Notifier"]

log = logging.getLogger("jobpulse.sidecar.notify")
T = TypeVar("T")

OUTCOMES: Final = ("sent", "resent", "failed", "gave_up", "dropped")
BATCH: Final = 200  # rows read per round
ROUNDS: Final = 20  # rounds per pass: a delivered row lets the next one of its job go
CONCURRENCY: Final = 8
LEASE_MARGIN: Final = 30.0  # a claimed row is retried this long after its request's timeout
PRUNE_EVERY: Final = 3600.0
ERROR_CHARS: Final = 300
ALERTS_PER_POST: Final = 256
KEEP_FIRING_FOR: Final = 4  # resend intervals a re-sent alert's endsAt lies ahead
# Statuses worth retrying; any other 3xx/4xx means the request itself is refused.
_RETRYABLE: Final = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None


class Notifier:
    def __init__(
        self,
        *,
        store: Store,
        writer: Writer,
        clock: Clock,
        metrics: SelfMetrics,
        rule_settings: RuleSettings,
        labels_of: Callable[[Job], Mapping[str, str]],
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.writer = writer
        self.clock = clock
        self.metrics = metrics
        self.rule_settings = rule_settings
        self.labels_of = labels_of
        self.rng = rng or random.Random()  # jitter, not secrecy
        self.config = NotifyConfig()
        self.wake = asyncio.Event()
        self._http: aiohttp.ClientSession | None = None
        self._resent: dict[str, float] = {}
        self._pruned_at: float | None = None
        self._drop = True  # look for rows of unconfigured receivers on the next pass
        self._failing: set[str] = set()  # receivers whose last re-send failed (logged once)

    def configure(self, config: NotifyConfig) -> None:
        """Use ``config`` from the next pass on (start-up, reload)."""
        self.config = config
        for receiver in config.receivers:
            for outcome in OUTCOMES:
                self.metrics.notifications.labels(receiver.name, outcome)
        self._resent = {k: v for k, v in self._resent.items() if config.receiver(k)}
        self._drop = True

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def run(self, leading: Callable[[], bool], *, max_sleep: float = 1.0) -> None:
        """Pass after pass while the task lives; only while ``leading()``."""
        while True:
            self.wake.clear()
            nxt = None
            try:
                if leading():
                    nxt = await self.run_once()
            except Exception:
                log.exception("notification pass failed; retrying")
            sleep = max_sleep if nxt is None else min(max(nxt - self.clock.now(), 0.0), max_sleep)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=sleep)

    async def run_once(self) -> float | None:
        """One pass; returns when the next one is due (None: nothing waits)."""
        now = self.clock.now()
        names = [r.name for r in self.config.receivers]
        if self._drop:
            dropped = await self.writer.run(lambda tx: drop_receivers(tx.session, names))
            self._drop = False
            for name, count in dropped.items():
                log.warning(
                    "dropped %d pending notification(s) of receiver %r: it is no longer configured",
                    count,
                    name,
                )
                self.metrics.notifications.labels(name, "dropped").inc(count)
        if not names:
            return None
        for _ in range(ROUNDS):
            if await self._deliver_due() == 0:
                break
        await self._resend(self.clock.now())
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            await self.writer.run(lambda tx: prune_given_up(tx.session, now - GAVE_UP_KEPT))
        pending, due = await self._read(_pending)
        self.metrics.notifications_pending.set(pending)
        resend = [
            self._resent.get(r.name, now) + r.resend_interval
            for r in self.config.receivers
            if r.kind == "alertmanager"
        ]
        times = [t for t in (due, *resend) if t is not None]
        return min(times) if times else None

    async def _read(self, fn: Callable[[Session], T]) -> T:
        def run() -> T:
            with self.store.session() as session:
                return fn(session)

        return await asyncio.to_thread(run)

    # ------------------------------------------------------------------ outbox rows
    async def _deliver_due(self) -> int:
        """Claim, send and record the due rows; returns how many were delivered."""
        now = self.clock.now()
        rows = await self._read(lambda s: due_rows(s, now, BATCH))
        rows = [row for row in rows if self.config.receiver(row.receiver) is not None]
        if not rows:
            return 0

        def take(tx: Tx) -> list[OutboxRow]:
            return [row for row in rows if claim(tx.session, row, now, self._lease(row))]

        claimed = await self.writer.run(take)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def attempt(row: OutboxRow) -> Attempt:
            async with limit:
                return await self._attempt(row)

        attempts = await asyncio.gather(*(attempt(row) for row in claimed))
        done = self.clock.now()
        await self.writer.run(lambda tx: self._record(tx, claimed, attempts, done))
        return sum(a.ok for a in attempts)

    def _lease(self, row: OutboxRow) -> float:
        receiver = self.config.receiver(row.receiver)
        return (receiver.timeout if receiver else 10.0) + LEASE_MARGIN

    def _record(
        self, tx: Tx, rows: Sequence[OutboxRow], attempts: Sequence[Attempt], now: float
    ) -> None:
        retry = self.config.retry
        backoff = Backoff(base=retry.initial_delay, cap=retry.max_delay)
        for row, result in zip(rows, attempts, strict=True):
            counter = self.metrics.notifications
            if result.ok:
                delivered(tx.session, row.id)
                counter.labels(row.receiver, "sent").inc()
                continue
            counter.labels(row.receiver, "failed").inc()
            error = result.error or "failed"
            tries = row.attempts + 1  # the claim counted this one
            why = None
            if result.permanent:
                why = "the receiver refused the request"
            elif tries >= retry.max_attempts:
                why = f"{tries} attempts made (retry.max_attempts)"
            elif now - row.created_at >= retry.max_age:
                why = "older than retry.max_age"
            if why is None:
                delay = backoff.delay(tries, self.rng, retry_after=result.retry_after)
                retry_at(tx.session, row.id, now + delay, error)
                log.info(
                    "notification %s to %r failed (%s); retrying in %.1f s",
                    row.key,
                    row.receiver,
                    error,
                    delay,
                )
                continue
            give_up(tx.session, row.id, f"{error} (gave up: {why})")
            counter.labels(row.receiver, "gave_up").inc()
            log.error(
                "gave up notification %s of job %r to %r: %s; last error: %s",
                row.key,
                row.job,
                row.receiver,
                why,
                error,
            )

    async def _attempt(self, row: OutboxRow) -> Attempt:
        receiver = self.config.receiver(row.receiver)
        assert receiver is not None
        headers = {"Idempotency-Key": row.key}
        if receiver.kind == "alertmanager":
            labels = alert_labels(row.job, row.labels, self.rule_settings, receiver.labels)
            firing = row.alert == "firing"
            ends = self.clock.now() + KEEP_FIRING_FOR * receiver.resend_interval
            alert = alertmanager_alert(
                labels,
                self.rule_settings,
                reason=row.reason if firing else None,
                starts_at=row.at,
                ends_at=ends if firing else row.at,
            )
            return await self._post(receiver, [alert], headers)
        body = webhook_body(
            key=row.key,
            status=row.alert,
            job=row.job,
            from_state=row.from_state,
            to_state=row.to_state,
            reason=row.reason,
            at=row.at,
            job_labels=row.labels,
            settings=self.rule_settings,
        )
        return await self._post(receiver, body, headers)

    # ------------------------------------------------------------------ HTTP
    async def _post(self, receiver: Receiver, body: Any, extra: dict[str, str]) -> Attempt:
        data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        headers = {
            **dict(receiver.headers),
            **extra,
            "Content-Type": "application/json",
            "User-Agent": f"jobpulse/{package_version()}",
        }
        url = receiver.url
        if receiver.kind == "alertmanager":
            url = url.rstrip("/") + "/api/v2/alerts"
        elif receiver.secret is not None:
            headers[SIGNATURE_HEADER] = sign(receiver.secret, data, int(self.clock.now()))
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=receiver.timeout)
        try:
            async with self._http.post(
                url, data=data, headers=headers, timeout=timeout, allow_redirects=False
            ) as resp:
                if 200 <= resp.status < 300:
                    return Attempt(ok=True)
                text = (await resp.text(errors="replace")).strip()[:ERROR_CHARS]
                return Attempt(
                    ok=False,
                    error=f"HTTP {resp.status} from {url}: {text}".rstrip(": "),
                    permanent=300 <= resp.status < 500 and resp.status not in _RETRYABLE,
                    retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = str(exc) or "no answer within the timeout"
            return Attempt(ok=False, error=f"{type(exc).__name__} ({url}): {detail}"[:ERROR_CHARS])

    # ------------------------------------------------------------------ keep firing
    async def _resend(self, now: float) -> None:
        """Push the down jobs' alerts again to each Alertmanager whose interval has passed."""
        receivers = [
            r
            for r in self.config.receivers
            if r.kind == "alertmanager"
            and now - self._resent.get(r.name, -1e18) >= r.resend_interval
        ]
        if not receivers:
            return
        jobs = await self._read(firing_jobs)
        for receiver in receivers:
            self._resent[receiver.name] = now
            alerts = [
                alertmanager_alert(
                    alert_labels(
                        job.name, self.labels_of(job), self.rule_settings, receiver.labels
                    ),
                    self.rule_settings,
                    reason=job.reason,
                    starts_at=job.state_since,
                    ends_at=now + KEEP_FIRING_FOR * receiver.resend_interval,
                )
                for job in jobs
            ]
            for i in range(0, len(alerts), ALERTS_PER_POST):
                chunk = alerts[i : i + ALERTS_PER_POST]
                result = await self._post(receiver, chunk, {})
                counter = self.metrics.notifications.labels(
                    receiver.name, "resent" if result.ok else "failed"
                )
                counter.inc(len(chunk) if result.ok else 1)
                if result.ok:
                    self._failing.discard(receiver.name)
                elif receiver.name not in self._failing:
                    self._failing.add(receiver.name)
                    log.warning(
                        "re-sending firing alerts to %r failed: %s", receiver.name, result.error
                    )


def _pending(session: Session) -> tuple[int, float | None]:
    count, due = session.execute(
        select(func.count(), func.min(OutboxRow.next_attempt_at)).where(
            OutboxRow.delivery == "pending"
        )
    ).one()
    return int(count), due
