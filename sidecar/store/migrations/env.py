"""Alembic environment: runs on the connection jobpulse hands it."""

from __future__ import annotations

from alembic import context

from jobpulse.sidecar.domain.tables import Base
from jobpulse.sidecar.store import outbox  # noqa: F401 - its table is on Base.metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
