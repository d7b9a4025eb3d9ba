"""Many jobs, written straight into the store with Core ``insert()`` (as the evaluator-cost test
does): creating them through the API would take longer than the benchmarks themselves."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.engine import Engine

from jobpulse.sidecar.domain.rollup import hour_of
from jobpulse.sidecar.domain.tables import Job, Rollup

CHUNK = 10_000


def job_rows(
    count: int,
    now: float,
    *,
    prefix: str = "idle",
    history: bool = True,
    labels: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """``count`` jobs whose next deadline is a month away; with ``history``, every per-job
    series has a value (runs, a duration histogram, last success/failure, a rollup)."""
    far = now + 30 * 86400
    rows = []
    for i in range(count):
        row: dict[str, Any] = {
            "name": f"{prefix}-{i:06d}",
            "in_file": False,
            "removed": False,
            "created_at": now - 86400,
            "state": "up",
            "state_since": now - 86400,
            "bad_streak": 0,
            "good_streak": 0,
            "cursor": far,
            "silent": False,
            "next_deadline": far + i,
            "runs_success": 0,
            "runs_failure": 0,
            "runs_timeout": 0,
            "runs_cancelled": 0,
            "runs_retry": 0,
            "missed_total": 0,
            "overlap_total": 0,
            "duration_sum": 0.0,
            "duration_count": 0,
            "running": 0,
            "changed_at": now - 3600,
            "declared_fields": {"schedule": "0 0 1 1 *", **({"labels": labels} if labels else {})},
        }
        if history:
            buckets = [0] * 18
            buckets[i % 18] = 40 + i % 7
            buckets[(i + 3) % 18] = 2
            row.update(
                runs_success=40 + i % 7,
                runs_failure=2,
                runs_timeout=i % 3,
                missed_total=i % 5,
                overlap_total=i % 2,
                duration_sum=123.25 + i,
                duration_count=sum(buckets),
                duration_buckets=buckets,
                last_success_at=now - 300 - i % 600,
                last_failure_at=now - 7200 - i % 600,
                last_start_at=now - 310 - i % 600,
                last_duration=1.5 + (i % 100) / 8,
                bad_streak=i % 2,
            )
        rows.append(row)
    return rows


def insert_jobs(
    engine: Engine, rows: list[dict[str, Any]], now: float, *, rollups: bool = True
) -> None:
    with engine.begin() as conn:
        for start in range(0, len(rows), CHUNK):
            conn.execute(insert(Job), rows[start : start + CHUNK])
    if not rollups:
        return
    with engine.begin() as conn:
        ids = [r[0] for r in conn.exec_driver_sql("SELECT id FROM jobs ORDER BY id")]
    with engine.begin() as conn:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start : start + CHUNK]
            conn.execute(
                insert(Rollup),
                [
                    {
                        "job_id": job_id,
                        "hour": hour_of(now) - 3600,
                        "success": 11 + job_id % 3,
                        "failure": 1,
                        "timeout": 0,
                        "cancelled": job_id % 2,
                        "retry": 0,
                        "missed": job_id % 4,
                        "due": 12,
                        "dur_count": 12,
                        "dur_sum": 30.5,
                    }
                    for job_id in chunk
                ],
            )
