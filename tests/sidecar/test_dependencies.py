"""Dependencies (docs/concepts.md "Dependencies"): a job with ``after:`` and no schedule of its
own is due when its upstreams succeed for a tick and carries that tick; it is skipped (reason
``upstream``, naming the job that did not succeed) when one fails or misses it, without a bad
outcome of its own; a later success of the upstream makes it due again. Table-driven over a
manual clock, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select

from jobpulse.instrumentation.errors import ConfigError, InvalidEvent, InvalidJobConfig
from jobpulse.instrumentation.spec import parse_job_fields
from jobpulse.instrumentation.wire import format_ts, parse_event, parse_ts
from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.domain.tables import Job, Slot
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.http.keys import SIDECAR
from jobpulse.sidecar.settings import Settings
from tests.sidecar.harness import T0, Harness

HOUR = 3600.0
GRACE = 360.0  # the default grace of an hourly job: 10% of the period
CHAIN = """
jobs:
  - name: extract
    schedule: "0 * * * *"
  - name: audit
    schedule: "0 * * * *"
  - name: load
    after: [extract]
  - name: report
    after: load
  - name: publish
    after: [load, audit]
  - name: archive
    schedule: "30 * * * *"
    grace: 2m
    after: [extract]
"""

Step = Callable[[Harness], object]


def run(job: str, start: float, duration: float = 30.0, outcome: str = "success") -> Step:
    return lambda h: h.run(job, T0 + start, duration, outcome)


def start(job: str, at: float) -> Step:
    return lambda h: h.send("start", job, ts=T0 + at, run_id=f"{job}-{at}")


def finish(job: str, started: float, at: float, outcome: str = "success") -> Step:
    return lambda h: h.send(outcome, job, ts=T0 + at, run_id=f"{job}-{started}")


def move(to: float) -> Step:
    return lambda h: h.move(T0 + to)


@dataclass(frozen=True)
class Case:
    name: str
    steps: list[Step]
    # job -> [(tick offset from T0, status, upstream named by a skip)]
    slots: dict[str, list[tuple[float, str, str | None]]]
    # job -> (state, reason)
    states: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    # job -> slots counted skipped (jobpulse_job_skipped_runs_total), where a skip was later
    # replaced (default: the rows left skipped)
    skips: dict[str, int] = field(default_factory=dict)


CASES = [
    Case(
        "upstream-success-makes-it-due-then-a-start-fills-it",
        [run("extract", 5), run("load", 100), move(HOUR - 1)],
        {"load": [(0, "filled", None)]},
        {"load": ("up", None)},
    ),
    Case(
        "due-at-the-upstream-success-missed-after-grace",
        [run("extract", 5, 60), move(65 + GRACE + 1)],
        {"load": [(0, "missed", None)], "report": [(0, "skipped", "load")]},
        {"load": ("down", "missed"), "report": ("new", None)},
    ),
    Case(
        "a-start-at-the-end-of-grace-is-in-time",
        [run("extract", 5, 60), run("load", 65 + GRACE), move(HOUR - 1)],
        {"load": [(0, "filled", None)]},
        {"load": ("up", None)},
    ),
    Case(
        "upstream-failure-skips-without-a-bad-outcome",
        [run("extract", 5, 60, "failure"), move(HOUR - 1)],
        {"load": [(0, "skipped", "extract")], "report": [(0, "skipped", "extract")]},
        {"load": ("new", None), "report": ("new", None), "extract": ("down", "failed")},
    ),
    Case(
        "upstream-missed-skips",
        [move(GRACE + 1)],
        {"extract": [(0, "missed", None)], "load": [(0, "skipped", "extract")]},
        {"load": ("new", None), "extract": ("down", "missed")},
    ),
    Case(
        "upstream-timeout-skips",
        [start("extract", 5), move(HOUR)],
        {"load": [(0, "skipped", "extract")]},
        {"load": ("new", None), "extract": ("down", "timed_out")},
    ),
    Case(
        "late-upstream-success-replaces-the-skip",
        [move(GRACE + 1), run("extract", 600, 60), run("load", 700), move(HOUR - 1)],
        {"extract": [(0, "missed", None)], "load": [(0, "filled", None)]},
        {"load": ("up", None)},
        skips={"load": 1},
    ),
    Case(
        "late-upstream-success-then-no-start-is-missed",
        [move(GRACE + 1), run("extract", 600, 60), move(660 + GRACE + 1)],
        {"load": [(0, "missed", None)]},
        {"load": ("down", "missed")},
        skips={"load": 1},
    ),
    Case(
        "re-run-after-a-failure-makes-it-due",
        [run("extract", 5, 10, "failure"), run("extract", 1200, 60), run("load", 1300)],
        {"load": [(0, "filled", None)]},
        {"load": ("up", None), "extract": ("up", None)},
        skips={"load": 1},
    ),
    Case(
        "a-start-applied-before-the-upstream-success-fills-the-tick",
        [start("load", 70), start("extract", 5), finish("extract", 5, 65), move(HOUR - 1)],
        {"load": [(0, "filled", None)]},
    ),
    Case(
        "a-run-finished-before-the-upstream-success-arrived-passes-it-on",
        [
            start("load", 70),
            finish("load", 70, 90),
            start("extract", 5),
            finish("extract", 5, 65),
            run("report", 200),
            move(HOUR - 1),
        ],
        {"load": [(0, "filled", None)], "report": [(0, "filled", None)]},
        {"load": ("up", None), "report": ("up", None)},
    ),
    Case(
        "chain-of-three-shares-the-root-tick",
        [run("extract", 5, 60), run("load", 100, 60), run("report", 200), move(HOUR - 1)],
        {
            "load": [(0, "filled", None)],
            "report": [(0, "filled", None)],
        },
        {"report": ("up", None)},
    ),
    Case(
        "chain-of-three-next-tick",
        [
            run("extract", 5, 60),
            run("load", 100, 60),
            run("report", 200),
            run("extract", HOUR + 5, 60, "failure"),
            move(2 * HOUR - 1),
        ],
        {
            "load": [(0, "filled", None), (HOUR, "skipped", "extract")],
            "report": [(0, "filled", None), (HOUR, "skipped", "extract")],
        },
        {"load": ("up", None), "report": ("up", None)},
    ),
    Case(
        "multiple-upstreams-due-when-all-succeeded",
        [
            run("extract", 5, 60),
            run("load", 100, 60),
            move(1000),  # publish waits for audit: not due, nothing judged
            run("audit", 200, 600),  # succeeds at 800: within a grace of the start at 810
            run("publish", 810),
            move(HOUR - 1),
        ],
        {"publish": [(0, "filled", None)]},
        {"publish": ("up", None)},
        skips={"publish": 1},
    ),
    Case(
        "multiple-upstreams-skipped-naming-the-first-that-failed",
        [
            run("audit", 5, 60, "failure"),
            run("extract", 10, 60, "failure"),
            move(HOUR - 1),
        ],
        {"publish": [(0, "skipped", "audit")]},
        {"publish": ("new", None)},
    ),
    Case(
        "multiple-upstreams-one-succeeds-one-misses",
        [run("extract", 5, 60), run("load", 100, 60), move(HOUR - 1)],
        {"publish": [(0, "skipped", "audit")]},
        {"publish": ("new", None), "audit": ("down", "missed")},
    ),
    Case(
        "own-schedule-skipped-when-the-upstream-failed",
        [run("extract", 5, 60, "failure"), move(HOUR - 1)],
        {"archive": [(30 * 60, "skipped", "extract")]},
        {"archive": ("new", None)},
    ),
    Case(
        "own-schedule-missed-when-the-upstream-succeeded",
        [run("extract", 5, 60), move(HOUR - 1)],
        {"archive": [(30 * 60, "missed", None)]},
        {"archive": ("down", "missed")},
    ),
    Case(
        "own-schedule-missed-when-a-re-run-succeeded",
        [run("extract", 5, 60, "failure"), run("extract", 600, 60), move(HOUR - 1)],
        {"archive": [(30 * 60, "missed", None)]},
        {"archive": ("down", "missed")},
    ),
    Case(
        "own-schedule-skipped-when-the-last-attempt-failed",
        [
            lambda h: h.send("start", "extract", ts=T0 + 5, run_id="a1"),
            lambda h: h.send("failure", "extract", ts=T0 + 9, run_id="a1", will_retry=True),
            lambda h: h.send("start", "extract", ts=T0 + 70, run_id="a2", attempt=2),
            lambda h: h.send("failure", "extract", ts=T0 + 80, run_id="a2"),
            move(HOUR - 1),
        ],
        {"archive": [(30 * 60, "skipped", "extract")]},
        {"archive": ("new", None)},
    ),
    Case(
        "own-schedule-skipped-when-the-upstream-missed",
        [move(HOUR - 1)],
        {"archive": [(30 * 60, "skipped", "extract")]},
        {"archive": ("new", None)},
    ),
    Case(
        "own-schedule-due-at-its-own-slot",
        [run("extract", 5, 60), run("archive", 30 * 60 + 10), move(HOUR - 1)],
        {"archive": [(30 * 60, "filled", None)]},
        {"archive": ("up", None)},
    ),
]


@pytest.fixture
def harness(store_url: str) -> Iterator[Callable[[str], Harness]]:
    made: list[Harness] = []

    def make(config: str = CHAIN) -> Harness:
        h = Harness(store_url, config, start=T0 - 60)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def slot_rows(h: Harness, name: str) -> list[tuple[float, str, str | None]]:
    with h.sidecar.store.session() as s:
        jid = s.scalar(select(Job.id).where(Job.name == name))
        rows = s.scalars(select(Slot).where(Slot.job_id == jid).order_by(Slot.slot))
        return [(r.slot - T0, r.status, r.upstream) for r in rows]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_dependencies(harness: Callable[[str], Harness], case: Case) -> None:
    h = harness(CHAIN)
    for step in case.steps:
        step(h)
    for name, expected in case.slots.items():
        assert slot_rows(h, name) == expected, name
    for name, state in case.states.items():
        job = h.job(name)
        assert (job.state, job.reason) == state, name
    for name, rows in case.slots.items():
        job = h.job(name)
        assert job.missed_total == sum(1 for _, status, _ in rows if status == "missed"), name
        skips = case.skips.get(name, sum(1 for _, status, _ in rows if status == "skipped"))
        assert (job.skipped_upstream, job.skipped_maintenance) == (skips, 0), name
        if all(status == "skipped" for _, status, _ in rows):
            # A skip is neither a miss nor a bad outcome: the job does not flip down.
            assert job.bad_streak == 0, name
            assert all(to != "down" for _, to, _ in h.flips(name)), name


def test_a_due_dependent_is_late_then_up_and_wakes_at_its_deadline(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(CHAIN)
    h.run("extract", T0 + 5, 30)
    h.run("load", T0 + 40, 10)
    h.run("extract", T0 + HOUR + 5, 30)  # load's next tick is due at HOUR + 35
    load = h.job("load")
    assert load.state == "late"
    assert load.next_deadline == pytest.approx(T0 + HOUR + 35 + GRACE, abs=0.01)
    assert load.ticks is not None and load.ticks[0]["tick"] == T0 + HOUR
    h.send("start", "load", ts=T0 + HOUR + 40)
    assert h.job("load").state == "up"
    assert h.job("load").ticks is None


def test_the_rollups_count_a_skip_neither_due_nor_missed(
    harness: Callable[[str], Harness],
) -> None:
    h = harness(CHAIN)
    h.run("extract", T0 + 5, 60, "failure")
    h.move(T0 + HOUR - 1)
    stats = h.sidecar.cache  # the figures /metrics and the API read
    with h.sidecar.store.session() as s:
        jid = s.scalar(select(Job.id).where(Job.name == "load"))
        ratios = stats.ratios(s, [jid], T0 + HOUR - 1)
    assert ratios.get(jid, {}).get("24h", (None, None))[1] is None  # no due slot: no miss ratio


def test_a_paused_dependent_hears_nothing(harness: Callable[[str], Harness]) -> None:
    h = harness(CHAIN)
    h.sidecar.writer.run_sync(lambda tx: h.sidecar.engine.pause(tx, tx.job("load"), h.clock.now()))
    h.run("extract", T0 + 5, 60, "failure")
    h.run("extract", T0 + HOUR + 5, 60)
    h.move(T0 + 2 * HOUR - 1)
    assert slot_rows(h, "load") == []
    assert h.job("load").ticks is None


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ("jobs:\n  - {name: a, after: [b]}\n  - {name: b, after: [a]}\n", "a → b → a"),
        (
            "jobs:\n  - {name: a, after: [c]}\n  - {name: b, after: [a]}\n"
            "  - {name: c, after: [b]}\n  - {name: d, after: [a]}\n",
            "a → c → b → a",
        ),
    ],
)
def test_a_cycle_is_a_config_error_naming_it(config: str, named: str) -> None:
    with pytest.raises(ConfigError, match=f"after: {named};"):
        parse_config(config)


@pytest.mark.parametrize(
    ("config", "accepted"),
    [
        # Two roots on different schedules never share a tick.
        ('  - {name: a, schedule: "0 * * * *"}\n  - {name: b, schedule: "30 * * * *"}\n', False),
        # every: is anchored on each job's own runs.
        ("  - {name: a, every: 1h}\n  - {name: b, every: 1h}\n", False),
        # The same schedule shares its ticks.
        ('  - {name: a, schedule: "0 * * * *"}\n  - {name: b, schedule: "0 * * * *"}\n', True),
        # A diamond: both carry the root's tick.
        ("  - {name: r, every: 1h}\n  - {name: a, after: r}\n  - {name: b, after: r}\n", True),
        # An upstream not in the file: nothing can be said yet.
        ('  - {name: a, schedule: "0 * * * *"}\n', True),
    ],
)
def test_several_upstreams_must_share_a_tick(config: str, accepted: bool) -> None:
    text = f"jobs:\n{config}  - {{name: c, after: [a, b]}}\n"
    if accepted:
        assert parse_config(text).jobs["c"]["after"] == ["a", "b"]
        return
    with pytest.raises(ConfigError, match="job 'c' runs after a, b, which share no schedule tick"):
        parse_config(text)
    # With a schedule of its own it is due at its slots: accepted.
    assert parse_config(text.replace("after: [a, b]", 'after: [a, b], schedule: "5 * * * *"'))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["nightly"], "after names the job itself, a cycle \\(nightly → nightly\\)"),
        (["a", "A"], "after names 'a' twice"),
        (["Bad Name"], "job name 'Bad Name' is invalid"),
        (3, "after 3 must be a job name or a list of job names"),
    ],
)
def test_bad_after_values_are_refused_naming_the_value(value: object, message: str) -> None:
    with pytest.raises(InvalidJobConfig, match=message) as info:
        parse_job_fields("nightly", {"after": value})
    assert info.value.field == "after"


def test_after_takes_one_name_or_a_list() -> None:
    assert parse_job_fields("load", {"after": "Extract"}) == {"after": ["extract"]}
    assert parse_job_fields("load", {"after": ["a", "b"]}) == {"after": ["a", "b"]}
    assert parse_job_fields("load", {"after": None}) == {"after": []}


def test_a_clients_job_config_cannot_declare_dependencies() -> None:
    raw = {
        "type": "start",
        "job": "load",
        "run_id": uuid.uuid4().hex,
        "ts": format_ts(T0),
        "job_config": {"after": ["extract"]},
    }
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw)
    assert info.value.field == "job_config.after"
    assert "jobpulse.yaml" in info.value.reason


def test_an_unknown_upstream_is_accepted_and_due_once_it_reports(
    harness: Callable[[str], Harness], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="jobpulse.sidecar"):
        h = harness("jobs:\n  - {name: load, after: [extract]}\n")
    assert "after names 'extract', which is not a known job" in caplog.text
    h.run("extract", T0 + 5, 60)  # registers extract (unscheduled: its run is its own tick)
    h.move(T0 + 65 + 3600 + 1)  # the default grace after an unscheduled root: 1 h
    assert slot_rows(h, "load") == [(5.0, "missed", None)]


def test_reload_refuses_a_cycle_through_a_job_set_by_the_api(
    harness: Callable[[str], Harness],
) -> None:
    h = harness("jobs:\n  - {name: a}\n")
    h.sidecar.writer.run_sync(
        lambda tx: h.sidecar.engine.create_job(
            tx, "b", h.clock.now(), declared=parse_job_fields("b", {"after": ["a"]})
        )
    )
    with pytest.raises(ConfigError, match="after: a → b → a;"):
        h.sidecar.apply_config(parse_config("jobs:\n  - {name: a, after: [b]}\n"))
    assert h.sidecar.engine.config(h.job("a")).after == ()  # nothing applied


# ---------------------------------------------------------------- HTTP and replay

HTTP_CONFIG = """
jobs:
  - name: extract
    schedule: "0 * * * *"
  - name: load
    after: [extract]
"""


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> Any:
    path = tmp_path / "jobpulse.yaml"
    path.write_text(HTTP_CONFIG)
    settings = Settings(store=f"sqlite:///{tmp_path}/s.db", catchup_delay=0, config=str(path))
    return await aiohttp_client(
        create_app(settings, clock=ManualClock(T0 - 60), run_evaluator=False)
    )


def _ev(kind: str, job: str, rid: str, ts: float) -> dict[str, Any]:
    return {"type": kind, "job": job, "run_id": rid, "ts": format_ts(ts)}


async def test_the_api_and_the_job_page_show_the_chain_and_the_skip(client: Any) -> None:
    sidecar = client.app[SIDECAR]
    resp = await client.post(
        "/api/v1/events?wait=applied",
        json=[_ev("start", "extract", "e1", T0 + 5), _ev("failure", "extract", "e1", T0 + 9)],
    )
    assert resp.status == 200
    sidecar.clock.set(T0 + HOUR - 1)
    sidecar.tick_sync()

    load = await (await client.get("/api/v1/jobs/load")).json()
    assert (load["after"], load["downstream"], load["state"]) == (["extract"], [], "new")
    extract = await (await client.get("/api/v1/jobs/extract")).json()
    assert (extract["after"], extract["downstream"]) == ([], ["load"])
    listed = await (await client.get("/api/v1/jobs")).json()
    assert {j["name"]: j["downstream"] for j in listed["jobs"]} == {
        "extract": ["load"],
        "load": [],
    }
    # A skip is not a miss.
    missed = await (await client.get("/api/v1/jobs/load/missed")).json()
    assert missed == {"missed": [], "count": 0}

    page = await (await client.get("/jobs/load")).text()
    assert '<tr data-chain="extract"><td>runs after</td><td><a href="/jobs/extract">' in page
    assert "down" in page.split('data-chain="extract"')[1].split("</tr>")[0]  # its state
    assert 'upstream: <a href="/jobs/extract">extract</a> did not succeed' in page
    page = await (await client.get("/jobs/extract")).text()
    assert '<tr data-chain="load"><td>runs before</td>' in page


async def test_put_refuses_a_cycle_with_422_naming_it(client: Any) -> None:
    resp = await client.put("/api/v1/jobs/stage", json={"after": ["load"]})
    assert resp.status == 201
    assert (await resp.json())["after"] == ["load"]
    resp = await client.put("/api/v1/jobs/extract-copy", json={"after": ["stage"]})
    assert resp.status == 201
    # stage -> load -> extract is fine; making extract-copy's upstream chain loop is not.
    resp = await client.put("/api/v1/jobs/stage", json={"after": ["extract-copy"]})
    assert resp.status == 422
    body = await resp.json()
    assert "after: stage → extract-copy → stage" in body["detail"]
    assert (await (await client.get("/api/v1/jobs/stage")).json())["after"] == ["load"]
    resp = await client.put("/api/v1/jobs/stage", json={"after": "stage"})
    assert resp.status == 422
    assert "cycle (stage → stage)" in (await resp.json())["detail"]
    # Several upstreams must share a tick: extract's hourly slots and solo's own runs do not.
    assert (await client.put("/api/v1/jobs/solo", json={"every": "1h"})).status == 201
    resp = await client.put("/api/v1/jobs/fan-in", json={"after": ["load", "solo"]})
    assert resp.status == 422
    assert "runs after load, solo, which share no schedule tick" in (await resp.json())["detail"]
    resp = await client.put("/api/v1/jobs/fan-in", json={"after": ["load", "stage"]})
    assert resp.status == 201  # both carry extract's tick


REPLAY_CONFIG = """
sidecar: {catchup_delay: 0}
jobs:
  - name: extract
    schedule: "0 * * * *"
  - name: load
    after: [extract]
  - name: report
    after: [load]
"""


def test_replay_judges_a_chain_as_the_live_sidecar_does(tmp_path: Path) -> None:
    def ev(kind: str, job: str, rid: str, at: float) -> dict[str, Any]:
        return {**_ev(kind, job, rid, T0 + at), "received_at": format_ts(T0 + at)}

    events = [
        # 10:00: the chain runs through.
        ev("start", "extract", "e1", 5),
        ev("success", "extract", "e1", 60),
        ev("start", "load", "l1", 70),
        ev("success", "load", "l1", 90),
        ev("start", "report", "r1", 95),
        ev("success", "report", "r1", 99),
        # 11:00: extract fails; load and report are skipped.
        ev("start", "extract", "e2", HOUR + 5),
        ev("failure", "extract", "e2", HOUR + 60),
        # 12:00: extract succeeds, load runs, report never starts.
        ev("start", "extract", "e3", 2 * HOUR + 5),
        ev("success", "extract", "e3", 2 * HOUR + 60),
        ev("start", "load", "l3", 2 * HOUR + 70),
        ev("success", "load", "l3", 2 * HOUR + 90),
    ]
    cfg = tmp_path / "jobpulse.yaml"
    cfg.write_text(REPLAY_CONFIG)
    path = tmp_path / "events.ndjson"
    path.write_text("\n".join(json.dumps(e) for e in events) + "\n")
    until = T0 + 3 * HOUR - 1
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "jobpulse"),
            "replay",
            "--config",
            str(cfg),
            "--events",
            str(path),
            "--since",
            format_ts(T0 - 60),
            "--until",
            format_ts(until),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    jobs = json.loads(proc.stdout)["jobs"]

    def statuses(name: str) -> list[tuple[str, str, str | None]]:
        return [(s["slot"], s["status"], s.get("upstream")) for s in jobs[name]["slots"]]

    ticks = [format_ts(T0 + n * HOUR) for n in range(3)]
    assert statuses("load") == [
        (ticks[0], "filled", None),
        (ticks[1], "skipped", "extract"),
        (ticks[2], "filled", None),
    ]
    assert statuses("report") == [
        (ticks[0], "filled", None),
        (ticks[1], "skipped", "extract"),
        (ticks[2], "missed", None),
    ]
    assert jobs["report"]["state"] == {"state": "down", "reason": "missed"}
    assert jobs["load"]["state"] == {"state": "up", "reason": None}

    # The live engine, fed the same events at the same arrivals, records the same slots.
    h = Harness(f"sqlite:///{tmp_path}/live.db", REPLAY_CONFIG, start=T0 - 60)
    try:
        for e in events:
            h.send(e["type"], e["job"], ts=parse_ts(e["ts"]), run_id=e["run_id"])
        h.move(until)
        for name in ("extract", "load", "report"):
            live = [(format_ts(T0 + at), status, up) for at, status, up in slot_rows(h, name)]
            assert live == statuses(name), name
    finally:
        h.close()


@pytest.mark.parametrize("jobs", [3, 40])
def test_a_batch_finds_the_dependents_of_all_its_jobs_in_one_statement(
    tmp_path: Path, jobs: int
) -> None:
    """Read-ahead: a batch of finishes reads who runs after its jobs in one statement, however
    many jobs it finishes runs of (most have no dependent), and loads those jobs together."""
    config = "jobs:\n" + "".join(
        f'  - {{name: up-{i}, schedule: "0 * * * *"}}\n  - {{name: down-{i}, after: up-{i}}}\n'
        for i in range(jobs)
    )
    h = Harness(f"sqlite:///{tmp_path}/cost.db", config, start=T0 - 60)
    try:

        def finish(job: str) -> Any:
            raw = {"type": "success", "job": job, "run_id": uuid.uuid4().hex}
            return parse_event({**raw, "ts": format_ts(T0 + 30), "duration": 20.0})[0]

        statements: list[str] = []

        def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        h.clock.set(T0 + 30)
        event.listen(h.sidecar.store.engine, "before_cursor_execute", note)
        try:
            h.ping([finish(f"up-{i}") for i in range(jobs)])
        finally:
            event.remove(h.sidecar.store.engine, "before_cursor_execute", note)
        index = [s for s in statements if "FROM job_upstreams" in s]
        assert len(index) == 1, index
        loads = [s for s in statements if "FROM jobs" in s and "jobs.name IN" in s]
        assert len(loads) == 2, loads  # the batch's jobs, then their dependents
        assert all(h.job(f"down-{i}").ticks for i in range(jobs))  # each one is due
    finally:
        h.close()


def test_check_config_names_a_cycle_and_warns_of_an_unknown_upstream(tmp_path: Path) -> None:
    jobpulse = str(Path(sys.executable).parent / "jobpulse")
    cycle = tmp_path / "cycle.yaml"
    cycle.write_text("jobs:\n  - {name: a, after: [b]}\n  - {name: b, after: a}\n")
    proc = subprocess.run(
        [jobpulse, "check-config", str(cycle)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 78  # EX_CONFIG
    assert "jobs depend on each other in a cycle, after: a → b → a" in proc.stderr
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("jobs:\n  - {name: load, after: [extract]}\n")
    proc = subprocess.run(
        [jobpulse, "check-config", str(unknown)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0
    assert "warning: job 'load': after names 'extract', which is not a known job" in proc.stderr


WINDOWED = (
    CHAIN
    + """
maintenance:
  - name: extract-upgrade
    jobs: [extract]
    start: "{start}"
    duration: 30m
  - name: load-upgrade
    jobs: [load]
    start: "{later}"
    duration: 30m
"""
)


def test_maintenance_windows_and_dependencies_page_nobody(
    harness: Callable[[str], Harness],
) -> None:
    # extract misses its tick inside its window: skipped for maintenance, and load (after it)
    # is skipped naming it; an hour later extract succeeds but load, in its own window, does
    # not start within grace: skipped for maintenance, not missed. Nobody goes down.
    h = harness(WINDOWED.format(start=format_ts(T0 - 60), later=format_ts(T0 + HOUR - 60)))
    h.move(T0 + GRACE + 1)
    h.run("extract", T0 + HOUR + 5, 60)
    h.move(T0 + HOUR + 65 + GRACE + 1)
    assert slot_rows(h, "extract") == [(0, "skipped", None), (HOUR, "filled", None)]
    assert slot_rows(h, "load") == [(0, "skipped", "extract"), (HOUR, "skipped", None)]
    assert slot_rows(h, "report") == [(0, "skipped", "extract"), (HOUR, "skipped", "load")]
    for name in ("extract", "load", "report"):
        job = h.job(name)
        assert job.missed_total == 0, name
        assert all(to != "down" for _, to, _ in h.flips(name)), name
    names = ("extract", "load", "report")
    counted = {n: (h.job(n).skipped_maintenance, h.job(n).skipped_upstream) for n in names}
    assert counted == {"extract": (1, 0), "load": (1, 1), "report": (0, 2)}


def test_a_skip_made_due_then_held_by_a_window_counts_both_decisions(
    harness: Callable[[str], Harness],
) -> None:
    # extract misses its tick: load is skipped naming it. extract then succeeds late, so the
    # tick is due for load again; load does not start, and its deadline passes inside load's
    # own window: the slot is skipped for maintenance instead. Both skips were decided, so
    # both are counted (by reason), and nothing is missed.
    h = harness(WINDOWED.format(start=format_ts(T0 + 10 * HOUR), later=format_ts(T0 + 600)))
    h.move(T0 + GRACE + 1)
    assert slot_rows(h, "load") == [(0, "skipped", "extract")]
    h.run("extract", T0 + 600, 60)
    h.move(T0 + 660 + GRACE + 1)
    assert slot_rows(h, "load") == [(0, "skipped", None)]
    with h.sidecar.store.session() as s:
        jid = s.scalar(select(Job.id).where(Job.name == "load"))
        assert s.scalar(select(Slot.reason).where(Slot.job_id == jid)) == "maintenance"
    load = h.job("load")
    assert (load.skipped_maintenance, load.skipped_upstream, load.missed_total) == (1, 1, 0)
