"""Shared fixtures: services that skip (or fail under JOBPULSE_REQUIRE_SERVICES=1), stores over
SQLite and PostgreSQL, free ports, and the hypothesis profiles."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from jobpulse.sidecar.testing import free_port

__all__ = ["free_port"]

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "dev"))

PG_ADMIN_URL = os.environ.get("JOBPULSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("JOBPULSE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def services_required() -> bool:
    return os.environ.get("JOBPULSE_REQUIRE_SERVICES") == "1"


def need(available: bool, what: str) -> None:
    """Skip when a service or tool is absent; fail instead under JOBPULSE_REQUIRE_SERVICES=1."""
    if available:
        return
    if services_required():
        pytest.fail(f"{what} is required (JOBPULSE_REQUIRE_SERVICES=1) but not available")
    pytest.skip(f"{what} is not available on this machine")


def need_binary(name: str) -> str:
    path = shutil.which(name)
    need(path is not None, f"the {name} binary")
    assert path is not None
    return path


def _pg_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    need(_pg_available(), f"PostgreSQL at {PG_ADMIN_URL}")
    import psycopg

    name = f"jobpulse_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The same test over the embedded SQLite store and over PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/jobpulse.db"
    return str(request.getfixturevalue("pg_url"))
