"""Cheap per-process identity for the decorator's hot path: run ids and the process id.

A run id is a UUID (RFC 9562 version 8, the layout for custom UUIDs): 74 random bits drawn once
per process and a 48-bit counter, ``xxxxxxxx-xxxx-8xxx-yxxx-cccccccccccc``. Drawing 122 random
bits for every run (``uuid4``) costs a system call and a ``UUID`` object, a large share of what
the decorator costs a no-op job; a counter costs a formatted integer. Two processes share a
prefix with odds of about n² / 2**75 for n processes, so ids stay unique across processes and
hosts, and they stay valid ``run_id`` values (36 characters, a parseable UUID).

``os.getpid()`` is a system call too, so the pid is read once and again in a forked child. After
``fork`` the child draws a new prefix: it must never repeat the run ids its parent goes on to use.
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Final

__all__ = ["current_pid", "new_run_id"]

_COUNTER_LIMIT: Final = 1 << 48  # the counter fills the UUID's last 12 hex digits


class _Identity:
    """This process's pid, run-id prefix and run counter; replaced after fork."""

    __slots__ = ("counter", "pid", "prefix")

    def __init__(self) -> None:
        self.pid = os.getpid()
        bits = int.from_bytes(os.urandom(10), "big") >> 6  # 74 random bits
        a, b, c, d = bits >> 42, (bits >> 26) & 0xFFFF, (bits >> 14) & 0xFFF, bits & 0x3FFF
        # version 8 in the third group, variant 0b10 in the fourth
        self.prefix = f"{a:08x}-{b:04x}-8{c:03x}-{0x8000 | d:04x}-"
        self.counter = itertools.count()


_identity = _Identity()
_reseed_lock = threading.Lock()


def _reseed() -> None:
    global _identity
    _identity = _Identity()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reseed)


def new_run_id() -> str:
    """A fresh run id, unique across threads, processes and hosts (see the module docstring)."""
    identity = _identity
    n = next(identity.counter)  # atomic: itertools.count is implemented in C
    if n >= _COUNTER_LIMIT:  # 2**48 runs in one process: start over with a new prefix
        with _reseed_lock:
            if identity is _identity:
                _reseed()
        return new_run_id()
    return f"{identity.prefix}{n:012x}"


def current_pid() -> int:
    """``os.getpid()``, without a system call per event."""
    return _identity.pid
