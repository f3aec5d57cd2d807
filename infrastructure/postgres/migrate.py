"""Run the schema migrations (alembic, `upgrade head`) programmatically: `waymark migrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import URL

import migrations
from infrastructure.postgres.datastore import normalise_url

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


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


def alembic_config(database_url: str) -> Config:
    """Alembic configuration pointing at Waymark's migrations and the given database."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # Passed as an object, not through the ini options: those interpolate '%' in passwords.
    config.attributes["database_url"] = database_url
    return config


def migrate(database_url: str) -> None:
    """Bring the database's schema to the latest revision (safe to run from many replicas)."""
    command.upgrade(alembic_config(database_url), "head")
