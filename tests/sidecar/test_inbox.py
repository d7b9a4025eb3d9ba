"""The durable inbox (DESIGN.md "Ingest through a durable inbox"): accepted means appended,
applied just behind, exactly once, in order, whatever commits when."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import func, insert, select

from jobpulse.instrumentation.wire import Event, format_ts
from jobpulse.sidecar import applying
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.domain.tables import InboxRow
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.settings import Settings
from jobpulse.sidecar.store.applier import id_runs
from jobpulse.sidecar.store.inbox import APPLY_BATCH, CREATE, decode, encode, key_ts
from tests.sidecar.harness import T0, Harness

CONFIG = 'jobs:\n  - name: nightly\n    schedule: "0 3 * * *"\n'


def pending(h: Harness) -> int:
    with h.sidecar.store.session() as s:
        return s.scalar(select(func.count()).select_from(InboxRow)) or 0


def test_an_event_round_trips_through_its_inbox_body() -> None:
    ev = Event(
        type="failure",
        job="nightly",
        run_id="r1",
        ts=T0 + 0.125,
        scheduled_for=T0,
        attempt=2,
        will_retry=True,
        duration=1 / 3,
        error_type="OSError",
        metadata={"rows": [1, 2], "ok": None},
        job_config={"schedule": "0 3 * * *"},
        message="ünïcode\n",
        truncated=True,
    )
    assert decode(encode(ev)) == ev
    assert decode(encode(ev)).truncated is True


def test_a_body_orjson_refuses_still_round_trips_through_the_stdlib() -> None:
    # A lone surrogate (json.loads accepts "\\ud800") and an integer past 64 bits in metadata:
    # orjson refuses both, so their rows are written and read by the stdlib's JSON instead.
    odd = Event(
        type="log", job="nightly", run_id="r\ud800", ts=T0, message="m\udfff", metadata={"n": 2**70}
    )
    assert decode(encode(odd)) == odd
    plain = Event(type="success", job="nightly", run_id="r1", ts=T0 + 0.1 + 0.2)
    assert json.loads(encode(plain))[3] == T0 + 0.1 + 0.2  # plain JSON, floats exact


def test_accepted_means_appended_and_applied_on_the_next_pass(tmp_path: Path) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", CONFIG)
    try:
        ev = Event(type="success", job="nightly", run_id="r1", ts=T0)
        result = h.sidecar.appender.submit([ev], at=T0).result(10)
        assert (result.accepted, result.duplicates) == (1, 0)
        assert pending(h) == 1
        assert h.runs("nightly") == []  # not applied yet: reads lag by one pass
        # the same event again while it waits: a duplicate, decided by the inbox's key
        again = h.sidecar.appender.submit([ev], at=T0).result(10)
        assert (again.accepted, again.duplicates) == (0, 1)
        h.sidecar.tick_sync()
        assert pending(h) == 0
        assert [r.run_id for r in h.runs("nightly")] == ["r1"]
        # ... and after it was applied: a duplicate, decided by the applied keys
        third = h.sidecar.appender.submit([ev], at=T0).result(10)
        assert (third.accepted, third.duplicates) == (0, 1)
        assert h.job("nightly").runs_success == 1
    finally:
        h.close()


def test_unknown_jobs_and_the_job_cap_are_decided_before_the_answer(tmp_path: Path) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", CONFIG, job_cap=2)
    try:
        sc = h.sidecar
        unknown = Event(type="start", job="stranger", run_id="a", ts=T0)
        refused = sc.appender.submit([unknown], create=False, at=T0).result(10)
        assert refused.rejected == [
            {"index": 0, "field": "job", "reason": "unknown job 'stranger'", "code": "unknown_job"}
        ]
        # The second job fits under the cap while it still waits in the inbox; the third not.
        events = [
            Event(type="start", job="second", run_id="b", ts=T0),
            Event(type="start", job="third", run_id="c", ts=T0),
        ]
        result = sc.appender.submit(events, at=T0).result(10)
        assert result.accepted == 1
        assert [r["code"] for r in result.rejected] == ["job_cap"]
        assert result.rejected[0]["index"] == 1
        # A job that waits in the inbox exists for a ping without ?create=1.
        ping = sc.appender.submit(
            [Event(type="success", job="second", run_id="b", ts=T0 + 1)], create=False, at=T0
        ).result(10)
        assert ping.accepted == 1
        sc.tick_sync()
        assert h.job("second").runs_success == 1
    finally:
        h.close()


def test_a_row_the_engine_cannot_apply_is_dropped_counted_and_does_not_stall_the_rest(
    tmp_path: Path,
) -> None:
    h = Harness(f"sqlite:///{tmp_path}/s.db", CONFIG)
    try:
        sc = h.sidecar
        with sc.store.append_transaction() as conn:
            conn.execute(
                insert(InboxRow),
                [
                    {
                        "job": "nightly",
                        "run_id": "broken",
                        "type": "start",
                        "key_ts": 0.0,
                        "ts": T0,
                        "arrived_at": T0,
                        "flags": CREATE,
                        "body": json.dumps(["start", "nightly"]),  # not an event's fields
                    }
                ],
            )
        ok = Event(type="success", job="nightly", run_id="fine", ts=T0)
        sc.appender.submit([ok], at=T0).result(10)
        sc.tick_sync()
        assert pending(h) == 0
        assert [r.run_id for r in h.runs("nightly")] == ["fine"]
        assert sc.metrics.rejected.labels("apply_failed")._value.get() == 1
    finally:
        h.close()


def test_rows_whose_ids_commit_out_of_order_are_not_skipped(pg_url: str) -> None:
    """PostgreSQL hands out ids at insert and commits in any order: the later id can be
    visible (and applied) while the earlier one is still uncommitted."""
    h = Harness(pg_url, CONFIG)
    try:
        sc = h.sidecar

        def row(run_id: str) -> dict[str, Any]:
            ev = Event(type="success", job="nightly", run_id=run_id, ts=T0)
            return {
                "job": ev.job,
                "run_id": ev.run_id,
                "type": ev.type,
                "key_ts": key_ts(ev),
                "ts": ev.ts,
                "arrived_at": T0,
                "flags": CREATE,
                "body": encode(ev),
            }

        early = sc.store.engine.connect()
        late = sc.store.engine.connect()
        try:
            early.begin()
            early_id = early.execute(insert(InboxRow).returning(InboxRow.id), row("early")).scalar()
            late.begin()
            late_id = late.execute(insert(InboxRow).returning(InboxRow.id), row("late")).scalar()
            assert early_id is not None and late_id is not None and early_id < late_id
            late.commit()
            sc.apply_pending(T0)
            assert [r.run_id for r in h.runs("nightly")] == ["late"]
            early.commit()  # the smaller id becomes visible after the larger was applied
        finally:
            early.close()
            late.close()
        sc.apply_pending(T0)
        assert sorted(r.run_id for r in h.runs("nightly")) == ["early", "late"]
        assert h.job("nightly").runs_success == 2
        assert pending(h) == 0
    finally:
        h.close()


def test_two_appliers_on_postgresql_apply_each_row_once(pg_url: str) -> None:
    a = Harness(pg_url, CONFIG)
    b = Harness(pg_url, CONFIG)
    try:
        events = [Event(type="success", job="nightly", run_id=f"r{i}", ts=T0) for i in range(300)]
        assert a.sidecar.appender.submit(events, at=T0).result(10).accepted == 300
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(2) as pool:
            for future in [pool.submit(sc.apply_pending, T0) for sc in (a.sidecar, b.sidecar)]:
                future.result(60)
        assert a.job("nightly").runs_success == 300
        assert pending(a) == 0
    finally:
        a.close()
        b.close()


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient[Any, Any]:
    settings = Settings(store=f"sqlite:///{tmp_path}/s.db", catchup_delay=0)
    app = create_app(
        settings, clock=ManualClock(T0), file_config=parse_config(CONFIG), run_evaluator=False
    )
    return await aiohttp_client(app)


async def test_readyz_and_metrics_report_how_far_behind_the_applier_is(
    client: TestClient[Any, Any],
) -> None:
    sidecar = client.app[SIDECAR]
    event = {"type": "success", "job": "nightly", "run_id": "r1", "ts": format_ts(T0)}
    resp = await client.post("/api/v1/events", json=[event])
    assert (await resp.json())["accepted"] == 1
    sidecar.clock.advance(2.5)
    text = await (await client.get("/metrics")).text()  # read at the scrape itself
    assert "jobpulse_inbox_pending_events 1.0" in text
    assert "jobpulse_inbox_apply_lag_seconds 2.5" in text
    ready = await (await client.get("/readyz")).json()
    assert ready["inbox"] == {"pending": 1, "lag_seconds": 2.5}
    # ?wait=applied answers once applied: the read that follows sees its own write
    second = {**event, "run_id": "r2"}
    resp = await client.post("/api/v1/events?wait=applied", json=[second])
    assert (await resp.json())["accepted"] == 1
    job = await (await client.get("/api/v1/jobs/nightly")).json()
    assert job["runs"]["success"] == 2
    ready = await (await client.get("/readyz")).json()
    assert ready["inbox"] == {"pending": 0, "lag_seconds": 0.0}
    bad = await client.post("/api/v1/events?wait=soon", json=[event])
    assert bad.status == 422
    assert "wait='soon'" in (await bad.json())["detail"]


async def test_readyz_says_when_the_evaluator_judges_behind_a_backlog(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Behind a backlog older than its patience, a pass judges at the oldest waiting arrival:
    # /readyz says how far behind it judges, not that it has not run.
    monkeypatch.setattr(applying, "TICK_PATIENCE", 0.0)
    sidecar = client.app[SIDECAR]
    events = [
        Event(type="success", job="nightly", run_id=f"r{i}", ts=T0)
        for i in range(2 * APPLY_BATCH + 1)
    ]
    sidecar.appender.submit(events, at=T0).result(10)
    sidecar.clock.advance(40)
    await asyncio.to_thread(sidecar.tick_sync)  # one batch applied, the rest still waits
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["detail"] == (
        "the evaluator judges 40 s behind: events that arrived since then still wait in the inbox"
    )
    assert body["inbox"] == {"pending": APPLY_BATCH + 1, "lag_seconds": 40.0}
    monkeypatch.setattr(applying, "TICK_PATIENCE", 10.0)
    await asyncio.to_thread(sidecar.tick_sync)
    assert (await client.get("/readyz")).status == 200


async def test_readyz_gives_a_first_pass_30_s_before_it_says_the_evaluator_has_not_run(
    client: TestClient[Any, Any],
) -> None:
    # A sidecar that has not judged yet (its first pass may apply a backlog left from before a
    # restart for up to TICK_PATIENCE before it judges) is ready until 30 s after it could
    # first judge; then /readyz says the evaluator has not run.
    sidecar = client.app[SIDECAR]
    assert sidecar.evaluator_last_run is None
    sidecar.clock.advance(29)
    assert (await client.get("/readyz")).status == 200
    sidecar.clock.advance(2)
    resp = await client.get("/readyz")
    assert resp.status == 503
    assert (await resp.json())["detail"] == "the evaluator has not run in the last 30 s"
    await asyncio.to_thread(sidecar.tick_sync)
    assert (await client.get("/readyz")).status == 200


async def test_ndjson_line_that_does_not_parse_is_rejected_alone(
    client: TestClient[Any, Any],
) -> None:
    good = json.dumps({"type": "success", "job": "nightly", "run_id": "r1", "ts": format_ts(T0)})
    body = f"{good}\n\n{{not json\n{good.replace('r1', 'r2')}\n"
    resp = await client.post(
        "/api/v1/events", data=body, headers={"Content-Type": "application/x-ndjson"}
    )
    assert resp.status == 200
    answer = await resp.json()
    assert answer["accepted"] == 2
    [rejection] = answer["rejected"]
    assert rejection["index"] == 1 and rejection["field"] == "line"
    assert rejection["reason"].startswith("line 3 is not valid JSON")


async def test_ping_exit_status_takes_ascii_digits_only(client: TestClient[Any, Any]) -> None:
    for status in ("²", "٣", "１"):
        resp = await client.get(f"/ping/nightly/{status}")
        assert resp.status == 404, status
    assert (await client.get("/ping/nightly/3")).status == 200


def test_the_applier_gives_way_to_ingest_in_flight(tmp_path: Path) -> None:
    """In one process any request in flight gets the process first (its append would wait for
    the applier's batch); an applier process, with a core of its own, gives way only to a
    burst of several; appends queued behind the one committing are a burst either way."""
    from jobpulse.sidecar.applying import BURST, BURST_BESIDE
    from jobpulse.sidecar.service import Sidecar

    sidecar = Sidecar(Settings(store=f"sqlite:///{tmp_path}/s.db"), clock=ManualClock(T0))
    try:
        assert BURST == 1 < BURST_BESIDE
        assert not sidecar.applier.busy()
        sidecar.ingesting = 1
        assert sidecar.applier.busy()
        sidecar.applier.burst = BURST_BESIDE
        sidecar.ingesting = BURST_BESIDE - 1
        assert not sidecar.applier.busy()
        sidecar.ingesting = BURST_BESIDE
        assert sidecar.applier.busy()
        sidecar.applier.burst = BURST
        sidecar.ingesting = 0
        # The appender's thread is not started: what is submitted waits to be taken.
        waiting = sidecar.appender.submit(
            [Event(type="success", job="nightly", run_id="r1", ts=T0)]
        )
        assert sidecar.applier.busy()
    finally:
        sidecar.stop()
    assert waiting.exception() is not None  # refused at the stop, never half-taken


def _scripted_ingest(tmp_path: Path) -> tuple[Any, list[float], dict[int, int]]:
    """A sidecar whose applier's pauses are recorded (not slept), and the ingest requests in
    flight after that many pauses (``ingest_after``), as a script."""
    from jobpulse.sidecar.service import Sidecar

    sidecar = Sidecar(Settings(store=f"sqlite:///{tmp_path}/s.db"), clock=ManualClock(T0))
    pauses: list[float] = []
    ingest_after: dict[int, int] = {}

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        sidecar.ingesting = ingest_after.get(len(pauses), sidecar.ingesting)

    sidecar.applier._sleep = sleep
    return sidecar, pauses, ingest_after


def test_past_its_patience_the_applier_takes_turns_with_a_burst(tmp_path: Path) -> None:
    """While the backlog is younger than YIELD_LAG a burst has the process; past that, the
    applier gives way for as long as its last batch took, less as the lag grows and not at all
    from twice YIELD_LAG (a sustained overload is slowed to the applier's pace, its lag
    bounded); a burst is over once ingest has been quiet for QUIET."""
    from jobpulse.sidecar.applying import BURST, PAUSE, QUIET, YIELD_LAG

    sidecar, pauses, ingest_after = _scripted_ingest(tmp_path)
    applier = sidecar.applier
    try:
        sidecar.ingesting = BURST
        applier.give_way(T0 - 1.0, turn=0.2)  # a young backlog: the burst goes first
        assert sum(pauses) == pytest.approx(YIELD_LAG, abs=PAUSE)
        pauses.clear()
        applier.give_way(T0 - YIELD_LAG, turn=0.2)  # an old one: a turn as long as the batch
        assert sum(pauses) == pytest.approx(0.2, abs=PAUSE)
        pauses.clear()
        applier.give_way(T0 - 1.5 * YIELD_LAG, turn=0.2)  # older: a shorter turn
        assert sum(pauses) == pytest.approx(0.1, abs=PAUSE)
        pauses.clear()
        applier.give_way(T0 - 2 * YIELD_LAG, turn=0.2)  # twice the patience: no turn at all
        assert pauses == []
        ingest_after[4] = 0  # the burst ends after 4 pauses: quiet for QUIET, then apply
        applier.give_way(T0 - 1.0, turn=0.2)
        assert sum(pauses) == pytest.approx(4 * PAUSE + QUIET, abs=PAUSE)
        pauses.clear()
        applier.give_way(T0 - YIELD_LAG, turn=0.2)  # nothing in flight: no burst at all
        assert pauses == []
    finally:
        sidecar.stop()


def test_an_applier_process_ends_a_burst_after_a_shorter_quiet(tmp_path: Path) -> None:
    """An applier process's burst is over after QUIET_BESIDE of quiet, not QUIET: what is in
    flight after its batch mostly piled up behind the batch's writes (waiting QUIET after
    them cost it a third of its time at a moderate flow); ingest that stays busy is a burst."""
    from jobpulse.sidecar.applying import BURST, PAUSE, QUIET, QUIET_BESIDE, YIELD_LAG

    assert PAUSE < QUIET_BESIDE < QUIET
    sidecar, pauses, ingest_after = _scripted_ingest(tmp_path)
    applier = sidecar.applier
    applier.quiet = QUIET_BESIDE
    try:
        sidecar.ingesting = BURST
        ingest_after[2] = 0  # answered at the next group commit
        applier.give_way(T0 - 1.0, turn=0.2)
        assert sum(pauses) == pytest.approx(1 * PAUSE + QUIET_BESIDE, abs=PAUSE / 2)
        pauses.clear()
        ingest_after.clear()
        sidecar.ingesting = BURST  # still busy: a burst, given way to as one
        applier.give_way(T0 - 1.0, turn=0.2)
        assert sum(pauses) == pytest.approx(YIELD_LAG, abs=PAUSE)
        pauses.clear()
        # Quiet instants between a burst's group commits do not end it.
        ingest_after.update({n: (0 if n % 2 else BURST) for n in range(1, 1000)})
        applier.give_way(T0 - 1.0, turn=0.2)
        assert sum(pauses) == pytest.approx(YIELD_LAG, abs=PAUSE)
    finally:
        sidecar.stop()


async def test_appends_from_the_loop_each_get_their_own_answer(tmp_path: Path) -> None:
    """Requests appended together from the event loop are committed as one batch and answered
    together, each with its own result; after the stop an append is refused, not left
    waiting."""
    from jobpulse.sidecar.store.writer import StoreUnavailable

    h = Harness(f"sqlite:///{tmp_path}/s.db", CONFIG)
    try:
        appender = h.sidecar.appender
        events = [Event(type="success", job="nightly", run_id=f"r{i}", ts=T0) for i in range(40)]
        answers = await asyncio.gather(*(appender.append([ev]) for ev in events))
        assert [a.run_ids for a in answers] == [[ev.run_id] for ev in events]
        assert all((a.accepted, a.duplicates) == (1, 0) for a in answers)
        ids = [a.ids[0] for a in answers]
        assert len(set(ids)) == 40 and None not in ids
        again = await asyncio.gather(*(appender.append([ev]) for ev in events[:3]))
        assert [(a.accepted, a.duplicates) for a in again] == [(0, 1)] * 3
        assert pending(h) == 40
    finally:
        h.close()
    with pytest.raises(StoreUnavailable):
        await h.sidecar.appender.append([events[0]])


def test_each_accepted_event_gets_the_id_of_its_own_inbox_row(tmp_path: Path) -> None:
    """A group of 200 events (inserted in several statements on SQLite), one of them a
    duplicate within the request: each accepted event's id is its own row's, in order
    (``?wait=applied`` waits for exactly those rows)."""
    h = Harness(f"sqlite:///{tmp_path}/s.db", CONFIG)
    try:
        events = [Event(type="success", job="nightly", run_id=f"r{i}", ts=T0) for i in range(200)]
        events.insert(70, events[5])
        result = h.sidecar.appender.submit(events).result(10)
        assert (result.accepted, result.duplicates) == (200, 1)
        assert result.ids[70] is None
        with h.sidecar.store.session() as s:
            rows = dict(s.execute(select(InboxRow.id, InboxRow.run_id)).all())
        assert len(rows) == 200
        assert [rows[i] for i in result.ids if i is not None] == [
            ev.run_id for n, ev in enumerate(events) if n != 70
        ]
    finally:
        h.close()


def test_an_append_the_store_refuses_is_unavailable_and_the_next_one_is_taken(
    tmp_path: Path,
) -> None:
    """The appender keeps its connection between group commits on a SQLite file; an append
    the store refuses (here a trigger stands in for a full disk) is answered unavailable, and
    the next append, once the store takes writes again, is appended on a fresh connection."""
    from jobpulse.sidecar.store.writer import StoreUnavailable

    h = Harness(f"sqlite:///{tmp_path}/s.db", CONFIG)
    try:
        appender = h.sidecar.appender
        first = Event(type="success", job="nightly", run_id="before", ts=T0)
        assert appender.submit([first]).result(10).accepted == 1
        other = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
        other.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON inbox BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
        refused = Event(type="success", job="nightly", run_id="refused", ts=T0)
        with pytest.raises(StoreUnavailable):
            appender.submit([refused]).result(10)
        assert not appender.healthy
        other.execute("DROP TRIGGER refuse")
        other.close()
        after = Event(type="success", job="nightly", run_id="after", ts=T0)
        assert appender.submit([refused, after]).result(10).accepted == 2
        assert appender.healthy
        assert pending(h) == 3
    finally:
        h.close()


def _vm_steps(h: Harness, action: Any) -> int:
    """SQLite virtual-machine steps (in units of 100) that ``action`` costs on the sidecar's
    connections: a count of the database's work, the same on every run and machine."""
    from sqlalchemy import event

    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.set_progress_handler(count, 100)

    engine = h.sidecar.store.engine
    h.sidecar.appender.release_connection()  # the one it keeps between appends, too
    engine.dispose()  # every connection from here on is a new one, counted
    event.listen(engine, "connect", on_connect)
    try:
        action()
    finally:
        event.remove(engine, "connect", on_connect)
        engine.dispose()
    return steps


def test_looking_up_a_batchs_keys_costs_the_database_per_event_not_per_job_times_run(
    tmp_path: Path,
) -> None:
    """The duplicate check before the answer and the applier's read-ahead look up each
    (job, run id) pair by itself: ten times the events over ten times the jobs cost about ten
    times the database's work (12x and 16x measured). Asked as ``job IN (...) AND run_id IN
    (...)``, which probes every combination, they cost 31x and 33x here, and 150 µs per event
    of a 400-event batch over 100 jobs."""

    def batch(tag: str, jobs: int) -> list[Event]:
        return [
            Event(type=kind, job=f"j{i % jobs}", run_id=f"{tag}-{i}", ts=T0)
            for i in range(4 * jobs)
            for kind in ("start", "success")
        ]

    h = Harness(f"sqlite:///{tmp_path}/s.db")
    try:
        history = batch("old", 200)  # applied keys the duplicate check also reads
        h.sidecar.appender.submit(history, at=T0).result(10)
        h.sidecar.apply_pending(T0)

        def cost(events: list[Event]) -> tuple[int, int]:
            appended = _vm_steps(h, lambda: h.sidecar.appender.submit(events, at=T0).result(10))
            return appended, _vm_steps(h, lambda: h.sidecar.apply_pending(T0))

        small = cost(batch("a", 20))
        large = cost(batch("b", 200))
        assert large[0] < 20 * small[0], (small, large)
        assert large[1] < 20 * small[1], (small, large)
        again = h.sidecar.appender.submit(batch("b", 200), at=T0).result(10)
        assert (again.accepted, again.duplicates) == (0, 1600)
    finally:
        h.close()


@pytest.mark.parametrize(
    ("ids", "runs"),
    [
        ([], []),
        ([7], [(7, 7)]),
        ([3, 4, 5, 6], [(3, 6)]),
        ([9, 1, 2, 3, 5, 7, 8], [(1, 3), (5, 5), (7, 9)]),
    ],
)
def test_applied_rows_are_deleted_by_runs_of_consecutive_ids(
    ids: list[int], runs: list[tuple[int, int]]
) -> None:
    # No row can lie inside a run of consecutive ids, so deleting each run by BETWEEN deletes
    # exactly the rows given (a held row between two applied ones splits the run).
    assert id_runs(ids) == runs
