"""Alembic environment: runs Waymark's migrations against the configured PostgreSQL."""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import URL

from infrastructure.postgres.migrate import sqlalchemy_url

# Any fixed 64-bit number: the lock that serialises concurrent `waymark migrate` runs
# (several replicas starting at once) so each sees the version the previous one committed.
MIGRATION_LOCK_ID = 0x5741594D41524B  # "WAYMARK"


if context.config.config_file_name and "database_url" not in context.config.attributes:
    # The alembic command line: log as its ini file says. `migrate()` leaves logging alone.
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)


def _database_url() -> URL:
    config = context.config
    url = (
        config.attributes.get("database_url")
        or config.get_main_option("sqlalchemy.url")
        or context.get_x_argument(as_dictionary=True).get("database_url")
        or os.environ.get("DATABASE_URL")
    )
    if not url:
        raise RuntimeError("no database: set DATABASE_URL or pass -x database_url=...")
    return sqlalchemy_url(url)


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(_database_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, transaction_per_migration=False)
            with context.begin_transaction():
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
                )
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
