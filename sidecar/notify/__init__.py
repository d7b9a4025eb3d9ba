"""Notifications from the sidecar itself: job state flips pushed to Alertmanager's v2 API and
to signed webhooks, from the durable outbox (``store/outbox.py``), for teams without
Prometheus or as a second path beside the generated rules (docs/concepts.md)."""

from __future__ import annotations

from .sender import OUTCOMES, Notifier
from .signing import SIGNATURE_HEADER, sign

__all__ = ["OUTCOMES", "SIGNATURE_HEADER", "Notifier", "sign"]
