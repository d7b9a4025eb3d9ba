"""What an open maintenance window does to the jobs it holds (see :mod:`.maintenance` for
when a window is open):

- a slot is **skipped** (a ``slots`` row with status ``skipped``, reason ``maintenance``;
  neither missed nor due) when a window is open at any instant of ``[slot, slot + grace]``:
  a slot already late when a window opens is skipped, and so is one whose deadline passes in
  a window. A run that arrives in time still fills its slot as usual;
- a bad outcome that happens in a window (a failure finishing in it, a run whose
  ``max_runtime`` ends in it) is recorded and counted, but moves neither streak: it does not
  count toward ``failure_threshold`` and does not take the job down;
- a condition (``stale``, ``silent``) that would begin in a window is judged when the window
  closes, if it still holds then; an overlap in a window is counted and takes nothing down;
- ``in_maintenance`` on the job row says whether a window holds it now, for ``/metrics``;
  the openings and closings are part of the job's ``next_deadline``, so it is kept current.

The windows are the configuration file's (handed over by the service) and those created
through the admin API (read from the store once per transaction, so every replica judges with
the same ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .base import EngineBase, EngineSettings
from .jobconfig import JobConfig
from .maintenance import Window, is_open, next_change, open_until, overlapping
from .tables import Job, Slot, loaded, new_row

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = ["MAINTENANCE", "Maintained"]

MAINTENANCE = "maintenance"  # the reason of a slot skipped in a window


class Maintained(EngineBase):
    def __init__(self, settings: EngineSettings | None = None, *, judge_from: float = 0.0) -> None:
        super().__init__(settings, judge_from=judge_from)
        self.windows: tuple[Window, ...] = ()
        # job id -> (its configuration, the file's windows, those of them that hold it)
        self._holding: dict[int, tuple[JobConfig, tuple[Window, ...], tuple[Window, ...]]] = {}

    def set_windows(self, windows: Sequence[Window]) -> None:
        """The configuration file's windows (replaced on every load)."""
        self.windows = tuple(windows)
        self._holding.clear()  # entries for the old windows would never be read again

    def windows_for(self, tx: Tx, job: Job) -> list[Window]:
        """The windows that hold ``job``: the file's, then the API's."""
        api = tx.maintenance_windows()
        if not self.windows and not api:
            return []  # no window at all (the usual case): asked for every event applied
        cfg = self.config(job)
        held: list[Window] = []
        if self.windows:  # no file windows (the usual case): nothing cached per job
            cached = self._holding.get(job.id)
            if cached is None or cached[0] is not cfg or cached[1] is not self.windows:
                mine = tuple(w for w in self.windows if w.holds(job.name, cfg.labels))
                cached = (cfg, self.windows, mine)
                self._holding[job.id] = cached
            held += cached[2]
        held += [w for w in api if w.holds(job.name, cfg.labels)]
        return held

    def _maintained(self, tx: Tx, job: Job, at: float) -> bool:
        """A window holding ``job`` is open at ``at``."""
        return is_open(self.windows_for(tx, job), at)

    def _after_maintenance(self, tx: Tx, job: Job, at: float) -> float:
        """``at``, or when the windows holding the job that are open at ``at`` close."""
        windows = self.windows_for(tx, job)
        return open_until(windows, at) if windows else at

    def _slot_in_maintenance(
        self, tx: Tx, job: Job, cfg: JobConfig, slot: float, until: float | None = None
    ) -> bool:
        """A window holding the job is open at some instant of ``[slot, slot + grace]``
        (``until``: the slot's deadline where the job's schedule does not give it, as for the
        tick of a job that runs after another)."""
        windows = self.windows_for(tx, job)
        if not windows:
            return False
        return overlapping(windows, slot, slot + cfg.grace_at(slot) if until is None else until)

    def _skip_in_maintenance(
        self, tx: Tx, job: Job, cfg: JobConfig, slot: float, at: float
    ) -> bool:
        """Record ``slot`` (its deadline passed at ``at``) skipped when it is in a maintenance
        window; False (nothing recorded) otherwise."""
        until = None if cfg.scheduled else at
        if not self._slot_in_maintenance(tx, job, cfg, slot, until):
            return False
        self._record_skipped(tx, job, slot, MAINTENANCE, at)
        return True

    def _record_skipped(
        self, tx: Tx, job: Job, slot: float, reason: str, at: float, upstream: str | None = None
    ) -> None:
        """A ``skipped`` slot (``maintenance``, or ``upstream`` naming that job): neither
        missed nor due; counted on the job by reason."""
        self._count_skipped(job, reason)
        tx.add_slot(
            new_row(
                Slot,
                {
                    "job_id": job.id,
                    "slot": slot,
                    "status": "skipped",
                    "run_id": None,
                    "count": 1,
                    "reason": reason,
                    "upstream": upstream,
                    "recorded_at": at,
                },
            )
        )
        job.changed_at = max(job.changed_at, at)

    @staticmethod
    def _count_skipped(job: Job, reason: str) -> None:
        """One more slot skipped for ``reason`` (``jobpulse_job_skipped_runs_total``). A skip
        that is later replaced (its upstream succeeded late for that tick) stays counted: the
        counter counts the decisions, as they were made."""
        if reason == MAINTENANCE:
            job.skipped_maintenance += 1
        else:
            job.skipped_upstream += 1

    def _refresh_maintenance(self, tx: Tx, job: Job, now: float) -> float | None:
        """Set ``job.in_maintenance`` as of ``now``; the next instant it may change."""
        windows = self.windows_for(tx, job)
        held = is_open(windows, now) if windows else False
        if bool(loaded(job)["in_maintenance"]) != held:
            job.in_maintenance = held
            job.changed_at = max(job.changed_at, now)
        return next_change(windows, now) if windows else None
