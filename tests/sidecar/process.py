"""Run `jobpulse serve` as a real process on an ephemeral port (the shipped test helper)."""

from __future__ import annotations

from jobpulse.sidecar.testing import JOBPULSE
from jobpulse.sidecar.testing import ServedSidecar as Served

__all__ = ["JOBPULSE", "Served"]
