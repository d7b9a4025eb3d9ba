"""JSON at orjson's speed, with the stdlib for what orjson refuses.

orjson refuses NaN and infinities as literals, lone surrogates, and integers past 64 bits,
all of which the stdlib reads and writes. Falling back to the stdlib keeps every input's
answer what it was before orjson: the wire's values reach validation as before, and an inbox
row's body round-trips whatever its fields hold.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["dumps", "loads"]

# One stdlib encoder for every call: json.dumps with any option builds a new encoder per call.
_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


def loads(text: str) -> Any:
    """Parse ``text``; errors (``ValueError``, ``RecursionError``) are the stdlib's."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def dumps(value: Any) -> str:
    """Compact JSON (floats round-trip exactly). orjson writes NaN and infinities as null: the
    callers' values have none (validation refuses them)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return _ENCODE(value)
