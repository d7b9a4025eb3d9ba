"""Per-job Prometheus exposition, cached: only jobs that changed are re-rendered.

Each job's samples are kept as one bytes chunk per metric family; a scrape joins the chunks
family by family under one HELP/TYPE header each. Jobs are re-read from the store when their
``changed_at`` is recent (a margin covers commit delays and replica clock differences), and
all ratios are recomputed when the clock crosses an hour (their windows are whole hours).
Number formatting is prometheus_client's; tests parse the output with its parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.utils import floatToGoString
from sqlalchemy import and_, case, func, select

from .engine import OUTCOMES, STATES
from .rollup import WINDOWS, hour_of, window_start
from .tables import Job, Rollup, Slot

if TYPE_CHECKING:
    from .service import Sidecar

__all__ = ["FAMILIES", "MetricsCache", "escape_label"]

# (name, type, help) in exposition order.
FAMILIES: tuple[tuple[str, str, str], ...] = (
    ("jobpulse_job_info", "gauge", "Job metadata: schedule, timezone and configured labels."),
    ("jobpulse_job_runs", "counter", "Finished runs by outcome."),
    ("jobpulse_job_missed_runs", "counter", "Slots that passed with no run."),
    ("jobpulse_job_overlapping_runs", "counter", "Runs started while another was in flight."),
    ("jobpulse_job_run_duration_seconds", "histogram", "Duration of finished runs."),
    ("jobpulse_job_last_success_timestamp_seconds", "gauge", "When the last success finished."),
    (
        "jobpulse_job_last_failure_timestamp_seconds",
        "gauge",
        "When the last failure or timeout happened.",
    ),
    ("jobpulse_job_last_run_start_timestamp_seconds", "gauge", "When the latest run started."),
    ("jobpulse_job_last_run_duration_seconds", "gauge", "Duration of the latest finished run."),
    (
        "jobpulse_job_next_expected_run_timestamp_seconds",
        "gauge",
        "The next slot no run has filled.",
    ),
    (
        "jobpulse_job_expected_interval_seconds",
        "gauge",
        "The longer of the periods around the latest slot.",
    ),
    ("jobpulse_job_running", "gauge", "Runs in flight."),
    (
        "jobpulse_job_oldest_running_start_timestamp_seconds",
        "gauge",
        "Start of the oldest run in flight.",
    ),
    ("jobpulse_job_state", "gauge", "1 for the job's current state."),
    (
        "jobpulse_job_consecutive_failures",
        "gauge",
        "Consecutive bad outcomes (failed, timed out, missed).",
    ),
    (
        "jobpulse_job_success_ratio",
        "gauge",
        "Successes over finished runs plus missed slots, by window.",
    ),
    ("jobpulse_job_miss_ratio", "gauge", "Missed slots over due slots, by window."),
)
_INDEX = {name: i for i, (name, _, _) in enumerate(FAMILIES)}
# Text format 0.0.4 names a counter family by its sample name, with _total.
_HEADERS = [
    f"# HELP {name}{'_total' if kind == 'counter' else ''} {help_}\n"
    f"# TYPE {name}{'_total' if kind == 'counter' else ''} {kind}\n".encode()
    for name, kind, help_ in FAMILIES
]
REFRESH_MARGIN = 15.0
_RATIO_FIELDS = ("success", "failure", "timeout", "cancelled", "missed", "due")


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


@dataclass(slots=True)
class _Entry:
    chunks: list[bytes]
    state: str


class MetricsCache:
    def __init__(self, sidecar: Sidecar) -> None:
        self._sidecar = sidecar
        self._entries: dict[int, _Entry] = {}
        self._watermark: float | None = None
        self._hour: int | None = None
        self._intervals: dict[tuple[Any, ...], float | None] = {}

    def invalidate(self) -> None:
        self._watermark = None

    # ---------------------------------------------------------------- refresh
    def refresh(self) -> None:
        sc = self._sidecar
        now = sc.clock.now()
        full = self._watermark is None or self._hour != hour_of(now)
        with sc.store.session() as session:
            query = select(Job)
            if not full:
                assert self._watermark is not None
                query = query.where(Job.changed_at >= self._watermark - REFRESH_MARGIN)
            jobs = list(session.scalars(query))
            if full:
                self._entries = {}
            ids = [j.id for j in jobs] if not full else None
            ratios = self.ratios(session, ids, now)
            filled = self.filled_cursors(session, ids)
            for job in jobs:
                if job.removed:
                    self._entries.pop(job.id, None)
                    continue
                nxt = self.next_expected(session, job, filled=job.id in filled)
                self._entries[job.id] = _Entry(
                    self._render(job, ratios.get(job.id), nxt, now), job.state
                )
            if not full and len(self._entries) > 0:
                # Drop jobs deleted since the last scrape (cheap: ids only).
                live = set(session.scalars(select(Job.id).where(Job.removed.is_(False))))
                for gone in set(self._entries) - live:
                    del self._entries[gone]
        self._watermark = now
        self._hour = hour_of(now)

    def ratios(self, session: Any, ids: list[int] | None, now: float) -> dict[int, dict[str, Any]]:
        """(success ratio, miss ratio) per window for ``ids`` (all jobs: None), from rollups in
        one grouped query per 500 jobs; a window with nothing in it gives None."""
        cols = []
        for window in WINDOWS:
            start = window_start(window, now)
            for name in _RATIO_FIELDS:
                col = getattr(Rollup, name)
                cols.append(func.sum(case((Rollup.hour >= start, col), else_=0)))
        oldest = window_start("30d", now)
        out: dict[int, dict[str, Any]] = {}
        chunks: list[list[int] | None] = (
            [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
        )
        for chunk in chunks:
            if chunk == []:
                continue
            q = select(Rollup.job_id, *cols).where(Rollup.hour >= oldest).group_by(Rollup.job_id)
            if chunk is not None:
                q = q.where(Rollup.job_id.in_(chunk))
            for row in session.execute(q):
                values = [int(v or 0) for v in row[1:]]
                per: dict[str, Any] = {}
                for wi, window in enumerate(WINDOWS):
                    succ, fail, tout, canc, miss, due = values[wi * 6 : wi * 6 + 6]
                    denom = succ + fail + tout + canc + miss
                    per[window] = (
                        succ / denom if denom else None,
                        miss / due if due else None,
                    )
                out[row[0]] = per
        return out

    def filled_cursors(self, session: Any, ids: list[int] | None) -> set[int]:
        """Jobs whose cursor slot already has a record: one joined query (per 500 ids)
        instead of one query per job."""
        query = select(Slot.job_id).join(Job, and_(Slot.job_id == Job.id, Slot.slot == Job.cursor))
        if ids is None:
            return set(session.scalars(query))
        out: set[int] = set()
        for i in range(0, len(ids), 500):
            out.update(session.scalars(query.where(Job.id.in_(ids[i : i + 500]))))
        return out

    def next_expected(self, session: Any, job: Job, *, filled: bool | None = None) -> float | None:
        """``filled``: whether the cursor's slot has a record, when the caller knows."""
        if job.cursor is None or job.removed or job.state == "paused":
            return None
        if filled is None:
            filled = (
                session.scalar(
                    select(Slot.id).where(Slot.job_id == job.id, Slot.slot == job.cursor)
                )
                is not None
            )
        if not filled:
            return job.cursor
        cfg = self._sidecar.engine.config(job)
        if cfg.schedule.every is not None:
            return None  # the next slot is anchored on the run still to come
        return cfg.schedule.next_after(job.cursor)

    def _interval(self, job: Job, cfg: Any, now: float) -> float | None:
        """``engine.expected_interval``, computed once per schedule and ``now``: it depends on
        nothing else, and a fleet shares few schedules."""
        sched = cfg.schedule
        key = (now, sched.kind, sched.text, sched.timezone, sched.every)
        if key not in self._intervals:
            if len(self._intervals) > 4096:
                self._intervals.clear()
            self._intervals[key] = self._sidecar.engine.expected_interval(job, now)
        return self._intervals[key]

    # ---------------------------------------------------------------- render
    def _render(
        self, job: Job, ratios: dict[str, Any] | None, next_expected: float | None, now: float
    ) -> list[bytes]:
        engine = self._sidecar.engine
        cfg = engine.config(job)
        name = escape_label(job.name)
        jl = f'job_name="{name}"'
        chunks: list[list[str]] = [[] for _ in FAMILIES]

        def put(family: str, line: str) -> None:
            chunks[_INDEX[family]].append(line)

        info = [
            jl,
            f'schedule="{escape_label(cfg.schedule.text)}"',
            f'timezone="{escape_label(cfg.schedule.timezone)}"',
        ]
        info += [f'{k}="{escape_label(v)}"' for k, v in sorted(cfg.labels.items())]
        put("jobpulse_job_info", f"jobpulse_job_info{{{','.join(info)}}} 1\n")
        for outcome in OUTCOMES:
            value = getattr(job, f"runs_{outcome}")
            put(
                "jobpulse_job_runs",
                f'jobpulse_job_runs_total{{{jl},outcome="{outcome}"}} {_fmt(value)}\n',
            )
        put(
            "jobpulse_job_missed_runs",
            f"jobpulse_job_missed_runs_total{{{jl}}} {_fmt(job.missed_total)}\n",
        )
        put(
            "jobpulse_job_overlapping_runs",
            f"jobpulse_job_overlapping_runs_total{{{jl}}} {_fmt(job.overlap_total)}\n",
        )
        counts = list(job.duration_buckets or [])
        if len(counts) != len(cfg.buckets) + 1:
            counts = [0] * (len(cfg.buckets) + 1)
        cumulative = 0
        fam = "jobpulse_job_run_duration_seconds"
        for bound, n in zip((*cfg.buckets, float("inf")), counts, strict=True):
            cumulative += n
            put(fam, f'{fam}_bucket{{{jl},le="{_fmt(bound)}"}} {_fmt(cumulative)}\n')
        put(fam, f"{fam}_count{{{jl}}} {_fmt(job.duration_count)}\n")
        put(fam, f"{fam}_sum{{{jl}}} {_fmt(job.duration_sum)}\n")
        gauges: tuple[tuple[str, float | None], ...] = (
            ("jobpulse_job_last_success_timestamp_seconds", job.last_success_at),
            ("jobpulse_job_last_failure_timestamp_seconds", job.last_failure_at),
            ("jobpulse_job_last_run_start_timestamp_seconds", job.last_start_at),
            ("jobpulse_job_last_run_duration_seconds", job.last_duration),
            ("jobpulse_job_next_expected_run_timestamp_seconds", next_expected),
            ("jobpulse_job_expected_interval_seconds", self._interval(job, cfg, now)),
            ("jobpulse_job_running", float(job.running)),
            ("jobpulse_job_oldest_running_start_timestamp_seconds", job.oldest_running_start),
            ("jobpulse_job_consecutive_failures", float(job.bad_streak)),
        )
        for family, value in gauges:
            if value is not None:
                put(family, f"{family}{{{jl}}} {_fmt(value)}\n")
        for state in STATES:
            put(
                "jobpulse_job_state",
                f'jobpulse_job_state{{{jl},state="{state}"}} {1 if job.state == state else 0}\n',
            )
        for window, (success, miss) in (ratios or {}).items():
            if success is not None:
                put(
                    "jobpulse_job_success_ratio",
                    f'jobpulse_job_success_ratio{{{jl},window="{window}"}} {_fmt(success)}\n',
                )
            if miss is not None:
                put(
                    "jobpulse_job_miss_ratio",
                    f'jobpulse_job_miss_ratio{{{jl},window="{window}"}} {_fmt(miss)}\n',
                )
        return ["".join(lines).encode() for lines in chunks]

    def render(self) -> bytes:
        """The per-job families, each under one header."""
        entries = list(self._entries.values())
        out: list[bytes] = []
        for i, header in enumerate(_HEADERS):
            out.append(header)
            out.extend(e.chunks[i] for e in entries)
        return b"".join(out)

    def states(self) -> dict[str, int]:
        counts = dict.fromkeys(STATES, 0)
        for entry in self._entries.values():
            counts[entry.state] = counts.get(entry.state, 0) + 1
        return counts
