"""A batch the sidecar keeps failing on is quarantined, not retried for ever; an outage costs no
batch (the spool's failure counts, ``_delivery.py``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from jobpulse.instrumentation import HeartbeatClient
from jobpulse.instrumentation._delivery import MAX_BATCH_FAILURES
from jobpulse.instrumentation._spool import QUARANTINE, QUARANTINE_KEEP, Spool

if TYPE_CHECKING:
    from conftest import FakeSidecar


def batch(job: str, n: int) -> list[dict[str, Any]]:
    return [
        {"v": 1, "type": "start", "job": job, "run_id": f"{job}-{i}", "ts": "2026-11-23T10:00:00Z"}
        for i in range(n)
    ]


def fail_batches_of(sidecar: FakeSidecar, job: str, status: int = 500) -> None:
    """The sidecar answers ``status`` to any batch holding an event of ``job``, others as usual."""
    answer = sidecar.answer

    def poisoned(path: str, headers: dict[str, str], body: bytes) -> Any:
        if any(e.get("job") == job for e in json.loads(body)):
            return status, {"error": "internal error", "detail": "boom"}, {}
        return answer(path, headers, body)

    sidecar.answer = poisoned  # type: ignore[method-assign]


def deliver(url: str, spool_dir: Path) -> HeartbeatClient:
    """What a new process (or ``jobpulse flush``) does first: deliver the spool."""
    client = HeartbeatClient(url, spool_dir=spool_dir, start=False)
    client.deliver_spool()
    client.close(0)
    return client


@pytest.mark.parametrize("status", [500, 503])
def test_a_poison_batch_is_quarantined_and_the_spool_flows_past_it(
    sidecar: FakeSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    fail_batches_of(sidecar, "poison", status)
    spool = Spool(tmp_path)
    assert spool.write(batch("poison", 3))  # the oldest: first in line
    assert spool.write(batch("good", 2))
    quarantined = 0
    for attempt in range(1, MAX_BATCH_FAILURES + 1):
        assert spool.write(batch(f"later{attempt}", 1))
        client = deliver(sidecar.url, tmp_path)
        # what queued behind the poison batch went through in the same pass
        assert {e["job"] for e in sidecar.events} >= {"good", f"later{attempt}"}
        quarantined += client.stats.quarantined
        if attempt < MAX_BATCH_FAILURES:
            (left,) = spool.pending()
            assert Spool.failures(left) == attempt
    assert quarantined == 3
    assert spool.pending() == []
    (kept,) = (tmp_path / QUARANTINE).iterdir()
    assert [e["job"] for e in json.loads(kept.read_bytes())] == ["poison"] * 3
    assert "poison" not in {e["job"] for e in sidecar.events}
    assert sum("spool does not stall" in r.getMessage() for r in caplog.records) == 1


def test_an_outage_answered_with_server_errors_costs_no_batch(
    sidecar: FakeSidecar, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.CRITICAL)
    spool = Spool(tmp_path)
    for n in range(3):
        assert spool.write(batch(f"job{n}", 1))
    sidecar.script = [(503, {"error": "store unavailable", "detail": ""}, {})] * 1000
    for _ in range(3 * MAX_BATCH_FAILURES):
        assert deliver(sidecar.url, tmp_path).stats.quarantined == 0
    assert [Spool.failures(p) for p in spool.pending()] == [0, 0, 0]
    assert len(sidecar.script) == 1000 - 2 * 3 * MAX_BATCH_FAILURES  # two tries per pass
    sidecar.script = []
    deliver(sidecar.url, tmp_path)
    assert sorted(e["job"] for e in sidecar.events) == ["job0", "job1", "job2"]
    assert spool.pending() == []


def test_a_server_error_right_after_an_accepted_post_is_charged(
    sidecar: FakeSidecar, tmp_path: Path
) -> None:
    fail_batches_of(sidecar, "poison")
    spool = Spool(tmp_path)
    assert spool.write(batch("good", 1))
    assert spool.write(batch("poison", 1))
    deliver(sidecar.url, tmp_path)
    (left,) = spool.pending()
    assert Spool.failures(left) == 1


def test_the_quarantine_keeps_the_newest_batches(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for n in range(QUARANTINE_KEEP + 3):
        assert spool.write(batch(f"job{n}", 1))
    for path in spool.pending():
        claimed = spool.claim(path)
        assert claimed is not None
        spool.quarantine(claimed)
    kept = sorted((tmp_path / QUARANTINE).iterdir())
    assert len(kept) == QUARANTINE_KEEP
    assert json.loads(kept[0].read_bytes())[0]["job"] == "job3"
    assert spool.pending() == []
    assert spool.size() == 0  # quarantined batches leave the spool's budget


def test_failure_counts_survive_claims_and_releases(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    assert spool.write(batch("j", 1))
    (path,) = spool.pending()
    assert Spool.failures(path) == 0
    claimed = spool.claim(path)
    assert claimed is not None
    released = spool.release(claimed, failures=2)
    assert spool.pending() == [released]
    claimed = spool.claim(released)
    assert claimed is not None
    assert Spool.failures(claimed) == 2
    assert spool.read(claimed) == batch("j", 1)
    assert Spool.failures(spool.release(claimed)) == 2  # a plain release keeps the count
