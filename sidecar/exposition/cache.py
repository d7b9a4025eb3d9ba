"""Per-job Prometheus exposition, cached: only jobs that changed are re-rendered.

The text of every job's samples is kept as one bytes object, family by family under one
HELP/TYPE header each (:mod:`.exposition_text`); a scrape after a few jobs changed splices
their new lines in, and one where nothing changed returns the cached text as it is. Jobs are
re-read from the store when their ``changed_at`` is recent (a margin covers commit delays and
replica clock differences), and all ratios are recomputed when the clock crosses an hour (their
windows are whole hours). Rows are read as plain tuples, a few hundred at a time, so a full
refresh never holds the whole fleet as ORM objects. Number formatting is prometheus_client's;
tests parse the output with its parser.

OpenMetrics differs in the counter families' headers and in the lines that carry exemplars
(:mod:`.exemplars`): the runs and histogram lines of jobs with an exemplar for them. The cached
text keeps those jobs' lines in a headless section after the others' (so the text format's
answer is one contiguous object, as before), a second, smaller text holds the same lines with
their exemplars, and an OpenMetrics answer is slices of the two with the headers swapped.
"""

from __future__ import annotations

import json
import threading
from collections import namedtuple
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, cast

from prometheus_client.utils import floatToGoString
from sqlalchemy import JSON, Text, and_, bindparam, case, func, select, type_coerce
from sqlalchemy import inspect as sa_inspect

from ..domain.engine import OUTCOMES, STATES
from ..domain.rollup import WINDOWS, hour_of, window_start
from ..domain.tables import Job, Rollup, Slot
from .exemplars import Exemplars, Latest
from .text import ExpositionText

if TYPE_CHECKING:
    from ..domain.clock import Clock
    from ..domain.engine import Engine
    from ..store.database import Store

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
    # Last, so the section indexes above (_RUNS_AT, _HIST_AT) stay as they are.
    (
        "jobpulse_job_slow_runs",
        "counter",
        "Finished runs slower than the job's anomaly factor times its p95 duration.",
    ),
    ("jobpulse_job_in_maintenance", "gauge", "1 while a maintenance window holds the job."),
    (
        "jobpulse_job_created_timestamp_seconds",
        "gauge",
        "When the job was created: its counters started at 0 then.",
    ),
    (
        "jobpulse_job_skipped_runs",
        "counter",
        "Slots recorded skipped, by reason: maintenance, or upstream (a job it runs after failed).",
    ),
)
# Text format 0.0.4 names a counter family by its sample name, with _total; OpenMetrics by
# its name.
_HEADERS = [
    f"# HELP {name}{'_total' if kind == 'counter' else ''} {help_}\n"
    f"# TYPE {name}{'_total' if kind == 'counter' else ''} {kind}\n".encode()
    for name, kind, help_ in FAMILIES
]
_OM_HEADERS = [
    f"# HELP {name} {help_}\n# TYPE {name} {kind}\n".encode() for name, kind, help_ in FAMILIES
]
# The cached text's sections: the families, the runs and histogram ones each in two parts, the
# jobs with no exemplar for it, then (headless) the plain lines of those with one, whose lines
# with exemplars the OpenMetrics text holds instead (``_OM_SECTIONS``).
_RUNS_AT = 1
_HIST_AT = 4
_SECTION_HEADERS = [
    *_HEADERS[: _RUNS_AT + 1],
    b"",
    *_HEADERS[_RUNS_AT + 1 : _HIST_AT + 1],
    b"",
    *_HEADERS[_HIST_AT + 1 :],
]
_S_RUNS, _S_RUNS_EX, _S_HIST_EX = _RUNS_AT, _RUNS_AT + 1, _HIST_AT + 2
_OM_SECTIONS = [b"", b""]  # runs, histogram: the lines of jobs with exemplars
REFRESH_MARGIN = 15.0
_RATIO_FIELDS = ("success", "failure", "timeout", "cancelled", "missed", "due")


def escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


_INT_TEXT: dict[int, str] = {}
_LE_TEXT: dict[tuple[float, ...], tuple[str, ...]] = {}
_HIST = "jobpulse_job_run_duration_seconds"
_GAUGES = (
    "jobpulse_job_last_success_timestamp_seconds",
    "jobpulse_job_last_failure_timestamp_seconds",
    "jobpulse_job_last_run_start_timestamp_seconds",
    "jobpulse_job_last_run_duration_seconds",
    "jobpulse_job_next_expected_run_timestamp_seconds",
    "jobpulse_job_expected_interval_seconds",
    "jobpulse_job_running",
    "jobpulse_job_oldest_running_start_timestamp_seconds",
)
# The jobs table as the refresh reads it: plain tuples whose attributes are Job's (a Core
# row's attribute access goes through Python code; a namedtuple's is C). On SQLite, JSON columns
# are read as text and each distinct text is parsed once per refresh: a fleet shares a few
# configurations, and jobs with equal ones then share one parsed object. (PostgreSQL's driver
# decodes JSON itself.)
_ATTRS = [(attr.key, attr.columns[0]) for attr in sa_inspect(Job).column_attrs]
_COLUMNS = [column for _, column in _ATTRS]
_COLUMNS_JSON_TEXT = [
    type_coerce(column, Text).label(key) if isinstance(column.type, JSON) else column
    for key, column in _ATTRS
]
_JobRow = namedtuple("_JobRow", [key for key, _ in _ATTRS])  # type: ignore[misc]
_JSON_AT = tuple(i for i, column in enumerate(_COLUMNS) if isinstance(column.type, JSON))


def _job_row(row: Any, parsed: dict[str, Any] | None) -> Job:
    """``row`` as a _JobRow; ``parsed``: JSON texts already parsed, when JSON comes as text."""
    if parsed is None:
        return cast(Job, _JobRow._make(row))
    values = list(row)
    for i in _JSON_AT:
        text = values[i]
        if text is not None:
            value = parsed.get(text)
            if value is None:
                value = parsed[text] = json.loads(text)
            values[i] = value
    # It has every attribute of Job that is read here and by the engine.
    return cast(Job, _JobRow._make(values))


# Label tails of the runs and state families, built once.
_RUNS = tuple((f',outcome="{outcome}"}} ', f"runs_{outcome}") for outcome in OUTCOMES)
_FAILURE = OUTCOMES.index("failure")
_TIMEOUT = OUTCOMES.index("timeout")
_STATE = tuple((state, f',state="{state}"}} 1\n', f',state="{state}"}} 0\n') for state in STATES)
_LIVE_IDS = select(Job.id).where(Job.removed.is_(False))
_FILLED = select(Slot.job_id).join(Job, and_(Slot.job_id == Job.id, Slot.slot == Job.cursor))
_FILLED_SOME = _FILLED.where(Job.id.in_(bindparam("ids", expanding=True)))
# Rows read per batch on a refresh (and ids per IN list in the per-batch queries).
BATCH = 500


def _fmt(value: float) -> str:
    if type(value) is int:
        # Counts repeat across jobs (histogram buckets above all): format each once.
        cached = _INT_TEXT.get(value)
        if cached is not None:
            return cached
        text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
        if len(_INT_TEXT) < 100_000:
            _INT_TEXT[value] = text
        return text
    text = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


def _le_labels(buckets: tuple[float, ...]) -> tuple[str, ...]:
    """``,le="<bound>"} `` for each bucket bound and +Inf, once per set of buckets."""
    labels = _LE_TEXT.get(buckets)
    if labels is None:
        labels = tuple(f',le="{_fmt(bound)}"}} ' for bound in (*buckets, float("inf")))
        if 0 not in buckets:  # equal keys format alike, except 0.0 and -0.0
            if len(_LE_TEXT) > 1024:
                _LE_TEXT.clear()
            _LE_TEXT[buckets] = labels
    return labels


class Host(Protocol):
    """What the cache reads of the sidecar it serves (the service's ``Sidecar``): named by
    shape, so the exposition does not import the layer above it."""

    @property
    def clock(self) -> Clock: ...
    @property
    def store(self) -> Store: ...
    @property
    def engine(self) -> Engine: ...


class MetricsCache:
    def __init__(self, sidecar: Host) -> None:
        self._sidecar = sidecar
        self._text = ExpositionText(_SECTION_HEADERS)
        self._om = ExpositionText(_OM_SECTIONS)  # the lines with exemplars
        self._latest = Latest()
        # What render(), render_openmetrics() and states() return: replaced whole at the end
        # of a refresh, so the event loop can read them while a refresh runs in a worker thread.
        self._body = self._text.body
        self._om_pieces = self._openmetrics()
        self._states = self._text.state_counts(STATES)
        self._watermark: float | None = None
        self._refreshed: float | None = None  # when the last refresh read (not reset)
        self._hour: int | None = None
        self._intervals: dict[tuple[Any, ...], float | None] = {}
        self._lock = threading.Lock()  # one refresh at a time
        self._mark = threading.Lock()  # invalidations against the watermark
        self._invalidations = 0
        self._ratio_sql: tuple[int, Any, Any] | None = None

    def invalidate(self) -> None:
        with self._mark:  # a refresh running now does not make it stale
            self._invalidations += 1
            self._watermark = None

    # ---------------------------------------------------------------- refresh
    def refresh(self) -> None:
        with self._lock:
            self._refresh()

    def _refresh(self) -> None:
        sc = self._sidecar
        with self._mark:
            seen = self._invalidations
            watermark = self._watermark
        now = sc.clock.now()
        full = watermark is None or self._hour != hour_of(now)
        with sc.store.session() as session:
            # Every column, as select(Job) would read them (same table, same filter, same row
            # order), as plain tuples: no ORM objects to build and then free.
            text_json = sc.store.is_sqlite
            query = select(*(_COLUMNS_JSON_TEXT if text_json else _COLUMNS))
            if full:
                # Streamed (a server-side cursor on PostgreSQL), a batch at a time. Only the
                # unfiltered read: a cursor's fast-start planning could change the row order
                # of a filtered one, and new jobs are placed in that order.
                query = query.execution_options(yield_per=BATCH)
            else:
                assert watermark is not None
                query = query.where(Job.changed_at >= watermark - REFRESH_MARGIN)
            result = session.execute(query)
            jobs = self._rendered(session, result, now, text_json=text_json)
            om_changed: list[tuple[int, str, list[bytes]]] = []
            om_gone: list[int] = []
            if full:
                text = ExpositionText(_SECTION_HEADERS)
                om = ExpositionText(_OM_SECTIONS)

                def live() -> Iterator[tuple[int, str, list[bytes]]]:
                    for job_id, state, chunks, om_chunks in jobs:
                        if chunks is not None:
                            if om_chunks is not None:
                                om_changed.append((job_id, state, om_chunks))
                            yield job_id, state, chunks

                text.build(live())
                om.build(om_changed)
                self._latest.keep(set(text.ids()))
            else:
                text = self._text
                om = self._om
                changed = []
                gone = []
                for job_id, state, chunks, om_chunks in jobs:
                    if chunks is None:
                        gone.append(job_id)
                    else:
                        changed.append((job_id, state, chunks))
                        if om_chunks is None:
                            om_gone.append(job_id)
                        else:
                            om_changed.append((job_id, state, om_chunks))
                if len(text) > 0 or changed:
                    # Drop jobs deleted since the last scrape (cheap: ids only, read through
                    # Core, without the ORM's per-row work).
                    live_ids = set(session.connection().execute(_LIVE_IDS).scalars())
                    gone += [job_id for job_id in text.ids() if job_id not in live_ids]
                    gone += [job_id for job_id, _, _ in changed if job_id not in live_ids]
                self._latest.forget(gone)
                try:
                    text.update(changed, gone)
                    om.update(om_changed, om_gone + gone)
                except BaseException:
                    self._watermark = None  # the index may be half-updated: rebuild it next
                    raise
        self._text = text
        self._om = om
        self._body = text.body
        self._om_pieces = self._openmetrics()
        self._states = text.state_counts(STATES)
        with self._mark:
            if self._invalidations == seen:
                self._watermark = now
        self._refreshed = now
        self._hour = hour_of(now)

    def _rendered(
        self, session: Any, result: Any, now: float, *, text_json: bool
    ) -> Iterator[tuple[int, str, list[bytes] | None, list[bytes] | None]]:
        """(id, state, chunks, OpenMetrics chunks) per row of ``result``: chunks None for a
        removed job, OpenMetrics chunks None for a job without exemplars; ratios, filled
        cursors and exemplars are read per batch of rows."""
        parsed: dict[str, Any] | None = {} if text_json else None
        recent = None if self._refreshed is None else self._refreshed - REFRESH_MARGIN
        for rows in result.partitions(BATCH):
            if parsed is not None and len(parsed) > 4096:
                parsed.clear()
            jobs = [_job_row(row, parsed) for row in rows]
            ids = [job.id for job in jobs]
            ratios = self.ratios(session, ids, now)
            filled = self.filled_cursors(session, ids)
            exemplars = self._latest.read(session, [job for job in jobs if not job.removed], recent)
            for job in jobs:
                if job.removed:
                    yield job.id, job.state, None, None
                    continue
                nxt = self.next_expected(session, job, filled=job.id in filled)
                chunks, om_chunks = self._render(
                    job, ratios.get(job.id), nxt, now, exemplars.get(job.id)
                )
                yield job.id, job.state, chunks, om_chunks

    def _ratio_queries(self, now: float) -> tuple[Any, Any]:
        """The grouped rollup query for all jobs and for a list of ids (bound as ``ids``):
        built once per hour, since the windows are whole hours."""
        hour = hour_of(now)
        cached = self._ratio_sql
        if cached is not None and cached[0] == hour:
            return cached[1], cached[2]
        cols = []
        for window in WINDOWS:
            start = window_start(window, now)
            for name in _RATIO_FIELDS:
                col = getattr(Rollup, name)
                cols.append(func.sum(case((Rollup.hour >= start, col), else_=0)))
        oldest = window_start("30d", now)
        every = select(Rollup.job_id, *cols).where(Rollup.hour >= oldest).group_by(Rollup.job_id)
        some = every.where(Rollup.job_id.in_(bindparam("ids", expanding=True)))
        self._ratio_sql = (hour, every, some)
        return every, some

    def ratios(self, session: Any, ids: list[int] | None, now: float) -> dict[int, dict[str, Any]]:
        """(success ratio, miss ratio) per window for ``ids`` (all jobs: None), from rollups in
        one grouped query per 500 jobs; a window with nothing in it gives None."""
        every, some = self._ratio_queries(now)
        out: dict[int, dict[str, Any]] = {}
        chunks: list[list[int] | None] = (
            [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
        )
        for chunk in chunks:
            if chunk == []:
                continue
            rows = (
                session.execute(every) if chunk is None else session.execute(some, {"ids": chunk})
            )
            for row in rows:
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
        if ids is None:
            return set(session.scalars(_FILLED))
        out: set[int] = set()
        for i in range(0, len(ids), 500):
            out.update(session.scalars(_FILLED_SOME, {"ids": ids[i : i + 500]}))
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
        self,
        job: Job,
        ratios: dict[str, Any] | None,
        next_expected: float | None,
        now: float,
        exemplars: Exemplars | None = None,
    ) -> tuple[list[bytes], list[bytes] | None]:
        """One bytes chunk per section (``_SECTION_HEADERS``) with the job's lines, and the
        runs and histogram lines with exemplars (None: the job has none)."""
        fmt = _fmt
        cfg = self._sidecar.engine.config(job)
        jl = f'job_name="{escape_label(job.name)}"'
        info = [
            jl,
            f'schedule="{escape_label(cfg.schedule.text)}"',
            f'timezone="{escape_label(cfg.schedule.timezone)}"',
        ]
        info += [f'{k}="{escape_label(v)}"' for k, v in sorted(cfg.labels.items())]
        runs = [
            f"jobpulse_job_runs_total{{{jl}{outcome}{fmt(getattr(job, attr))}"
            for outcome, attr in _RUNS
        ]
        out = [
            f"jobpulse_job_info{{{','.join(info)}}} 1\n".encode(),
            "".join([line + "\n" for line in runs]).encode(),
            b"",
            f"jobpulse_job_missed_runs_total{{{jl}}} {fmt(job.missed_total)}\n".encode(),
            f"jobpulse_job_overlapping_runs_total{{{jl}}} {fmt(job.overlap_total)}\n".encode(),
        ]
        om: list[bytes] | None = None
        if exemplars is not None:
            om = [b"", b""]
            if exemplars.failure is not None or exemplars.timeout is not None:
                # Lines in _RUNS order: success, failure, timeout, ...
                runs[_FAILURE] += exemplars.failure or ""
                runs[_TIMEOUT] += exemplars.timeout or ""
                om[0] = "".join([line + "\n" for line in runs]).encode()
                out[_S_RUNS_EX], out[_S_RUNS] = out[_S_RUNS], b""
        counts = list(job.duration_buckets or [])
        if len(counts) != len(cfg.buckets) + 1:
            counts = [0] * (len(cfg.buckets) + 1)
        cumulative = 0
        bucket = f"{_HIST}_bucket{{{jl}"
        lines = []
        for le, n in zip(_le_labels(cfg.buckets), counts, strict=True):
            cumulative += n
            lines.append(f"{bucket}{le}{fmt(cumulative)}\n")
        lines.append(f"{_HIST}_count{{{jl}}} {fmt(job.duration_count)}\n")
        lines.append(f"{_HIST}_sum{{{jl}}} {fmt(job.duration_sum)}\n")
        plain = "".join(lines).encode()
        if om is not None and exemplars is not None and exemplars.duration is not None:
            duration, suffix = exemplars.duration
            # The bucket the duration was counted in, as the domain counts it.
            at = next((i for i, b in enumerate(cfg.buckets) if duration <= b), len(cfg.buckets))
            lines[at] = lines[at][:-1] + suffix + "\n"
            om[1] = "".join(lines).encode()
            out += (b"", plain)
        else:
            out += (plain, b"")
        gauges: tuple[float | None, ...] = (
            job.last_success_at,
            job.last_failure_at,
            job.last_start_at,
            job.last_duration,
            next_expected,
            self._interval(job, cfg, now),
            float(job.running),
            job.oldest_running_start,
        )
        for family, value in zip(_GAUGES, gauges, strict=True):
            out.append(b"" if value is None else f"{family}{{{jl}}} {fmt(value)}\n".encode())
        state = job.state
        out.append(
            "".join(
                [f"jobpulse_job_state{{{jl}{on if state == s else off}" for s, on, off in _STATE]
            ).encode()
        )
        streak = float(job.bad_streak)
        out.append(f"jobpulse_job_consecutive_failures{{{jl}}} {fmt(streak)}\n".encode())
        success_lines = []
        miss_lines = []
        for window, (success, miss) in (ratios or {}).items():
            if success is not None:
                success_lines.append(
                    f'jobpulse_job_success_ratio{{{jl},window="{window}"}} {fmt(success)}\n'
                )
            if miss is not None:
                miss_lines.append(
                    f'jobpulse_job_miss_ratio{{{jl},window="{window}"}} {fmt(miss)}\n'
                )
        out.append("".join(success_lines).encode())
        out.append("".join(miss_lines).encode())
        out.append(f"jobpulse_job_slow_runs_total{{{jl}}} {fmt(job.slow_total)}\n".encode())
        held = 1 if job.in_maintenance else 0
        out.append(f"jobpulse_job_in_maintenance{{{jl}}} {held}\n".encode())
        out.append(
            f"jobpulse_job_created_timestamp_seconds{{{jl}}} {fmt(job.created_at)}\n".encode()
        )
        out.append(
            (
                f'jobpulse_job_skipped_runs_total{{{jl},reason="maintenance"}} '
                f"{fmt(job.skipped_maintenance)}\n"
                f'jobpulse_job_skipped_runs_total{{{jl},reason="upstream"}} '
                f"{fmt(job.skipped_upstream)}\n"
            ).encode()
        )
        return out, (om if om is not None and any(om) else None)

    def render(self) -> bytes:
        """The per-job families, each under one header."""
        return self._body

    def render_openmetrics(self) -> tuple[bytes | memoryview, ...]:
        """The per-job families in OpenMetrics, with exemplars, as pieces to send in order
        (slices of the cached texts; no ``# EOF``, the sidecar's own metrics come after)."""
        return self._om_pieces

    def _openmetrics(self) -> tuple[bytes | memoryview, ...]:
        """The OpenMetrics pieces of the current texts: the cached text with the counter
        families' headers swapped, and the lines of jobs with exemplars taken from the
        OpenMetrics text instead of the cached one."""
        body = memoryview(self._text.body)
        om = memoryview(self._om.body)
        spans = self._text.spans()
        om_spans = self._om.spans()
        pieces: list[bytes | memoryview] = []
        at = 0  # the start of the cached text not yet taken
        family = 0
        for section, (start, end) in enumerate(spans):
            if section in (_S_RUNS_EX, _S_HIST_EX):
                if start > at:
                    pieces.append(body[at:start])
                begin, stop = om_spans[0 if section == _S_RUNS_EX else 1]
                if stop > begin:
                    pieces.append(om[begin:stop])
                at = end
                continue
            header = _SECTION_HEADERS[section]
            if _OM_HEADERS[family] != header:
                if start - len(header) > at:
                    pieces.append(body[at : start - len(header)])
                pieces.append(_OM_HEADERS[family])
                at = start
            family += 1
        if len(body) > at:
            pieces.append(body[at:])
        return tuple(pieces)

    def states(self) -> dict[str, int]:
        return dict(self._states)
