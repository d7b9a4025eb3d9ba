"""The spool's files and claims, the backoff schedule, and settings resolution."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from jobpulse.instrumentation._backoff import MAX_RETRY_AFTER, Backoff
from jobpulse.instrumentation._settings import DEFAULT_URL, ClientSettings
from jobpulse.instrumentation._spool import STALE_CLAIM, Spool
from jobpulse.instrumentation.errors import ConfigError

BATCH = [{"v": 1, "type": "start", "job": "j", "run_id": "r", "ts": "2026-11-23T10:00:00Z"}]


def test_spool_round_trip_and_exclusive_claims(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    assert spool.pending() == []
    assert spool.write(BATCH)
    (path,) = spool.pending()
    assert not list(path.parent.glob(".*.tmp"))  # written to a temporary name, then renamed
    claimed = spool.claim(path)
    assert claimed is not None
    assert spool.claim(path) is None  # a second sender loses the race
    assert spool.pending() == []
    assert spool.read(claimed) == BATCH
    spool.release(claimed)
    (again,) = spool.pending()
    claimed = spool.claim(again)
    assert claimed is not None
    spool.done(claimed)
    assert list((tmp_path / "spool").iterdir()) == []


def test_spool_is_bounded(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=160)  # room for two 75-byte batches
    assert spool.write(BATCH)
    assert spool.write(BATCH)
    assert not spool.write(BATCH)
    assert len(spool.pending()) == 2


def test_stale_claims_of_dead_processes_are_released(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write(BATCH)
    claimed = spool.claim(spool.pending()[0])
    assert claimed is not None
    old = time.time() - STALE_CLAIM - 1
    os.utime(claimed, (old, old))
    assert len(spool.pending()) == 1


def test_unreadable_spool_files_are_removed(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.write(BATCH)
    path = spool.pending()[0]
    path.write_text("{not json")
    claimed = spool.claim(path)
    assert claimed is not None
    assert spool.read(claimed) is None
    assert list(tmp_path.iterdir()) == []


def test_backoff_is_full_jitter_under_an_exponential_cap() -> None:
    backoff = Backoff(base=0.5, cap=30.0)
    rng = random.Random(42)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (6, 16.0), (7, 30.0), (100, 30.0)]:
        delays = [backoff.delay(attempt, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # spread over the whole range
    assert backoff.delay(1, rng, retry_after=12) >= 12
    assert backoff.delay(1, rng, retry_after=10**6) == MAX_RETRY_AFTER


def test_settings_argument_then_environment_then_default(tmp_path: Path) -> None:
    env = {"JOBPULSE_URL": "http://sidecar:9000/", "JOBPULSE_TIMEOUT": "2.5"}
    settings = ClientSettings.resolve(environ=env, spool_dir=tmp_path)
    assert settings.url == "http://sidecar:9000"
    assert settings.timeout == 2.5
    assert settings.queue_size == 10_000
    assert not settings.disabled
    assert ClientSettings.resolve(url="https://x.example", environ=env).url == "https://x.example"
    default = ClientSettings.resolve(environ={})
    assert default.url == DEFAULT_URL
    assert default.spool_dir.parts[-2:] == ("jobpulse", "spool")
    assert ClientSettings.resolve(environ={"JOBPULSE_DISABLED": "1"}).disabled
    with pytest.raises(ConfigError, match="queue_size"):
        ClientSettings.resolve(queue_size=0, environ={})
