"""States and flips: a job's state changes, each recorded as a flip on its timeline; conditions
(stale, silent, overlap) that take a job down at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .maintained import Maintained
from .tables import FlipRecord, Job

if TYPE_CHECKING:
    from .transaction import Tx

__all__ = ["States", "flip_state"]


def flip_state(state: str) -> str:
    """The state a flip records: ``late`` is ``up`` on the timeline."""
    return "up" if state == "late" else state


class States(Maintained):
    def _set_state(self, tx: Tx, job: Job, state: str, reason: str | None, at: float) -> None:
        """Move ``job`` to ``state`` for ``reason``. A flip is recorded when the state on the
        timeline changes, and when it stays the same for a new reason (``down: failed`` then
        ``down: missed``), so the timeline says why the job is still down. ``state_since`` is
        the time of the latest flip: when the current state, and its reason, began."""
        before, after = flip_state(job.state), flip_state(state)
        if before != after or reason != job.reason:
            # Flips are a timeline: never stamped before the previous one (a catch-up judges
            # deadlines that passed before a state change it already recorded).
            at = max(at, job.state_since)
            tx.add_flip(FlipRecord(job.id, at, before, after, reason))
            job.state_since = at
        # Set only what changes: an ORM attribute set costs several times its read, and a job
        # left unchanged is left out of the flush.
        if job.state != state:
            job.state = state
        if job.reason != reason:
            job.reason = reason

    def _condition(self, tx: Tx, job: Job, reason: str, at: float) -> None:
        """Stale, silent, overlap: down at once, whatever the threshold (not in a maintenance
        window: stale and silent are judged when it closes, an overlap only counted)."""
        if self._maintained(tx, job, at):
            return
        job.good_streak = 0
        if job.state != "paused":
            self._set_state(tx, job, "down", reason, at)
