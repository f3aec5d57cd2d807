"""The development database: a PostgreSQL server in the data directory, run by pgserver."""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psutil
import psycopg
import psycopg.errors
from psycopg import sql

DATABASE_NAME = "waymark"
# pgserver's list of the processes holding a handle on the server (the last one stops it).
HANDLES_FILE = ".handle_pids.json"

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """Starts (or joins) the PostgreSQL server whose data lives in `data_dir / "pgdata"`.

    Several Waymark processes on one data directory share the server: pgserver counts the
    handles and the last `stop()` shuts it down.
    """

    def __init__(self, data_dir: Path, database: str = DATABASE_NAME) -> None:
        self.data_dir = Path(data_dir)
        self.database = database
        self._server: Any = None

    @property
    def pgdata(self) -> Path:
        return (self.data_dir / "pgdata").resolve()

    def start(self) -> str:
        """Start the server if needed, create the database if missing, return its URL."""
        if self._server is None:
            self._server = _get_server(self.pgdata)
        admin_url = self._server.get_uri()
        _create_database_if_missing(admin_url, self.database)
        return database_url_for(admin_url, self.database)

    def stop(self) -> None:
        """Release this process's handle; the server stops with the last one."""
        if self._server is not None:
            server, self._server = self._server, None
            server.cleanup()
            # pgserver keeps the handle cached while other processes hold theirs; a later
            # start() in this process must register again, not reuse an unregistered one.
            type(server)._instances.pop(server.pgdata, None)
            if _is_alive(server.get_pid() or 0):
                log.info("embedded PostgreSQL: released (other processes still use it)")
            else:
                log.info("embedded PostgreSQL: stopped")


def _get_server(pgdata: Path) -> Any:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.mkdir(exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns at pgserver's import when XDG_RUNTIME_DIR is unset.
        warnings.simplefilter("ignore")
        import pgserver
        from pgserver.postgres_server import PostgresServer
    # pgserver logs every initdb/pg_ctl command line at INFO; we log one line per step.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with PostgresServer._lock:
        forget_dead_handles(pgdata)
        forget_stale_postmaster(pgdata)
    if not (pgdata / "PG_VERSION").exists():
        log.info("embedded PostgreSQL: initialising %s", pgdata)
    log.info("embedded PostgreSQL: starting (or joining) the server in %s", pgdata)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    log.info("embedded PostgreSQL: ready (pid %s)", server.get_pid())
    return server


def forget_dead_handles(pgdata: Path) -> list[int]:
    """Drop the pids of dead processes from pgserver's handle list; return them.

    pgserver stops the server only when the process releasing its handle is the last one in
    the list. A process killed with SIGKILL never removes its pid, so without this every
    later clean stop would see the dead pid, think another process still uses the server,
    and leave PostgreSQL running. (A reused pid of an unrelated live process still counts as
    a holder: that server then stops with the next clean stop after that process exits.)
    """
    path = pgdata / HANDLES_FILE
    try:
        pids = [int(p) for p in json.loads(path.read_text())]
    except (FileNotFoundError, ValueError, TypeError):
        pids = []
        path.unlink(missing_ok=True)
    alive = [pid for pid in pids if _is_alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))
        dead = sorted(set(pids) - set(alive))
        log.info("embedded PostgreSQL: forgot the handles of dead processes %s", dead)
    return [pid for pid in pids if pid not in alive]


def forget_stale_postmaster(pgdata: Path) -> None:
    """Remove a postmaster.pid whose pid now belongs to a process that is not PostgreSQL.

    pgserver trusts any live process with that pid as the running server (after a reboot or
    a container restart the pid is often reused) and would hand out a socket nobody serves.
    """
    pid_file = pgdata / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return
    try:
        name = psutil.Process(pid).name()
    except psutil.Error:
        return  # dead: pgserver and pg_ctl handle a stale file of a dead server
    if name != "postgres":
        log.warning("embedded PostgreSQL: removing stale %s (pid %s is %r)", pid_file, pid, name)
        pid_file.unlink(missing_ok=True)


def _is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
