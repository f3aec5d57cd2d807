"""Shared fixtures: one PostgreSQL per test session, a migrated template, a database per test.

Set WAYMARK_TEST_DATABASE_URL (a URL of a role allowed to CREATE DATABASE) to use an
existing server; otherwise an embedded PostgreSQL (pgserver) runs in a temporary directory
for the session. Heavy imports happen inside the fixtures, so unit tests pay nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TEMPLATE_DATABASE = "waymark_template"


def _drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        # A pool of the test (or a leaked connection) must not keep the database alive.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _create_database(admin_url: str, name: str, template: str | None = None) -> None:
    import psycopg
    from psycopg import sql

    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """URL of a role that may create databases, on the session's PostgreSQL server."""
    external = os.environ.get("WAYMARK_TEST_DATABASE_URL")
    if external:
        yield external
        return
    from infrastructure.embedded_postgres import EmbeddedPostgres

    data_dir = Path(tempfile.mkdtemp(prefix="waymark-test-pg-"))
    server = EmbeddedPostgres(data_dir, database="postgres")
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def migrated_template(postgres_admin_url: str) -> Iterator[str]:
    """Name of a database migrated once with the real alembic migrations."""
    from infrastructure.embedded_postgres import database_url_for
    from infrastructure.postgres.migrate import migrate

    _drop_database(postgres_admin_url, TEMPLATE_DATABASE)
    _create_database(postgres_admin_url, TEMPLATE_DATABASE)
    migrate(database_url_for(postgres_admin_url, TEMPLATE_DATABASE))
    yield TEMPLATE_DATABASE
    _drop_database(postgres_admin_url, TEMPLATE_DATABASE)


@pytest.fixture
def database_url(postgres_admin_url: str, migrated_template: str) -> Iterator[str]:
    """A fresh, migrated database of this test's own (a copy of the template)."""
    from infrastructure.embedded_postgres import database_url_for

    name = f"test_{uuid.uuid4().hex[:16]}"
    _create_database(postgres_admin_url, name, template=migrated_template)
    try:
        yield database_url_for(postgres_admin_url, name)
    finally:
        _drop_database(postgres_admin_url, name)


@pytest.fixture
def datastore(database_url: str) -> Iterator[Any]:
    """The pool over this test's database (eventsourcing PostgresDatastore), closed after."""
    from infrastructure.postgres.datastore import build_datastore

    store = build_datastore(database_url, pool_size=4)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[Any]:
    """A real Kafka-compatible broker (tansu) for the session, started on first use."""
    from tests.kafka_broker import KafkaBroker

    broker = KafkaBroker().start()
    try:
        yield broker
    finally:
        broker.stop()
