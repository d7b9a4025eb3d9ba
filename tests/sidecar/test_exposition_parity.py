"""jobpulse's cached /metrics renderer parses to exactly the samples prometheus_client renders
for the same values (bench/reference.py's collector, the /metrics benchmark's baseline), for a
few hundred jobs with awkward label values."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from bench.population import insert_jobs, job_rows
from bench.reference import ReferenceCollector, snapshot
from jobpulse.sidecar.domain.tables import Job
from jobpulse.sidecar.exposition.cache import FAMILIES
from tests.sidecar.harness import T0, Harness

AWKWARD = {
    "team": 'quote " backslash \\ newline \n end',
    "owner": "ünïcödé — ☃ / tab\there",
    "path": 'C:\\temp\\n\\"x"',
    "empty_ish": " ",
}
CONFIG = """
jobs:
  - name: nightly.report
    schedule: "30 2 * * 1-5"
    timezone: Europe/Paris
    labels: {team: 'a "b" \\\\ c', tier: "x\\ny"}
  - name: every-five
    every: 5m
  - name: with_seconds
    schedule: "*/10 * * * * *"
"""


class TailCollector:
    """``jobpulse_job_slow_runs_total``, ``jobpulse_job_in_maintenance`` and
    ``jobpulse_job_created_timestamp_seconds``, the families after the benchmark's reference
    ones."""

    def __init__(self, rows: list[tuple[str, int, bool, float, int, int]]) -> None:
        self.rows = rows

    def collect(self) -> Any:
        helps = {name: help_ for name, _, help_ in FAMILIES}
        slow = "jobpulse_job_slow_runs"
        counter = CounterMetricFamily(slow, helps[slow], labels=["job_name"])
        held = "jobpulse_job_in_maintenance"
        gauge = GaugeMetricFamily(held, helps[held], labels=["job_name"])
        born = "jobpulse_job_created_timestamp_seconds"
        created = GaugeMetricFamily(born, helps[born], labels=["job_name"])
        skip = "jobpulse_job_skipped_runs"
        skipped = CounterMetricFamily(skip, helps[skip], labels=["job_name", "reason"])
        for job_name, slow_total, in_maintenance, created_at, by_window, by_upstream in self.rows:
            counter.add_metric([job_name], slow_total)
            gauge.add_metric([job_name], 1 if in_maintenance else 0)
            created.add_metric([job_name], created_at)
            skipped.add_metric([job_name, "maintenance"], by_window)
            skipped.add_metric([job_name, "upstream"], by_upstream)
        yield counter
        yield gauge
        yield created
        yield skipped


def _samples(text: str) -> dict[tuple[str, str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (family.name, s.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"duplicate sample {key}"
            out[key] = s.value
    return out


def test_cached_rendering_parses_like_prometheus_client(tmp_path: Any) -> None:
    h = Harness(f"sqlite:///{tmp_path}/parity.db", CONFIG, start=T0, job_cap=1000)
    try:
        engine = h.sidecar.store.engine
        insert_jobs(engine, job_rows(150, T0, prefix="hist", labels=AWKWARD), T0)
        insert_jobs(engine, job_rows(150, T0, prefix="bare", history=False), T0, rollups=False)
        h.move(T0 + 3 * 3600)  # the configured jobs get missed slots, states and rollups
        cache = h.sidecar.cache
        cache.refresh()
        ours = cache.render().decode()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ReferenceCollector(snapshot(h.sidecar, h.clock.now())))
        with h.sidecar.store.session() as session:
            live = select(
                Job.name,
                Job.slow_total,
                Job.in_maintenance,
                Job.created_at,
                Job.skipped_maintenance,
                Job.skipped_upstream,
            ).where(Job.removed.is_(False))
            rows = [
                (name, slow, bool(held), created, by_window, by_upstream)
                for name, slow, held, created, by_window, by_upstream in session.execute(live)
            ]
            registry.register(TailCollector(rows))
        theirs = generate_latest(registry).decode()
    finally:
        h.close()
    a, b = _samples(ours), _samples(theirs)
    assert len(a) > 300 * 30
    assert set(a) == set(b)
    assert a == b
    # The same families, in the same order, each under one header.
    assert [f.name for f in text_string_to_metric_families(ours)] == [
        f.name for f in text_string_to_metric_families(theirs)
    ]
    assert 'team="quote \\" backslash \\\\ newline \\n end"' in ours
