"""Schema migrations with Alembic, configured in code (no alembic.ini to ship).

On PostgreSQL the upgrade holds an advisory lock, so replicas starting together do not race.
"""

from __future__ import annotations

from typing import Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

__all__ = ["MIGRATE_LOCK_KEY", "alembic_config", "current_revision", "head_revision", "upgrade"]

MIGRATE_LOCK_KEY = 0x6A6F62707573  # "jobpus": the advisory-lock key of `jobpulse migrate`


class Store(Protocol):
    """What migrations need of a :class:`~jobpulse.sidecar.store.database.Store` (named by
    shape, so the store may import this module)."""

    @property
    def engine(self) -> Engine: ...
    @property
    def write_engine(self) -> Engine: ...
    @property
    def is_sqlite(self) -> bool: ...


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "jobpulse.sidecar.store:migrations")
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(store: Store, revision: str = "head") -> None:
    cfg = alembic_config()
    with store.write_engine.begin() as conn:
        if not store.is_sqlite:
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_KEY})
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
