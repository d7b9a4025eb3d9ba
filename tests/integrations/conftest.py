"""Fixtures of the integration tests: a live sidecar and a heartbeat client pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jobpulse.instrumentation import HeartbeatClient

from .live import LiveSidecar


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveSidecar]:
    served = LiveSidecar(tmp_path).start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def client(live: LiveSidecar) -> Iterator[HeartbeatClient]:
    sink = live.client()
    try:
        yield sink
    finally:
        sink.close(timeout=5)
