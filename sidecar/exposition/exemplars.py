"""Exemplars: the run behind a job's latest points, as OpenMetrics exemplars linking to its trace.

Three per job, each from the job's latest run of a kind that carries a ``trace_id``:

- on the ``jobpulse_job_run_duration_seconds`` bucket its duration fell into: the latest
  finished run the histogram counted (any outcome but timeout), value its duration, timestamp
  its finish;
- on ``jobpulse_job_runs_total{outcome="failure"}``: the latest failed run, value 1, timestamp
  its finish;
- on ``jobpulse_job_runs_total{outcome="timeout"}``: the latest timed-out run, value 1,
  timestamp its deadline (an abandoned run had none: its finish if it sent one late, else its
  start).

"Latest" is the latest started, which the ``(job_id, started_at)`` index reads backwards from
the top: one query per batch of jobs picks the runs (one correlated ``LIMIT 1`` per job and
kind), and only for jobs whose row changed since the previous read (a job's counters and its
runs are committed together). A run without a trace id gives no exemplar: the latest run is the
one a red panel is about, an older traced one would mislead.

OpenMetrics limits an exemplar's label set to 128 UTF-8 characters (names and values): a
``trace_id`` (32 hex) with a ``run_id`` of up to 64 fits, a longer one is dropped and the
trace id kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from prometheus_client.utils import floatToGoString
from sqlalchemy import bindparam, func, select, union_all
from sqlalchemy.orm import aliased

from ..domain.tables import Job, Run

__all__ = ["MAX_LABEL_CHARS", "Exemplars", "exemplar", "latest_runs"]

MAX_LABEL_CHARS = 128
# Outcomes the duration histogram counts (a timeout is counted without a duration).
_TIMED_OUT = "timeout"
_NOT_OBSERVED = ("running", _TIMED_OUT)


class Exemplars(NamedTuple):
    """A job's exemplars: ``duration`` the run's (duration, suffix) for the histogram, the
    others the suffix for their counter line; None where there is none."""

    duration: tuple[float, str] | None
    failure: str | None
    timeout: str | None


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def exemplar(trace_id: str | None, run_id: str | None, value: float, ts: float) -> str | None:
    """`` # {trace_id="…",run_id="…"} value ts`` to append to a sample line, without
    ``run_id`` when both do not fit in the 128-character label set; None without a trace id
    (or one too long even alone)."""
    if not trace_id:
        return None
    size = len("trace_id") + len(trace_id)
    if size > MAX_LABEL_CHARS:
        return None
    labels = f'trace_id="{_escape(trace_id)}"'
    if run_id and size + len("run_id") + len(run_id) <= MAX_LABEL_CHARS:
        labels += f',run_id="{_escape(run_id)}"'
    value_text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    # Seconds in plain decimal (Go's format would write 1.795428e+09).
    return f" # {{{labels}}} {value_text} {float(ts)!r}"


def _latest(condition: Any) -> Any:
    """The id of the job's latest-started run matching ``condition`` (correlated to Job)."""
    run = aliased(Run)
    return (
        select(run.id)
        .where(run.job_id == Job.id, condition(run))
        .order_by(run.started_at.desc(), run.id.desc())
        .limit(1)
        .correlate(Job)
        .scalar_subquery()
    )


def _picks(kind: str, condition: Any) -> Any:
    return select(_latest(condition).label("id")).where(Job.id.in_(bindparam(kind, expanding=True)))


_PICKED = union_all(
    _picks("observed", lambda r: r.outcome.not_in(_NOT_OBSERVED)),
    _picks("failure", lambda r: r.outcome == "failure"),
    _picks("timeout", lambda r: r.outcome == _TIMED_OUT),
).subquery()
_LATEST = select(
    Run.job_id,
    Run.outcome,
    Run.started_at,
    Run.id,
    Run.run_id,
    Run.trace_id,
    Run.duration,
    func.coalesce(Run.finished_at, Run.started_at),
    func.coalesce(Run.deadline, Run.finished_at, Run.started_at),
).where(Run.id.in_(select(_PICKED.c.id)))


def latest_runs(
    session: Any, observed: Sequence[int], failed: Sequence[int], timed_out: Sequence[int]
) -> dict[int, Exemplars]:
    """The exemplars of the jobs listed (by the kinds of run they have had), in one query;
    jobs with none are left out."""
    if not (observed or failed or timed_out):
        return {}
    params = {"observed": list(observed), "failure": list(failed), "timeout": list(timed_out)}
    # Each job's rows are exactly the runs picked for it: the latest of each kind is the one
    # of its rows of that kind that started last.
    best: dict[tuple[int, str], tuple[Any, ...]] = {}
    for row in session.execute(_LATEST, params):
        if row.outcome == _TIMED_OUT:
            kinds: tuple[str, ...] = (_TIMED_OUT,)
        elif row.outcome == "failure":
            kinds = ("failure", "observed")
        else:
            kinds = ("observed",)
        for kind in kinds:
            key = (row.job_id, kind)
            seen = best.get(key)
            if seen is None or (row.started_at, row.id) > (seen[2], seen[3]):
                best[key] = tuple(row)
    out: dict[int, Exemplars] = {}
    for job_id in {job_id for job_id, _ in best}:
        duration = None
        row = best.get((job_id, "observed"))
        if row is not None and row[6] is not None:
            suffix = exemplar(row[5], row[4], row[6], row[7])
            duration = None if suffix is None else (float(row[6]), suffix)
        row = best.get((job_id, "failure"))
        failure = None if row is None else exemplar(row[5], row[4], 1.0, row[7])
        row = best.get((job_id, _TIMED_OUT))
        timeout = None if row is None else exemplar(row[5], row[4], 1.0, row[8])
        if duration is not None or failure is not None or timeout is not None:
            out[job_id] = Exemplars(duration, failure, timeout)
    return out


class Latest:
    """The exemplars of the jobs a refresh reads, re-read only where they may have moved.

    Per job with runs it keeps the counts its runs were last read at, packed in one int, and
    its exemplars if it has any (memory: about 100 bytes for a job with runs, a few hundred
    with exemplars). A job's latest observed run is re-read when ``duration_count`` moved, or
    when the job changed since the last refresh and that run had no trace id (a span
    delivered after the finish may add it); the latest failure or timeout only when its
    counter moved: walking back to an old failure is the one read that can be long, and a
    job's first read (at start-up) does it once.
    """

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._exemplars: dict[int, Exemplars] = {}

    def read(self, session: Any, jobs: Sequence[Job], recent: float | None) -> dict[int, Exemplars]:
        """The exemplars of ``jobs`` (one batch of rows), with one query for those that need
        it; ``recent``: jobs whose ``changed_at`` is at least this changed since the last
        refresh (None: all did)."""
        observed: list[int] = []
        failed: list[int] = []
        timed_out: list[int] = []
        counts = self._counts
        known = self._exemplars
        for job in jobs:
            dc, rf, rt = job.duration_count, job.runs_failure, job.runs_timeout
            if not (dc or rf or rt):
                if job.id in counts:  # counters reset: nothing to point at
                    self.forget([job.id])
                continue
            packed = dc | rf << _BITS | rt << 2 * _BITS
            before = counts.get(job.id)
            if before == packed and (recent is not None and job.changed_at < recent):
                continue
            counts[job.id] = packed
            was = known.get(job.id)
            if before is None:
                before = -1  # no count matches
            if dc and (
                dc != before & _MASK
                or (
                    (was is None or was.duration is None)
                    and (recent is None or job.changed_at >= recent)
                )
            ):
                observed.append(job.id)
            if rf and rf != before >> _BITS & _MASK:
                failed.append(job.id)
            if rt and rt != before >> 2 * _BITS & _MASK:
                timed_out.append(job.id)
        if not (observed or failed or timed_out):
            return known
        found = latest_runs(session, observed, failed, timed_out)
        read = (set(observed), set(failed), set(timed_out))
        for job_id in read[0] | read[1] | read[2]:
            # What was read replaces what was known, kind by kind.
            new = found.get(job_id, _NONE)
            old = known.get(job_id, _NONE)
            merged = Exemplars(
                new.duration if job_id in read[0] else old.duration,
                new.failure if job_id in read[1] else old.failure,
                new.timeout if job_id in read[2] else old.timeout,
            )
            if merged == _NONE:
                known.pop(job_id, None)
            elif merged != old:
                known[job_id] = merged
        return known

    def forget(self, job_ids: Sequence[int]) -> None:
        for job_id in job_ids:
            self._counts.pop(job_id, None)
            self._exemplars.pop(job_id, None)

    def keep(self, job_ids: set[int]) -> None:
        """Forget every job but ``job_ids`` (after a full refresh)."""
        self.forget([job_id for job_id in self._counts if job_id not in job_ids])


_BITS = 40
_MASK = (1 << _BITS) - 1
_NONE = Exemplars(None, None, None)
