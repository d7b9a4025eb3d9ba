"""The webhook signature: ``X-Jobpulse-Signature: t=<unix seconds>,v1=<hex>``, where the hex is
HMAC-SHA256 with the receiver's secret over ``"<t>." + body`` (Stripe's scheme). The timestamp
is the attempt's, so a receiver can refuse a captured request replayed later (docs/api.md shows
the check); a redelivery is signed anew and carries the same ``Idempotency-Key``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

__all__ = ["SIGNATURE_HEADER", "sign"]

SIGNATURE_HEADER: Final = "X-Jobpulse-Signature"


def sign(secret: str, body: bytes, t: int) -> str:
    """The signature header's value for ``body`` sent at unix time ``t``."""
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"
