"""`python -m bench --quick` runs every benchmark end to end and writes well-formed results.

No timing is asserted: the machine running the suite is not a benchmark machine. A benchmark
whose tool is missing (wrk, the Pushgateway, PostgreSQL) still reports, as not measured.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMES = {
    "decorator_cost",
    "outage_cost",
    "single_ingest",
    "batched_ingest",
    "evaluator",
    "metrics",
    "memory",
    "detection_latency",
    "top_of_hour",
    "apply_lag",
    "apply_cost",
}
FIELDS = {"name", "value", "baseline", "ratio", "target", "met", "unit"}


@pytest.mark.timeout(600)
def test_quick_bench_writes_every_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--output", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc: dict[str, Any] = json.loads(out.read_text())
    assert doc["quick"] is True
    assert {"cpu_model", "cores", "memory_bytes", "python", "date"} <= set(doc["machine"])
    benchmarks = doc["benchmarks"]
    assert len(benchmarks) == len(NAMES)
    assert {b["name"] for b in benchmarks} == NAMES
    for b in benchmarks:
        assert FIELDS <= set(b), b["name"]
        assert isinstance(b["met"], bool)
        assert b["checks"], b["name"]
        for check in b["checks"]:
            assert FIELDS - {"met"} <= set(check)
            # Measured, or says why not; never a crashed benchmark.
            assert check["value"] is not None or check["note"].startswith("not measured"), check
    assert "| benchmark" in proc.stdout
