"""Notifications from the sidecar: the outbox rows a flip commits, and their delivery to a real
HTTP receiver under a manual clock (backoff, give-up, ordering, dropped receivers, the
Alertmanager re-sends), over SQLite and PostgreSQL. The real Alertmanager is in
tests/e2e/test_notify_alertmanager.py; a killed sidecar in tests/security/test_notify_crash.py."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from jobpulse.instrumentation.wire import parse_ts
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.http.pages.data import Filters, read_fleet
from jobpulse.sidecar.http.pages.fleet_page import fleet_page
from jobpulse.sidecar.notify.sender import KEEP_FIRING_FOR
from jobpulse.sidecar.store.outbox import OutboxRow, alert_of
from tests.sidecar.harness import T0, Harness

DOWN_AT = T0 + 90  # `every: 1m` created at T0: first slot T0+60, grace 30 s


@dataclass
class Hook:
    """A receiver: keeps every request and answers with the queued statuses (then 200)."""

    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        headers = {"Retry-After": "120"} if status == 429 else {}
        return web.Response(status=status, text="" if status < 300 else "busy", headers=headers)

    def bodies(self, path: str | None = None) -> list[Any]:
        return [json.loads(b) for p, _, b in self.requests if path is None or p == path]


@pytest.fixture
async def hook(aiohttp_server: Any) -> Hook:
    hook = Hook()
    app = web.Application()
    app.router.add_post("/{tail:.*}", hook.handle)
    server = await aiohttp_server(app)
    hook.url = str(server.make_url("")).rstrip("/")
    return hook


def config(hook: Hook, *, retry: str = "", am: bool = False, webhook: bool = True) -> str:
    text = """
jobs:
  - name: nightly
    every: 1m
    labels: {team: data, severity: critical, owner: ana, tier: gold}
notify:
"""
    if webhook:
        text += f"""  webhooks:
    - name: ops
      url: {hook.url}/hook
      secret: s3cret
"""
    if am:
        text += f"""  alertmanagers:
    - name: am
      url: {hook.url}/am
      labels: {{cluster: prod}}
      resend_interval: 1m
"""
    return text + (f"  retry: {{{retry}}}\n" if retry else "")


@pytest.fixture
async def make(store_url: str) -> AsyncIterator[Callable[[str], Harness]]:
    made: list[Harness] = []

    def build(text: str) -> Harness:
        h = Harness(store_url, text)
        h.sidecar.notifier.rng = random.Random(7)
        made.append(h)
        return h

    yield build
    for h in made:
        await h.sidecar.notifier.close()
        h.close()


def rows(h: Harness) -> list[OutboxRow]:
    with h.sidecar.store.session() as s:
        found = list(s.scalars(select(OutboxRow).order_by(OutboxRow.id)))
        for row in found:
            s.expunge(row)
        return found


def counter(h: Harness, receiver: str, outcome: str) -> float:
    value = h.sidecar.metrics.registry.get_sample_value(
        "jobpulse_notifications_total", {"receiver": receiver, "outcome": outcome}
    )
    return value or 0.0


@pytest.mark.parametrize(
    ("before", "after", "alert"),
    [
        ("up", "down", "firing"),
        ("new", "down", "firing"),
        ("paused", "down", "firing"),  # resumed into down
        ("down", "up", "resolved"),
        ("down", "paused", "resolved"),  # someone paused it: the page is over
        ("down", "down", None),  # a new reason while down
        ("new", "up", None),
        ("up", "paused", None),
        ("paused", "up", None),
    ],
)
def test_which_flips_notify(before: str, after: str, alert: str | None) -> None:
    assert alert_of(before, after) == alert


async def test_a_flip_commits_one_row_per_receiver_with_the_jobs_labels(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    h = make(config(hook, am=True))
    h.move(DOWN_AT + 1)
    assert h.flips("nightly") == [("new", "down", "missed")]
    found = rows(h)
    assert sorted(r.receiver for r in found) == ["am", "ops"]
    assert all((r.job, r.alert, r.reason) == ("nightly", "firing", "missed") for r in found)
    assert all(r.at == found[0].at and DOWN_AT <= r.at <= DOWN_AT + 1 for r in found)
    assert all(
        r.labels == {"team": "data", "severity": "critical", "owner": "ana", "tier": "gold"}
        for r in found
    )
    assert found[0].key != found[1].key and all(len(r.key) == 32 for r in found)
    assert all(r.delivery == "pending" and r.attempts == 0 for r in found)


async def test_a_rolled_back_pause_leaves_no_notification_and_a_committed_one_resolves(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    h = make(config(hook))
    h.move(DOWN_AT + 1)
    (firing,) = rows(h)
    sidecar = h.sidecar

    class Abort(Exception):
        pass

    def pause_then_fail() -> None:
        with sidecar.store.transaction() as tx:
            job = tx.job("nightly")
            assert job is not None
            sidecar.engine.pause(tx, job, h.clock.now())
            raise Abort

    with pytest.raises(Abort):
        pause_then_fail()
    assert [r.id for r in rows(h)] == [firing.id]
    assert h.flips("nightly") == [("new", "down", "missed")]

    def pause(tx: Any) -> None:
        job = tx.job("nightly")
        sidecar.engine.pause(tx, job, h.clock.now())

    sidecar.writer.run_sync(pause)
    assert [(r.alert, r.from_state, r.to_state) for r in rows(h)] == [
        ("firing", "new", "down"),
        ("resolved", "down", "paused"),
    ]


async def test_a_webhook_is_signed_keyed_and_sent_once(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    h = make(config(hook))
    h.move(DOWN_AT + 1)
    (row,) = rows(h)
    await h.sidecar.notifier.run_once()
    assert rows(h) == []
    assert counter(h, "ops", "sent") == 1
    ((path, headers, body),) = hook.requests
    assert path == "/hook"
    assert headers["Idempotency-Key"] == row.key
    assert headers["Content-Type"] == "application/json"
    t = int(h.clock.now())
    assert headers["X-Jobpulse-Signature"].startswith(f"t={t},v1=")
    payload = json.loads(body)
    assert payload == {
        "version": 1,
        "id": row.key,
        "status": "firing",
        "job": "nightly",
        "state": "down",
        "previous_state": "new",
        "reason": "missed",
        "at": payload["at"],
        "labels": {"owner": "ana", "severity": "critical", "team": "data", "tier": "gold"},
        "severity": "critical",
        "summary": "The job nightly is down.",
        "description": payload["description"],
        "runbook_url": "https://github.com/jobpulse/jobpulse/blob/main/docs/runbooks.md"
        "#jobpulsejobdown",
        "dashboard_url": "http://localhost:3000/d/jobpulse-job-detail?var-job_name=nightly",
    }
    assert parse_ts(payload["at"]) == row.at
    assert payload["description"].endswith("Reason: missed.")
    await h.sidecar.notifier.run_once()  # nothing left: nothing sent again
    assert len(hook.requests) == 1


async def test_failed_attempts_back_off_and_give_up_after_max_attempts(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    h = make(config(hook, retry="max_attempts: 4, initial_delay: 10s, max_delay: 30s"))
    hook.statuses = [503] * 4
    h.move(DOWN_AT + 1)
    notifier = h.sidecar.notifier
    # full jitter under a ceiling that doubles from initial_delay and stops at max_delay
    jitter = random.Random(7)  # the notifier's generator, replayed
    for attempt, ceiling in enumerate([10, 20, 30], start=1):
        now = h.clock.now()
        await notifier.run_once()
        (row,) = rows(h)
        assert (row.attempts, row.delivery) == (attempt, "pending")
        expected = jitter.uniform(0.0, ceiling)
        assert row.next_attempt_at == pytest.approx(now + expected)
        assert row.last_error is not None and "HTTP 503" in row.last_error
        if expected > 0.01:
            h.clock.set(now + expected / 2)
            await notifier.run_once()  # not due yet: no attempt
            assert len(hook.requests) == attempt
        h.clock.set(row.next_attempt_at)
    await notifier.run_once()
    (row,) = rows(h)
    assert (row.attempts, row.delivery) == (4, "gave_up")
    assert "gave up: 4 attempts made" in (row.last_error or "")
    assert (counter(h, "ops", "failed"), counter(h, "ops", "gave_up")) == (4, 1)
    h.clock.advance(3600)
    await notifier.run_once()
    assert len(hook.requests) == 4  # a given-up row is never sent again

    with h.sidecar.store.session() as session:
        html = fleet_page(read_fleet(h.sidecar, session, Filters()), Filters(), None)
    assert '<span id="notify-pending">0 pending</span>' in html
    assert '<span id="notify-gave-up">1 given up</span>' in html
    assert "HTTP 503" in html and "<code>ops</code>" in html


async def test_retry_after_is_honoured_and_max_age_gives_up(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    h = make(config(hook, retry="max_age: 5m, initial_delay: 1s, max_delay: 2s"))
    hook.statuses = [429, 500]
    h.move(DOWN_AT + 1)
    created = h.clock.now()
    await h.sidecar.notifier.run_once()
    (row,) = rows(h)
    assert row.next_attempt_at >= created + 120  # Retry-After: 120 beats a 2 s backoff
    h.clock.set(created + 301)
    await h.sidecar.notifier.run_once()
    (row,) = rows(h)
    assert row.delivery == "gave_up" and "older than retry.max_age" in (row.last_error or "")
    assert counter(h, "ops", "gave_up") == 1


async def test_a_refused_request_is_given_up_at_once(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    h = make(config(hook))
    hook.statuses = [400]
    h.move(DOWN_AT + 1)
    await h.sidecar.notifier.run_once()
    (row,) = rows(h)
    assert (row.attempts, row.delivery) == (1, "gave_up")
    assert "HTTP 400" in (row.last_error or "") and "refused" in (row.last_error or "")


async def test_a_job_never_resolves_before_it_fired(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    """Down, then up again while the receiver fails: the resolution waits behind the firing
    notification and follows it once the receiver is back."""
    h = make(config(hook, retry="initial_delay: 10s, max_delay: 10s"))
    hook.statuses = [503]
    h.move(DOWN_AT + 1)
    await h.sidecar.notifier.run_once()  # the firing one fails
    h.run("nightly", h.clock.now() + 1, 1.0)  # success: up again
    assert [r.alert for r in rows(h)] == ["firing", "resolved"]
    await h.sidecar.notifier.run_once()  # the resolved row is due but held back
    assert len(hook.requests) == 1
    h.clock.advance(10)
    await h.sidecar.notifier.run_once()
    assert [b["status"] for b in hook.bodies()] == ["firing", "firing", "resolved"]
    assert rows(h) == []


async def test_rows_of_a_receiver_removed_by_a_reload_are_dropped(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    h = make(config(hook))
    h.move(DOWN_AT + 1)
    assert len(rows(h)) == 1
    h.sidecar.apply_config(parse_config(config(hook, webhook=False, am=True)))
    await h.sidecar.notifier.run_once()
    assert counter(h, "ops", "dropped") == 1
    assert [r.receiver for r in rows(h)] == []
    assert hook.bodies("/hook") == []


async def test_alertmanager_gets_the_rules_alert_and_it_is_re_sent_while_down(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    h = make(config(hook, am=True, webhook=False))
    h.move(DOWN_AT + 1)
    (row,) = rows(h)
    notifier = h.sidecar.notifier
    await notifier.run_once()
    pushed = hook.bodies("/am/api/v2/alerts")
    # the outbox row, then the first re-send of every down job
    assert [len(b) for b in pushed] == [1, 1]
    (alert,) = pushed[0]
    assert alert["labels"] == {
        "alertname": "JobPulseJobDown",
        "job_name": "nightly",
        "team": "data",
        "owner": "ana",
        "severity": "critical",
        "cluster": "prod",  # the receiver's static labels, where the alert has none
    }
    assert parse_ts(alert["startsAt"]) == row.at
    assert parse_ts(alert["endsAt"]) == pytest.approx(h.clock.now() + KEEP_FIRING_FOR * 60, abs=1)
    assert alert["annotations"]["summary"] == "The job nightly is down."
    assert counter(h, "am", "sent") == 1 and counter(h, "am", "resent") == 1

    h.clock.advance(30)
    await notifier.run_once()
    assert len(hook.bodies("/am/api/v2/alerts")) == 2  # within the resend interval
    h.clock.advance(31)
    await notifier.run_once()
    (again,) = hook.bodies("/am/api/v2/alerts")[2]
    assert again["labels"] == alert["labels"]
    assert parse_ts(again["endsAt"]) == pytest.approx(h.clock.now() + KEEP_FIRING_FOR * 60, abs=1)

    recovered = h.clock.now() + 1
    h.run("nightly", recovered, 1.0)
    await notifier.run_once()
    (resolved,) = hook.bodies("/am/api/v2/alerts")[3]
    assert resolved["labels"] == alert["labels"]
    assert parse_ts(resolved["endsAt"]) == pytest.approx(recovered + 1.0)  # the recovery
    h.clock.advance(61)
    await notifier.run_once()
    assert len(hook.bodies("/am/api/v2/alerts")) == 4  # up: nothing to keep firing


async def test_a_down_jobs_alert_resolves_at_once_when_it_is_relabelled_removed_or_deleted(
    make: Callable[[str], Harness], hook: Hook
) -> None:
    """An Alertmanager knows an alert by its labels and keeps a re-sent one firing until its
    ``endsAt`` (four re-send intervals ahead): a down job that is relabelled, removed from the
    file or deleted must resolve its alert at once, not page for minutes about what no
    longer exists (or twice, under its old labels and its new ones)."""
    text = config(hook, am=True)
    h = make(text)
    h.move(DOWN_AT + 1)
    notifier = h.sidecar.notifier
    await notifier.run_once()
    am = lambda: [a for body in hook.bodies("/am/api/v2/alerts") for a in body]  # noqa: E731
    (first, _resent) = am()
    assert first["labels"]["team"] == "data" and len(hook.bodies("/hook")) == 1

    def ended(alert: dict[str, Any]) -> bool:
        return parse_ts(alert["endsAt"]) <= h.clock.now()

    # Relabelled while down: the old labels' alert resolves, the new labels' fires from when
    # the job went down; a webhook names the job and hears nothing new.
    h.clock.advance(5)
    h.sidecar.apply_config(parse_config(text.replace("team: data", "team: ops")))
    await notifier.run_once()
    resolved, fired = am()[2:]
    assert resolved["labels"] == first["labels"] and ended(resolved)
    assert fired["labels"] == {**first["labels"], "team": "ops"} and not ended(fired)
    assert fired["startsAt"] == first["startsAt"]
    assert len(hook.bodies("/hook")) == 1

    # Removed from the file: resolved everywhere, the webhook told why.
    h.clock.advance(5)
    h.sidecar.apply_config(
        parse_config(
            text.replace("team: data", "team: ops").replace(
                "  - name: nightly", "  - name: other\n    every: 1h\n  - name: unused"
            )
        )
    )
    await notifier.run_once()
    (gone,) = am()[4:]
    assert gone["labels"] == fired["labels"] and ended(gone)
    (removed,) = hook.bodies("/hook")[1:]
    assert (removed["status"], removed["state"], removed["previous_state"]) == (
        "resolved",
        "removed",
        "down",
    )

    # Back in the file, still down: it fires again.
    h.clock.advance(5)
    h.sidecar.apply_config(parse_config(text))
    await notifier.run_once()
    (back,) = am()[5:6]
    assert back["labels"] == first["labels"] and not ended(back)
    assert hook.bodies("/hook")[2]["status"] == "firing"

    # Deleted: resolved everywhere at once.
    h.clock.advance(5)
    assert h.sidecar.writer.run_sync(lambda tx: h.sidecar.delete_job(tx, "nightly"))
    await notifier.run_once()
    assert [a["labels"] == first["labels"] and ended(a) for a in am()[6:]] == [True]
    (deleted,) = hook.bodies("/hook")[3:]
    assert (deleted["status"], deleted["state"]) == ("resolved", "deleted")
    h.clock.advance(61)
    await notifier.run_once()
    assert len(am()) == 7  # nothing left to keep firing
