"""The development database: a PostgreSQL server in the data directory, run by pgserver."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg.errors
from psycopg import sql

DATABASE_NAME = "waymark"


class EmbeddedPostgres:
    """Starts (or joins) the PostgreSQL server whose data lives in `data_dir / "pgdata"`.

    Several Waymark processes on one data directory share the server: pgserver counts the
    handles and the last `stop()` shuts it down.
    """

    def __init__(self, data_dir: Path, database: str = DATABASE_NAME) -> None:
        self.data_dir = Path(data_dir)
        self.database = database
        self._server: Any = None

    def start(self) -> str:
        """Start the server if needed, create the database if missing, return its URL."""
        if self._server is None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            with warnings.catch_warnings():
                # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset.
                warnings.simplefilter("ignore")
                import pgserver

                self._server = pgserver.get_server(self.data_dir / "pgdata", cleanup_mode="stop")
        admin_url = self._server.get_uri()
        _create_database_if_missing(admin_url, self.database)
        return database_url_for(admin_url, self.database)

    def stop(self) -> None:
        """Release this process's handle; the server stops with the last one."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def database_url_for(url: str, database: str) -> str:
    """The same server URL pointing at another database (URL or `key=value` form)."""
    if "://" not in url:
        return psycopg.conninfo.make_conninfo(url, dbname=database)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


def _create_database_if_missing(admin_url: str, database: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
        if exists.fetchone() is not None:
            return
        # Another process on the same data directory may create it first.
        with contextlib.suppress(psycopg.errors.DuplicateDatabase):
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
