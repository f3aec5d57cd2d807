"""Run the schema migrations (alembic, `upgrade head`) programmatically: `waymark migrate`;
check that a database's schema is the one this code expects (startup, readiness)."""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

import migrations
from infrastructure.postgres.datastore import normalise_url
from migrations import app_role as app_role_sql

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
log = logging.getLogger(__name__)


def sqlalchemy_url(database_url: str) -> URL:
    """The SQLAlchemy URL (psycopg 3 driver) for a libpq URL or `key=value` string."""
    params: dict[str, Any] = conninfo_to_dict(normalise_url(database_url))
    host = params.pop("host", None)
    query: dict[str, str] = {k: str(v) for k, v in params.items() if k not in _URL_PARTS}
    if host and (str(host).startswith("/") or "," in str(host)):
        # Unix-socket directories and multi-host lists only travel in the query string.
        query["host"] = str(host)
        host = None
    port = params.get("port")
    return URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=params.get("password"),
        host=host,
        port=int(port) if port else None,
        database=params.get("dbname"),
        query=query,
    )


_URL_PARTS = frozenset({"user", "password", "port", "dbname"})


def alembic_config(database_url: str, app_role: str | None = None) -> Config:
    """Alembic configuration pointing at Waymark's migrations and the given database.

    `app_role`: the application role the migrations create and grant (None: the
    WAYMARK_DATABASE_APP_ROLE variable, else `waymark_app`; "": none)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # Passed as an object, not through the ini options: those interpolate '%' in passwords.
    config.attributes["database_url"] = database_url
    config.attributes["app_role"] = app_role
    return config


def migrate(database_url: str, app_role: str | None = None) -> None:
    """Bring the database's schema to the latest revision (safe to run from many replicas),
    then grant the application role the tables again (idempotent; migrations/app_role.py):
    a role a database administrator created by hand after a migration without CREATEROLE
    gets its grants from the next run."""
    command.upgrade(alembic_config(database_url, app_role), "head")
    role = app_role_sql.role_name(app_role)
    if not role:
        return
    with psycopg.connect(normalise_url(database_url), autocommit=True) as conn:
        conn.add_notice_handler(_log_notice)
        conn.execute(app_role_sql.grant_sql(role))
        row = conn.execute(app_role_sql.role_exists_sql(role)).fetchone()
    if not (row and row[0]):
        log.warning(
            "the application role %s does not exist and the migrating user may not create "
            "it: the application cannot connect as it; %s (or set WAYMARK_DATABASE_APP_ROLE "
            "to a role that exists)",
            role,
            app_role_sql.MANUAL_STEP.format(role=role, owner="<the migrating user>"),
        )


def _log_notice(diagnostic: psycopg.errors.Diagnostic) -> None:
    if diagnostic.severity_nonlocalized == "WARNING":
        log.warning("%s", diagnostic.message_primary)


class SchemaNotCurrentError(RuntimeError):
    """The database's schema revision is not the one this code was written for."""

    def __init__(self, found: frozenset[str], expected: frozenset[str]) -> None:
        self.found = found
        self.expected = expected
        at = ", ".join(sorted(found)) or "none (no Waymark schema)"
        super().__init__(
            f"the database schema is at revision {at}, this Waymark needs "
            f"{', '.join(sorted(expected))}: run `waymark migrate` "
            "(or set WAYMARK_AUTO_MIGRATE=true)"
        )


@functools.cache
def expected_revisions() -> frozenset[str]:
    """The head revision(s) of the migrations shipped with this code."""
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


def read_revisions(cursor: Any) -> frozenset[str]:
    """The revision(s) recorded in `alembic_version` (empty when the table is missing).

    Works with tuple and dict rows (the eventsourcing pool's cursors return dicts)."""
    cursor.execute("SELECT to_regclass('alembic_version') IS NOT NULL AS present")
    if not _first(cursor.fetchone()):
        return frozenset()
    cursor.execute("SELECT version_num FROM alembic_version")
    return frozenset(str(_first(row)) for row in cursor.fetchall())


def _first(row: Any) -> Any:
    if row is None:
        return None
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def check_revisions(found: frozenset[str]) -> None:
    """Raise `SchemaNotCurrentError` unless `found` is exactly the expected head."""
    expected = expected_revisions()
    if found != expected:
        raise SchemaNotCurrentError(found, expected)


def check_schema(database_url: str, *, connect_timeout: float = 5.0) -> None:
    """Refuse a database whose schema is not at the head this code expects."""
    url = normalise_url(database_url)
    with psycopg.connect(url, connect_timeout=max(1, round(connect_timeout))) as conn:
        check_revisions(read_revisions(conn.cursor()))
