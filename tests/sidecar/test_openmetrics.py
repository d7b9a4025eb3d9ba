"""/metrics in OpenMetrics: content negotiation, exemplars linking the latest runs to their
traces, and the same samples as the text format (prometheus_client's OpenMetrics parser)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from jobpulse.sidecar.exposition.cache import MetricsCache
from jobpulse.sidecar.exposition.exemplars import MAX_LABEL_CHARS, exemplar
from jobpulse.sidecar.exposition.negotiate import Format, choose
from tests.sidecar.harness import T0, Harness

CONFIG = """
jobs:
  - name: traced
    every: 5m
    buckets: [1, 5, 30, 60]
  - name: plain
    every: 5m
  - name: hung
    every: 5m
    max_runtime: 1m
"""
PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;"
    "version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,"
    "text/plain;version=0.0.4;q=0.2,*/*;q=0.1"
)


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, Format.TEXT),
        ("", Format.TEXT),
        ("*/*", Format.TEXT),
        ("text/plain", Format.TEXT),
        ("application/json", Format.TEXT),
        (PROMETHEUS_2, Format.OPENMETRICS),
        (PROMETHEUS_3, Format.OPENMETRICS),
        ("application/openmetrics-text", Format.OPENMETRICS),
        # the client's preference, not the order or the mere mention
        ("application/openmetrics-text;q=0.3,text/plain;q=0.9", Format.TEXT),
        ("text/plain;q=0.2, application/openmetrics-text; version=1.0.0", Format.OPENMETRICS),
        ("application/openmetrics-text;q=0", Format.TEXT),
        ("application/openmetrics-text;version=2.0.0,text/plain;q=0.1", Format.TEXT),
        # the most specific range sets the weight
        ("application/*;q=0.9,application/openmetrics-text;q=0.1,text/plain;q=0.5", Format.TEXT),
        ("application/*;q=0.9,text/plain;q=0.5", Format.OPENMETRICS),
        # equal weights: the first listed
        ("text/plain, application/openmetrics-text", Format.TEXT),
        ("application/openmetrics-text, text/plain", Format.OPENMETRICS),
        ("application/openmetrics-text;q=abc, text/plain;q=0.1", Format.TEXT),
    ],
)
def test_negotiation_follows_the_weights(accept: str | None, expected: Format) -> None:
    assert choose(accept) is expected


def test_the_exemplar_label_set_stays_within_128_characters() -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    full = exemplar(trace, "r" * 64, 2.5, T0)
    assert full == f' # {{trace_id="{trace}",run_id="{"r" * 64}"}} 2.5 {float(T0)!r}'
    longest = MAX_LABEL_CHARS - len("trace_id") - len(trace) - len("run_id")
    assert exemplar(trace, "é" * longest, 1, T0) is not None
    assert "run_id" in (exemplar(trace, "é" * longest, 1, T0) or "")
    dropped = exemplar(trace, "é" * (longest + 1), 1, T0)
    assert dropped == f' # {{trace_id="{trace}"}} 1.0 {float(T0)!r}'
    assert exemplar(None, "r1", 1, T0) is None
    assert exemplar("", "r1", 1, T0) is None


def _om_text(cache: MetricsCache, own: bytes = b"# EOF\n") -> str:
    return b"".join([*cache.render_openmetrics(), own]).decode()


def _exemplars(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], Any]:
    out = {}
    for family in om_families(text):
        for s in family.samples:
            if s.exemplar is not None:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.exemplar
    return out


def _samples(families: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in families
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _trace() -> str:
    return uuid.uuid4().hex


def test_exemplars_point_at_the_latest_runs(store_url: str) -> None:
    h = Harness(store_url, CONFIG, start=T0)
    try:
        cache = h.sidecar.cache
        cache.refresh()
        assert _exemplars(_om_text(cache)) == {}  # no runs, no exemplars
        first = _trace()
        h.run("traced", T0 + 10, 3.0, trace_id=first)
        h.run("plain", T0 + 10, 3.0)  # no trace id: no exemplar
        cache.refresh()
        found = _exemplars(_om_text(cache))
        bucket = (
            "jobpulse_job_run_duration_seconds_bucket",
            (("job_name", "traced"), ("le", "5.0")),
        )
        assert set(found) == {bucket}
        assert found[bucket].labels["trace_id"] == first
        assert found[bucket].value == 3.0
        assert float(found[bucket].timestamp) == T0 + 13

        h.clock.set(T0 + 200)
        failed = _trace()
        rid = h.run("traced", T0 + 200, 45.0, "failure", trace_id=failed)
        h.send("start", "hung", ts=T0 + 200, run_id="stuck-1", trace_id=(stuck := _trace()))
        h.move(T0 + 300)  # hung times out at its max_runtime
        cache.refresh()
        found = _exemplars(_om_text(cache))
        assert found[bucket[0], (("job_name", "traced"), ("le", "60.0"))].labels == {
            "trace_id": failed,
            "run_id": rid,
        }
        assert bucket not in found  # one exemplar per histogram: the latest run's
        runs = "jobpulse_job_runs_total"
        failure = found[runs, (("job_name", "traced"), ("outcome", "failure"))]
        assert (failure.labels["trace_id"], failure.value) == (failed, 1.0)
        assert float(failure.timestamp) == T0 + 245
        timeout = found[runs, (("job_name", "hung"), ("outcome", "timeout"))]
        assert timeout.labels == {"trace_id": stuck, "run_id": "stuck-1"}
        assert float(timeout.timestamp) == T0 + 260  # its deadline
        assert not [key for key in found if ("job_name", "plain") in key[1]]

        # a later run without a trace id takes the histogram's exemplar away; the failure's
        # stays (it is still the latest failure)
        h.run("traced", T0 + 400, 2.0)
        cache.refresh()
        found = _exemplars(_om_text(cache))
        assert not [k for k in found if k[0].endswith("_bucket") and ("job_name", "traced") in k[1]]
        assert (
            found[runs, (("job_name", "traced"), ("outcome", "failure"))].labels["trace_id"]
            == failed
        )
    finally:
        h.close()


def test_openmetrics_has_the_text_formats_samples_and_splices_like_a_cold_render(
    tmp_path: Any,
) -> None:
    h = Harness(f"sqlite:///{tmp_path}/same.db", CONFIG, start=T0)
    try:
        cache = h.sidecar.cache
        for step in range(6):
            at = T0 + 10 + 100 * step
            h.run("traced", at, 1.5 * step, "failure" if step % 2 else "success", trace_id=_trace())
            if step % 3 == 0:
                h.run("plain", at, 0.5)
            cache.refresh()
            om = _om_text(cache)
            assert om.endswith("# EOF\n")
            text = cache.render().decode()
            assert _samples(om_families(om)) == _samples(text_string_to_metric_families(text))
            cold = MetricsCache(h.sidecar)
            cold.refresh()
            assert _om_text(cold) == om
            assert cold.render() == cache.render()
            cache.invalidate()  # every other scrape is a full refresh
            if step % 2:
                cache.refresh()
                assert _om_text(cache) == om
    finally:
        h.close()


async def test_metrics_answers_in_the_format_asked_for(aiohttp_client: Any, tmp_path: Any) -> None:
    from jobpulse.sidecar.config import parse_config
    from jobpulse.sidecar.domain.clock import ManualClock
    from jobpulse.sidecar.http.app import create_app
    from jobpulse.sidecar.settings import Settings

    settings = Settings(store=f"sqlite:///{tmp_path}/http.db", catchup_delay=0)
    app = create_app(
        settings, clock=ManualClock(T0), file_config=parse_config(CONFIG), run_evaluator=False
    )
    client = await aiohttp_client(app)
    trace = _trace()
    events = [
        {
            "type": "start",
            "job": "traced",
            "run_id": "r-1",
            "ts": "2026-11-23T10:00:10Z",
            "trace_id": trace,
        },
        {
            "type": "success",
            "job": "traced",
            "run_id": "r-1",
            "ts": "2026-11-23T10:00:12Z",
            "duration": 2.0,
        },
    ]
    resp = await client.post("/api/v1/events?wait=applied", json=events)
    assert resp.status == 200, await resp.text()

    plain = await client.get("/metrics")
    assert plain.headers["Content-Type"] == CONTENT_TYPE_LATEST  # as before negotiation
    body = await plain.text()
    assert "# EOF" not in body and " # {" not in body
    assert "# TYPE jobpulse_job_runs_total counter" in body

    om = await client.get("/metrics", headers={"Accept": PROMETHEUS_3})
    assert om.headers["Content-Type"] == (
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    )
    assert "Accept" in om.headers["Vary"]
    text = await om.text()
    assert int(om.headers["Content-Length"]) == len(text.encode())
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    assert "# TYPE jobpulse_job_runs counter" in text
    assert "# TYPE jobpulse_events_received counter" in text  # the sidecar's own, too
    families = {f.name: f for f in om_families(text)}
    buckets = [
        s for s in families["jobpulse_job_run_duration_seconds"].samples if s.exemplar is not None
    ]
    assert [(s.labels, s.exemplar.labels) for s in buckets] == [
        ({"job_name": "traced", "le": "5.0"}, {"trace_id": trace, "run_id": "r-1"})
    ]
    assert _samples(families.values()) == _samples(text_string_to_metric_families(body))


def test_runs_are_read_only_for_jobs_whose_runs_moved(tmp_path: Any) -> None:
    """The steady state: a job re-read for another change (or not re-read) costs no query of
    runs once its exemplars are known; a new run costs one query for its batch."""
    from sqlalchemy import event, update

    from jobpulse.sidecar.domain.tables import Job

    h = Harness(f"sqlite:///{tmp_path}/cost.db", CONFIG, start=T0)
    try:
        cache = h.sidecar.cache
        for job in ("traced", "hung"):
            h.run(job, T0 + 10, 2.0, "failure", trace_id=_trace())
        cache.refresh()
        statements: list[str] = []
        engine = h.sidecar.store.engine

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            if "ORDER BY runs_1.started_at DESC" in statement:  # the exemplars query
                statements.append(statement)

        event.listen(engine, "before_cursor_execute", seen)
        h.clock.set(T0 + 100)
        with engine.begin() as conn:  # changed, but not its runs
            conn.execute(update(Job).values(changed_at=T0 + 100))
        cache.refresh()
        h.clock.set(T0 + 200)
        cache.refresh()
        cache.invalidate()
        cache.refresh()  # a full refresh reuses what it knows
        assert statements == []
        h.run("traced", T0 + 300, 1.0, trace_id=_trace())
        cache.refresh()
        assert len(statements) == 1
        event.remove(engine, "before_cursor_execute", seen)
    finally:
        h.close()
