"""Fixtures of the web tests: the scripted fleet behind a test client, and live servers on
ephemeral ports for the browser and the ``jobpulse status`` subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from .scenario import build_app, play

Serve = Callable[[web.Application], Awaitable[str]]


@pytest.fixture
async def fleet_client(aiohttp_client, tmp_path: Path) -> TestClient:
    """A client of the sidecar after the scripted scenario (six jobs, every state)."""
    app = build_app(tmp_path)
    client = await aiohttp_client(app)
    play(app)
    return client


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start an app on 127.0.0.1 on an ephemeral port; returns its base URL."""
    runners: list[web.AppRunner] = []

    async def start(app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    yield start
    for runner in reversed(runners):
        await runner.cleanup()
