"""Alembic environment: always given a live connection by shared.store.migrate."""

from __future__ import annotations

from alembic import context

from shared.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `ledgerline migrate` (shared.store.migrate.migrate)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    transaction_per_migration=True,
)
with context.begin_transaction():
    context.run_migrations()
