"""`python -m bench --quick` runs every benchmark end to end and writes well-formed results.

No timing is asserted: the machine running the suite is not a benchmark machine. A benchmark
whose tool is missing (wrk, the Pushgateway, PostgreSQL) still reports, as not measured.
"""

from __future__ import annotations

import json
import os
import re
import shutil
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


@pytest.mark.timeout(300)
def test_instruction_count_of_the_applier_is_reported_against_its_floor() -> None:
    """``python -m bench.instructions``: the applier's cost under callgrind, the A/B tool for
    changes smaller than the machine's noise."""
    if shutil.which("valgrind") is None:
        if os.environ.get("JOBPULSE_REQUIRE_SERVICES") == "1":
            pytest.fail("valgrind is not installed (apt-get install -y valgrind)")
        pytest.skip("valgrind is not installed")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.instructions", "--jobs", "20"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    floor, ours = proc.stdout.strip().splitlines()
    row = re.search(r"([\d,]+) instructions per row", floor)
    assert row is not None, proc.stdout
    per_row = int(row[1].replace(",", ""))
    found = re.search(r"([\d,]+) instructions per applied event, ([\d.]+)x the floor", ours)
    assert found is not None, proc.stdout
    per_event = int(found[1].replace(",", ""))
    # Counted only while the inbox was applied: far above a raw insert, far below the cost
    # of a whole process start (a few hundred million instructions).
    assert 1_000 < per_row < per_event < 50_000_000
    assert float(found[2]) == pytest.approx(per_event / per_row, rel=0.01)
