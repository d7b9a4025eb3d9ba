"""Shared by the hostile-input tests: a sidecar without tokens and a way to feed it events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from jobpulse.instrumentation.wire import format_ts
from tests.security.test_auth import make_client
from tests.sidecar.harness import T0

ClientFactory = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def sidecar_client(aiohttp_client: ClientFactory, tmp_path: Path) -> TestClient[Any, Any]:
    """A sidecar without tokens, job ``nightly`` configured (the auth tests' helper)."""
    return await make_client(aiohttp_client, tmp_path)


def event(n: int, **fields: Any) -> dict[str, Any]:
    """A failure of ``nightly`` at T0 + n with run id ``r<n>``; ``fields`` override."""
    return {
        "type": "failure",
        "job": "nightly",
        "run_id": f"r{n}",
        "ts": format_ts(T0 + n),
        **fields,
    }


async def ingest(client: TestClient[Any, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """POST ``events`` (answered once applied) and return the 200 answer."""
    resp = await client.post("/api/v1/events?wait=applied", json=events)
    assert resp.status == 200, await resp.text()
    body: dict[str, Any] = await resp.json()
    return body
