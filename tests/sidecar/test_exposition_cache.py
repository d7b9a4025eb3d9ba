"""The cached /metrics text: a scrape after changes (updates, new, removed and deleted jobs)
is byte for byte what a cold render gives, and the spliced text always equals joining every
job's lines family by family, jobs in the order a dict keyed by job id would keep them."""

from __future__ import annotations

import random
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from bench.population import insert_jobs, job_rows
from jobpulse.sidecar.domain.rollup import hour_of
from jobpulse.sidecar.domain.tables import Job, Rollup
from jobpulse.sidecar.exposition import text as exposition_text
from jobpulse.sidecar.exposition.cache import FAMILIES, MetricsCache
from jobpulse.sidecar.exposition.text import ExpositionText
from tests.sidecar.harness import T0, Harness
from tests.sidecar.test_exposition_parity import AWKWARD, CONFIG

HEADERS = [f"# H{i}\n".encode() for i in range(5)]
STATES = ("new", "up", "down")


def _joined(model: dict[int, tuple[str, list[bytes]]]) -> bytes:
    out = []
    for f, header in enumerate(HEADERS):
        out.append(header)
        out.extend(chunks[f] for _, chunks in model.values())
    return b"".join(out)


def _counts(model: dict[int, tuple[str, list[bytes]]]) -> dict[str, int]:
    counts = dict.fromkeys(STATES, 0)
    for state, _ in model.values():
        counts[state] = counts.get(state, 0) + 1
    return counts


def _lines(rnd: random.Random, job_id: int) -> list[bytes]:
    return [
        b"".join(
            f"m{f}{{id={job_id}}} {rnd.random()}\n".encode() for _ in range(rnd.choice((0, 1, 3)))
        )
        for f in range(len(HEADERS))
    ]


@pytest.mark.parametrize("page", [2, 5, exposition_text.PAGE])
@pytest.mark.parametrize("seed", range(4))
def test_spliced_text_equals_a_join(monkeypatch: pytest.MonkeyPatch, page: int, seed: int) -> None:
    monkeypatch.setattr(exposition_text, "PAGE", page)
    rnd = random.Random(seed)
    text = ExpositionText(HEADERS)
    assert text.body == b"".join(HEADERS)
    model: dict[int, tuple[str, list[bytes]]] = {}
    next_id = 1
    for step in range(60):
        if step % 25 == 0:  # a full build, in a shuffled order
            ids = list(model) + list(range(next_id, next_id + rnd.randint(0, 300)))
            next_id += 300
            rnd.shuffle(ids)
            model = {i: (rnd.choice((*STATES, "odd")), _lines(rnd, i)) for i in ids}
            text.build((i, state, chunks) for i, (state, chunks) in model.items())
        else:
            changed = []
            for _ in range(rnd.choice((0, 1, 5, 40))):
                if model and rnd.random() < 0.7:
                    job_id = rnd.choice(list(model))
                else:
                    job_id = next_id
                    next_id += 1
                changed.append((job_id, rnd.choice((*STATES, "odd")), _lines(rnd, job_id)))
            gone = rnd.sample(list(model), min(len(model), rnd.choice((0, 0, 1, 7))))
            gone.append(10**9)  # unknown ids are ignored
            for job_id, state, chunks in changed:
                model[job_id] = (state, chunks)
            for job_id in gone:
                model.pop(job_id, None)
            before = text.body
            text.update(changed, gone)
            if not changed and gone == [10**9]:
                assert text.body is before  # nothing to do: the same object, no copy
        assert text.body == _joined(model), step
        assert text.state_counts(STATES) == _counts(model)
        assert sorted(text.ids()) == sorted(model)


def _families(text: bytes) -> list[tuple[bytes, list[bytes]]]:
    out: list[tuple[bytes, list[bytes]]] = []
    for line in text.splitlines():
        if line.startswith(b"# HELP"):
            out.append((line, []))
        elif not line.startswith(b"#"):
            out[-1][1].append(line)
    return [(header, sorted(lines)) for header, lines in out]


def _check(h: Harness, cache: MetricsCache) -> None:
    cache.refresh()
    cold = MetricsCache(h.sidecar)
    cold.refresh()
    if h.sidecar.store.is_sqlite:
        assert cache.render() == cold.render()
    else:
        # PostgreSQL returns updated rows in a new order: a cold render lists jobs in that
        # order, a steady one keeps each job where it was.
        assert _families(cache.render()) == _families(cold.render())
    assert cache.states() == cold.states()


def test_steady_scrapes_equal_a_cold_render(store_url: str) -> None:
    h = Harness(store_url, CONFIG, start=T0, job_cap=1000)
    try:
        engine = h.sidecar.store.engine
        insert_jobs(engine, job_rows(200, T0, prefix="hist", labels=AWKWARD), T0)
        insert_jobs(engine, job_rows(100, T0, prefix="bare", history=False), T0, rollups=False)
        cache = h.sidecar.cache
        _check(h, cache)
        h.move(T0 + 3 * 3600 + 30)  # a new hour: missed slots, states, rollups
        _check(h, cache)
        rnd = random.Random(7)
        for step in range(12):
            h.clock.set(h.clock.now() + 20)
            now = h.clock.now()
            with engine.begin() as conn:
                ids = list(conn.scalars(select(Job.id).where(Job.removed.is_(False))))
                bump = rnd.sample(ids, 5)
                conn.execute(
                    update(Job)
                    .where(Job.id.in_(bump))
                    .values(runs_success=Job.runs_success + 1, running=step % 3, changed_at=now)
                )
                if step % 3 == 1:  # removed through the flag, and deleted outright
                    conn.execute(
                        update(Job)
                        .where(Job.id == rnd.choice(ids))
                        .values(removed=True, changed_at=now)
                    )
                    conn.execute(delete(Job).where(Job.id == rnd.choice(ids)))
            if step % 4 == 2:  # new jobs, with rollups
                rows = job_rows(3, now, prefix=f"new{step}", labels={"step": str(step)})
                for row in rows:
                    row["changed_at"] = now
                insert_jobs(engine, rows, now, rollups=False)
                with engine.begin() as conn:
                    new_ids = conn.scalars(
                        select(Job.id).where(Job.name.in_([r["name"] for r in rows]))
                    )
                    conn.execute(
                        insert(Rollup),
                        [
                            {"job_id": i, "hour": hour_of(now), "success": 3, "missed": 1, "due": 4}
                            for i in new_ids
                        ],
                    )
            if step % 5 == 3:
                h.run("every-five", now, 2.5, "failure")
            _check(h, cache)
    finally:
        h.close()


def test_a_scrape_with_nothing_changed_returns_the_cached_text(tmp_path: Any) -> None:
    h = Harness(f"sqlite:///{tmp_path}/same.db", CONFIG, start=T0)
    try:
        insert_jobs(h.sidecar.store.engine, job_rows(50, T0), T0)
        cache = h.sidecar.cache
        cache.refresh()
        body = cache.render()
        h.clock.set(T0 + 20)
        cache.refresh()
        assert cache.render() is body
    finally:
        h.close()


def test_a_job_back_from_removal_goes_last(tmp_path: Any) -> None:
    """As with the dict the cache used to keep: a job removed and then restored between full
    refreshes is placed after the others in every family."""
    h = Harness(f"sqlite:///{tmp_path}/back.db", "", start=T0)
    try:
        engine = h.sidecar.store.engine
        insert_jobs(engine, job_rows(5, T0), T0)
        cache = h.sidecar.cache
        cache.refresh()
        for removed, at in ((True, T0 + 20), (False, T0 + 40)):
            h.clock.set(at)
            with engine.begin() as conn:
                conn.execute(
                    update(Job)
                    .where(Job.name == "idle-000001")
                    .values(removed=removed, changed_at=at)
                )
            cache.refresh()
        text = cache.render().decode()
        assert text.count('job_name="idle-000001"') > 0
        for name, _, _ in FAMILIES:
            block = text.split(f"# TYPE {name}", 1)[1].split("# HELP", 1)[0]
            names = [
                line.split('job_name="', 1)[1].split('"', 1)[0] for line in block.splitlines()[1:]
            ]
            if names:
                assert names[-1] == "idle-000001", name
                assert "idle-000004" in names
    finally:
        h.close()


def test_number_formatting_is_prometheus_clients() -> None:
    from prometheus_client.utils import floatToGoString

    from jobpulse.sidecar.exposition.cache import _fmt, _le_labels

    values: list[float] = [0, 1, -1, 7, 999_999, 1_000_000, 123_456_789, 2**53 + 1, 10**20]
    values += [0.0, -0.0, 0.5, 1e-7, 1234567.0, 1e22, float("inf"), float("-inf"), float("nan")]
    for value in values * 2:  # the second time from the cache
        assert _fmt(value) == floatToGoString(value), value  # type: ignore[no-untyped-call]
    for buckets in ((0.0, 1), (-0.0, 1), (1, 2.5), (1.0, 2.5)):
        expected = [f',le="{floatToGoString(b)}"}} ' for b in (*buckets, float("inf"))]  # type: ignore[no-untyped-call]
        assert list(_le_labels(buckets)) == expected
