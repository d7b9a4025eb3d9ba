"""Per-process concerns of the client: the default-client slot and fork handling.

The slot is filled on first use by the factory the caller passes (``client.get_client`` passes
:class:`~jobpulse.instrumentation.client.HeartbeatClient`, which reads ``JOBPULSE_*`` then,
never at import). This module imports no client, so ``client`` may import it. After ``fork``
every live client gets fresh locks, an empty queue and no thread (the child
starts its own on its first event), so a child never inherits a lock held by a thread that does
not exist in it, nor re-sends its parent's queued events.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from typing import Protocol

from ._sink import EventSink

__all__ = ["default_client", "replace_default", "reset_after_fork"]


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_TRACKED: weakref.WeakSet[_ForkAware] = weakref.WeakSet()
_hook_installed = False
_default: EventSink | None = None
_default_lock = threading.Lock()


def reset_after_fork(obj: _ForkAware) -> None:
    """Call ``obj._after_fork()`` in the child of every later fork, while ``obj`` lives."""
    global _hook_installed
    _TRACKED.add(obj)
    if not _hook_installed and hasattr(os, "register_at_fork"):
        _hook_installed = True
        os.register_at_fork(after_in_child=_after_fork_in_child)


def _after_fork_in_child() -> None:
    global _default_lock
    _default_lock = threading.Lock()
    for obj in list(_TRACKED):
        obj._after_fork()


def default_client(create: Callable[[], EventSink]) -> EventSink:
    """The process's default client: made by ``create`` on first use, then kept."""
    global _default
    client = _default
    if client is None:
        with _default_lock:
            if _default is None:
                _default = create()
            client = _default
    return client


def replace_default(client: EventSink | None) -> EventSink | None:
    """Make ``client`` the process default (None: create one on next use); return the old one."""
    global _default
    with _default_lock:
        previous, _default = _default, client
    return previous
