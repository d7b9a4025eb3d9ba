"""End to end: a real Prometheus with exemplar storage scrapes a real ``jobpulse serve`` over
OpenMetrics and answers ``query_exemplars`` with the trace id of the run behind the duration
histogram; ``promtool check metrics`` lints a live scrape of the text format, and the live
OpenMetrics scrape parses strictly (prometheus_client's parser, Prometheus's own scrape) with
the same samples and lints clean once re-expressed in the text format."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_families
from prometheus_client.parser import text_string_to_metric_families

from jobpulse.instrumentation.wire import format_ts
from tests.conftest import free_port, need_binary
from tests.sidecar.process import Served

pytestmark = pytest.mark.slow

CONFIG = """
jobs:
  - name: e2e-traced
    every: 1h
    labels: {team: data}
"""
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _get(url: str, accept: str | None = None) -> tuple[str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=5) as resp:
        return resp.headers["Content-Type"], resp.read()


def _api(prometheus: str, path: str, **query: Any) -> Any:
    _, body = _get(f"{prometheus}{path}?{urllib.parse.urlencode(query)}")
    return json.loads(body)["data"]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[Served, str, Path]]:
    prometheus = need_binary("prometheus")
    served = Served(tmp_path, CONFIG).start()
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "jobpulse", "static_configs": [{"targets": [f"127.0.0.1:{served.port}"]}]}
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = tmp_path / "prometheus.log"
    proc = subprocess.Popen(
        [
            prometheus,
            "--enable-feature=exemplar-storage",
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'prom'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=open(log, "wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        yield served, f"http://127.0.0.1:{port}", log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        served.stop()


def _wait(what: str, check: Any, log: Path, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{log.read_text()[-2000:]}")


def test_prometheus_stores_the_runs_trace_as_an_exemplar(
    stack: tuple[Served, str, Path],
) -> None:
    served, prometheus, log = stack
    trace = uuid.uuid4().hex
    now = time.time()
    events = [
        {"type": "start", "job": "e2e-traced", "run_id": "run-1", "ts": format_ts(now - 4)},
        {
            "type": "failure",
            "job": "e2e-traced",
            "run_id": "run-1",
            "ts": format_ts(now - 0.5),
            "duration": 3.0,
            "trace_id": trace,
        },
    ]
    assert served.post_events(events)["accepted"] == 2
    served.wait_applied()

    def stored() -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = _api(
            prometheus,
            "/api/v1/query_exemplars",
            query='jobpulse_job_run_duration_seconds_bucket{job_name="e2e-traced"}',
            start=now - 60,
            end=time.time() + 60,
        )
        return result

    series = _wait("the exemplar in Prometheus", stored, log)
    [entry] = series
    assert entry["seriesLabels"]["le"] == "5.0"  # the bucket 3 s fell into
    [point] = entry["exemplars"]
    assert point["labels"] == {"trace_id": trace, "run_id": "run-1"}
    assert float(point["value"]) == 3.0
    assert abs(point["timestamp"] - (now - 0.5)) < 0.01
    counter = _api(
        prometheus,
        "/api/v1/query_exemplars",
        query='jobpulse_job_runs_total{outcome="failure"}',
        start=now - 60,
        end=time.time() + 60,
    )
    assert [e["labels"]["trace_id"] for s in counter for e in s["exemplars"]] == [trace]
    [target] = _api(prometheus, "/api/v1/targets")["activeTargets"]
    assert (target["health"], target["lastError"]) == ("up", "")

    # The live scrapes: the text format for promtool, OpenMetrics for the strict parser.
    promtool = need_binary("promtool")
    content_type, text = _get(f"{served.url}/metrics", "text/plain;version=0.0.4")
    assert content_type.startswith("text/plain")
    linted = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30
    )
    assert linted.returncode == 0, linted.stdout.decode() + linted.stderr.decode()
    content_type, om = _get(
        f"{served.url}/metrics",
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4",
    )
    assert content_type == OPENMETRICS
    families = list(om_families(om.decode()))
    assert trace in om.decode()

    def samples(fams: Any) -> dict[Any, float]:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in fams
            for s in f.samples
            if not s.name.endswith("_created") and "job_name" in s.labels
        }

    assert samples(families) == samples(text_string_to_metric_families(text.decode()))

    # promtool 2.x lints only the text format (an exemplar is a parse error to it): the same
    # families, re-expressed by prometheus_client, must lint clean too.
    class Replay:
        def collect(self) -> Any:
            return iter(families)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Replay())  # type: ignore[arg-type]
    linted = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=30,
    )
    assert linted.returncode == 0, linted.stdout.decode() + linted.stderr.decode()
