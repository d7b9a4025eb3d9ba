"""One run of a job: its handle for the job's code and its start/finish lifecycle.

A :class:`Run` is created per call, so overlapping runs never share state. Entering it sends
``start`` and opens the span; leaving it sends ``success``, ``failure`` or ``cancelled`` and
ends the span. Every instrumentation step is guarded: trouble is counted and logged once, and
the job's own exception always propagates untouched.

Outcomes at exit:

- no exception → ``success`` (``failure`` if :meth:`Run.fail` was called);
- ``SystemExit`` with code 0/None → ``success``, any other code → ``failure`` with that code;
- ``asyncio.CancelledError``, ``KeyboardInterrupt`` and ``GeneratorExit`` (a generator closed
  before it was exhausted) → ``cancelled``: the job was stopped, it did not fail;
- any other exception → ``failure`` with ``error_type`` = its class name, or a failure with
  ``will_retry`` (a retried attempt, counted as ``retry`` in metrics) when the caller says so.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from ._ids import current_pid, new_run_id
from ._job import JobContext
from .wire import DEFAULT_LIMITS, TRUNCATION_MARKER

__all__ = ["Run"]

_CANCELLED: Final = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)


def truncate(text: str, limit: int) -> str:
    raw = text.encode("utf-8")
    if len(raw) <= limit:
        return text
    cut = raw[: limit - len(TRUNCATION_MARKER.encode())].decode("utf-8", "ignore")
    return cut + TRUNCATION_MARKER


def _epoch(value: float | datetime | None) -> float | None:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return value


class Run:
    """A run of a monitored job, as seen from inside it (``with monitor(...) as run``)."""

    # Defaults of the per-run state, on the class: a run sets on itself only what it changes,
    # which keeps creating a run (once per call of a decorated function) cheap.
    _span: Span | None = None
    _token: object = None
    _started = 0.0
    _mono = 0.0
    _trace_id: str | None = None  # with _span_id: the span's ids when its context is valid
    _span_id: str | None = None
    _count: int | None = None
    _metadata: dict[str, Any] | None = None
    _exit_code: int | None = None
    _failed: tuple[str, str | None] | None = None
    _log: str | None = None

    def __init__(
        self,
        job: JobContext,
        *,
        function: str | None = None,
        run_id: str | None = None,
        attempt: int | None = None,
        will_retry: bool = False,
        scheduled_for: float | datetime | None = None,
    ) -> None:
        self.job = job.name
        self.run_id = run_id or new_run_id()
        self.attempt = attempt
        self.will_retry = will_retry
        self.scheduled_for = None if scheduled_for is None else _epoch(scheduled_for)
        self._ctx = job
        self._function = function
        self._state = "new"

    # -- the handle --------------------------------------------------------------------------

    def progress(self, message: str | None = None, count: int | None = None) -> None:
        """Send a ``progress`` heartbeat (keeps a long run from going stale)."""
        try:
            if count is not None:
                self._count = count
            text = None if message is None else truncate(str(message), DEFAULT_LIMITS.message_bytes)
            self._emit("progress", self._ctx.clock(), message=text, count=self._count)
        except Exception as exc:
            self._ctx.report("sending progress", exc)

    def set_count(self, n: int) -> None:
        """Items processed; reported on the finish event."""
        self._count = n

    def set_metadata(self, **kv: Any) -> None:
        """Key/values reported on the finish event (JSON, at most 8 KiB in all)."""
        if self._metadata is None:
            self._metadata = {}
        self._metadata.update(kv)

    def set_exit_code(self, code: int) -> None:
        """The process exit status to report (0-255)."""
        self._exit_code = code

    def set_log(self, text: str) -> None:
        """Output to keep as the run's log (its end, within 10 KiB); sent with the finish."""
        raw = str(text).encode("utf-8")
        limit = DEFAULT_LIMITS.message_bytes
        self._log = raw[-limit:].decode("utf-8", "ignore") if len(raw) > limit else str(text)

    def fail(self, reason: str, *, error_type: str | None = None) -> None:
        """Mark the run failed without raising; ``reason`` becomes its error message."""
        self._failed = (str(reason), error_type)

    # -- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> Run:
        self.begin()
        self.activate()
        return self

    def __exit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.deactivate()
        self.end(exc)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self, typ: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(typ, exc, tb)

    def begin(self) -> None:
        if self._state != "new":
            self._ctx.report("starting", RuntimeError(f"run {self.run_id} entered twice"))
            return
        self._state = "running"
        ctx = self._ctx
        self._mono = ctx.monotonic()
        self._started = started = ctx.clock()
        try:
            self._span = span = ctx.telemetry.start_span(
                run_id=self.run_id,
                start=started,
                scheduled_for=self.scheduled_for,
                function=self._function,
            )
            sc = span.get_span_context()
            if sc.is_valid:
                self._trace_id = format(sc.trace_id, "032x")
                self._span_id = format(sc.span_id, "016x")
        except Exception as exc:
            ctx.report("starting the span", exc)
        try:
            self._emit("start", started, job_config=ctx.take_config())
        except Exception as exc:
            ctx.report("sending start", exc)

    def activate(self) -> None:
        """Make the run's span current (until :meth:`deactivate`). A span with no valid
        context (no OpenTelemetry SDK configured) would change nothing for the job's code."""
        if self._span is None or self._token is not None or self._trace_id is None:
            return
        try:
            self._token = otel_context.attach(trace.set_span_in_context(self._span))
        except Exception as exc:
            self._ctx.report("activating the span", exc)

    def deactivate(self) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)  # type: ignore[arg-type]
            except Exception as exc:
                self._ctx.report("deactivating the span", exc)

    def end(self, exc: BaseException | None) -> None:
        if self._state != "running":
            return
        self._state = "finished"
        ctx = self._ctx
        try:
            duration = max(0.0, ctx.monotonic() - self._mono)
            outcome, etype, message, exit_code = self._classify(exc)
            wire_type = "failure" if outcome == "retry" else outcome
            ctx.telemetry.finish(
                self._span,
                outcome=outcome,
                error_type=etype,
                exc=exc,
                duration=duration,
                end=self._started + duration,
            )
            self._emit(
                wire_type,
                ctx.clock(),
                duration=duration,
                will_retry=outcome == "retry",
                error_type=etype[:128] if etype else None,
                error_message=truncate(message, DEFAULT_LIMITS.error_message_bytes)
                if message
                else None,
                exit_code=exit_code,
                count=self._count,
                metadata=self._checked_metadata(),
                message=self._log or None,
            )
        except Exception as err:
            ctx.report("finishing", err)

    def _classify(
        self, exc: BaseException | None
    ) -> tuple[str, str | None, str | None, int | None]:
        code = self._exit_code
        if isinstance(exc, SystemExit):
            status = exc.code
            if status is None or status == 0:
                exc = None
                code = 0
            else:
                code = status if isinstance(status, int) and 0 <= status <= 255 else 1
        if exc is None:
            if self._failed is not None:
                reason, failed_type = self._failed
                return ("retry" if self.will_retry else "failure"), failed_type, reason, code
            return "success" if code in (None, 0) else "failure", None, None, code
        etype = type(exc).__name__
        if isinstance(exc, _CANCELLED):
            return "cancelled", etype, str(exc) or None, code
        try:
            message = str(exc) or etype
        except Exception:
            message = etype
        return ("retry" if self.will_retry else "failure"), etype, message, code

    def _checked_metadata(self) -> dict[str, Any] | None:
        if not self._metadata:
            return None
        text = json.dumps(self._metadata, default=str, separators=(",", ":"))
        if len(text.encode()) > DEFAULT_LIMITS.metadata_bytes:
            self._ctx.report(
                "encoding metadata",
                ValueError(f"run metadata is {len(text.encode())} bytes, over 8 KiB; not sent"),
            )
            return None
        loaded: dict[str, Any] = json.loads(text)
        return loaded

    def _emit(
        self,
        type_: str,
        ts: float,
        *,
        will_retry: bool = False,
        duration: float | None = None,
        exit_code: int | None = None,
        error_type: str | None = None,
        error_message: str | None = None,
        count: int | None = None,
        metadata: dict[str, Any] | None = None,
        job_config: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        ctx = self._ctx
        # The event's fields in wire.EVENT_FIELDS order (sent_at and reason are not a run's).
        ctx.emit(
            (
                type_,
                self.job,
                self.run_id,
                ts,
                self.scheduled_for,
                self.attempt,
                will_retry,
                duration,
                exit_code,
                error_type,
                error_message,
                count,
                ctx.host,
                current_pid(),
                self._trace_id,
                self._span_id,
                metadata,
                None,
                None,
                job_config,
                message,
            )
        )
