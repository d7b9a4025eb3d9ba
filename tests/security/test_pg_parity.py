"""PostgreSQL parity: the sidecar's evaluator and HTTP suites (written against SQLite) run again,
unchanged, over a fresh PostgreSQL database per test."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobpulse.sidecar.config import parse_config
from jobpulse.sidecar.domain.clock import ManualClock
from jobpulse.sidecar.http.app import create_app
from jobpulse.sidecar.settings import Settings
from tests.sidecar import test_abandoned, test_evaluator, test_http, test_maintenance
from tests.sidecar.harness import T0, Harness


def _borrow(module: Any) -> None:
    """Collect ``module``'s tests here too; those already parametrised by store are skipped."""
    for name, fn in vars(module).items():
        if name.startswith("test_") and callable(fn):
            if "store_url" not in inspect.signature(fn).parameters:
                globals()[f"{name}__{module.__name__.rsplit('.', 1)[1]}"] = fn


_borrow(test_abandoned)
_borrow(test_evaluator)
_borrow(test_http)
_borrow(test_maintenance)
win = test_maintenance.win  # the borrowed maintenance tests' fixtures
night = test_maintenance.night


@pytest.fixture(autouse=True)
def _harness_on_postgresql(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def on_pg(store: str, *args: Any, **kwargs: Any) -> Harness:
        assert store.startswith("sqlite:")  # what the borrowed test asked for
        return Harness(pg_url, *args, **kwargs)

    monkeypatch.setattr(test_abandoned, "Harness", on_pg)
    monkeypatch.setattr(test_evaluator, "Harness", on_pg)
    monkeypatch.setattr(test_maintenance, "Harness", on_pg)


@pytest.fixture
def h(pg_url: str) -> Iterator[Harness]:
    harness = Harness(pg_url, test_evaluator.FIVE, start=T0 - 60)
    yield harness
    harness.close()


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[TestClient[Any, Any]]], pg_url: str
) -> TestClient[Any, Any]:
    settings = Settings(store=pg_url, catchup_delay=0, max_body_bytes=65536, max_batch_events=50)
    app = create_app(
        settings,
        clock=ManualClock(T0),
        file_config=parse_config(test_http.CONFIG),
        run_evaluator=False,
    )
    return await aiohttp_client(app)
