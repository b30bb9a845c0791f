"""Alembic's environment: migrations run on the connection that Database.migrate hands over (SQLite or
PostgreSQL); `target_metadata` lets autogenerate and the schema test compare them with the models."""

from __future__ import annotations

from alembic import context

from kubevision.core.labelstore.tables import Base

target_metadata = Base.metadata
connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=target_metadata,
                  render_as_batch=connection.dialect.name == "sqlite")  # SQLite alters tables by copying them
with context.begin_transaction():
    context.run_migrations()
